"""Depth maps for warping: relative disparity → depth, metric passthrough, temporal alignment.

Relative maps (Depth Anything and other depth nodes) are disparity-like: white = near, arbitrary
scale and shift. They become depth the way the reference does it: normalise over the whole clip to
[0, 1], depth = DISPARITY_TO_DEPTH / max(d, eps), clipped to [DEPTH_NEAR, DEPTH_FAR]; the nearest
pixel of the clip then sits at depth ≈ 2.56 and the farthest at DEPTH_FAR.
"""

from __future__ import annotations

import torch

from ..errors import InverseDVSError

DISPARITY_TO_DEPTH = 10000.0 / 3900.0
DEPTH_NEAR = 1e-4
DEPTH_FAR = 1e4
DISPARITY_EPS = 1e-8
RELATIVE = "relative"
METRIC = "metric"
DEPTH_KINDS = (RELATIVE, METRIC)


def image_to_map(depth_image: torch.Tensor) -> torch.Tensor:
    """One value per pixel [F, H, W] from a depth IMAGE [F, H, W, C] (C = 1 or 3; the channel mean)."""
    if depth_image.ndim == 3:
        return depth_image.float()
    return depth_image.float().mean(dim=-1)


def map_to_image(depth_map: torch.Tensor) -> torch.Tensor:
    """A grey IMAGE [F, H, W, 3] from a map [F, H, W] (values copied to the three channels)."""
    return depth_map.unsqueeze(-1).expand(*depth_map.shape, 3).contiguous()


def normalize_clip(values: torch.Tensor) -> torch.Tensor:
    """``values`` [F, H, W] mapped linearly to [0, 1] with one min and max for the whole clip."""
    lo, hi = values.amin(), values.amax()
    return (values - lo) / (hi - lo).clamp_min(torch.finfo(values.dtype).tiny)


def disparity_to_depth(disparity: torch.Tensor) -> torch.Tensor:
    """Depth [F, H, W] in [DEPTH_NEAR, DEPTH_FAR] from relative disparity [F, H, W] (white = near)."""
    d = normalize_clip(disparity.float())
    return (DISPARITY_TO_DEPTH / d.clamp_min(DISPARITY_EPS)).clamp(DEPTH_NEAR, DEPTH_FAR)


def check_depth_map(depth_map: torch.Tensor, kind: str, source: str) -> torch.Tensor:
    """Refuse maps that carry no geometry: NaN, inf, all zero, constant; metric depth must be > 0
    somewhere. Returns the map. ``source`` names the caller in messages."""
    if kind not in DEPTH_KINDS:
        raise InverseDVSError(f"{source}: depth kind '{kind}' is unknown; use one of {', '.join(DEPTH_KINDS)}.")
    if torch.isnan(depth_map).any():
        raise InverseDVSError(f"{source}: the depth contains NaN values; re-run the depth node or use another depth map.")
    if torch.isinf(depth_map).any():
        raise InverseDVSError(f"{source}: the depth contains infinite values; re-run the depth node or use another depth map.")
    lo, hi = depth_map.amin().item(), depth_map.amax().item()
    if hi <= 0:
        raise InverseDVSError(
            f"{source}: the depth is zero (or negative) everywhere; connect a real depth map "
            "(white = near for relative depth, distances > 0 for metric depth)."
        )
    if hi == lo:
        raise InverseDVSError(
            f"{source}: the depth is constant ({lo:g} everywhere), so there is no geometry to warp; "
            "connect a real depth map (white = near)."
        )
    return depth_map


def depth_for_warp(depth_map: torch.Tensor, kind: str) -> torch.Tensor:
    """Depth [F, H, W] along the camera z axis: converted from relative disparity, or metric as is
    (non-positive metric values stay ≤ 0 and are skipped by the warp)."""
    return disparity_to_depth(depth_map) if kind == RELATIVE else depth_map.float()


# ----------------------------------------------------------------------------- temporal alignment


def fit_scale_shift(source: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame least-squares (s, b) [F] minimising Σ (s·source + b - target)² over pixels.

    source, target: [F, N]. A flat source frame (zero variance) gets s = 1 and b = mean difference.
    """
    ms, mt = source.mean(dim=1, keepdim=True), target.mean(dim=1, keepdim=True)
    cs, ct = source - ms, target - mt
    var = (cs * cs).mean(dim=1)
    cov = (cs * ct).mean(dim=1)
    s = torch.where(var > 0, cov / var.clamp_min(torch.finfo(var.dtype).tiny), torch.ones_like(var))
    b = mt.squeeze(1) - s * ms.squeeze(1)
    return s, b


def align_to_first(disparity: torch.Tensor) -> torch.Tensor:
    """Every frame of disparity [F, H, W] mapped by its own scale and shift onto frame 0 (batched)."""
    flat = disparity.flatten(1).float()
    s, b = fit_scale_shift(flat, flat[:1].expand_as(flat))
    return (s[:, None, None] * disparity.float() + b[:, None, None])


def align_running(disparity: torch.Tensor, momentum: float = 0.5) -> torch.Tensor:
    """Frame by frame: fit each frame's scale and shift onto a running reference (an exponential
    average of the frames already aligned, weight ``momentum`` on the past), so slow changes of the
    scene are followed while frame-to-frame jumps are removed. disparity [F, H, W] → [F, H, W]."""
    flat = disparity.flatten(1).float()
    out = torch.empty_like(flat)
    out[0] = flat[0]
    reference = flat[0].clone()
    for i in range(1, flat.shape[0]):
        s, b = fit_scale_shift(flat[i:i + 1], reference[None])
        out[i] = s * flat[i] + b
        reference = momentum * reference + (1.0 - momentum) * out[i]
    return out.reshape(disparity.shape)


ALIGN_FIRST = "first frame"
ALIGN_RUNNING = "running"
ALIGN_OFF = "off"
ALIGN_MODES = (ALIGN_RUNNING, ALIGN_FIRST, ALIGN_OFF)


def align_temporal(disparity: torch.Tensor, mode: str) -> torch.Tensor:
    """Temporal scale/shift alignment of disparity [F, H, W] by ``mode`` (one of ALIGN_MODES)."""
    if mode == ALIGN_FIRST:
        return align_to_first(disparity)
    if mode == ALIGN_RUNNING:
        return align_running(disparity)
    if mode == ALIGN_OFF:
        return disparity.float()
    raise InverseDVSError(f"Depth: temporal alignment '{mode}' is unknown; use one of {', '.join(ALIGN_MODES)}.")


def temporal_flicker(disparity: torch.Tensor) -> float:
    """Flicker of a depth video: mean |d[t] - d[t-1]| over frames and pixels after normalising the
    clip to [0, 1] (0 = perfectly steady). disparity [F, H, W], F >= 2."""
    d = normalize_clip(disparity.float())
    return (d[1:] - d[:-1]).abs().mean().item()
