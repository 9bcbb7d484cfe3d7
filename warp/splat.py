"""Forward warping: every frame re-rendered from its target camera with its depth, all frames at once.

Every source pixel is lifted to 3-D with its depth and projected into the target camera
(``reproject``: separable rays and one fused 3×4 matrix per frame). The depth map is then drawn as a
continuous surface — a triangle mesh through the source pixels, torn at occlusion edges, rasterised
with a z-test (``raster``) — so surfaces the move magnifies stay whole, nearer surfaces hide farther
ones, and target pixels no surface covers are the holes: what the source camera never saw.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import raster

# Points closer to the target camera than this (along z) are dropped (behind or at the camera).
MIN_Z = 1e-6


def separable_rays(height: int, width: int, K: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised ray coordinates of every pixel centre for a pinhole K [3, 3] without skew:
    x̂ = (u - cx) / fx as [1, 1, W] and ŷ = (v - cy) / fy as [1, H, 1] (the ray is (x̂, ŷ, 1))."""
    u = torch.arange(width, device=K.device, dtype=K.dtype)
    v = torch.arange(height, device=K.device, dtype=K.dtype)
    return ((u - K[0, 2]) / K[0, 0]).view(1, 1, width), ((v - K[1, 2]) / K[1, 1]).view(1, height, 1)


def projection_matrices(transforms: torch.Tensor, K_target: torch.Tensor) -> torch.Tensor:
    """P = K_target · [R | t] [F, 3, 4]: source-camera points → homogeneous target pixels.

    transforms [F, 4, 4] source camera → target camera, K_target [F, 3, 3] or [3, 3].
    """
    K = K_target.expand(transforms.shape[0], 3, 3)
    return K @ transforms[:, :3, :]


def reproject(depth: torch.Tensor, K_source: torch.Tensor, transforms: torch.Tensor,
              K_target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where every source pixel lands in its target camera.

    depth [F, H, W] (z in the source camera), K_source [3, 3] (no skew), transforms [F, 4, 4],
    K_target [F, 3, 3] or [3, 3]. With X = d·(x̂, ŷ, 1) and P = K_target·[R | t]:
    (u·z, v·z, z) = P·(X, 1). Returns u (column), v (row), z, each [F, H, W].
    """
    f, h, w = depth.shape
    x_hat, y_hat = separable_rays(h, w, K_source.to(depth))
    P = projection_matrices(transforms.to(depth), K_target.to(depth)).view(f, 3, 4, 1, 1)

    def row(i):  # d · (P[i,0] x̂ + P[i,1] ŷ + P[i,2]) + P[i,3]
        return torch.addcmul(P[:, i, 3], depth, P[:, i, 0] * x_hat + (P[:, i, 1] * y_hat + P[:, i, 2]))

    z = row(2)
    inv_z = 1.0 / z.clamp_min(MIN_Z)
    return row(0).mul_(inv_z), row(1).mul_(inv_z), z


def dilate_mask(mask: torch.Tensor, pixels: int) -> torch.Tensor:
    """Holes [F, H, W] (1 = hole) grown by ``pixels`` in every direction (square neighbourhood)."""
    if pixels <= 0:
        return mask
    return F.max_pool2d(mask.unsqueeze(1), kernel_size=2 * pixels + 1, stride=1, padding=pixels).squeeze(1)


def reproject_video(images, depth, transforms, K_source, K_target):
    """images as float32, depth [F, H, W] as float32 on images' device, and ``reproject``'s (u, v, z)
    for the transforms [F, 4, 4] and intrinsics (see ``forward_warp``)."""
    device = images.device
    depth = depth.to(device=device, dtype=torch.float32)
    as32 = dict(device=device, dtype=torch.float32)
    return images.float(), depth, reproject(depth, K_source.to(**as32), transforms.to(**as32), K_target.to(**as32))


def finish(warped: torch.Tensor, seen: torch.Tensor, dilate: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The warp's outputs from colours [F, H, W, C] (0 in holes) and seen [F, H, W] bool: the colours
    clamped to 0..1 and the hole mask (1 = hole) grown by ``dilate`` pixels, blanked in the colours."""
    mask = dilate_mask((~seen).float(), dilate)
    if dilate > 0:
        warped = warped * (1.0 - mask).unsqueeze(-1)
    return warped.clamp_(0.0, 1.0), mask


def splat(values: torch.Tensor, depth: torch.Tensor, transforms: torch.Tensor, K_source: torch.Tensor,
          K_target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw every frame's values into its target camera as the depth's surface, values unchanged in range.

    values [F, H, W, C] (any real values: colours, latent channels), other inputs as ``forward_warp``.
    Returns warped [F, H, W, C] float32 (perspective-correct mixes of source values, 0 in holes) and
    seen [F, H, W] bool.
    """
    values, depth, (u, v, z) = reproject_video(values, depth, transforms, K_source, K_target)
    valid = (depth > 0) & (z > MIN_Z) & torch.isfinite(u) & torch.isfinite(v)
    sources, weights, seen = raster.rasterize(u, v, 1.0 / z.clamp_min(MIN_Z), depth, valid)
    return raster.interpolate(raster.padded_pixels(values), sources, weights), seen


def forward_warp(images: torch.Tensor, depth: torch.Tensor, transforms: torch.Tensor, K_source: torch.Tensor,
                 K_target: torch.Tensor, dilate: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp every frame into its target camera.

    images [F, H, W, C] (0..1), depth [F, H, W] (z in the source camera; pixels with depth ≤ 0 are
    skipped), transforms [F, 4, 4] source camera → target camera, K_source [3, 3] (no skew),
    K_target [F, 3, 3] or [3, 3]. Computes in float32 on images' device.
    Returns warped [F, H, W, C] (0 in holes) and the hole mask [F, H, W] (1 = not seen, 0 = seen),
    with holes grown by ``dilate`` pixels (the grown part is blanked in the image too).
    """
    return finish(*splat(images, depth, transforms, K_source, K_target), dilate)


def cell_depth(depth: torch.Tensor, factor: int) -> torch.Tensor:
    """Depth [F, H, W] averaged over ``factor`` x ``factor`` blocks → [F, H/factor, W/factor] (the
    depth of each cell of a latent grid ``factor`` times coarser; H, W multiples of ``factor``)."""
    return F.avg_pool2d(depth.float().unsqueeze(1), factor).squeeze(1)


def warp_latent(latent: torch.Tensor, depth: torch.Tensor, transforms: torch.Tensor, K_source: torch.Tensor,
                K_target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One image latent seen from every target camera, its grid treated as a coarse image.

    latent [C, h, w] (any values), depth [h, w] (z of each cell, e.g. ``cell_depth``), transforms
    [N, 4, 4] source camera → each target camera, K_source [3, 3] and K_target [N, 3, 3] or [3, 3]
    intrinsics of the latent grid (a camera's K at the latent's size: pixel centres map to cell
    centres). Returns warped [N, C, h, w] (0 in holes) and holes [N, h, w] bool.
    """
    n = transforms.shape[0]
    values = latent.float().permute(1, 2, 0).unsqueeze(0).expand(n, -1, -1, -1)
    warped, seen = splat(values, depth.unsqueeze(0).expand(n, -1, -1), transforms, K_source, K_target)
    return warped.permute(0, 3, 1, 2).contiguous(), ~seen
