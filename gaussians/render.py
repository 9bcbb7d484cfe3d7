"""Rendering 3D Gaussians: EWA projection to the image plane and front-to-back alpha compositing.

Gaussian i has a mean μ_i [3] (world), a covariance Σ_i = R_i·diag(s_i²)·R_iᵀ (rotation from a unit quaternion
(w, x, y, z), scales s_i > 0), an opacity o_i in (0, 1) and a colour c_i [K]. In a camera with pose [R | t] and
intrinsics K it projects to the 2-D Gaussian with mean π(R·μ + t) and covariance J·R·Σ·Rᵀ·Jᵀ + ε·I (J the
projection's Jacobian at the mean, ε = ``EPS_2D`` a pixel-sized low-pass filter). A pixel p composites the
Gaussians nearest first:

    α_i = min(0.999, o_i·exp(-½ dᵀ Σ'_i⁻¹ d)),  d = p - mean_i;   C(p) = Σ_i α_i·T_i·c_i + T·background

with T_i = Π_{j<i} (1 - α_j); α below 1/255 is skipped and compositing stops once T would fall to 1e-4. These are
the rules gsplat's CUDA rasteriser (``rasterize_mode="classic"``) follows, so ``render_torch`` (tiles of dense
tensors, any device, slow) and ``render_gsplat`` (CUDA kernels) render the same images (1.4e-6 apart on an H200,
``benchmarks/bench_gaussians4d.py``). Conventions are ``warp.camera``'s: OpenCV camera axes, integer pixel centres
(gsplat puts them at +0.5, which ``render_gsplat`` converts).
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

EPS_2D = 0.3  # pixels², added to every projected covariance (anti-aliasing low-pass)
NEAR = 0.01  # Gaussians nearer the camera than this (along z) are not drawn
ALPHA_MAX = 0.999
ALPHA_MIN = 1.0 / 255.0
TRANSMITTANCE_MIN = 1e-4
# The Jacobian is taken at the mean clamped to 1.3x the field of view (as gsplat does): far off-screen Gaussians
# would otherwise get huge footprints.
FOV_CLAMP = 0.3
# Pixels x Gaussians evaluated at once by the torch compositor (bounds its memory: about 40 bytes each with grad).
DENSE_BUDGET = 1 << 22
TILE = 16  # pixels; the torch compositor's tiles, as gsplat's
ENGINES = ("torch", "gsplat")


def quaternion_to_rotation(quats: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] of quaternions [..., 4] (w, x, y, z), normalised first (any nonzero norm)."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], dim=-1).reshape(quats.shape[:-1] + (3, 3))


def covariance_3d(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Covariances Σ = R·diag(s²)·Rᵀ [N, 3, 3] of quaternions [N, 4] and scales [N, 3] (> 0)."""
    M = quaternion_to_rotation(quats) * scales.unsqueeze(-2)
    return M @ M.transpose(-1, -2)


def project(means: torch.Tensor, covariances: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor,
            height: int, width: int):
    """Project N Gaussians into C cameras.

    ``means`` [N, 3], ``covariances`` [N, 3, 3] (world); ``viewmats`` [C, 4, 4] world-to-camera; ``Ks`` [C, 3, 3].
    Returns means2d [C, N, 2] (pixels, integer centres), conics [C, N, 3] (the upper triangle a, b, c of the
    inverse 2-D covariance [[a, b], [b, c]]), depths [C, N] (camera z) and ``drawn`` [C, N] (bool: in front of
    the near plane with a positive-definite footprint).
    """
    R, t = viewmats[:, None, :3, :3], viewmats[:, None, :3, 3]
    p = (R @ means[None, :, :, None]).squeeze(-1) + t  # [C, N, 3]
    cov = R @ covariances[None] @ R.transpose(-1, -2)  # [C, N, 3, 3]
    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    x, y, z = p.unbind(-1)
    safe_z = torch.where(z > NEAR, z, torch.ones_like(z))
    left, right = (cx + 0.5) / fx, (width - cx - 0.5) / fx
    top, bottom = (cy + 0.5) / fy, (height - cy - 0.5) / fy
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    xc = safe_z * torch.minimum(torch.maximum(x / safe_z, -left - FOV_CLAMP * tan_x), right + FOV_CLAMP * tan_x)
    yc = safe_z * torch.minimum(torch.maximum(y / safe_z, -top - FOV_CLAMP * tan_y), bottom + FOV_CLAMP * tan_y)
    zero = torch.zeros_like(safe_z)
    J = torch.stack([fx / safe_z, zero, -fx * xc / safe_z ** 2,
                     zero, fy / safe_z, -fy * yc / safe_z ** 2], dim=-1).reshape(p.shape[:-1] + (2, 3))
    cov2d = J @ cov @ J.transpose(-1, -2) + EPS_2D * torch.eye(2, dtype=p.dtype, device=p.device)
    det = cov2d[..., 0, 0] * cov2d[..., 1, 1] - cov2d[..., 0, 1] * cov2d[..., 1, 0]
    safe_det = det.clamp(min=1e-10)
    conics = torch.stack([cov2d[..., 1, 1] / safe_det, -0.5 * (cov2d[..., 0, 1] + cov2d[..., 1, 0]) / safe_det,
                          cov2d[..., 0, 0] / safe_det], dim=-1)
    means2d = torch.stack([fx * x / safe_z + cx, fy * y / safe_z + cy], dim=-1)
    drawn = (z > NEAR) & (det > 0)
    return means2d, conics, z, drawn


