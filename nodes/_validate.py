"""Shared input checks for the nodes: each one raises ``InverseDVSError`` with a message that says
what was wrong and what to do, before anything heavy runs.

Node modules call these at the top of their FUNCTION so every node fails early and the same way.
"""

from __future__ import annotations

import contextlib
import math
import ntpath
import os
import re
import traceback

import torch

from ..errors import InverseDVSError
from . import _host

GIB = 1024**3
MIB = 1024**2
# Headroom kept free when judging whether an allocation fits (the OS, the host, fragmentation).
MEMORY_HEADROOM = 0.9
# Video sizes the transformer accepts: 8x VAE downsampling times 2x2 patches.
SPATIAL_MULTIPLE = 16
# Tensors a LATENT of this pack may carry, all checked for finiteness where a node reads them.
LATENT_TENSORS = ("samples", "mean", "std", "image")
# How far outside 0..1 a float IMAGE may stray before it is refused rather than clipped.
IMAGE_OVERSHOOT = 0.1
INTEGER_DTYPES = (torch.int16, torch.int32, torch.int64)
_OOM_ALLOCATION = re.compile(r"[Tt]ried to allocate ([0-9.]+ [KMGT]i?B|[0-9]+ bytes)")


def format_bytes(n: float) -> str:
    """``n`` bytes as a short human string: '3.4 GiB', '512 MiB', '40 KiB'."""
    if n >= GIB:
        return f"{n / GIB:.1f} GiB"
    if n >= MIB:
        return f"{n / MIB:.0f} MiB"
    return f"{max(n, 0) / 1024:.0f} KiB"


# ----------------------------------------------------------------------------- numbers


def check_range(value: float, lo: float, hi: float, name: str, node: str, *, lo_open: bool = False,
                hint: str = "") -> float:
    """``value`` inside [lo, hi] (or (lo, hi] with ``lo_open``) and finite, else a clear error."""
    left = "(" if lo_open else "["
    ok = math.isfinite(value) and (value > lo if lo_open else value >= lo) and value <= hi
    if not ok:
        raise InverseDVSError(
            f"{node}: {name} = {value:g} is out of range; it must be in {left}{lo:g}, {hi:g}]."
            + (f" {hint}" if hint else "")
        )
    return value


def check_whole_number(value, lo: int, hi: int, name: str, node: str, hint: str = "") -> int:
    """``value`` a whole number in [lo, hi] (what an INT widget promises; API calls can send anything)."""
    whole = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) \
        and int(value) == value
    if not whole or not lo <= value <= hi:
        raise InverseDVSError(
            f"{node}: {name} = {value!r} is not allowed; it must be a whole number from {lo} to {hi}."
            + (f" {hint}" if hint else "")
        )
    return int(value)


def check_values_within(values, limit: float, name: str, node: str, hint: str = "") -> None:
    """Every value in ``values`` within [-limit, limit] (typed numbers that would blow up the maths)."""
    worst = max((abs(v) for v in values), default=0.0)
    if worst > limit:
        raise InverseDVSError(
            f"{node}: {name} reach {worst:g}; keep them within ±{limit:g}." + (f" {hint}" if hint else "")
        )


def check_steps(steps: int, node: str) -> int:
    """A number of diffusion steps (>= 1)."""
    if int(steps) != steps or steps < 1:
        raise InverseDVSError(f"{node}: steps = {steps} but at least 1 step is needed; 30 is the reference value.")
    return int(steps)


def check_strength(strength: float, node: str) -> float:
    """A denoising strength in (0, 1]."""
    return check_range(strength, 0.0, 1.0, "strength", node, lo_open=True,
                       hint="0.98 is the reference value (start one step below pure noise).")


# ----------------------------------------------------------------------------- tensors


