"""Pinhole cameras and orbit poses; the camera-path value the nodes pass around.

Conventions: camera coordinates are x right, y down, z forward (OpenCV); pixel (u, v) is column
u, row v, with integer coordinates at pixel centres, so the image centre is ((W-1)/2, (H-1)/2).
A pose is a world-to-camera matrix W = [R | t] mapping world points to camera points
(X_cam = R X_world + t). The world frame of a path is the camera at rest (all keyframe values 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

# The reference's camera: f = 500 px on a 1024-pixel-wide frame, i.e. a horizontal field of view of
# 2·atan(512 / 500) ≈ 91.4 degrees. Stored as an angle so it applies at any resolution.
REFERENCE_FOCAL_PX = 500.0
REFERENCE_WIDTH_PX = 1024.0
DEFAULT_FOV_X_DEG = math.degrees(2.0 * math.atan(REFERENCE_WIDTH_PX / 2.0 / REFERENCE_FOCAL_PX))
MIN_FOV_X_DEG = 10.0
MAX_FOV_X_DEG = 150.0
# The orbit radius is the depth at the anchor frame's centre pixel, times the user scale, capped here.
MAX_ORBIT_RADIUS = 5.0
POSE_DTYPE = torch.float64


def focal_length_px(width: int, fov_x_deg: float) -> float:
    """Focal length in pixels of a ``width``-pixel-wide image with horizontal field of view ``fov_x_deg``."""
    return (width / 2.0) / math.tan(math.radians(fov_x_deg) / 2.0)


def intrinsics(height: int, width: int, fov_x_deg: float, zoom: torch.Tensor | None = None) -> torch.Tensor:
    """Intrinsic matrices K [F, 3, 3] (F = len(zoom), 1 without zoom), float64.

    fx = fy = focal_length_px(width, fov_x_deg) · zoom (square pixels), principal point at the
    image centre ((W-1)/2, (H-1)/2). ``zoom`` [F] > 0 multiplies the focal length (2 = twice as close).
    """
    zoom = torch.ones(1, dtype=POSE_DTYPE) if zoom is None else zoom.to(POSE_DTYPE)
    f = focal_length_px(width, fov_x_deg) * zoom
    K = torch.zeros(zoom.shape[0], 3, 3, dtype=POSE_DTYPE)
    K[:, 0, 0] = f
    K[:, 1, 1] = f
    K[:, 0, 2] = (width - 1) / 2.0
    K[:, 1, 2] = (height - 1) / 2.0
    K[:, 2, 2] = 1.0
    return K


def rotation_x(theta_deg: torch.Tensor) -> torch.Tensor:
    """Rotations Rx(θ) [F, 3, 3] about the x axis by ``theta_deg`` [F] degrees (right-handed)."""
    t = torch.deg2rad(theta_deg.to(POSE_DTYPE))
    c, s, one, zero = torch.cos(t), torch.sin(t), torch.ones_like(t), torch.zeros_like(t)
    return torch.stack([one, zero, zero, zero, c, -s, zero, s, c], dim=-1).reshape(-1, 3, 3)


def rotation_y(phi_deg: torch.Tensor) -> torch.Tensor:
    """Rotations Ry(φ) [F, 3, 3] about the y axis by ``phi_deg`` [F] degrees (right-handed)."""
    p = torch.deg2rad(phi_deg.to(POSE_DTYPE))
    c, s, one, zero = torch.cos(p), torch.sin(p), torch.ones_like(p), torch.zeros_like(p)
    return torch.stack([c, zero, s, zero, one, zero, -s, zero, c], dim=-1).reshape(-1, 3, 3)


def compose(rotation: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """4x4 matrices [F, 4, 4] from rotations [F, 3, 3] and translations [F, 3]."""
    M = torch.zeros(rotation.shape[0], 4, 4, dtype=rotation.dtype, device=rotation.device)
    M[:, :3, :3] = rotation
    M[:, :3, 3] = translation
    M[:, 3, 3] = 1.0
    return M


def orbit_world_to_camera(theta_deg: torch.Tensor, phi_deg: torch.Tensor, forward: torch.Tensor,
                          right: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """World-to-camera poses [F, 4, 4] (float64) of an orbit about a pivot at unit distance.

    The camera at rest sits at the world origin looking down +z at the pivot p = (0, 0, 1). For each
    frame it first moves by (right, -up, forward) in its own axes (the pivot moves with it), then
    turns about the pivot by Rx(θ) followed by Ry(φ): X_cam = R (X_world - s - p) + p with
    R = Ry(φ)·Rx(θ) and s = (right, -up, forward). All lengths are in units of the orbit radius.
    Positive φ moves the camera to the right, positive θ moves it up, positive ``forward`` moves it
    toward the pivot. All inputs are [F] tensors.
    """
    R = rotation_y(phi_deg) @ rotation_x(theta_deg)
    s = torch.stack([right, -up, forward], dim=-1).to(POSE_DTYPE)
    p = torch.tensor([0.0, 0.0, 1.0], dtype=POSE_DTYPE).expand_as(s)
    t = p - (R @ (s + p).unsqueeze(-1)).squeeze(-1)
    return compose(R, t)


def camera_centers(world_to_camera: torch.Tensor) -> torch.Tensor:
    """Camera centres in world coordinates [F, 3] of poses [F, 4, 4]: c = -Rᵀ t."""
    R, t = world_to_camera[:, :3, :3], world_to_camera[:, :3, 3]
    return -(R.transpose(1, 2) @ t.unsqueeze(-1)).squeeze(-1)


def scale_translation(poses: torch.Tensor, scale: torch.Tensor | float) -> torch.Tensor:
    """Poses [F, 4, 4] with the translation multiplied by ``scale`` (a float or 0-d tensor): the same
    path in a world ``scale`` times larger."""
    out = poses.clone()
    out[:, :3, 3] = poses[:, :3, 3] * scale
    return out


def relative_transforms(world_to_camera: torch.Tensor, anchor: int) -> torch.Tensor:
    """Transforms [F, 4, 4] from the anchor camera's coordinates to each frame's: W_i · W_anchor⁻¹."""
    return world_to_camera @ torch.linalg.inv(world_to_camera[anchor]).unsqueeze(0)


@dataclass(frozen=True)
class CameraPath:
    """A camera path over F frames, independent of resolution and of the scene's scale.

    world_to_camera: [F, 4, 4] float64 poses for an orbit radius of 1 (translations scale with the
        radius, which is resolved from the depth when warping: see ``orbit_radius``).
    zoom:            [F] float64 focal-length multipliers (1 = the base field of view).
    fov_x_deg:       horizontal field of view of the source camera (degrees).
    radius_scale:    multiplies the depth at the anchor frame's centre to give the orbit radius.
    anchor:          index of the frame whose camera filmed the input (the path's reference).
    label:           where the path came from (a preset name or "keyframes"), for previews and errors.
    """

    world_to_camera: torch.Tensor
    zoom: torch.Tensor
    fov_x_deg: float
    radius_scale: float
    anchor: int
    label: str

    @property
    def frames(self) -> int:
        return int(self.world_to_camera.shape[0])

    def orbit_radius(self, depth: torch.Tensor) -> torch.Tensor:
        """Orbit radius (0-d tensor on depth's device): depth [F, H, W] at the anchor frame's centre
        pixel (row H//2, column W//2) times ``radius_scale``, capped at MAX_ORBIT_RADIUS."""
        h, w = depth.shape[-2:]
        return (depth[self.anchor, h // 2, w // 2] * self.radius_scale).clamp(max=MAX_ORBIT_RADIUS)

    def anchor_to_frame(self, radius: torch.Tensor | float) -> torch.Tensor:
        """Transforms [F, 4, 4] from the anchor camera to each frame's camera for orbit ``radius``.

        Float64 on the CPU when ``radius`` is a float; on radius's device (float32) when it is a tensor.
        """
        unit = relative_transforms(self.world_to_camera, self.anchor)
        if isinstance(radius, torch.Tensor):
            unit = unit.to(device=radius.device, dtype=torch.float32)
        return scale_translation(unit, radius)

    def source_intrinsics(self, height: int, width: int) -> torch.Tensor:
        """K [3, 3] of the anchor camera (the one that filmed the input), float64."""
        return intrinsics(height, width, self.fov_x_deg, self.zoom[self.anchor:self.anchor + 1])[0]

    def target_intrinsics(self, height: int, width: int) -> torch.Tensor:
        """K [F, 3, 3] of every frame's camera (zoom applied), float64."""
        return intrinsics(height, width, self.fov_x_deg, self.zoom)