def footprint_radii(conics: torch.Tensor) -> torch.Tensor:
    """Half-extents [C, N, 2] in pixels (x, y) of each projected Gaussian: 3.33 standard deviations, as gsplat
    bounds its footprint; ``conics`` [C, N, 3] from ``project``."""
    a, b, c = conics.unbind(-1)
    det = (a * c - b * b).clamp_min(1e-20)
    return 3.33 * torch.stack([torch.sqrt((c / det).clamp_min(0)), torch.sqrt((a / det).clamp_min(0))], dim=-1)


def _composite_tiles(px, py, gm, gq, go, gc):
    """Colour [C, t, TILE², K] and alpha [C, t, TILE²] of t tiles: pixel centres px, py [t, TILE²]; each tile's
    Gaussians in depth order, means gm [C, t, M, 2], conics gq [C, t, M, 3], opacities go [C, t, M] (0 = padding),
    colours gc [C, t, M, K]."""
    d0 = px[None, :, :, None] - gm[:, :, None, :, 0]  # [C, t, TILE², M]
    d1 = py[None, :, :, None] - gm[:, :, None, :, 1]
    qa, qb, qc = (gq[:, :, None, :, i] for i in range(3))
    sigma = 0.5 * (qa * d0 ** 2 + qc * d1 ** 2) + qb * d0 * d1
    a = torch.clamp(go[:, :, None] * torch.exp(-sigma), max=ALPHA_MAX)
    a = torch.where((sigma >= 0) & (a >= ALPHA_MIN), a, torch.zeros_like(a))
    keep = torch.cumprod(1 - a, dim=-1)  # transmittance after each Gaussian
    before = torch.cat([torch.ones_like(keep[..., :1]), keep[..., :-1]], dim=-1)
    weight = torch.where(keep > TRANSMITTANCE_MIN, a * before, torch.zeros_like(a))
    return torch.einsum("ctpm,ctmk->ctpk", weight, gc), weight.sum(-1)