def check_image(image, name: str, node: str) -> torch.Tensor:
    """An IMAGE batch [F, H, W, 3] with F, H, W >= 1 → float32 in 0..1 (returned: use it).

    uint8 frames (0..255, as some loaders make them) are divided by 255; float values a little
    outside 0..1 (resampling overshoot, up to IMAGE_OVERSHOOT) are clipped; anything else is refused.
    """
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[-1] != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise InverseDVSError(
            f"{node}: {name} must be an IMAGE batch of shape [frames, height, width, 3]; got {shape}. "
            "Connect a video or image output (RGB) here."
        )
    if min(image.shape[:3]) < 1:
        raise InverseDVSError(f"{node}: {name} is empty (shape {tuple(image.shape)}); it needs at least one frame.")
    if image.dtype == torch.uint8:
        return image.float() / 255.0
    if image.dtype == torch.bool or not (image.is_floating_point() or image.dtype in INTEGER_DTYPES):
        raise InverseDVSError(f"{node}: {name} holds {image.dtype} values; an IMAGE holds floats in 0..1.")
    image = image.float()
    if not torch.isfinite(image).all():
        raise InverseDVSError(f"{node}: {name} contains NaN or infinite values; check the node that produced it.")
    lo, hi = image.min().item(), image.max().item()
    if lo < -IMAGE_OVERSHOOT or hi > 1.0 + IMAGE_OVERSHOOT:
        scale = " (it looks like 0..255: divide by 255)" if hi > 2.0 else ""
        raise InverseDVSError(
            f"{node}: {name} holds values from {lo:g} to {hi:g}, but an IMAGE holds 0..1{scale}. "
            "Check the node that produced it."
        )
    return image.clamp(0.0, 1.0)


def check_depth_image(depth, node: str) -> torch.Tensor:
    """A depth IMAGE [F, H, W, 3 or 1] (or a map [F, H, W]) from any depth node; returned as is."""
    if not isinstance(depth, torch.Tensor) or depth.ndim not in (3, 4) or (depth.ndim == 4 and depth.shape[-1] not in (1, 3)):
        shape = tuple(depth.shape) if isinstance(depth, torch.Tensor) else type(depth).__name__
        raise InverseDVSError(f"{node}: depth must be an IMAGE [frames, height, width, 3 or 1]; got {shape}.")
    return depth


def check_mask(mask, name: str, node: str) -> torch.Tensor:
    """A MASK batch [F, H, W] (a single [H, W] mask becomes one frame) with values in [0, 1]."""
    if isinstance(mask, torch.Tensor) and mask.ndim == 2:
        mask = mask.unsqueeze(0)
    if not isinstance(mask, torch.Tensor) or mask.ndim != 3:
        shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
        raise InverseDVSError(f"{node}: {name} must be a MASK of shape [frames, height, width]; got {shape}.")
    if mask.numel() == 0:
        raise InverseDVSError(f"{node}: {name} is empty (shape {tuple(mask.shape)}); it needs at least one frame.")
    mask = mask.float()
    if not torch.isfinite(mask).all() or mask.min() < 0 or mask.max() > 1:
        raise InverseDVSError(
            f"{node}: {name} must hold values in 0..1 (1 = hole to synthesise); "
            f"got values from {mask.min().item():g} to {mask.max().item():g}."
        )
    return mask


def check_frame_counts(node: str, **counts: int) -> int:
    """Every named frame count equal (e.g. ``video=49, depth=49, path=49``); returns the count."""
    values = set(counts.values())
    if len(values) > 1:
        listed = ", ".join(f"{k} has {v}" for k, v in counts.items())
        raise InverseDVSError(
            f"{node}: frame counts disagree ({listed}). Give every input the same number of frames "
            "(same frame_load_cap / skip / select_every_nth on the loader, and num_frames on the camera path)."
        )
    return values.pop()


def check_same_size(node: str, **sizes: tuple[int, int]) -> tuple[int, int]:
    """Every named (height, width) equal; returns it."""
    values = set(tuple(s) for s in sizes.values())
    if len(values) > 1:
        listed = ", ".join(f"{k} is {w}x{h}" for k, (h, w) in sizes.items())
        raise InverseDVSError(
            f"{node}: frame sizes disagree ({listed}). Resize them to one width x height first."
        )
    return values.pop()


def check_finite_result(tensor: torch.Tensor, what: str, node: str, hint: str) -> torch.Tensor:
    """A node's own result must be finite; otherwise the inputs drove the maths out of range (``hint``: what to change)."""
    if not torch.isfinite(tensor).all():
        raise InverseDVSError(f"{node}: {what} came out with NaN or infinite values. {hint}")
    return tensor


