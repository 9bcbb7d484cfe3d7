"""backend/attention.py: the CogVideoX attention processor computes what the stock one does; kernel choice and its self-check."""

import pytest
import torch

from inversedvs.backend import accel, attention

from test_accel import _inputs, _run, _tiny_transformer


def test_rotate_pairs_turns_each_pair_by_a_quarter():
    x = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert torch.equal(attention.rotate_pairs(x), torch.tensor([-2.0, 1.0, -4.0, 3.0]))


def test_rotary_matches_diffusers_in_the_other_token_order():
    from diffusers.models.embeddings import apply_rotary_emb, get_3d_rotary_pos_embed

    cos, sin = get_3d_rotary_pos_embed(16, ((0, 0), (4, 4)), (4, 4), 2)  # (S=32, D=16)
    x = torch.randn(2, 32, 3, 16)  # (B, S, H, D)
    want = apply_rotary_emb(x.transpose(1, 2), (cos, sin)).transpose(1, 2)
    torch.testing.assert_close(attention.apply_rotary(x, cos, sin), want, rtol=0, atol=1e-6)


def test_joint_attention_equals_the_stock_processor_on_a_whole_model():
    model = _tiny_transformer()
    args = _inputs(batch=2)
    expected = _run(model, *args)
    assert attention.use_joint_attention(model, "sdpa") == len(model.transformer_blocks)
    assert all(isinstance(b.attn1.processor, attention.JointAttention) for b in model.transformer_blocks)
    torch.testing.assert_close(_run(model, *args), expected, rtol=1e-5, atol=1e-5)
    assert attention.use_joint_attention(model, "sdpa") == len(model.transformer_blocks)  # idempotent


def test_joint_attention_leaves_other_processors_alone():
    model = _tiny_transformer()
    assert accel.fuse_qkv(model)  # fused projections have their own processor
    assert attention.use_joint_attention(model, "sdpa") == 0


def test_unknown_kernel_and_masks_are_refused():
    with pytest.raises(ValueError, match="unknown attention kernel 'xformers'"):
        attention.JointAttention("xformers")
    model = _tiny_transformer()
    attn = model.transformer_blocks[0].attn1
    with pytest.raises(ValueError, match="no attention mask"):
        attention.JointAttention("sdpa")(attn, torch.zeros(1, 4, 32), torch.zeros(1, 2, 32),
                                         attention_mask=torch.ones(1, 6))


def test_cpu_and_float32_stay_on_sdpa():
    assert attention.pick_kernel(torch.device("cpu"), torch.bfloat16) == "sdpa"
    assert attention.pick_kernel(torch.device("cuda"), torch.float32) == "sdpa"


@pytest.mark.parametrize("broken, message", [
    (lambda q, k, v: attention.sdpa_attention(q, k, v) * 1.1, "disagrees"),
    (lambda q, k, v: (_ for _ in ()).throw(RuntimeError("no sm90 kernel")), "failed its self-check"),
])
def test_a_wrong_or_failing_flash4_is_not_used(monkeypatch, broken, message):
    monkeypatch.setattr(attention, "flash4_attention", broken)
    with pytest.warns(UserWarning, match=message):
        assert not attention._flash4_agrees(torch.device("cpu"), torch.float32)
    monkeypatch.setattr(attention, "flash4_attention", attention.sdpa_attention)
    assert attention._flash4_agrees(torch.device("cpu"), torch.float32)