def composite(means2d: torch.Tensor, conics: torch.Tensor, opacities: torch.Tensor, colors: torch.Tensor,
              depths: torch.Tensor, drawn: torch.Tensor, height: int, width: int,
              background: torch.Tensor | None = None):
    """Alpha-composite projected Gaussians nearest first at every pixel.

    ``means2d`` [C, N, 2], ``conics`` [C, N, 3], ``depths`` [C, N], ``drawn`` [C, N] from ``project``;
    ``opacities`` [N] in (0, 1); ``colors`` [N, K] or [C, N, K]; ``background`` [K] or [C, K] (None: black).
    Returns (images [C, H, W, K], alpha [C, H, W] in [0, 1]). Differentiable in every float input.

    The image is cut into ``TILE`` × ``TILE`` tiles; each tile composites, densely, only the Gaussians whose
    footprint (``footprint_radii``) reaches it, in depth order, padded to the busiest tile's count with
    transparent ones. Gaussians are cut off at the footprint like gsplat's tiles do, so the two agree.
    """
    C, N = depths.shape
    K = colors.shape[-1]
    colors = colors.expand(C, N, K)
    order = torch.argsort(torch.where(drawn, depths, torch.full_like(depths, float("inf"))), dim=1)
    take = lambda a, idx: torch.gather(  # noqa: E731 - rows of a [C, N, ...] at idx [C, M]
        a, 1, idx.view(*idx.shape, *([1] * (a.dim() - 2))).expand(*idx.shape, *a.shape[2:]))
    m, q, col, o = take(means2d, order), take(conics, order), take(colors, order), take(opacities.expand(C, N), order)
    visible = take(drawn, order)
    radius = footprint_radii(q.detach())
    rows, cols = -(-height // TILE), -(-width // TILE)
    ty, tx = torch.meshgrid(torch.arange(rows, device=m.device), torch.arange(cols, device=m.device), indexing="ij")
    x0, y0 = (tx.reshape(-1) * TILE).to(m.dtype), (ty.reshape(-1) * TILE).to(m.dtype)  # [T] tile corners
    md = m.detach()
    reach = (visible[:, None] & (md[:, None, :, 0] + radius[:, None, :, 0] >= x0[None, :, None] - 0.5)
             & (md[:, None, :, 0] - radius[:, None, :, 0] <= x0[None, :, None] + TILE - 0.5)
             & (md[:, None, :, 1] + radius[:, None, :, 1] >= y0[None, :, None] - 0.5)
             & (md[:, None, :, 1] - radius[:, None, :, 1] <= y0[None, :, None] + TILE - 0.5))  # [C, T, N]
    tiles = x0.shape[0]
    count = int(reach.sum(-1).max()) if N else 0
    count = max(count, 1)
    # The reaching Gaussians of each tile first, still in depth order (a stable sort of "not reaching").
    pick = torch.argsort((~reach).to(torch.uint8), dim=-1, stable=True)[..., :count]  # [C, T, M]
    valid = torch.gather(reach, -1, pick)
    flat = pick.reshape(C, tiles * count)
    gm, gq, gc = (take(t, flat).reshape(C, tiles, count, -1) for t in (m, q, col))
    go = torch.where(valid, take(o, flat).reshape(C, tiles, count), torch.zeros((), dtype=o.dtype, device=o.device))
    dy, dx = torch.meshgrid(torch.arange(TILE, dtype=m.dtype, device=m.device),
                            torch.arange(TILE, dtype=m.dtype, device=m.device), indexing="ij")
    px = x0[:, None] + dx.reshape(1, -1)  # [T, TILE²]
    py = y0[:, None] + dy.reshape(1, -1)
    images, alphas = [], []
    chunk = max(1, DENSE_BUDGET // max(C * TILE * TILE * count, 1))
    # Under autograd each chunk is recomputed in the backward pass instead of keeping its [C, t, TILE², M]
    # intermediates (a few per pixel and Gaussian): memory stays that of one chunk, for about a third more time.
    recompute = torch.is_grad_enabled() and any(t.requires_grad for t in (gm, gq, gc, go))
    for s in range(0, tiles, chunk):
        sl = slice(s, s + chunk)
        args = (px[sl], py[sl], gm[:, sl], gq[:, sl], go[:, sl], gc[:, sl])
        image, alpha = (checkpoint(_composite_tiles, *args, use_reentrant=False) if recompute
                        else _composite_tiles(*args))
        images.append(image)
        alphas.append(alpha)
    image, alpha = torch.cat(images, 1), torch.cat(alphas, 1)  # [C, T, TILE², K], [C, T, TILE²]
    if background is not None:
        image = image + (1 - alpha).unsqueeze(-1) * background.expand(C, K)[:, None, None, :]
    image = image.reshape(C, rows, cols, TILE, TILE, K).permute(0, 1, 3, 2, 4, 5).reshape(C, rows * TILE,
                                                                                         cols * TILE, K)
    alpha = alpha.reshape(C, rows, cols, TILE, TILE).permute(0, 1, 3, 2, 4).reshape(C, rows * TILE, cols * TILE)
    return image[:, :height, :width], alpha[:, :height, :width]


def render_torch(means, quats, scales, opacities, colors, viewmats, Ks, height: int, width: int, background=None,
                 means2d: bool = False):
    """Images [C, H, W, K] and alpha [C, H, W] of N Gaussians (``project`` + ``composite``), any device.

    ``means`` [N, 3], ``quats`` [N, 4], ``scales`` [N, 3] (> 0), ``opacities`` [N], ``colors`` [N, K] or
    [C, N, K]; ``viewmats`` [C, 4, 4], ``Ks`` [C, 3, 3], ``background`` [K] or None, one float dtype and device.
    With ``means2d`` also the projected means [C, N, 2] the images were drawn from (their gradient after a
    backward pass is what densification measures).
    """
    centres, conics, depths, drawn = project(means, covariance_3d(quats, scales), viewmats, Ks, height, width)
    image, alpha = composite(centres, conics, opacities, colors, depths, drawn, height, width, background)
    return (image, alpha, centres) if means2d else (image, alpha)


def gsplat_available() -> bool:
    """Whether gsplat imports (its CUDA kernels compile at first use and need a CUDA toolkit)."""
    try:
        import gsplat  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means: not usable here
        return False
    return True


def render_gsplat(means, quats, scales, opacities, colors, viewmats, Ks, height: int, width: int, background=None,
                  means2d: bool = False):
    """``render_torch`` through gsplat's tiled CUDA rasteriser (CUDA tensors only); same arguments and outputs."""
    from gsplat import rasterization

    K = Ks.clone()
    K[:, :2, 2] += 0.5  # gsplat's pixel centres are at +0.5
    C = viewmats.shape[0]
    backgrounds = None if background is None else background.expand(C, colors.shape[-1]).contiguous()
    image, alpha, info = rasterization(means, quats, scales, opacities, colors, viewmats, K, width, height,
                                       near_plane=NEAR, eps2d=EPS_2D, backgrounds=backgrounds, packed=False,
                                       rasterize_mode="classic")
    return (image, alpha[..., 0], info["means2d"]) if means2d else (image, alpha[..., 0])


def render(engine: str, *args, **kwargs):
    """``render_torch`` or ``render_gsplat`` by name (one of ``ENGINES``)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown renderer {engine!r}; one of {ENGINES}")
    return (render_gsplat if engine == "gsplat" else render_torch)(*args, **kwargs)


_GSPLAT_PROBED: dict[str, str] = {}  # device → "" when gsplat rendered there, else why it did not


def gsplat_checked(device: torch.device) -> bool:
    """Whether ``gsplat_problem`` already knows the answer for ``device`` (so asking costs nothing)."""
    return str(torch.device(device)) in _GSPLAT_PROBED or torch.device(device).type != "cuda"


def gsplat_problem(device: torch.device) -> str:
    """Why gsplat cannot render on ``device`` ("" when it can): not CUDA, not installed, or its kernels fail to
    build or run (checked once per device with one tiny render, which also triggers the first-use compile)."""
    device = torch.device(device)
    if device.type != "cuda":
        return f"gsplat renders on CUDA GPUs only, and this runs on {device.type}"
    if not gsplat_available():
        return "gsplat is not installed (pip install gsplat; it compiles its CUDA kernels at first use with nvcc)"
    key = str(device)
    if key not in _GSPLAT_PROBED:
        try:
            one = lambda *shape: torch.ones(*shape, device=device)  # noqa: E731
            viewmat = torch.eye(4, device=device)[None]
            viewmat[0, 2, 3] = 2.0
            K = torch.tensor([[[8.0, 0, 7.5], [0, 8.0, 7.5], [0, 0, 1]]], device=device)
            render_gsplat(torch.zeros(1, 3, device=device), torch.tensor([[1.0, 0, 0, 0]], device=device),
                          one(1, 3) * 0.1, one(1) * 0.5, one(1, 3), viewmat, K, 16, 16)
            torch.cuda.synchronize(device)
            _GSPLAT_PROBED[key] = ""
        except Exception as err:  # noqa: BLE001 - a failed build or launch, reported to the user
            _GSPLAT_PROBED[key] = f"gsplat failed to render on {device} ({type(err).__name__}: {str(err)[:300]})"
    return _GSPLAT_PROBED[key]