def check_multiple_of_16(height: int, width: int, node: str) -> tuple[int, int]:
    """A frame size the transformer accepts: height and width multiples of 16."""
    m = SPATIAL_MULTIPLE
    if height % m or width % m:
        def near(v):
            return max(m, round(v / m) * m)
        raise InverseDVSError(
            f"{node}: frames are {width}x{height} but width and height must be multiples of {m}. "
            f"Resize to {near(width)}x{near(height)} (720x480 is the model's native size)."
        )
    return height, width


def check_latent(latent, node: str, channels: int | None = None, name: str = "latent") -> torch.Tensor:
    """A video LATENT dict with ``samples`` [1, C, T, H, W] (C = ``channels`` when given), every tensor finite.

    One video at a time: a batch of several videos is refused (split it first). The tensors the
    pack adds (``mean``, ``std``, ``image``) are checked for finiteness too.
    """
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if not isinstance(samples, torch.Tensor):
        raise InverseDVSError(f"{node}: {name} is not a LATENT (no 'samples' tensor); connect a VAE Encode output.")
    if samples.ndim != 5:
        raise InverseDVSError(
            f"{node}: {name} has shape {tuple(samples.shape)}, an image latent; a video latent "
            "[batch, channels, frames, height, width] from this pack's VAE Encode is needed."
        )
    if samples.numel() == 0:
        raise InverseDVSError(f"{node}: {name} is empty (shape {tuple(samples.shape)}); encode a video of at least "
                              "one frame.")
    if samples.shape[0] != 1:
        raise InverseDVSError(
            f"{node}: {name} holds a batch of {samples.shape[0]} videos; the pack re-renders one video at a time "
            "(each has its own warp, mask and inversion). Take one of them out of the batch first (e.g. core's "
            "Latent From Batch) and run the graph per video."
        )
    if channels is not None and samples.shape[1] != channels:
        raise InverseDVSError(
            f"{node}: {name} has {samples.shape[1]} channels but this model's latents have {channels}; "
            "it comes from another model's VAE. Encode the video with this pack's VAE Encode."
        )
    for key in LATENT_TENSORS:
        value = latent.get(key)
        if isinstance(value, torch.Tensor) and not torch.isfinite(value).all():
            part = "" if key == "samples" else f" (its '{key}')"
            raise InverseDVSError(
                f"{node}: {name}{part} contains NaN or infinite values; the node that made it went wrong "
                "(a damaged model or LoRA, or an input out of range). Fix that node's inputs and run it again."
            )
    return samples


def tensor_fingerprint(tensor: torch.Tensor) -> str:
    """A short id of a tensor's values (SHA-1 of its float32 bytes), to tell which video a LATENT came from."""
    import hashlib

    data = tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes()
    return hashlib.sha1(data).hexdigest()[:16]


# ----------------------------------------------------------------------------- memory


