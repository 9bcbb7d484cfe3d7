"""The forward warp this pack used before the mesh rasteriser (bilinear point splatting plus gap filling),
kept here only as the baseline that benchmarks/bench_warp.py times beside the current warp in one run.
It is not part of the pack. Original module docstring follows.

Forward warping by bilinear splatting, batched over all frames at once.

Every source pixel is lifted to 3-D with its depth, moved into the target camera and projected;
its colour is spread over the four target pixels around where it lands (bilinear weights). Each
contribution is also weighted by 1 / exp(SHARPNESS · log(1 + z) / max log(1 + z)), z its depth in
the target camera, so nearer surfaces dominate farther ones landing on the same pixel. Target
pixels that receive (almost) nothing are holes: surfaces the source camera never saw. Where the
move magnifies a surface (dolly in, a near floor) its splats no longer touch and leave gaps of a
pixel or two: a run of at most MAX_GAP hole pixels along a row, column or diagonal between two
seen pixels of the same surface (depths within GAP_DEPTH_TOLERANCE) is such a gap and is
interpolated from them. Disocclusions are bordered by a near and a far surface: they stay holes.

All frames go through one scatter per bilinear corner and channel (``scatter_add_``) — no Python
loop over frames, one host synchronisation (listing the gap candidates) — and the arithmetic
works on separable rays and fused per-frame projection matrices, so memory traffic stays a few
passes over [F, H, W].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Shared with the current warp (the pack must be loaded first, as bench_warp.py does).
from inversedvs.warp.splat import MIN_Z, finish, reproject_video

# Depth weighting of the reference: weight = exp(-SHARPNESS · log(1+z) / max log(1+z)).
DEPTH_WEIGHT_SHARPNESS = 50.0
DEPTH_WEIGHT_MAX_Z = 1000.0
# A target pixel is a hole when the bilinear weights it received sum to less than this. A pixel
# covered by its source surface receives about 1; pixels only grazed by a neighbour's footprint
# stay holes instead of being smeared over.
MIN_COVERAGE = 0.1
# Landing positions are clamped to [-1, W] x [-1, H]; the scatter grid has one border column/row
# on the left/top and two on the right/bottom so every bilinear corner has a slot. Borders are cut.
PAD_BEFORE, PAD_AFTER = 1, 2
# Gap filling: a run of at most MAX_GAP hole pixels along one of these directions (row, column,
# two diagonals; (dv, du) steps) between two seen pixels whose depths differ by at most
# GAP_DEPTH_TOLERANCE (relative) is a gap in a magnified surface, not a disocclusion.
GAP_DIRECTIONS = ((0, 1), (1, 0), (1, 1), (1, -1))
MAX_GAP = 2
GAP_DEPTH_TOLERANCE = 0.1
# Landing positions are snapped to 1/SNAP pixel, so a point that lands on a pixel centre up to
# float32 round-off (e.g. every point of an identity move) gives that pixel all its weight and its
# neighbours exactly none (a tiny bilinear share times a large near-surface weight would show).
SNAP = 1024.0


def depth_weights(z: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Occlusion weights [F, H, W] in (0, 1]: exp(-SHARPNESS · log(1+z) / max log(1+z)), the max taken
    per frame over valid points; z [F, H, W] (clamped to [0, DEPTH_WEIGHT_MAX_Z]); 0 where not valid."""
    log_z = torch.log1p(z.clamp(0.0, DEPTH_WEIGHT_MAX_Z)).mul_(valid)
    scale = log_z.amax(dim=(1, 2), keepdim=True).clamp_min(torch.finfo(z.dtype).tiny)
    return torch.exp(log_z.mul_(-DEPTH_WEIGHT_SHARPNESS / scale)).mul_(valid)


