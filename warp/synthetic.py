"""An analytic scene of textured planes and spheres, ray-cast from any camera with exact depth.

Used by the tests (geometry with known answers: a render from one camera, warped with its exact
depth, must match the render from another) and as the pack's embedded sample clip. Spheres may
move linearly over the clip, so the clip is dynamic. World units are arbitrary; the world frame
is the camera at rest (x right, y down, z forward).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .camera import camera_centers

# A hit must lie this far along the ray (in units of the ray's z step) to count.
MIN_HIT = 1e-6
# Relative slack when deciding that a point is the first surface along a ray (visibility test).
VISIBILITY_TOLERANCE = 1e-4
TWO_PI = 2.0 * math.pi


@dataclass(frozen=True)
class Plane:
    """Points X with normal·X = offset; texture stripes of ``period`` world units across two axes."""
    normal: tuple[float, float, float]
    offset: float
    color: tuple[float, float, float]
    period: float = 1.0


@dataclass(frozen=True)
class Sphere:
    """A sphere at ``center`` + time·``velocity`` (time 0..1 over the clip) with ``radius``; the
    texture is fixed to the sphere (bands of latitude and longitude)."""
    center: tuple[float, float, float]
    radius: float
    color: tuple[float, float, float]
    velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)
    bands: float = 4.0


@dataclass(frozen=True)
class Scene:
    planes: tuple[Plane, ...]
    spheres: tuple[Sphere, ...]


def _texture(base: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Smooth colours [..., 3] in [0.1, 0.9] from a base colour [3] and two phase maps a, b [...] (radians)."""
    channel_phase = torch.tensor([0.0, 2.1, 4.2], dtype=a.dtype, device=a.device)
    wave = torch.sin(a.unsqueeze(-1) + channel_phase) * torch.cos(b.unsqueeze(-1))
    return (0.6 * base.to(a) + 0.25 + 0.15 * wave).clamp(0.1, 0.9)


