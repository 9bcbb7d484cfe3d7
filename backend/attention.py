"""CogVideoX self-attention with a faster attention kernel where one is installed.

CogVideoX attends jointly over text and video tokens: one sequence of ``text_len + video_len``
tokens (226 + 17,550 at 49×720×480), 48 heads of 64 channels. At that size attention is about
half of a transformer pass, so the kernel that computes it decides much of the run time.

``JointAttention`` is an attention processor for diffusers' CogVideoX ``Attention`` modules. It
computes what the stock processor computes (q/k/v projections, per-head LayerNorm of q and k,
rotary embedding of the video tokens, softmax attention, output projection), with the tokens kept
in ``(B, S, H, D)`` order so that no transpose surrounds the kernel, and the attention itself done
by ``attend``, a function of ``q, k, v`` → ``out``, all ``(B, S, H, D)``.

Kernels (``pick_kernel``):

* ``"flash4"``: FlashAttention-4 (the optional ``flash-attn-4`` package, module ``flash_attn.cute``)
  on Hopper GPUs (compute capability 9.x), bf16/fp16, checked once against PyTorch's SDPA before
  it is used. Wrapped as a ``torch.library`` custom op so a compiled block calls it as one opaque
  kernel.
* ``"sdpa"``: PyTorch's scaled-dot-product attention (backend order set by ``backend.accel``).
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

KERNELS = ("flash4", "sdpa")
# Compute-capability majors on which the FlashAttention-4 path has been measured faster than cuDNN.
FLASH4_ARCH_MAJORS = (9,)
FLASH4_DTYPES = (torch.bfloat16, torch.float16)
# The self-check before flash4 is trusted: a small problem, compared with SDPA in the same dtype.
FLASH4_PROBE_SHAPE = (2, 333, 4, 64)  # (B, S, H, D); S deliberately not a tile multiple
FLASH4_PROBE_TOLERANCE = 2e-2  # relative L2; two bf16 kernels on the same inputs differ by ~4e-3
OP_NAME = "inversedvs::flash4_attention"


def rotate_pairs(x: torch.Tensor) -> torch.Tensor:
    """Rotate each consecutive channel pair by 90°: (a, b) → (−b, a).

    x: (..., D) with D even → (..., D).
    """
    pairs = x.unflatten(-1, (-1, 2))
    return torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary position embedding of tokens in (B, S, H, D) order, computed in float32.

    x: (B, S, H, D); cos, sin: (S, D), the per-token angles repeated over each channel pair
    (diffusers' ``get_3d_rotary_pos_embed`` layout) → (B, S, H, D) in x's dtype.
    """
    cos, sin = cos[:, None, :].to(x.device), sin[:, None, :].to(x.device)
    return (x.float() * cos + rotate_pairs(x).float() * sin).to(x.dtype)


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Softmax attention through PyTorch's SDPA. q, k, v: (B, S, H, D) → (B, S, H, D)."""
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
    return out.transpose(1, 2)


def _register_flash4_op() -> None:
    """Define ``torch.ops.inversedvs.flash4_attention`` once per process (the pack may load twice)."""
    if hasattr(torch.ops.inversedvs, "flash4_attention"):
        return

    @torch.library.custom_op(OP_NAME, mutates_args=(), device_types="cuda")
    def flash4_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        from flash_attn.cute import flash_attn_func

        # One call per sample: measured faster than one batched call at CogVideoX's size
        # (the batched launch reached 505 TFLOP/s where a single sample reaches 562).
        outs = [flash_attn_func(q[i : i + 1], k[i : i + 1], v[i : i + 1]) for i in range(q.shape[0])]
        outs = [out[0] if isinstance(out, tuple) else out for out in outs]
        return outs[0] if len(outs) == 1 else torch.cat(outs)

    @flash4_attention.register_fake
    def _(q, k, v):
        return q.new_empty(q.shape)