def free_memory_bytes(device: torch.device) -> int:
    """Memory that can still be allocated on ``device`` (CUDA: free + ComfyUI/torch cache; CPU: available RAM)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device))
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # psutil ships with ComfyUI; plain POSIX fallback otherwise
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def tensor_bytes(shape, dtype: torch.dtype = torch.float32) -> int:
    """Bytes a tensor of ``shape`` and ``dtype`` takes."""
    return math.prod(int(s) for s in shape) * torch.empty((), dtype=dtype).element_size()


def check_fits_memory(needed: int, what: str, node: str, device: torch.device | str = "cpu",
                      hint: str = "") -> None:
    """Refuse (before allocating) when ``needed`` bytes exceed what ``device`` has free. On an accelerator
    ComfyUI is first asked for that room (it evicts only as many of its models as that takes)."""
    if torch.device(device).type != "cpu":
        _host.free_host_memory(needed)
    free = free_memory_bytes(torch.device(device))
    if needed > free * MEMORY_HEADROOM:
        raise InverseDVSError(
            f"{node}: {what} needs about {format_bytes(needed)} but only {format_bytes(free)} is free "
            f"on {torch.device(device).type}. " + (hint or "Use fewer frames or a smaller size.")
        )


def check_video_memory(frames: int, height: int, width: int, node: str, copies: int = 1,
                       device: torch.device | str = "cpu") -> int:
    """Refuse a video of ``frames`` x ``height`` x ``width`` RGB float32 frames (``copies`` of it) that
    cannot fit in memory; returns the estimated bytes."""
    needed = copies * tensor_bytes((frames, height, width, 3))
    check_fits_memory(
        needed, f"{frames} frames at {width}x{height}", node, device,
        hint="Lower the width and height (720x480 is the model's native size) or load fewer frames.",
    )
    return needed


# What torch's RuntimeErrors say when an allocation fails: the CUDA / MPS / XPU backends ("out of memory") and
# the CPU allocator ("DefaultCPUAllocator: can't allocate memory: you tried to allocate N bytes").
_OOM_PHRASES = ("out of memory", "can't allocate memory")


def is_out_of_memory(err: BaseException) -> bool:
    """True for torch's CUDA OOM and for the RuntimeErrors other backends and the CPU allocator raise."""
    oom_type = getattr(torch.cuda, "OutOfMemoryError", None)
    if oom_type is not None and isinstance(err, oom_type):
        return True
    return isinstance(err, RuntimeError) and any(phrase in str(err).lower() for phrase in _OOM_PHRASES)


# Activation memory of one transformer pass, in copies of its hidden states [batch, tokens, width]:
# CogVideoX-5B-I2V peaks at 13.59 GiB for a batch-2 pass at 49x480x720 with 10.4 GiB of bf16
# weights (../shared/data/anchors.json), i.e. 3.2 GiB for 2 x 17776 tokens x 3072 x 2 bytes.
ACTIVATION_COPIES = 16
# Transformer blocks on the device at once under sequential offload (one computing, one arriving).
STREAMED_BLOCKS_ON_DEVICE = 2


def _module_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in list(module.parameters()) + list(module.buffers()))


