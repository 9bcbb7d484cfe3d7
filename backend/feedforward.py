"""CogVideoX's feed-forward with its bias and tanh-GELU computed inside the matrix product.

Each transformer block's feed-forward starts with ``gelu_tanh(x @ Wᵀ + b)``: W is 12,288 × 3,072,
so at 49×720×480 the product's output is 17,776 × 12,288 values. Computed as a matrix product
followed by an element-wise GELU, that output goes through memory twice more (written, read,
written again). cuBLASLt can apply bias and tanh-GELU in the product's epilogue instead, while
the values are still in registers; PyTorch exposes it as ``torch._addmm_activation(...,
use_gelu=True)`` (on CUDA; where cuBLASLt cannot take the case, PyTorch applies the same
tanh-GELU after the product).

``EpilogueGELU`` replaces diffusers' ``GELU(approximate="tanh")`` module and computes the same
function through the custom op ``torch.ops.inversedvs.linear_gelu_tanh``: one opaque call for
``torch.compile``, cuBLASLt's fused epilogue on CUDA, and the plain formula elsewhere (PyTorch's
CPU ``_addmm_activation`` uses the exact, erf-based GELU, so it is not used there).
``use_epilogue_gelu`` installs it after ``epilogue_gelu_agrees`` has checked it on the device.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

OP_NAME = "inversedvs::linear_gelu_tanh"
# The self-check: a small product (tokens, in, out), with inputs scaled so GELU's curved part is hit.
PROBE_SHAPE = (96, 128, 160)
# float32 with TF32 off: a different GELU form (erf instead of tanh) differs by ~2e-4 relative L2.
PROBE_TOLERANCE_FP32 = 1e-5
PROBE_TOLERANCE_LOW = 2e-2  # bf16 / fp16: two roundings of the same function differ by ~4e-3


def linear_gelu_tanh_reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """gelu_tanh(x @ weightᵀ + bias), unfused. x: (..., K); weight: (N, K); bias: (N,) → (..., N)."""
    return F.gelu(F.linear(x, weight, bias), approximate="tanh")


def _register_op() -> None:
    """Define ``torch.ops.inversedvs.linear_gelu_tanh`` once per process (the pack may load twice)."""
    if hasattr(torch.ops.inversedvs, "linear_gelu_tanh"):
        return

    @torch.library.custom_op(OP_NAME, mutates_args=())
    def linear_gelu_tanh(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return linear_gelu_tanh_reference(x, weight, bias)

    @linear_gelu_tanh.register_kernel("cuda")
    def _(x, weight, bias):
        flat = x.reshape(-1, x.shape[-1])
        out = torch._addmm_activation(bias, flat, weight.t(), use_gelu=True)
        return out.view(*x.shape[:-1], weight.shape[0])

    @linear_gelu_tanh.register_fake
    def _(x, weight, bias):
        return x.new_empty(*x.shape[:-1], weight.shape[0])


def linear_gelu_tanh(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """gelu_tanh(x @ weightᵀ + bias) through the op. x: (..., K); weight: (N, K); bias: (N,) → (..., N)."""
    _register_op()
    return torch.ops.inversedvs.linear_gelu_tanh(x.contiguous(), weight, bias)


class EpilogueGELU(torch.nn.Module):
    """diffusers' ``GELU(dim_in, dim_out, approximate="tanh", bias=True)``, bias and GELU fused into the product.

    Keeps the original ``proj`` Linear (same parameter names, so state dicts and LoRA merges are
    unchanged). Input (..., dim_in) → (..., dim_out).
    """

    def __init__(self, proj: torch.nn.Linear):
        super().__init__()
        _register_op()  # once here, not on every forward
        self.proj = proj

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return torch.ops.inversedvs.linear_gelu_tanh(hidden_states.contiguous(), self.proj.weight, self.proj.bias)


def _replaceable(module: torch.nn.Module) -> bool:
    """A diffusers ``GELU`` with the tanh approximation and a biased projection."""
    proj = getattr(module, "proj", None)
    return (type(module).__name__ == "GELU" and getattr(module, "approximate", None) == "tanh"
            and isinstance(proj, torch.nn.Linear) and proj.bias is not None)


def use_epilogue_gelu(model: torch.nn.Module) -> int:
    """Replace every replaceable GELU of ``model`` (in place) by an ``EpilogueGELU``.

    Returns how many ``EpilogueGELU`` the model now has (swapped earlier or now; 0: none).
    """
    swaps = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
             if _replaceable(child)]
    for parent, name, child in swaps:
        setattr(parent, name, EpilogueGELU(child.proj))
    return sum(isinstance(m, EpilogueGELU) for m in model.modules())


def _probe_error(device: torch.device, dtype: torch.dtype) -> float:
    tokens, k, n = PROBE_SHAPE
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(tokens, k, generator=g, device=device) * 2.0
    w = torch.randn(n, k, generator=g, device=device) / k**0.5
    b = torch.randn(n, generator=g, device=device)
    want = linear_gelu_tanh_reference(x.double(), w.double(), b.double())
    got = linear_gelu_tanh(x.to(dtype), w.to(dtype), b.to(dtype)).double()
    return float((got - want).norm() / want.norm())


def epilogue_gelu_agrees(device: torch.device, dtype: torch.dtype) -> bool:
    """Check the op on ``device`` against the unfused tanh-GELU, in float32 (the GELU form) and in ``dtype``."""
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        _register_op()
        errors = {torch.float32: _probe_error(device, torch.float32), dtype: _probe_error(device, dtype)}
    except Exception as error:  # a product the library refuses here
        warnings.warn(f"InverseDVS: the fused feed-forward failed its self-check ({type(error).__name__}: {error}); "
                      "using the plain one.")
        return False
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    for probe_dtype, err in errors.items():
        tolerance = PROBE_TOLERANCE_FP32 if probe_dtype == torch.float32 else PROBE_TOLERANCE_LOW
        if not err <= tolerance:
            warnings.warn(f"InverseDVS: the fused feed-forward differs from tanh-GELU in {probe_dtype} (relative "
                          f"error {err:.3g}); using the plain one.")
            return False
    return True
