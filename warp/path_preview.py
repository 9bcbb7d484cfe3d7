"""A picture of a camera path: camera positions seen from above and from the side.

Left panel, top view: x to the right, z (forward) up the picture. Right panel, side view: z to
the right, height (-y) up. Camera positions run from blue (first frame) to orange (last), the
anchor camera (the one that filmed the input) is green, the pivot is a red dot, short grey ticks
show where every few cameras look. Lengths are in units of the orbit radius (grid spacing 0.5).
Drawn with torch only.
"""

from __future__ import annotations

import torch

from .camera import CameraPath, camera_centers

PANEL_SIZE = 256
MARGIN = 0.3  # world units around the drawn points
GRID_STEP = 0.5
SAMPLES_PER_PIXEL = 1.5
BACKGROUND = (0.12, 0.12, 0.13)
GRID = (0.22, 0.22, 0.24)
BORDER = (0.45, 0.45, 0.48)
FIRST = torch.tensor([0.2, 0.5, 1.0])
LAST = torch.tensor([1.0, 0.55, 0.1])
ANCHOR = (0.2, 0.9, 0.3)
PIVOT = (0.95, 0.2, 0.2)
LOOK = (0.7, 0.7, 0.7)
LOOK_LENGTH = 0.25
LOOK_EVERY = 6


def _to_pixels(points: torch.Tensor, lo: torch.Tensor, scale: float, size: int) -> torch.Tensor:
    """2-D world points [P, 2] (horizontal, up) → pixel (column, row) [P, 2] in a size×size panel."""
    col = (points[:, 0] - lo[0]) * scale
    row = (size - 1) - (points[:, 1] - lo[1]) * scale
    return torch.stack([col, row], -1)


def _stamp(canvas: torch.Tensor, centers: torch.Tensor, radius: float, colors: torch.Tensor) -> None:
    """Paint discs of ``radius`` px at pixel centres [P, 2] with colours [P, 3] into canvas [S, S, 3]."""
    r = int(radius)
    dy, dx = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
    inside = dx * dx + dy * dy <= radius * radius
    offsets = torch.stack([dx[inside], dy[inside]], -1)  # [K, 2]
    pixels = (centers.round().long()[:, None] + offsets[None]).reshape(-1, 2)
    color = colors.float()[:, None].expand(-1, offsets.shape[0], 3).reshape(-1, 3)
    s = canvas.shape[0]
    keep = (pixels >= 0).all(-1) & (pixels < s).all(-1)
    canvas[pixels[keep, 1], pixels[keep, 0]] = color[keep]


def _segments(a: torch.Tensor, b: torch.Tensor, scale: float) -> torch.Tensor:
    """Points densely sampled along segments a[i]→b[i] (world 2-D [P, 2]) → [Q, 2]."""
    length = (b - a).norm(dim=-1).max().item() * scale
    n = max(2, int(length * SAMPLES_PER_PIXEL))
    t = torch.linspace(0, 1, n, dtype=a.dtype).view(1, n, 1)
    return (a[:, None] + t * (b - a)[:, None]).reshape(-1, 2)


def _panel(points2d: torch.Tensor, pivot2d: torch.Tensor, look2d: torch.Tensor, anchor: int) -> torch.Tensor:
    """One view: camera positions [F, 2], pivot [2], look directions [F, 2] → image [S, S, 3]."""
    s = PANEL_SIZE
    canvas = torch.tensor(BACKGROUND).repeat(s, s, 1)
    everything = torch.cat([points2d, pivot2d[None], torch.zeros(1, 2, dtype=points2d.dtype)])
    lo, hi = everything.amin(0) - MARGIN, everything.amax(0) + MARGIN
    extent = (hi - lo).max()
    lo = (lo + hi) / 2 - extent / 2
    scale = (s - 1) / extent.item()
    # grid
    lines = torch.arange(torch.floor(lo.min() / GRID_STEP).item(), torch.ceil((lo.max() + extent) / GRID_STEP).item() + 1) * GRID_STEP
    pix = ((lines - lo[0]) * scale).round().long()
    canvas[:, pix[(pix >= 0) & (pix < s)]] = torch.tensor(GRID)
    pix = ((s - 1) - (lines - lo[1]) * scale).round().long()
    canvas[pix[(pix >= 0) & (pix < s)], :] = torch.tensor(GRID)
    f = points2d.shape[0]
    every = torch.arange(0, f, LOOK_EVERY)
    ticks = _segments(points2d[every], points2d[every] + LOOK_LENGTH * look2d[every], scale)
    _stamp(canvas, _to_pixels(ticks, lo, scale, s), 1.0, torch.tensor(LOOK).expand(ticks.shape[0], 3))
    if f > 1:
        path = _segments(points2d[:-1], points2d[1:], scale)
        t = torch.linspace(0, 1, path.shape[0]).unsqueeze(-1)
        _stamp(canvas, _to_pixels(path, lo, scale, s), 1.0, FIRST * (1 - t) + LAST * t)
    t = torch.linspace(0, 1, f).unsqueeze(-1) if f > 1 else torch.zeros(1, 1)
    _stamp(canvas, _to_pixels(points2d, lo, scale, s), 2.5, FIRST * (1 - t) + LAST * t)
    _stamp(canvas, _to_pixels(points2d[anchor:anchor + 1], lo, scale, s), 4.0, torch.tensor([ANCHOR]))
    _stamp(canvas, _to_pixels(pivot2d[None], lo, scale, s), 4.0, torch.tensor([PIVOT]))
    canvas[[0, -1], :] = torch.tensor(BORDER)
    canvas[:, [0, -1]] = torch.tensor(BORDER)
    return canvas


def path_preview(path: CameraPath, pivot: torch.Tensor | None = None) -> torch.Tensor:
    """Top and side views of ``path`` side by side: IMAGE [1, PANEL_SIZE, 2·PANEL_SIZE, 3] in 0..1.

    ``pivot`` [3]: the point drawn red, in the path's world (default (0, 0, 1), the orbit pivot);
    an imported path passes its scene centre."""
    w2c = path.world_to_camera
    centers = camera_centers(w2c)
    looks = w2c[:, 2, :3]  # the optical axis in world coordinates (third row of R)
    pivot = torch.tensor([0.0, 0.0, 1.0], dtype=centers.dtype) if pivot is None else pivot.to(centers.dtype)
    top = _panel(centers[:, [0, 2]], pivot[[0, 2]], looks[:, [0, 2]], path.anchor)
    side = _panel(torch.stack([centers[:, 2], -centers[:, 1]], -1), torch.stack([pivot[2], -pivot[1]]),
                  torch.stack([looks[:, 2], -looks[:, 1]], -1), path.anchor)
    return torch.cat([top, side], dim=1).unsqueeze(0).clamp(0, 1)