def splat_bilinear(values: torch.Tensor, u: torch.Tensor, v: torch.Tensor,
                   weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Bilinear splatting of per-pixel values to the positions (u, v) on the same-sized grid.

    values [F, H, W, C]; u, v [F, H, W] target columns and rows (non-finite = dropped);
    weights [F, H, W] ≥ 0 (0 = dropped). With b the bilinear weights of the four pixels around each
    landing point, returns Σ w·b·value [F, H, W, C], Σ w·b [F, H, W], and the coverage Σ b over
    points with w > 0 [F, H, W].
    """
    f, h, w, c = values.shape
    finite = torch.isfinite(u) & torch.isfinite(v)
    weights = weights * finite
    u = torch.nan_to_num(u, nan=-1.0).clamp_(-1.0, float(w)).mul_(SNAP).round_().div_(SNAP)
    v = torch.nan_to_num(v, nan=-1.0).clamp_(-1.0, float(h)).mul_(SNAP).round_().div_(SNAP)
    u0, v0 = torch.floor(u), torch.floor(v)
    fu, fv = u.sub_(u0), v.sub_(v0)  # fractional parts (u, v are not needed after this)
    ph, pw = h + PAD_BEFORE + PAD_AFTER, w + PAD_BEFORE + PAD_AFTER
    frame_start = (torch.arange(f, device=values.device) * ph + PAD_BEFORE).view(f, 1, 1)
    # Linear index of each landing point's top-left corner in the padded [F, ph, pw] grid.
    base = ((v0.long() + frame_start) * pw + (u0.long() + PAD_BEFORE)).reshape(-1)
    # Per-channel payload: C weighted values, the weight, and 1 for every point that counts.
    payload = [(values[..., k] * weights).reshape(-1) for k in range(c)]
    payload += [weights.reshape(-1), (weights > 0).to(values).reshape(-1)]
    out = torch.zeros(c + 2, f * ph * pw, device=values.device, dtype=values.dtype)
    gu, gv = 1.0 - fu, 1.0 - fv
    for offset, b in ((0, gu * gv), (1, fu * gv), (pw, gu * fv), (pw + 1, fu * fv)):
        b = b.reshape(-1)
        shifted = out.narrow(1, offset, out.shape[1] - offset)  # corner = top-left + offset
        for k in range(c + 2):  # one 1-D scatter per channel: the fastest form on CPU and GPU
            shifted[k].scatter_add_(0, base, payload[k] * b)
    out = out.view(c + 2, f, ph, pw)[:, :, PAD_BEFORE:PAD_BEFORE + h, PAD_BEFORE:PAD_BEFORE + w]
    return out[:c].permute(1, 2, 3, 0), out[c], out[c + 1]


def next_to_seen(seen: torch.Tensor) -> torch.Tensor:
    """Pixels [F, H, W] bool with a seen pixel among their 8 neighbours; seen [F, H, W] bool."""
    padded = F.pad(seen.to(torch.uint8), (1, 1, 1, 1))
    rows = torch.maximum(torch.maximum(padded[:, :-2], padded[:, 1:-1]), padded[:, 2:])
    return torch.maximum(torch.maximum(rows[:, :, :-2], rows[:, :, 1:-1]), rows[:, :, 2:]).bool()


def fill_gaps(values: torch.Tensor, seen: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Interpolate the gaps of magnified surfaces (see the module docstring), in place.

    values [F, H, W, C] contiguous (normalised splats; the last channel is the depth in the target camera),
    seen [F, H, W] bool. A gap is a run of at most MAX_GAP hole pixels along a row, column or
    diagonal between two seen pixels whose depths agree within GAP_DEPTH_TOLERANCE. A gap pixel
    takes, averaged over the directions where it is one, the linear interpolation between those two
    pixels (all channels, depth included). Returns (values, seen) with the gaps filled and seen.
    Only hole pixels next to a seen pixel are examined; the search runs on a depth grid padded by
    MAX_GAP (never seen), so it needs no bounds checks.
    """
    f, h, w, c = values.shape
    g = MAX_GAP
    candidates = (~seen & next_to_seen(seen)).reshape(-1).nonzero().squeeze(1)
    flat = values.view(-1, c)
    pw = w + 2 * g
    padded_index = (candidates // w + (candidates // (h * w) * 2 + 1) * g) * pw + candidates % w + g
    seen_depth = F.pad(torch.where(seen, values[..., -1], 0.0), (g, g, g, g)).reshape(-1)
    total = torch.zeros(candidates.shape[0], c, dtype=values.dtype, device=values.device)
    count = torch.zeros(candidates.shape[0], dtype=values.dtype, device=values.device)
    for dv, du in GAP_DIRECTIONS:
        ends = []
        for sign in (1, -1):
            steps = torch.zeros(candidates.shape[0], dtype=values.dtype, device=values.device)
            for k in range(g, 0, -1):  # the nearest seen pixel wins
                steps = torch.where(seen_depth[padded_index + sign * k * (dv * pw + du)] > 0, float(k), steps)
            ends.append((flat[candidates + steps.long() * (sign * (dv * w + du))], steps))
        (a, steps_a), (b, steps_b) = ends  # steps 0: the candidate itself, never used (ok is False)
        za, zb = a[:, -1], b[:, -1]
        ok = ((steps_a > 0) & (steps_b > 0) & (steps_a + steps_b <= g + 1)
              & ((za - zb).abs() <= GAP_DEPTH_TOLERANCE * torch.minimum(za, zb)))
        span = (steps_a + steps_b).clamp_min(1.0)
        total += (a * (steps_b / span).unsqueeze(-1) + b * (steps_a / span).unsqueeze(-1)) * ok.unsqueeze(-1)
        count += ok
    gap = count > 0
    flat[candidates] = torch.where(gap.unsqueeze(-1), total / count.clamp_min(1.0).unsqueeze(-1), flat[candidates])
    seen.view(-1)[candidates] = gap
    return values, seen


def forward_warp(images: torch.Tensor, depth: torch.Tensor, transforms: torch.Tensor, K_source: torch.Tensor,
                 K_target: torch.Tensor, dilate: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The replaced warp; inputs and outputs as ``inversedvs.warp.splat.forward_warp``."""
    images, depth, (u, v, z) = reproject_video(images, depth, transforms, K_source, K_target)
    valid = (depth > 0) & (z > MIN_Z)
    # The target depth travels as an extra channel: gap filling compares it across a gap.
    accum, weight_sum, coverage = splat_bilinear(torch.cat([images, z.unsqueeze(-1)], -1), u, v,
                                                 depth_weights(z, valid))
    seen = (coverage >= MIN_COVERAGE) & (weight_sum > 0)
    splats = accum.div_(weight_sum.clamp_min(torch.finfo(torch.float32).tiny).unsqueeze(-1)).contiguous()
    splats, seen = fill_gaps(splats, seen)
    warped = splats[..., :-1].mul_(seen.unsqueeze(-1))
    return finish(warped, seen, dilate)
