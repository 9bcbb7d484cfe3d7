"""The CogVideoX backend on tiny instances of the real classes: loading, encode/decode, v-prediction, LoRA."""

import os
import shutil

import pytest
import torch

from inversedvs.backend import cogvideox
from inversedvs.backend.cogvideox import CogVideoXModel, check_model_folder, padded_image_condition, resize_crop_region
from inversedvs.backend.lora import merge_lora, read_safetensors
from inversedvs.backend.tiny import TINY_LATENT_CHANNELS, cached_tiny_video_model
from inversedvs.errors import InverseDVSError


@pytest.fixture(scope="module")
def folder():
    return cached_tiny_video_model()


@pytest.fixture(scope="module")
def model(folder):
    return CogVideoXModel(folder, dtype="fp32")


def test_tiny_folder_has_the_real_layout(folder):
    for part in ("transformer", "vae", "scheduler", "text_encoder", "tokenizer"):
        assert os.path.isdir(os.path.join(folder, part))
    assert os.path.exists(os.path.join(folder, "model_index.json"))
    assert check_model_folder(folder, "tiny", []) == folder


def test_missing_parts_are_listed(folder, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(folder, partial)
    shutil.rmtree(partial / "vae")
    os.remove(partial / "text_encoder" / "model.safetensors")
    with pytest.raises(InverseDVSError) as err:
        check_model_folder(str(partial), "partial", [str(tmp_path)])
    msg = str(err.value)
    assert "vae/config.json" in msg and "text_encoder/*.safetensors" in msg and str(partial) in msg
    with pytest.raises(InverseDVSError, match="Looked in: /nowhere"):
        check_model_folder(None, "CogVideoX-5b-I2V", ["/nowhere"])


def test_encode_decode_shapes_and_statistics(model):
    frames = torch.rand(9, 64, 96, 3)
    mean, std = model.encode_video(frames)
    assert mean.shape == std.shape == (1, TINY_LATENT_CHANNELS, 3, 8, 12)
    assert bool((std > 0).all()) and mean.dtype == torch.float32
    # scaled by the VAE's scaling factor: the unscaled posterior equals mean / 0.7
    with torch.no_grad():
        dist = model.vae.encode(frames.permute(3, 0, 1, 2)[None] * 2 - 1).latent_dist
    assert torch.allclose(mean, dist.mean * 0.7, atol=1e-5)
    images = model.decode(mean)
    assert images.shape == (9, 64, 96, 3) and 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    # tiling starts above the real VAE's tile size (240x360): a small clip goes through unchanged
    tiled_mean, _ = model.encode_video(frames, tiled=True)
    assert model.vae.use_tiling and torch.allclose(tiled_mean, mean, atol=1e-6)
    model.encode_video(frames)
    assert not model.vae.use_tiling


def test_prompts_differ_and_the_empty_prompt_is_consistent(model):
    embeds = model.encode_text(["a dog on the beach", ""])
    assert embeds.shape == (2, 16, 32)
    assert not torch.allclose(embeds[0], embeds[1])
    assert torch.equal(model.empty_text_embeds(), model.empty_text_embeds())
    # each prompt is encoded on its own (fixed length, no cross-talk), so the empty prompt's embedding
    # taken from a batch equals the one encoded alone
    assert torch.allclose(embeds[1:2], model.encode_text([""]), atol=1e-6)


@pytest.mark.parametrize("keep", [True, False])
def test_text_encoder_is_read_once_when_kept_and_each_time_otherwise(folder, monkeypatch, keep):
    from transformers import T5EncoderModel

    loads = []
    original = T5EncoderModel.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        loads.append(args[0])
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(T5EncoderModel, "from_pretrained", classmethod(counting))
    returned = []
    monkeypatch.setattr(cogvideox, "return_pinned_memory", lambda: returned.append(True))
    m = CogVideoXModel(folder, dtype="fp32", keep_text_encoder=keep)
    assert loads == []  # nothing read before the first prompt
    first = m.encode_text(["a red car"])
    second = m.encode_text(["a red car"])
    assert torch.equal(first, second)
    assert len(loads) == (1 if keep else 2)
    assert len(returned) == (0 if keep else 2)  # pinned RAM handed back after each unkept use
    assert ("text_encoder" in m._text_placement) == keep
    m.release_text_encoder()
    assert len(returned) == (1 if keep else 2)
    assert "text_encoder" not in m._text_placement and m._tokenizer is None
    assert torch.equal(m.encode_text(["a red car"]), first)  # loaded again after a release


def test_predict_v_builds_the_i2v_input_like_diffusers(model):
    """One batched pass; input = [x, image latent zero-padded] along channels; rotary for the real grid."""
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(1, 4, 1, 8, 12, generator=gen)
    x = torch.randn(1, 4, 3, 8, 12, generator=gen)
    embeds = torch.randn(2, 16, 32, generator=gen)
    calls = []
    handle = model.transformer.register_forward_hook(lambda m, a, kw, out: calls.append(kw), with_kwargs=True)
    try:
        with model.transformer_session(image, embeds) as predict_v:
            v = predict_v(x, 966)
    finally:
        handle.remove()
    assert v.shape == (2, 4, 3, 8, 12) and len(calls) == 1
    hidden = calls[0]["hidden_states"]  # [B, T, 2C, h, w]
    assert hidden.shape == (2, 3, 8, 8, 12)
    assert torch.equal(hidden[:, :, :4], x.transpose(1, 2).expand(2, -1, -1, -1, -1))
    assert torch.equal(hidden[:, 0, 4:], image[:, :, 0].expand(2, -1, -1, -1))
    assert not hidden[:, 1:, 4:].any()
    assert calls[0]["timestep"].tolist() == [966, 966]
    # rotary embedding as diffusers' pipeline computes it for this grid
    from diffusers.models.embeddings import get_3d_rotary_pos_embed
    from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import get_resize_crop_region_for_grid

    crops = get_resize_crop_region_for_grid((4, 6), 6, 4)
    cos, sin = get_3d_rotary_pos_embed(16, crops, (4, 6), 3)
    assert torch.allclose(calls[0]["image_rotary_emb"][0], cos) and torch.allclose(calls[0]["image_rotary_emb"][1], sin)
    # the same as running the transformer by hand
    with torch.no_grad():
        direct = model.transformer(hidden_states=hidden, encoder_hidden_states=embeds,
                                   timestep=torch.tensor([966, 966]), image_rotary_emb=(cos, sin),
                                   return_dict=False)[0].transpose(1, 2)
    assert torch.allclose(v, direct, atol=1e-5)


def test_resize_crop_region_matches_diffusers():
    from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import get_resize_crop_region_for_grid

    for grid in ((30, 45), (20, 45), (30, 20), (4, 6), (7, 3)):
        assert resize_crop_region(grid, 45, 30) == get_resize_crop_region_for_grid(grid, 45, 30)


def test_padded_image_condition():
    image = torch.randn(1, 2, 1, 3, 3)
    cond = padded_image_condition(image, 4)
    assert cond.shape == (1, 2, 4, 3, 3)
    assert torch.equal(cond[:, :, 0], image[:, :, 0]) and not cond[:, :, 1:].any()


def test_learned_positional_embeddings_fix_the_size(model, monkeypatch):
    assert model.fixed_latent_size is None  # the tiny model has no learned positions: any size runs
    model.check_latent_size(8, 16, "node")
    monkeypatch.setattr(model, "fixed_latent_size", (60, 90))  # CogVideoX-5B-I2V
    model.check_latent_size(60, 90, "node")
    with pytest.raises(InverseDVSError, match="only generates at 720x480.*video is 128x64"):
        model.check_latent_size(8, 16, "node")


def _lora_state(model, rank=2, prefix="transformer.", alpha=None, seed=0):
    gen = torch.Generator().manual_seed(seed)
    state = {}
    layers = ["transformer_blocks.0.attn1.to_q", "transformer_blocks.1.ff.net.2"]
    for name in layers:
        weight = dict(model.transformer.named_modules())[name].weight
        state[f"{prefix}{name}.lora_A.weight"] = torch.randn(rank, weight.shape[1], generator=gen)
        state[f"{prefix}{name}.lora_B.weight"] = torch.randn(weight.shape[0], rank, generator=gen)
        if alpha is not None:
            state[f"{prefix}{name}.alpha"] = torch.tensor(float(alpha))
    return layers, state


def test_lora_merge_adds_scaled_low_rank_update(folder):
    model = CogVideoXModel(folder, dtype="fp32")
    layers, state = _lora_state(model, alpha=4.0)
    modules = dict(model.transformer.named_modules())
    before = {n: modules[n].weight.detach().clone() for n in layers}
    untouched = modules["transformer_blocks.0.attn1.to_k"].weight.detach().clone()
    assert merge_lora(model.transformer, state, 0.5) == 2
    for n in layers:
        a, b = state[f"transformer.{n}.lora_A.weight"], state[f"transformer.{n}.lora_B.weight"]
        expected = before[n] + 0.5 * (4.0 / 2) * (b @ a)
        assert torch.allclose(modules[n].weight, expected, atol=1e-5)
    assert torch.equal(modules["transformer_blocks.0.attn1.to_k"].weight, untouched)


def test_lora_on_a_conv_layer(folder):
    model = CogVideoXModel(folder, dtype="fp32")
    conv = model.transformer.patch_embed.proj
    assert isinstance(conv, torch.nn.Conv2d)
    gen = torch.Generator().manual_seed(1)
    down = torch.randn(3, *conv.weight.shape[1:], generator=gen)
    up = torch.randn(conv.weight.shape[0], 3, 1, 1, generator=gen)
    before = conv.weight.detach().clone()
    merge_lora(model.transformer, {"patch_embed.proj.lora_down.weight": down,
                                   "patch_embed.proj.lora_up.weight": up}, 2.0)
    expected = before + 2.0 * torch.einsum("or,rihw->oihw", up[:, :, 0, 0], down)
    assert torch.allclose(conv.weight, expected, atol=1e-5)


def test_lora_loaded_by_the_model_from_safetensors(folder, tmp_path):
    from safetensors.torch import save_file

    base = CogVideoXModel(folder, dtype="fp32")
    layers, state = _lora_state(base, prefix="")
    path = str(tmp_path / "lora.safetensors")
    save_file(state, path)
    merged = CogVideoXModel(folder, dtype="fp32", lora_path=path, lora_strength=1.0)
    assert merged.lora_layers == 2
    n = layers[0]
    delta = state[f"{n}.lora_B.weight"] @ state[f"{n}.lora_A.weight"]
    w0 = dict(base.transformer.named_modules())[n].weight
    w1 = dict(merged.transformer.named_modules())[n].weight
    assert torch.allclose(w1 - w0, delta, atol=1e-5)


def test_lora_for_another_model_is_refused(model):
    bad = {"transformer.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(2, 999),
           "transformer.transformer_blocks.0.attn1.to_q.lora_B.weight": torch.zeros(32, 2)}
    with pytest.raises(InverseDVSError, match="another size"):
        merge_lora(model.transformer, bad, 1.0)
    unet = {"unet.down_blocks.0.attentions.0.proj_in.lora_A.weight": torch.zeros(2, 8),
            "unet.down_blocks.0.attentions.0.proj_in.lora_B.weight": torch.zeros(8, 2)}
    with pytest.raises(InverseDVSError, match="not in"):
        merge_lora(model.transformer, unet, 1.0)
    with pytest.raises(InverseDVSError, match="not a LoRA"):
        merge_lora(model.transformer, {"some.weight": torch.zeros(2)}, 1.0)


def test_non_safetensors_weights_are_never_unpickled(tmp_path):
    pickled = tmp_path / "lora.bin"
    pickled.write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(InverseDVSError, match="not a .safetensors file"):
        read_safetensors(str(pickled), "LoRA")
    renamed = tmp_path / "renamed.safetensors"
    renamed.write_bytes(b"\x80\x04K\x01." * 10)
    with pytest.raises(InverseDVSError, match="could not be read as safetensors"):
        read_safetensors(str(renamed), "LoRA")


def test_text_to_video_transformer_is_refused(folder, tmp_path):
    import json

    copy = tmp_path / "t2v"
    shutil.copytree(folder, copy)
    cfg_path = copy / "transformer" / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["in_channels"] = cfg["out_channels"]
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(InverseDVSError, match="text-to-video"):
        CogVideoXModel(str(copy), dtype="fp32")
    cfg["in_channels"] = 2 * cfg["out_channels"]
    cfg["num_attention_heads"] = 4  # weights no longer fit the config
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(InverseDVSError, match="Could not load transformer/"):
        CogVideoXModel(str(copy), dtype="fp32")
