"""A known dynamic object made of Gaussians, and its image matrix on an orbit (fixture for the 4D fit's tests and
benchmark).

A ball of 160 Gaussians (radius 0.3) coloured by direction, so every side looks different, and an arm of 40 that
swings about the forward axis as time goes from 0 to 1; rendered with the pack's torch renderer (or gsplat) from
V cameras on the orbit ``cameras.orbit_poses`` builds.
"""

from __future__ import annotations

import math

import torch

from inversedvs.gaussians import cameras, model, render

BALL, ARM = 160, 40
SWING_DEG = 60.0
ARM_SCALE = 0.025  # world units; the ball's Gaussians are 0.06


def canonical(seed: int = 0, arm_scale: float = ARM_SCALE) -> model.Gaussians:
    g = torch.Generator().manual_seed(seed)
    normal = torch.nn.functional.normalize(torch.randn(BALL, 3, generator=g), dim=-1)
    arm = torch.linspace(0.3, 0.55, ARM)[:, None] * torch.tensor([1.0, 0.0, 0.0])
    means = torch.cat([0.3 * normal, arm])
    rgb = torch.cat([0.5 + 0.45 * normal, torch.tensor([[0.9, 0.2, 0.1]]).expand(ARM, 3)])
    quats = torch.nn.functional.normalize(torch.randn(BALL + ARM, 4, generator=g), dim=-1)
    scales = torch.cat([torch.full((BALL, 3), 0.06), torch.full((ARM, 3), arm_scale)])
    return model.Gaussians(means=means, quats=quats, log_scales=scales.log(),
                           opacity_logits=torch.full((BALL + ARM,), 3.0), sh0=model.sh0_from_rgb(rgb))


def at_time(g: model.Gaussians, t: float, swing_deg: float = SWING_DEG) -> model.Gaussians:
    """The object at time t in [0, 1]: the arm turned by swing_deg·t about the z axis (through the centre)."""
    a = math.radians(swing_deg * t)
    R = torch.tensor([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])
    means = g.means.clone()
    means[BALL:] = means[BALL:] @ R.T
    return model.Gaussians(means=means, quats=g.quats, log_scales=g.log_scales, opacity_logits=g.opacity_logits,
                           sh0=g.sh0)


def matrix(views: int, frames: int, size: int, direction: str = "right", elevation: float = 10.0,
           seed: int = 0, azimuth: torch.Tensor | None = None, engine: str = "torch", device: str = "cpu",
           arm_scale: float = ARM_SCALE, swing_deg: float = SWING_DEG):
    """(targets [V, F, H, W, 3], azimuth_deg [V], elevation_deg [V]): the object on core's SV3D template orbit
    (azimuths 0, 360/(V-1), … like core's SV3D_Conditioning, unless ``azimuth`` is given), white background.
    ``arm_scale``, ``swing_deg``: the arm's Gaussians' size and its swing over the clip (a small image needs a thick
    arm that moves less than its width from frame to frame, or the photometric gradient has nothing to follow)."""
    if azimuth is None:
        azimuth = torch.arange(views, dtype=torch.float64) * (360.0 / max(views - 1, 1))
    elevation_deg = torch.full((len(azimuth),), float(elevation), dtype=torch.float64)
    poses = cameras.orbit_poses(azimuth, elevation_deg, cameras.SV3D_RADIUS, cameras.DIRECTIONS[direction])
    Ks = cameras.orbit_intrinsics(len(azimuth), size, size)
    base = canonical(seed, arm_scale)
    columns = []
    for f in range(frames):
        g = at_time(base, 0.0 if frames == 1 else f / (frames - 1), swing_deg).map(lambda t: t.to(device))
        image, _ = render.render(engine, *g.activated(), poses.float().to(device), Ks.float().to(device), size, size,
                                 torch.ones(3, device=device))
        columns.append(image.cpu().clamp(0, 1))
    return torch.stack(columns, dim=1), azimuth, elevation_deg