def flash4_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Softmax attention through FlashAttention-4. q, k, v: (B, S, H, D) on CUDA → (B, S, H, D)."""
    return torch.ops.inversedvs.flash4_attention(q.contiguous(), k.contiguous(), v.contiguous())


ATTEND = {"flash4": flash4_attention, "sdpa": sdpa_attention}


def _flash4_importable() -> bool:
    try:
        import flash_attn.cute  # noqa: F401
    except Exception:  # ImportError, or a broken install failing at import (missing CUDA libs)
        return False
    return True


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """‖got − want‖ / ‖want‖ in float32."""
    return float((got.float() - want.float()).norm() / want.float().norm().clamp_min(1e-30))


def _flash4_agrees(device: torch.device, dtype: torch.dtype) -> bool:
    """Run flash4 once on a small random problem; True when it matches SDPA within tolerance."""
    g = torch.Generator(device=device).manual_seed(0)
    q, k, v = (torch.randn(FLASH4_PROBE_SHAPE, generator=g, device=device, dtype=dtype) for _ in range(3))
    try:
        _register_flash4_op()
        got = flash4_attention(q, k, v)
    except Exception as error:  # a kernel that cannot build or launch here
        warnings.warn(f"InverseDVS: FlashAttention-4 failed its self-check ({type(error).__name__}: {error}); "
                      "using PyTorch's attention.")
        return False
    err = relative_error(got, sdpa_attention(q, k, v))
    if not err <= FLASH4_PROBE_TOLERANCE:
        warnings.warn(f"InverseDVS: FlashAttention-4 disagrees with PyTorch's attention (relative error {err:.3g}); "
                      "using PyTorch's attention.")
        return False
    return True


def pick_kernel(device: torch.device, dtype: torch.dtype) -> str:
    """The attention kernel for a model on ``device`` in ``dtype``: one of ``KERNELS``."""
    if device.type != "cuda" or dtype not in FLASH4_DTYPES:
        return "sdpa"
    if torch.cuda.get_device_capability(device)[0] not in FLASH4_ARCH_MAJORS or not _flash4_importable():
        return "sdpa"
    return "flash4" if _flash4_agrees(device, dtype) else "sdpa"


class JointAttention:
    """Attention processor for CogVideoX's joint text+video self-attention (see the module docstring).

    Called by diffusers' ``Attention.forward`` as ``processor(attn, hidden_states,
    encoder_hidden_states, attention_mask, image_rotary_emb)``:
    hidden_states (B, S_video, C), encoder_hidden_states (B, S_text, C), image_rotary_emb a
    (cos, sin) pair of (S_video, D) → (video (B, S_video, C), text (B, S_text, C)).
    """

    def __init__(self, kernel: str):
        if kernel not in ATTEND:
            raise ValueError(f"unknown attention kernel {kernel!r}; choose one of {KERNELS}")
        if kernel == "flash4":
            _register_flash4_op()
        self.kernel = kernel
        self.attend = ATTEND[kernel]

    def __call__(self, attn, hidden_states, encoder_hidden_states, attention_mask=None, image_rotary_emb=None):
        if attention_mask is not None:
            raise ValueError("JointAttention takes no attention mask (CogVideoX attends to every token)")
        text_len = encoder_hidden_states.shape[1]
        tokens = torch.cat([encoder_hidden_states, hidden_states], dim=1)
        q, k, v = (proj(tokens).unflatten(-1, (attn.heads, -1)) for proj in (attn.to_q, attn.to_k, attn.to_v))
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        if image_rotary_emb is not None:
            cos, sin = image_rotary_emb
            q = torch.cat([q[:, :text_len], apply_rotary(q[:, text_len:], cos, sin)], dim=1)
            if not attn.is_cross_attention:
                k = torch.cat([k[:, :text_len], apply_rotary(k[:, text_len:], cos, sin)], dim=1)
        out = self.attend(q, k, v).flatten(2)
        out = attn.to_out[1](attn.to_out[0](out))
        return out[:, text_len:], out[:, :text_len]


# The stock processor JointAttention replaces; any other (LoRA, fused QKV, a user's) is left alone.
STOCK_PROCESSOR = "CogVideoXAttnProcessor2_0"


def use_joint_attention(transformer: torch.nn.Module, kernel: str) -> int:
    """Give every stock CogVideoX self-attention in ``transformer`` a ``JointAttention(kernel)``.

    Returns how many attention modules now use it (0: nothing replaced).
    """
    processor = JointAttention(kernel)
    count = 0
    for module in transformer.modules():
        current = getattr(module, "processor", None)
        if current is not None and hasattr(module, "set_processor"):
            if type(current).__name__ == STOCK_PROCESSOR or isinstance(current, JointAttention):
                module.set_processor(processor)
                count += 1
    return count
