"""Hole masks on the video latent grid, downsampled the way CogVideoX's VAE compresses a video.

Pixel MASK [F, H, W] (1 = hole) → visibility v [T, h, w] in 0..1 with T = (F−1)/4 + 1, h = H/8, w = W/8:
keep the first frame and average the rest in pairs, twice (49 → 25 → 13 frames); then, three times,
pad right and bottom by one cell and take a 3×3 average with stride 2 (480×720 → 60×90).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InverseDVSError

TEMPORAL_HALVINGS = 2
SPATIAL_HALVINGS = 3
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


def latent_visibility(mask: torch.Tensor, outside: float = OUTSIDE_VISIBILITY) -> torch.Tensor:
    """Pixel hole MASK [F, H, W] (1 = hole, 0..1) → latent visibility v [T, h, w] in 0..1 (float32).

    F must be 4k+1 and H, W multiples of 8 (the VAE's compression).
    """
    frames, height, width = mask.shape
    if (frames - 1) % 4:
        raise InverseDVSError(
            f"The mask has {frames} frames but the video model needs 4k+1 frames (e.g. 49); "
            "use the mask made from the same 4k+1-frame video."
        )
    if height % 8 or width % 8:
        raise InverseDVSError(
            f"The mask is {width}x{height}; width and height must be multiples of 8 (16 for the model)."
        )
    v = 1.0 - mask.float()
    for _ in range(TEMPORAL_HALVINGS):
        v = halve_time(v)
    for _ in range(SPATIAL_HALVINGS):
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
