"""Hole masks on the video latent grid, downsampled the way a causal video VAE compresses a video.

Pixel MASK [F, H, W] (1 = hole) → visibility v [T, h, w] in 0..1 with T = (F−1)/t + 1, h = H/s,
w = W/s for the VAE's temporal factor t and spatial factor s (powers of two). CogVideoX and Wan 2.1:
t = 4, s = 8; Wan 2.2 TI2V-5B: t = 4, s = 16. Time: keep the first frame and average the rest in
pairs, log2(t) times (49 → 25 → 13 frames); space: log2(s) times, pad right and bottom by one cell
and take a 3×3 average with stride 2 (480×720 → 60×90 at s = 8).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InverseDVSError

# CogVideoX's (and Wan 2.1's) compression: 4× in time, 8× in space.
DEFAULT_TEMPORAL = 4
DEFAULT_SPATIAL = 8
POOL_KERNEL = 3
POOL_STRIDE = 2
# Visibility given to the padded row/column. The released code pads with 0 (hidden), which marks the
# last latent row and column as unseen even when nothing is hidden, so they are regenerated on every
# run; padding counts as visible here, so a video without holes has no unseen cell.
OUTSIDE_VISIBILITY = 1.0


def halve_time(v: torch.Tensor) -> torch.Tensor:
    """[F, H, W] with F odd → [(F−1)/2 + 1, H, W]: first frame kept, the rest averaged in consecutive pairs."""
    first, rest = v[:1], v[1:]
    pairs = rest.reshape(rest.shape[0] // 2, 2, *rest.shape[1:]).mean(dim=1)
    return torch.cat([first, pairs], dim=0)


def halve_space(v: torch.Tensor, outside: float = OUTSIDE_VISIBILITY) -> torch.Tensor:
    """[F, H, W] → [F, ⌈H/2⌉, ⌈W/2⌉] for even H, W: pad right/bottom by one (value ``outside``), 3×3 mean, stride 2."""
    padded = F.pad(v.unsqueeze(1), (0, 1, 0, 1), mode="constant", value=outside)
    return F.avg_pool2d(padded, kernel_size=POOL_KERNEL, stride=POOL_STRIDE).squeeze(1)


def halvings(factor: int, what: str) -> int:
    """log2(factor) for a power of two ≥ 1, else InverseDVSError."""
    factor = int(factor)
    if factor < 1 or factor & (factor - 1):
        raise InverseDVSError(
            f"The VAE compresses {what} by {factor}; the latent-grid mask handles powers of two only (4, 8, 16)."
        )
    return factor.bit_length() - 1


def latent_visibility(mask: torch.Tensor, temporal: int = DEFAULT_TEMPORAL, spatial: int = DEFAULT_SPATIAL,
                      outside: float = OUTSIDE_VISIBILITY) -> torch.Tensor:
    """Pixel hole MASK [F, H, W] (1 = hole, 0..1) → latent visibility v [T, h, w] in 0..1 (float32).

    F must be (T−1)·temporal + 1 and H, W multiples of ``spatial`` (the VAE's compression).
    """
    time_halvings, space_halvings = halvings(temporal, "time"), halvings(spatial, "space")
    frames, height, width = mask.shape
    if (frames - 1) % temporal:
        raise InverseDVSError(
            f"The mask has {frames} frames but the video model needs {temporal}k+1 frames (e.g. {12 * temporal + 1}); "
            f"use the mask made from the same {temporal}k+1-frame video."
        )
    if height % spatial or width % spatial:
        raise InverseDVSError(
            f"The mask is {width}x{height}; width and height must be multiples of {spatial}, the VAE's compression."
        )
    v = 1.0 - mask.float()
    for _ in range(time_halvings):
        v = halve_time(v)
    for _ in range(space_halvings):
        v = halve_space(v, outside)
    return v


def unseen_cells(v: torch.Tensor) -> torch.Tensor:
    """Cells with any hole inside: v < 1 (bool, same shape as ``v``)."""
    return v < 1.0


def fully_unseen_cells(v: torch.Tensor) -> torch.Tensor:
    """Cells at or below the second-smallest distinct visibility v_(2), among the unseen ones (bool, v's shape).

    With a single distinct value below 1, that value is the threshold.
    """
    values = torch.unique(v)
    threshold = values[1] if values.numel() > 1 else values[0]
    return (v <= threshold) & (v < 1.0)
