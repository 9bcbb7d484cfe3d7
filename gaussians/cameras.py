"""The orbit a multi-view matrix was sampled on, as world-to-camera poses and intrinsics.

World frame: centred on the object, axes those of the reference camera (view 0, azimuth 0, elevation 0):
x right, y down, z forward away from that camera (OpenCV). A camera at azimuth φ and elevation θ sits at
distance ``radius`` from the centre, looking at it, level (no roll):

    X_cam = Rx(θ)·Ry(d·φ)·X_world + (0, 0, radius)

With ``d = +1`` a growing azimuth moves the camera to its right (the pack's orbit convention, ``warp.camera``),
with ``d = -1`` to its left; a positive elevation moves it up. Intrinsics are ``warp.camera.intrinsics``: integer
pixel centres, principal point at ((W-1)/2, (H-1)/2), square pixels.
"""

from __future__ import annotations

import torch

from ..warp import camera

# Diffusion²'s reconstruction camera for SV3D's orbit: a 33.8° field of view at 2 units from the object's centre.
SV3D_FOV_DEG = 33.8
SV3D_RADIUS = 2.0
DIRECTIONS = {"right": 1.0, "left": -1.0}


def orbit_poses(azimuth_deg: torch.Tensor, elevation_deg: torch.Tensor, radius: float = SV3D_RADIUS,
                direction: float = 1.0) -> torch.Tensor:
    """World-to-camera poses [V, 4, 4] (float64) of cameras on a sphere about the object's centre.

    ``azimuth_deg``, ``elevation_deg``: [V] degrees; ``radius`` > 0 in world units; ``direction`` ±1 (above).
    """
    R = camera.rotation_x(elevation_deg) @ camera.rotation_y(direction * azimuth_deg.to(camera.POSE_DTYPE))
    t = torch.zeros(R.shape[0], 3, dtype=camera.POSE_DTYPE)
    t[:, 2] = radius
    return camera.compose(R, t)


def orbit_intrinsics(views: int, height: int, width: int, fov_deg: float = SV3D_FOV_DEG) -> torch.Tensor:
    """Intrinsics K [V, 3, 3] (float64) of ``views`` identical cameras with horizontal field of view ``fov_deg``."""
    return camera.intrinsics(height, width, fov_deg).expand(views, 3, 3).clone()


def interpolate_orbit(start_deg: float, end_deg: float, count: int) -> torch.Tensor:
    """``count`` angles [count] (float64) evenly from ``start_deg`` to ``end_deg`` inclusive (one: the start)."""
    if count == 1:
        return torch.tensor([start_deg], dtype=camera.POSE_DTYPE)
    return torch.linspace(start_deg, end_deg, count, dtype=camera.POSE_DTYPE)
