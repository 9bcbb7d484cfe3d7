"""Make the video transformer faster on a GPU without changing what it computes (beyond bf16 noise).

``speed_up_transformer`` applies, on a CUDA device only:

* **attention backend**: PyTorch's scaled-dot-product attention is steered to cuDNN first
  (measured fastest on H100 for CogVideoX's 17,776-token sequences), then Flash, then the
  memory-efficient kernel, then plain math — each used only where it supports the inputs;
* **FlashAttention-4** (``backend.attention``): where the optional ``flash-attn-4`` package is
  installed and the GPU is a Hopper, every self-attention runs through it instead of SDPA,
  after a self-check against SDPA;
* **fused feed-forward activation** (``backend.feedforward``): each block's feed-forward applies
  its bias and tanh-GELU inside the matrix product (cuBLASLt epilogue) instead of in a separate
  element-wise pass over a 17,776 × 12,288 tensor, after a self-check on the device;
* **fused QKV** (``fuse_projections=True`` only): the query, key and value projections of every
  self-attention become one matrix product (diffusers' fused CogVideoX processor), the separate
  weights dropped so the model does not grow. Measured on H100 it gains nothing (cuBLAS already
  saturates at 17,776 tokens) and adds 0.4 GiB of activations to a guided pass, so it is off;
* **regional compilation** (``compile_blocks=True``): each repeated transformer block's forward
  goes through ``torch.compile``. The blocks share one code object, so one compilation serves
  all 42 blocks, every later pass, run and ComfyUI queue item (the compiled code lives as long
  as the model; inductor's on-disk cache makes a restart cheap). One compile per distinct input
  shape: batch 1 (inversion), batch 2 (guided sampling), and each new frame count or size.

On a CPU, or when a step is unavailable (no diffusers processor, no Triton, a compiler
failure), the step is skipped and the model runs as before. Block forwards are compiled, not the module call, so the
offload hooks of ``backend.offload`` keep running eagerly around them.
"""

from __future__ import annotations

import contextlib
import functools
import time

import torch

from . import attention, feedforward

# SDPA backends in the order they are tried (cuDNN measured fastest for this model on H100).
SDPA_PRIORITY = ("CUDNN_ATTENTION", "FLASH_ATTENTION", "EFFICIENT_ATTENTION", "MATH")
# Enough compiled variants per block for batch 1/2 at several clip sizes without falling back to eager.
COMPILE_CACHE_SIZE = 64


def _sdpa_backends() -> list:
    from torch.nn.attention import SDPBackend

    return [getattr(SDPBackend, name) for name in SDPA_PRIORITY if hasattr(SDPBackend, name)]


def attention_context():
    """A context manager that makes SDPA prefer the fastest backend (no-op where unsupported)."""
    try:
        from torch.nn.attention import sdpa_kernel

        return sdpa_kernel(_sdpa_backends(), set_priority=True)
    except (ImportError, TypeError):  # older torch without priorities
        return contextlib.nullcontext()


def fuse_qkv(transformer: torch.nn.Module) -> bool:
    """Fuse each self-attention's q/k/v projections into one (in place); True when done.

    The unfused projection layers are removed afterwards (the fused processor never reads them),
    so the parameter count stays the same.
    """
    if getattr(transformer, "_inversedvs_fused_qkv", False):
        return True
    if not hasattr(transformer, "fuse_qkv_projections"):
        return False
    from diffusers.models.attention_processor import Attention

    try:
        transformer.fuse_qkv_projections()
    except (ValueError, AttributeError, TypeError):  # LoRA adapters or another processor in the way
        return False
    for module in transformer.modules():
        if isinstance(module, Attention) and getattr(module, "to_qkv", None) is not None:
            for name in ("to_q", "to_k", "to_v"):
                setattr(module, name, None)
    transformer.original_attn_processors = None  # the unfused weights are gone: no way back
    transformer._inversedvs_fused_qkv = True
    return True


def _blocks(transformer: torch.nn.Module) -> torch.nn.ModuleList | None:
    blocks = getattr(transformer, "transformer_blocks", None)
    if isinstance(blocks, torch.nn.ModuleList) and len(blocks) > 0:
        return blocks
    return None


def compile_repeated_blocks(transformer: torch.nn.Module, backend: str = "inductor",
                            options: dict | None = None) -> bool:
    """Route every transformer block's forward through one shared ``torch.compile``; True when done.

    ``backend``: the ``torch.compile`` backend ("inductor" generates fused kernels; "eager" only
    traces, which tests use to check graph sharing quickly). ``options``: inductor options for
    this compilation only (``torch.compile(options=...)``), e.g. for benchmarks comparing them.
    """
    blocks = _blocks(transformer)
    if blocks is None:
        return False
    if getattr(transformer, "_inversedvs_compiled", False):
        return True
    import torch._dynamo

    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, COMPILE_CACHE_SIZE)
    block_type = type(blocks[0])
    compiled = _compiled_forward(block_type, backend, tuple(sorted((options or {}).items())))
    for block in blocks:
        if type(block) is block_type:
            block.forward = functools.partial(_call_contiguous, compiled, block)
    transformer._inversedvs_compiled = True
    return True


