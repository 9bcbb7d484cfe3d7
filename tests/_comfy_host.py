"""The real ComfyUI, in-process, for the host tests of the native (Wan) path, and tiny Wan models built with
core's own classes.

    COMFYUI_DIR=/path/to/ComfyUI <ComfyUI's python> -m pytest -m host tests/test_native_*.py

``import_comfy()`` puts ``$COMFYUI_DIR`` on ``sys.path`` and parses core's arguments as ``--cpu``;
tests skip when COMFYUI_DIR is unset or core cannot be imported with this Python.
"""

from __future__ import annotations

import os
import sys

import pytest
import torch

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
HOST_REASON = "set COMFYUI_DIR to a ComfyUI checkout (and run with its Python) for the native-model tests"
HOST_MARKS = [
    pytest.mark.host,
    pytest.mark.skipif(not COMFYUI_DIR or not os.path.isfile(os.path.join(COMFYUI_DIR, "main.py")),
                       reason=HOST_REASON),
]

# A tiny Wan 2.1 image-to-video transformer (3.0 M parameters; core sizes heads as dim // 128).
WAN21_I2V = dict(model_type="i2v", in_dim=36, dim=128, ffn_dim=256, freq_dim=256, num_heads=1, num_layers=2,
                 out_dim=16, text_dim=4096)
# A tiny SD 1.5-class UNet (25.8 M parameters): core detects SD 1.5 by model_channels 320 and context_dim 768, so
# those stay; one resolution level with one res block and one transformer block keeps it small.
SD15_UNET = dict(image_size=32, in_channels=4, model_channels=320, out_channels=4, num_res_blocks=[1], channel_mult=(1,),
                 num_heads=8, use_spatial_transformer=True, transformer_depth=[1], transformer_depth_output=[1, 1],
                 transformer_depth_middle=1, context_dim=768, use_linear_in_transformer=False, legacy=False)
SD15_TEXT_WIDTH = 768  # CLIP-L's width, SD 1.5's context_dim
# Text length of the tiny conditionings (umt5's width 4096, as Wan's text_dim)
TEXT_TOKENS = 8
WEIGHT_SCALE = 0.02


def import_comfy():
    """Core's modules, importable in this process (``--cpu``); skips the test when they are not."""
    if not COMFYUI_DIR:
        pytest.skip(HOST_REASON)
    if COMFYUI_DIR not in sys.path:
        sys.path.insert(0, COMFYUI_DIR)
    saved = sys.argv
    sys.argv = [saved[0], "--cpu"]
    try:
        import comfy.options

        comfy.options.enable_args_parsing()
        import comfy.cli_args  # noqa: F401  (parses --cpu once)
        import comfy.model_management
        import comfy.samplers
        import comfy.sd  # noqa: F401
    except ImportError as err:
        pytest.skip(f"ComfyUI is not importable with this Python ({err}); use ComfyUI's own Python")
    finally:
        sys.argv = saved
    return comfy


@pytest.fixture(scope="module")
def comfy():
    """Core's modules (a host test module imports this fixture from here)."""
    return import_comfy()


@pytest.fixture(autouse=True)
def inference(comfy):
    """Every test runs under torch.inference_mode, as ComfyUI's executor runs every node."""
    with torch.inference_mode():
        yield


def save_tiny_wan(path: str, seed: int = 0, **overrides) -> str:
    """A random WanModel of core's own class, saved as safetensors at ``path`` (weights N(0, 0.02²), norms 1)."""
    import safetensors.torch
    import comfy.ops
    from comfy.ldm.wan.model import WanModel

    config = dict(WAN21_I2V, **overrides)
    model = WanModel(operations=comfy.ops.disable_weight_init, **config)
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in model.state_dict().items():
        if "norm" in name and name.endswith("weight"):
            state[name] = torch.ones(tensor.shape)
        else:
            state[name] = torch.randn(tensor.shape, generator=gen) * WEIGHT_SCALE
    safetensors.torch.save_file(state, path)
    return path