def denoiser_memory(model, latent_shape, batch: int) -> dict:
    """Estimated device bytes of one denoising pass over a latent of ``latent_shape`` [B, C, T, h, w]
    with ``batch`` prompts: ``needed_bytes`` with the whole transformer on the device, ``low_vram_bytes``
    with blocks streamed (sequential offload). Keyword arguments for ``out_of_memory_as_error``."""
    transformer = model.transformer
    cfg = transformer.config
    weights = _module_bytes(transformer)
    blocks = getattr(transformer, "transformer_blocks", None)
    streamed = weights
    if blocks is not None and len(blocks) > STREAMED_BLOCKS_ON_DEVICE:
        per_block = _module_bytes(blocks) / len(blocks)
        streamed = weights - _module_bytes(blocks) + STREAMED_BLOCKS_ON_DEVICE * per_block
    _, _, frames, height, width = latent_shape
    patch = int(cfg.patch_size)
    tokens = frames * (height // patch) * (width // patch) + int(cfg.max_text_seq_length)
    hidden = int(cfg.num_attention_heads) * int(cfg.attention_head_dim)
    element = next(transformer.parameters()).element_size()
    activations = ACTIVATION_COPIES * batch * tokens * hidden * element
    return {"needed_bytes": int(weights + activations), "low_vram_bytes": int(streamed + activations)}


@contextlib.contextmanager
def out_of_memory_as_error(node: str, stage: str, low_vram_option: str, needed_bytes: int | None = None,
                           low_vram_bytes: int | None = None, device: torch.device | str | None = None):
    """Turn an out-of-memory inside the block into an ``InverseDVSError`` naming the low-VRAM option.

    ``needed_bytes`` / ``low_vram_bytes``: what the block needs as set up now and with
    ``low_vram_option`` (e.g. from ``denoiser_memory``), quoted in the message. The original
    exception (and the tensors its traceback holds) is dropped before the new error is raised and
    the CUDA cache is emptied, so the memory the failed step held is given back.
    """
    asked = None
    try:
        yield
    except BaseException as err:  # noqa: BLE001 - only OOM is translated, the rest re-raised
        if not is_out_of_memory(err):
            raise
        match = _OOM_ALLOCATION.search(str(err))
        asked = f" (it tried to allocate {match.group(1)} more)" if match else ""
        traceback.clear_frames(err.__traceback__)  # drop the failed step's tensors now
        err.__traceback__ = None
        del err
    if asked is None:
        return
    _host.free_host_memory(int(needed_bytes or 0))
    device = torch.device(device) if device is not None else _host.torch_device()
    need = ""
    if needed_bytes:
        need = f" It needs about {format_bytes(needed_bytes)}"
        if low_vram_bytes:
            need += f", about {format_bytes(low_vram_bytes)} with {low_vram_option}"
        if device.type == "cuda":
            need += f"; {format_bytes(free_memory_bytes(device))} is free"
        need += "."
    raise InverseDVSError(
        f"{node}: out of memory while {stage}{asked}.{need} Set {low_vram_option}, or use fewer "
        "frames or a smaller size."
    ) from None


# ----------------------------------------------------------------------------- paths


def _parts(relative: str) -> list[str]:
    return [p for p in re.split(r"[\\/]+", relative) if p not in ("", ".")]


def check_relative_name(name: str, what: str, node: str, folder: str = "ComfyUI's folder") -> list[str]:
    """Split a user-typed relative name into parts; refuse absolute paths, drives and '..' parts.

    ``folder`` names the folder the name is relative to, for the message (e.g. "ComfyUI's output folder").
    """
    if not isinstance(name, str) or not name.strip():
        raise InverseDVSError(f"{node}: {what} is empty; type a name such as 'InverseDVS/video'.")
    if "\x00" in name:
        raise InverseDVSError(f"{node}: {what} contains a NUL character; use plain letters, digits, '-', '_' and '/'.")
    drive, _ = ntpath.splitdrive(name)
    if os.path.isabs(name) or ntpath.isabs(name) or drive:
        raise InverseDVSError(
            f"{node}: {what} '{name}' is an absolute path or names a drive; it must be relative to "
            f"{folder}."
        )
    if ":" in name and os.name == "nt":
        raise InverseDVSError(f"{node}: {what} '{name}' contains ':', which Windows does not allow in file names; "
                              "use '-' instead.")
    parts = _parts(name)
    if ".." in parts:
        raise InverseDVSError(
            f"{node}: {what} '{name}' contains '..'; only files inside {folder} "
            "can be used. Use a name without '..'."
        )
    if not parts:
        raise InverseDVSError(f"{node}: {what} '{name}' names no file; type a name such as 'InverseDVS/video'.")
    return parts


def join_inside(root: str, name: str, what: str, node: str, folder: str = "ComfyUI's folder") -> str:
    """``root/name`` after checking that ``name`` cannot leave ``root`` (symlinks resolved)."""
    parts = check_relative_name(name, what, node, folder)
    real_root = os.path.realpath(root)
    path = os.path.realpath(os.path.join(real_root, *parts))
    if os.path.commonpath([real_root, path]) != real_root:
        raise InverseDVSError(
            f"{node}: {what} '{name}' leads outside {folder} (through a link); pick a file inside it."
        )
    return path


def input_file(name: str, what: str, node: str, hint: str = "Copy it there.", keep=None) -> str:
    """Absolute path of file ``name`` in ComfyUI's input folder: a name the dropdown lists
    (``_host.input_files(keep)``) as is, whatever its characters; any other name only inside the
    folder and existing (``hint`` says how to get it there)."""
    listed = _host.input_files(keep).get(name) if keep is not None and isinstance(name, str) else None
    if listed is not None:
        return listed
    root = _host.input_directory()
    path = join_inside(root, name, what, node, "ComfyUI's input folder")
    if not os.path.isfile(path):
        raise InverseDVSError(f"{node}: {what} '{name}' was not found in ComfyUI's input folder ({root}). {hint}")
    return path


# ----------------------------------------------------------------------------- weights

def check_safetensors_file(path: str, what: str, node: str,
                           hint: str = "convert it to safetensors or download the .safetensors version.") -> str:
    """``path`` is a complete safetensors file (checked from its header, never unpickled); returns it."""
    from ..backend.files import safetensors_header

    safetensors_header(path, f"{node}: {what}", hint)
    return path
