"""Which target pixels' visibility a depth map can determine at all: the ground truth of the warp's
hole mask, split into what the source video's samples decide and what they cannot.

A ray-cast scene gives the exact answer — a target pixel is a true hole when the surface point its
centre ray hits is not seen from the source camera (``synthetic.visible_from``). A warp has only
the source's depth and colour at pixel centres, and two things are beyond those samples:

- **silhouette band**: where exactly a silhouette runs between two neighbouring pixel centres. A point
  whose projection into the source falls in a 2×2 block of pixel centres that are partly on its
  surface and partly not lies within one source pixel of a silhouette: whether the source saw it
  depends on where inside that pixel the silhouette runs, which no sample records;
- **unseen space**: what fills the space behind the surfaces the source sees. A target ray that
  crosses that space before it reaches a surface the source saw may meet something there (the
  back of a ball: a true hole the warp shows the wall through) or nothing (the wall is truly
  seen); a ray that hits a surface the source never saw and then one it did is the same case.

``undetermined`` marks both for chosen target pixels, so a score can count an error as an error only
where the samples decide the answer.
"""

from __future__ import annotations

import torch

from inversedvs.warp import synthetic
from inversedvs.warp.camera import camera_centers

# Points along a target ray tested for lying in space the source does not see (segment fractions).
SEGMENT_SAMPLES = 48
SEGMENT_END = 0.995
# Surfaces behind a hidden point searched for one the source sees.
MAX_LAYERS = 4
# A point within this distance (world units) of a primitive lies on it.
ON_SURFACE = 1e-6


def surface_ids(scene: synthetic.Scene, points: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
    """Index of the primitive (planes first, then spheres) each point [F, N, 3] lies on, -1 for none → [F, N]."""
    ids = torch.full(points.shape[:2], -1)
    best = torch.full(points.shape[:2], 1e3 * ON_SURFACE, dtype=points.dtype)
    distances = [((points @ torch.tensor(p.normal, dtype=points.dtype)) - p.offset).abs() for p in scene.planes]
    distances += [((points - synthetic.sphere_centers(s, times).unsqueeze(1)).norm(dim=-1) - s.radius).abs()
                  for s in scene.spheres]
    for k, d in enumerate(distances):
        closer = d < best
        ids[closer] = k
        best = torch.where(closer, d, best)
    return ids


def _to_source(points, source_w2c, K_source):
    """Source pixel (u, v) [N, 2] and z [N] of world points [N, 3] (one camera: w2c [4, 4], K [3, 3])."""
    cam = points @ source_w2c[:3, :3].T + source_w2c[:3, 3]
    return (cam @ K_source.T)[:, :2] / cam[:, 2:3], cam[:, 2]


def _seen(scene, points, source_w2c, K_source, height, width, time):
    """Whether the source camera sees world points [N, 3] (inside its image, first along its ray) → [N]."""
    return synthetic.visible_from(scene, points.view(1, 1, -1, 3), source_w2c[None], K_source, height, width,
                                  time.view(1)).view(-1)


def _in_shadow(scene, points, source_w2c, K_source, height, width, time):
    """Whether world points [N, 3] lie in space the source does not see: inside its view, behind the
    first surface along their source ray → [N]."""
    uv, z = _to_source(points, source_w2c, K_source)
    inside = (z > 0) & (uv[:, 0] >= -0.5) & (uv[:, 0] <= width - 0.5) & (uv[:, 1] >= -0.5) & (uv[:, 1] <= height - 0.5)
    return inside & ~_seen(scene, points, source_w2c, K_source, height, width, time)


def undetermined(*args) -> torch.Tensor:
    """Whether the visibility of target pixels is beyond what the source's samples record → bool [N]
    (arguments as ``undetermined_reasons``)."""
    band, unseen = undetermined_reasons(*args)
    return band | unseen


def undetermined_reasons(scene: synthetic.Scene, hits: torch.Tensor, target_w2c: torch.Tensor,
                         source_w2c: torch.Tensor, K_source: torch.Tensor, height: int, width: int,
                         time: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For target pixels whose centre rays hit the world points ``hits`` [N, 3] (nan = nothing) from the
    camera ``target_w2c`` [4, 4] at clip time ``time`` (0-d), with the source camera ``source_w2c``
    [4, 4], ``K_source`` [3, 3] and an image of height × width rendered from ``scene`` at its pixel
    centres: (silhouette band, unseen space) bool [N] each (see the module docstring)."""
    hits, source_w2c, K_source = hits.double(), source_w2c.double(), K_source.double()
    time = time.double().reshape(())
    hit = torch.isfinite(hits).all(-1)
    band_out = torch.zeros(hits.shape[0], dtype=torch.bool)
    unseen_out = torch.zeros(hits.shape[0], dtype=torch.bool)
    if not bool(hit.any()):
        return band_out, unseen_out
    p = hits[hit]
    source = synthetic.render(scene, source_w2c[None], K_source, height, width, time.view(1))
    sample_ids = surface_ids(scene, source["points"].view(1, -1, 3), time.view(1)).view(height, width)
    own = surface_ids(scene, p.view(1, -1, 3), time.view(1)).view(-1)
    uv, _ = _to_source(p, source_w2c, K_source)
    u0, v0 = uv[:, 0].floor().clamp(-1, width).long(), uv[:, 1].floor().clamp(-1, height).long()
    on, off = torch.zeros_like(own, dtype=torch.bool), torch.zeros_like(own, dtype=torch.bool)
    for du in (0, 1):
        for dv in (0, 1):
            same = sample_ids[(v0 + dv).clamp(0, height - 1), (u0 + du).clamp(0, width - 1)] == own
            on |= same
            off |= ~same
    band = on & off

    seen = _seen(scene, p, source_w2c, K_source, height, width, time)
    centre = camera_centers(target_w2c.double()[None])[0]
    fractions = torch.linspace(0.0, SEGMENT_END, SEGMENT_SAMPLES + 1, dtype=torch.float64)[1:]
    segment = centre + fractions.view(1, -1, 1) * (p - centre).unsqueeze(1)  # [n, S, 3]
    crosses = _in_shadow(scene, segment.reshape(-1, 3), source_w2c, K_source, height, width, time)
    unseen_space = seen & crosses.view(-1, SEGMENT_SAMPLES).any(1)

    # A hidden point with a surface the source sees behind it along the ray.
    direction = p - centre
    behind = torch.zeros_like(seen)
    todo = (~seen).nonzero().squeeze(1)
    front = p[todo]
    for _ in range(MAX_LAYERS):
        if todo.numel() == 0:
            break
        d = direction[todo]
        start = front + 1e-6 * d
        t, _ = synthetic.cast(scene, start, d.unsqueeze(1), time.expand(todo.shape[0]))
        t = t[:, 0]
        found = torch.isfinite(t)
        todo, start, d, t = todo[found], start[found], d[found], t[found]
        front = start + t.unsqueeze(1) * d
        saw = _seen(scene, front, source_w2c, K_source, height, width, time)
        behind[todo[saw]] = True
        todo, front = todo[~saw], front[~saw]
    band_out[hit], unseen_out[hit] = band, (unseen_space | behind) & ~band
    return band_out, unseen_out