# Block classes whose compilation failed on this machine; they run eagerly from then on.
_COMPILE_FAILED: set = set()


def _call_contiguous(compiled, block, *args, **kwargs):
    """Call ``compiled(block, ...)`` with dense tensor arguments; run eagerly if compiling fails.

    The first block receives slices of the patch embedding (strided views); making them dense
    lets the first block reuse the compilation of the others instead of adding one of its own.
    A compiler failure (e.g. no working Triton / C compiler) is reported once as a warning and
    the block class falls back to its plain forward, so a run never fails because of it.
    """
    block_type = type(block)
    if block_type not in _COMPILE_FAILED:
        import torch._dynamo.exc as dynamo_exc

        try:
            return compiled(block, *[_dense(a) for a in args], **{k: _dense(v) for k, v in kwargs.items()})
        except (dynamo_exc.BackendCompilerFailed, dynamo_exc.InternalTorchDynamoError) as error:
            import warnings

            warnings.warn(f"InverseDVS: compiling {block_type.__name__} failed ({type(error).__name__}); "
                          "running it without compilation.")
            _COMPILE_FAILED.add(block_type)
    return block_type.forward(block, *args, **kwargs)


def _dense_strides(shape) -> tuple[int, ...]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= n
    return tuple(reversed(strides))


def _dense(value):
    """``value`` with row-major strides on every dimension (size-1 ones too) when it is a tensor."""
    if isinstance(value, torch.Tensor) and value.stride() != _dense_strides(value.shape):
        return value.clone(memory_format=torch.contiguous_format)
    return value


@functools.lru_cache(maxsize=None)
def _compiled_forward(block_type: type, backend: str, options: tuple = ()):
    """One compiled function per block class, shared by every block instance (weights are inputs).

    ``options``: inductor options as sorted (name, value) pairs (hashable, for the cache).
    """
    forward = block_type.forward  # the plain function: dynamo inlines it for any instance

    def run(block, *args, **kwargs):
        with attention_context():
            return forward(block, *args, **kwargs)

    return torch.compile(run, backend=backend, fullgraph=False, dynamic=False, options=dict(options) or None)


def _with_attention_context(transformer: torch.nn.Module) -> None:
    """Wrap the transformer's forward so eager attention also uses the preferred SDPA backends."""
    if getattr(transformer, "_inversedvs_sdpa", False):
        return
    forward = transformer.forward

    @functools.wraps(forward)
    def wrapped(*args, **kwargs):
        with attention_context():
            return forward(*args, **kwargs)

    transformer.forward = wrapped
    transformer._inversedvs_sdpa = True


def _has_triton() -> bool:
    """Whether inductor can generate GPU kernels here (Triton importable with a supported GPU)."""
    try:
        from torch.utils._triton import has_triton

        return bool(has_triton())
    except ImportError:
        return False


def _dtype(module: torch.nn.Module) -> torch.dtype:
    return next((p.dtype for p in module.parameters()), torch.float32)


def speed_up_transformer(transformer: torch.nn.Module, *, compile_blocks: bool,
                         fuse_projections: bool = False) -> torch.nn.Module:
    """Apply the GPU speed-ups above to ``transformer`` (in place) and return it.

    ``transformer``: a diffusers ``CogVideoXTransformer3DModel`` (or any module; unknown parts are
    left alone). A no-op without CUDA. Call it before ``Placement.register`` (fusing makes new
    weights). Fusing and FlashAttention-4 exclude each other: fused projections keep their own
    processor, so with ``fuse_projections`` attention stays on SDPA.
    Records what was applied in ``transformer.inversedvs_accel``.
    """
    applied = {"sdpa": False, "attention": "sdpa", "ff_epilogue": False, "fused_qkv": False,
               "compiled_blocks": False}
    if torch.cuda.is_available():
        device, dtype = torch.device("cuda", torch.cuda.current_device()), _dtype(transformer)
        _with_attention_context(transformer)
        applied["sdpa"] = True
        if fuse_projections:
            applied["fused_qkv"] = fuse_qkv(transformer)
        else:
            kernel = attention.pick_kernel(device, dtype)
            if kernel != "sdpa" and attention.use_joint_attention(transformer, kernel):
                applied["attention"] = kernel
        if feedforward.epilogue_gelu_agrees(device, dtype):
            applied["ff_epilogue"] = feedforward.use_epilogue_gelu(transformer) > 0
        if compile_blocks and _has_triton():
            applied["compiled_blocks"] = compile_repeated_blocks(transformer)
    transformer.inversedvs_accel = applied
    return transformer
