"""GPU speed-ups (backend/accel.py): exact or near-exact on CPU, shared compilation, no-op without CUDA."""

import functools

import pytest
import torch

from inversedvs.backend import accel
from inversedvs.backend.offload import Placement

LAYERS = 4


def _tiny_transformer(seed=0):
    from diffusers import CogVideoXTransformer3DModel

    torch.manual_seed(seed)
    return CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, in_channels=8, out_channels=4, time_embed_dim=8,
        text_embed_dim=16, num_layers=LAYERS, sample_width=8, sample_height=8, sample_frames=5,
        max_text_seq_length=4, use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True,
    ).eval()


def _inputs(batch=1, seed=1):
    from diffusers.models.embeddings import get_3d_rotary_pos_embed

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 2, 8, 8, 8, generator=g)  # [B, T, C, H, W] latent frames
    text = torch.randn(batch, 4, 16, generator=g)
    t = torch.full((batch,), 500)
    rope = get_3d_rotary_pos_embed(16, ((0, 0), (4, 4)), (4, 4), 2)
    return x, text, t, rope


def _run(model, x, text, t, rope):
    with torch.no_grad():
        return model(x, text, t, image_rotary_emb=rope, return_dict=False)[0]


def test_speed_up_is_a_noop_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model = _tiny_transformer()
    args = _inputs()
    expected = _run(model, *args)
    forward = model.forward
    assert accel.speed_up_transformer(model, compile_blocks=True) is model
    assert model.inversedvs_accel == {"sdpa": False, "attention": "sdpa", "ff_epilogue": False, "fused_qkv": False,
                                      "compiled_blocks": False}
    assert model.forward == forward
    assert torch.equal(_run(model, *args), expected)


def test_fused_qkv_keeps_outputs_and_parameter_count():
    model = _tiny_transformer()
    args = _inputs()
    expected = _run(model, *args)
    count = sum(p.numel() for p in model.parameters())
    assert accel.fuse_qkv(model)
    attn = model.transformer_blocks[0].attn1
    assert attn.to_q is None and attn.to_qkv.weight.shape == (96, 32)
    assert sum(p.numel() for p in model.parameters()) == count
    torch.testing.assert_close(_run(model, *args), expected, rtol=1e-5, atol=1e-5)
    assert accel.fuse_qkv(model)  # a second call changes nothing


def test_blocks_share_one_compiled_graph_across_blocks_passes_and_offload():
    import torch._dynamo.utils as dynamo_utils

    model = _tiny_transformer()
    args = _inputs()
    expected = _run(model, *args)
    torch._dynamo.reset()
    dynamo_utils.counters.clear()
    assert accel.compile_repeated_blocks(model, backend="eager")
    torch.testing.assert_close(_run(model, *args), expected, rtol=1e-5, atol=1e-5)
    _run(model, *_inputs(seed=2))  # a second pass with new values
    assert dynamo_utils.counters["stats"]["unique_graphs"] == 1  # one graph serves all LAYERS blocks
    assert not dynamo_utils.counters["graph_break"]

    # the offload hooks stay outside the compiled block: streaming weights needs no recompilation
    placement = Placement("sequential_offload", torch.device("cpu"))
    placement.noop = False
    placement.register("transformer", model)
    with placement.use("transformer") as m:
        torch.testing.assert_close(_run(m, *args), expected, rtol=1e-5, atol=1e-5)
    assert placement.stats()["max_blocks_on_device"] == {"transformer": 2}
    assert dynamo_utils.counters["stats"]["unique_graphs"] == 1

    _run(model, *_inputs(batch=2))  # a new batch size compiles once more, for every block
    assert dynamo_utils.counters["stats"]["unique_graphs"] == 2


def test_attention_context_prefers_cudnn_then_flash():
    from torch.nn.attention import SDPBackend

    order = accel._sdpa_backends()
    assert order[0] == SDPBackend.CUDNN_ATTENTION and order[-1] == SDPBackend.MATH
    q = torch.randn(1, 2, 8, 16)
    with accel.attention_context():
        out = torch.nn.functional.scaled_dot_product_attention(q, q, q)
    torch.testing.assert_close(out, torch.nn.functional.scaled_dot_product_attention(q, q, q))


def test_a_compiler_failure_falls_back_to_the_plain_block():
    import torch._dynamo.exc as dynamo_exc

    model = _tiny_transformer()
    args = _inputs()
    expected = _run(model, *args)
    assert accel.compile_repeated_blocks(model, backend="eager")
    calls = []

    def broken(block, *a, **k):
        calls.append(1)
        raise dynamo_exc.BackendCompilerFailed(broken, RuntimeError("no compiler"), None)

    for block in model.transformer_blocks:  # every block now routes through a failing compiler
        block.forward = functools.partial(accel._call_contiguous, broken, block)
    try:
        with pytest.warns(UserWarning, match="running it without compilation"):
            got = _run(model, *args)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
        assert len(calls) == 1  # tried once, then the class runs eagerly
    finally:
        accel._COMPILE_FAILED.clear()