def _plane_uv(plane: Plane, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = torch.tensor(plane.normal, dtype=points.dtype, device=points.device)
    helper = torch.tensor([0.0, 1.0, 0.0] if abs(plane.normal[1]) < 0.9 else [1.0, 0.0, 0.0],
                          dtype=points.dtype, device=points.device)
    e1 = torch.linalg.cross(n, helper)
    e1 = e1 / e1.norm()
    e2 = torch.linalg.cross(n, e1)
    k = TWO_PI / plane.period
    return k * (points @ e1), k * (points @ e2) * 0.7


def sphere_centers(sphere: Sphere, times: torch.Tensor) -> torch.Tensor:
    """Centres [F, 3] of ``sphere`` at ``times`` [F] (0..1)."""
    c = torch.tensor(sphere.center, dtype=times.dtype, device=times.device)
    v = torch.tensor(sphere.velocity, dtype=times.dtype, device=times.device)
    return c + times.unsqueeze(-1) * v


def cast(scene: Scene, origins: torch.Tensor, directions: torch.Tensor, times: torch.Tensor):
    """First hits of rays o + t·d, t > 0.

    origins [F, 3], directions [F, N, 3] (any length), times [F] in 0..1.
    Returns t [F, N] (inf where nothing is hit) and the hit colour [F, N, 3] (0 where nothing is hit).
    """
    f, n, _ = directions.shape
    o = origins.unsqueeze(1)
    best_t = torch.full((f, n), float("inf"), dtype=directions.dtype, device=directions.device)
    color = torch.zeros(f, n, 3, dtype=directions.dtype, device=directions.device)
    for plane in scene.planes:
        normal = torch.tensor(plane.normal, dtype=directions.dtype, device=directions.device)
        denom = directions @ normal
        t = (plane.offset - (o @ normal)) / torch.where(denom.abs() > 0, denom, torch.full_like(denom, float("nan")))
        hit = (t > MIN_HIT) & (t < best_t)
        points = o + t.unsqueeze(-1) * directions
        a, b = _plane_uv(plane, points)
        col = _texture(torch.tensor(plane.color), a, b)
        best_t = torch.where(hit, t, best_t)
        color = torch.where(hit.unsqueeze(-1), col, color)
    for sphere in scene.spheres:
        c = sphere_centers(sphere, times).unsqueeze(1)  # [F, 1, 3]
        oc = o - c
        qa = (directions * directions).sum(-1)
        qb = (directions * oc).sum(-1)
        qc = (oc * oc).sum(-1) - sphere.radius**2
        disc = qb * qb - qa * qc
        t = (-qb - disc.clamp_min(0).sqrt()) / qa
        hit = (disc >= 0) & (t > MIN_HIT) & (t < best_t)
        local = (o + t.unsqueeze(-1) * directions - c) / sphere.radius
        longitude = torch.atan2(local[..., 0], local[..., 2])
        latitude = torch.asin(local[..., 1].clamp(-1, 1))
        col = _texture(torch.tensor(sphere.color), sphere.bands * longitude, sphere.bands * latitude)
        best_t = torch.where(hit, t, best_t)
        color = torch.where(hit.unsqueeze(-1), col, color)
    return best_t, color


def render(scene: Scene, world_to_camera: torch.Tensor, K: torch.Tensor, height: int, width: int,
           times: torch.Tensor) -> dict[str, torch.Tensor]:
    """Ray-cast the scene from F cameras (float64).

    world_to_camera [F, 4, 4], K [F, 3, 3] or [3, 3], times [F] (0..1, moves the spheres).
    Returns {"image": [F, H, W, 3] in 0..1, "depth": [F, H, W] z in each camera (0 where nothing is
    hit), "points": [F, H, W, 3] world points (nan where nothing is hit)}.
    """
    w2c = world_to_camera.to(torch.float64)
    f = w2c.shape[0]
    K = K.to(torch.float64).expand(f, 3, 3)
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                          indexing="ij")
    pixels = torch.stack([u, v, torch.ones_like(u)], -1).reshape(-1, 3)
    rays_cam = pixels @ torch.linalg.inv(K).transpose(1, 2)  # z = 1: t is the camera z-depth
    directions = rays_cam @ w2c[:, :3, :3]  # Rᵀ applied to each ray
    origins = camera_centers(w2c)
    t, color = cast(scene, origins, directions, times.to(torch.float64))
    hit = torch.isfinite(t)
    points = origins.unsqueeze(1) + t.unsqueeze(-1) * directions
    points = torch.where(hit.unsqueeze(-1), points, torch.full_like(points, float("nan")))
    return {
        "image": color.reshape(f, height, width, 3),
        "depth": torch.where(hit, t, torch.zeros_like(t)).reshape(f, height, width),
        "points": points.reshape(f, height, width, 3),
    }


def visible_from(scene: Scene, points: torch.Tensor, world_to_camera: torch.Tensor, K: torch.Tensor, height: int,
                 width: int, times: torch.Tensor) -> torch.Tensor:
    """Which world points [F, H, W, 3] (nan = none) the cameras world_to_camera [F, 4, 4] see:
    inside their image (pixel centres ±0.5) and first along the ray from the camera. → bool [F, H, W]."""
    w2c = world_to_camera.to(torch.float64)
    f = w2c.shape[0]
    K = K.to(torch.float64).expand(f, 3, 3)
    flat = points.reshape(f, -1, 3).to(torch.float64)
    cam = flat @ w2c[:, :3, :3].transpose(1, 2) + w2c[:, None, :3, 3]
    z = cam[..., 2]
    uv = (cam @ K.transpose(1, 2))[..., :2] / z.unsqueeze(-1)
    inside = (z > 0) & (uv[..., 0] >= -0.5) & (uv[..., 0] <= width - 0.5) & (uv[..., 1] >= -0.5) & (uv[..., 1] <= height - 0.5)
    origins = camera_centers(w2c)
    directions = flat - origins.unsqueeze(1)  # the point sits at t = 1
    t, _ = cast(scene, origins, torch.nan_to_num(directions), times.to(torch.float64))
    first = t >= 1.0 - VISIBILITY_TOLERANCE
    return (inside & first & torch.isfinite(flat).all(-1)).reshape(f, *points.shape[1:3])