def seeded_state(module: torch.nn.Module, seed: int) -> dict:
    """``module``'s state dict at seeded weights: N(0, 1/fan_in), norm scales (1-D weights) 1, biases 0."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in module.state_dict().items():
        if tensor.ndim < 2 and name.endswith("weight"):
            state[name] = torch.ones(tensor.shape)
        elif name.endswith("bias") or tensor.ndim < 2:
            state[name] = torch.zeros(tensor.shape)
        else:
            state[name] = torch.randn(tensor.shape, generator=gen) / tensor[0].numel() ** 0.5
    return state


def save_tiny_sd15_unet(path: str, seed: int = 0) -> str:
    """A random SD 1.5-class UNet of core's own class (``SD15_UNET``), saved as safetensors at ``path`` (what core's
    Load Diffusion Model reads and detects as SD 1.5)."""
    import comfy.ops
    import safetensors.torch
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    safetensors.torch.save_file(seeded_state(UNetModel(operations=comfy.ops.disable_weight_init, **SD15_UNET), seed),
                                path)
    return path


def save_tiny_sd15_checkpoint(path: str, seed: int = 0) -> str:
    """An SD 1.5 checkpoint as core's Load Checkpoint reads it, fp16 safetensors at ``path``: the tiny UNet
    (``SD15_UNET``) with core's full-size SD VAE and CLIP-L text encoder, all of core's own classes at seeded
    weights (``seeded_state``)."""
    import comfy.ops
    import comfy.sd1_clip
    import safetensors.torch
    from comfy.ldm.models.autoencoder import AutoencoderKL
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    vae_config = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
                  "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
    parts = {"model.diffusion_model.": UNetModel(operations=comfy.ops.disable_weight_init, **SD15_UNET),
             "first_stage_model.": AutoencoderKL(ddconfig=vae_config, embed_dim=4),
             "cond_stage_model.": comfy.sd1_clip.SDClipModel(device="cpu", dtype=torch.float32)}
    state = {}
    for i, (prefix, module) in enumerate(parts.items()):
        for name, value in seeded_state(module, seed + i).items():
            if "position_ids" in name:
                value = torch.arange(value.shape[-1]).expand(value.shape).float()
            state[prefix + name] = value.half()
    safetensors.torch.save_file(state, path)
    return path


def wan21_vae(seed: int = 0):
    """Core's Wan 2.1 VAE (full size, 127 M parameters) with seeded random weights: N(0, 1/fan_in), norms 1, biases 0.

    Core builds it with uninitialised parameters, so the state dict is filled here before loading.
    """
    import comfy.ops  # noqa: F401
    import comfy.sd
    from comfy.ldm.wan.vae import WanVAE

    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in WanVAE(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                               temperal_downsample=[False, True, True], dropout=0.0).state_dict().items():
        if name.endswith("gamma") or "norm" in name:
            state[name] = torch.ones(tensor.shape)
        elif name.endswith("bias") or tensor.ndim < 2:
            state[name] = torch.zeros(tensor.shape)
        else:
            fan_in = tensor[0].numel()
            state[name] = torch.randn(tensor.shape, generator=gen) / fan_in**0.5
    return comfy.sd.VAE(sd=state)


def text_conditioning(seed: int, tokens: int = TEXT_TOKENS, width: int = 4096):
    """A CONDITIONING of one random prompt embedding [1, tokens, width]."""
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, tokens, width, generator=gen), {}]]


def image_conditioning(conditioning, latent: torch.Tensor):
    """What core's WanImageToVideo adds for a start frame: concat_latent_image and concat_mask (0 on frame 0)."""
    import node_helpers

    mask = torch.ones(1, 1, *latent.shape[2:])
    mask[:, :, :1] = 0.0
    image = latent.clone()
    image[:, :, 1:] = 0.0
    return node_helpers.conditioning_set_values(conditioning, {"concat_latent_image": image, "concat_mask": mask})


# Tiny SVD img2vid / SV3D UNets of core's own class. Core detects these models by their block layout (4 levels of
# 2 res blocks, transformers in the first 3, 320 channels, context 1024) and adm width (SVD 768, SV3D_u 256, SV3D_p
# 1280), so those stay; channel_mult (1, 1, 1, 1) keeps 320 channels at every level: 212 M parameters, the least
# core still takes for these models (full size: 1.5 B).
SVD_ADM = {"svd": 768, "sv3d_u": 256, "sv3d_p": 1280}
SVD_UNET = dict(image_size=32, in_channels=8, out_channels=4, model_channels=320, num_res_blocks=2,
                channel_mult=(1, 1, 1, 1), transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
                transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], transformer_depth_middle=1,
                num_head_channels=64, num_heads=-1, context_dim=1024, use_linear_in_transformer=True,
                use_spatial_transformer=True, num_classes="sequential", use_temporal_attention=True,
                use_temporal_resblock=True, extra_ff_mix_layer=True, use_spatial_context=True,
                merge_strategy="learned_with_images", merge_factor=0.0, video_kernel_size=[3, 1, 1],
                disable_temporal_crossattention=False, max_ddpm_temb_period=10000)
CLIP_VISION_WIDTH = 1024  # SVD / SV3D's image embedding width (ViT-H's projection)


def save_tiny_svd_unet(path: str, kind: str = "svd", seed: int = 0) -> str:
    """A random SVD img2vid (``kind`` "svd") or SV3D ("sv3d_u" / "sv3d_p") UNet of core's own class at seeded weights
    (``seeded_state``), fp16 safetensors at ``path``: what core's Load Diffusion Model reads and detects as that model."""
    import comfy.ops
    import safetensors.torch
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    unet = UNetModel(operations=comfy.ops.disable_weight_init, adm_in_channels=SVD_ADM[kind], **SVD_UNET)
    state = {k: v.half() for k, v in seeded_state(unet, seed).items()}
    safetensors.torch.save_file(state, path)
    return path


def tiny_clip_vision(folder: str, seed: int = 0):
    """Core's CLIP vision model (ClipVisionModel, the encoder SVD_img2vid_Conditioning calls) in a tiny config: two
    layers of width 64 on 56x56 inputs, projected to SVD's 1024; seeded weights."""
    import json
    import os

    import comfy.clip_vision

    config = {"attention_dropout": 0.0, "dropout": 0.0, "hidden_act": "gelu", "hidden_size": 64, "image_size": 56,
              "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 128, "layer_norm_eps": 1e-5,
              "model_type": "clip_vision_model", "num_attention_heads": 2, "num_channels": 3, "num_hidden_layers": 2,
              "patch_size": 14, "projection_dim": CLIP_VISION_WIDTH, "torch_dtype": "float32"}
    path = os.path.join(folder, "tiny_clip_vision.json")
    with open(path, "w") as f:
        json.dump(config, f)
    model = comfy.clip_vision.ClipVisionModel(path)
    state = seeded_state(model.model, seed)
    for name in state:
        if "position_ids" in name:
            state[name] = torch.arange(state[name].shape[-1]).expand(state[name].shape).clone()
    model.load_sd(state)
    return model


def sd_vae(seed: int = 0):
    """Core's SD VAE (AutoencoderKL, the latent space SVD and SV3D share; 84 M parameters) at seeded weights."""
    import comfy.sd
    from comfy.ldm.models.autoencoder import AutoencoderKL

    config = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
              "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}
    return comfy.sd.VAE(sd=seeded_state(AutoencoderKL(ddconfig=config, embed_dim=4), seed))
