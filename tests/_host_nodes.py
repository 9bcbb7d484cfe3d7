"""A stand-in for core's text encoder in the host check's Wan run (a ComfyUI custom node file), and the
seeded ViT-H file that core's CLIP Vision loader reads there.

Core's CLIPLoader type 'wan' always builds the full umt5-xxl (5.7 B parameters): too large for a CPU
check. scripts/comfy_host_check.py copies this file into the temporary ``custom_nodes/`` and swaps
TinyTextEncode in for CLIPTextEncode; it gives what umt5 gives Wan 2.1, a prompt embedding
[1, tokens, 4096], seeded by the text, so the run is reproducible.
"""

import zlib

import torch

TEXT_TOKENS = 8
TEXT_WIDTH = 4096  # umt5-xxl's width, Wan 2.1's text_dim
SCALE = 0.5


def _randn(shape, seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * SCALE


class TinyTextEncode:
    CATEGORY = "testing"
    FUNCTION = "encode"
    RETURN_TYPES = ("CONDITIONING",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"multiline": True})}}

    def encode(self, text):
        return ([[_randn((1, TEXT_TOKENS, TEXT_WIDTH), zlib.crc32(text.encode())), {}]],)


def save_random_clip_vision_h(path: str, seed: int = 0) -> str:
    """Core's ViT-H/14 image encoder (clip_vision_h, 632 M parameters) at seeded random weights, fp16 safetensors.

    Needs ComfyUI importable. Linear / conv weights N(0, 1/fan_in), embeddings N(0, 0.02²), norms 1, biases 0."""
    import json
    import os

    import comfy.clip_vision
    import comfy.ops
    import safetensors.torch
    from comfy.clip_model import CLIPVisionModelProjection

    config = os.path.join(os.path.dirname(comfy.clip_vision.__file__), "clip_vision_config_h.json")
    with open(config) as f:
        shapes = {k: v.shape for k, v in CLIPVisionModelProjection(
            json.load(f), torch.float16, "meta", comfy.ops.disable_weight_init).state_dict().items()}
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        if "norm" in name:
            value = torch.ones(shape) if name.endswith("weight") else torch.zeros(shape)
        elif name.endswith("bias"):
            value = torch.zeros(shape)
        elif "embedding" in name and "patch" not in name:
            value = torch.randn(shape, generator=gen) * 0.02
        else:
            value = torch.randn(shape, generator=gen) / torch.Size(shape[1:]).numel() ** 0.5
        state[name] = value.half()
    safetensors.torch.save_file(state, path)
    return path


NODE_CLASS_MAPPINGS = {"InverseDVSHostCheck_TinyTextEncode": TinyTextEncode}
