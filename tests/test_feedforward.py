"""backend/feedforward.py: the feed-forward with bias + tanh-GELU in the product computes what diffusers' GELU does."""

import pytest
import torch
import torch.nn.functional as F

from inversedvs.backend import accel, feedforward

from test_accel import LAYERS, _inputs, _run, _tiny_transformer


def test_the_op_is_tanh_gelu_of_the_biased_product():
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(2, 5, 8, generator=g), torch.randn(6, 8, generator=g), torch.randn(6, generator=g)
    got = feedforward.linear_gelu_tanh(x, w, b)
    assert got.shape == (2, 5, 6)
    torch.testing.assert_close(got, F.gelu(x @ w.t() + b, approximate="tanh"), rtol=1e-6, atol=1e-6)
    assert not torch.allclose(got, F.gelu(x @ w.t() + b), rtol=1e-6, atol=1e-6)  # not the erf form


def test_swapped_model_gives_the_same_output_and_keeps_its_weights():
    model = _tiny_transformer()
    args = _inputs(batch=2)
    expected = _run(model, *args)
    keys = set(model.state_dict())
    assert feedforward.use_epilogue_gelu(model) == LAYERS
    assert all(isinstance(b.ff.net[0], feedforward.EpilogueGELU) for b in model.transformer_blocks)
    assert set(model.state_dict()) == keys  # same parameter names: LoRA files and state dicts still fit
    torch.testing.assert_close(_run(model, *args), expected, rtol=1e-5, atol=1e-5)
    assert feedforward.use_epilogue_gelu(model) == LAYERS  # idempotent: counts the ones already there
    assert all(isinstance(b.ff.net[0], feedforward.EpilogueGELU) for b in model.transformer_blocks)


def test_the_swap_traces_into_a_compiled_block():
    model = _tiny_transformer()
    args = _inputs()
    expected = _run(model, *args)
    feedforward.use_epilogue_gelu(model)
    assert accel.compile_repeated_blocks(model, backend="eager")
    torch.testing.assert_close(_run(model, *args), expected, rtol=1e-5, atol=1e-5)


def test_other_activations_are_left_alone():
    from diffusers.models.activations import GELU

    exact, unbiased = GELU(4, 8, approximate="none"), GELU(4, 8, approximate="tanh", bias=False)
    holder = torch.nn.Sequential(exact, unbiased)
    assert feedforward.use_epilogue_gelu(holder) == 0
    assert holder[0] is exact and holder[1] is unbiased


def test_the_self_check_passes_the_right_form_and_refuses_others(monkeypatch):
    assert feedforward.epilogue_gelu_agrees(torch.device("cpu"), torch.bfloat16)
    monkeypatch.setattr(feedforward, "linear_gelu_tanh", lambda x, w, b: F.gelu(F.linear(x, w, b)))
    with pytest.warns(UserWarning, match="differs from tanh-GELU in torch.float32"):
        assert not feedforward.epilogue_gelu_agrees(torch.device("cpu"), torch.bfloat16)

    def fails(x, w, b):
        raise RuntimeError("CUBLAS_STATUS_NOT_SUPPORTED")

    monkeypatch.setattr(feedforward, "linear_gelu_tanh", fails)
    with pytest.warns(UserWarning, match="failed its self-check"):
        assert not feedforward.epilogue_gelu_agrees(torch.device("cpu"), torch.bfloat16)
    assert torch.backends.cuda.matmul.allow_tf32 is False  # restored
