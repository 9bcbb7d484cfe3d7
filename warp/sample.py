"""The pack's embedded sample: a short synthetic dynamic clip with exact depth, made in code.

A static camera films a textured back wall, a floor and three spheres: one in the centre (the
pivot of orbits), one moving across the frame, one near the camera. Nothing is downloaded; the
clip is rendered by the ray caster in ``synthetic``.
"""

from __future__ import annotations

import os

import torch

from .camera import DEFAULT_FOV_X_DEG, intrinsics
from .synthetic import Plane, Scene, Sphere, render

SAMPLE_FRAMES = 49
SAMPLE_HEIGHT = 480
SAMPLE_WIDTH = 720
SAMPLE_FPS = 8.0

SAMPLE_SCENE = Scene(
    planes=(
        Plane(normal=(0.0, 0.0, 1.0), offset=8.0, color=(0.55, 0.65, 0.85), period=1.6),   # back wall
        Plane(normal=(0.0, 1.0, 0.0), offset=1.6, color=(0.75, 0.6, 0.4), period=0.9),     # floor
    ),
    spheres=(
        Sphere(center=(0.0, 0.3, 5.0), radius=1.0, color=(0.85, 0.35, 0.3)),                 # the subject, centred
        Sphere(center=(2.2, 0.4, 4.0), radius=0.6, color=(0.3, 0.8, 0.45), velocity=(-1.6, 0.0, -0.6)),
        Sphere(center=(-1.9, 1.1, 3.4), radius=0.45, color=(0.9, 0.8, 0.3), bands=3.0),
    ),
)


def clip_times(frames: int) -> torch.Tensor:
    """Times [F] from 0 to 1 over the clip (float64)."""
    return torch.linspace(0.0, 1.0, frames, dtype=torch.float64) if frames > 1 else torch.zeros(1, dtype=torch.float64)


def sample_clip(frames: int = SAMPLE_FRAMES, height: int = SAMPLE_HEIGHT, width: int = SAMPLE_WIDTH,
                fov_x_deg: float = DEFAULT_FOV_X_DEG) -> tuple[torch.Tensor, torch.Tensor]:
    """The sample clip seen from the camera at rest: images [F, H, W, 3] float32 in 0..1 and exact
    depth [F, H, W] float32 (z, world units)."""
    poses = torch.eye(4, dtype=torch.float64).expand(frames, 4, 4)
    out = render(SAMPLE_SCENE, poses, intrinsics(height, width, fov_x_deg)[0], height, width, clip_times(frames))
    return out["image"].float(), out["depth"].float()


def depth_to_disparity_image(depth: torch.Tensor) -> torch.Tensor:
    """A disparity-like grey IMAGE [F, H, W, 3] (white = near, 0..1 over the clip) from depth [F, H, W] > 0."""
    inverse = 1.0 / depth
    lo, hi = inverse.amin(), inverse.amax()
    d = (inverse - lo) / (hi - lo)
    return d.unsqueeze(-1).expand(*d.shape, 3).contiguous()


def write_sample_videos(folder: str, video_name: str, depth_name: str, frames: int = SAMPLE_FRAMES,
                        height: int = SAMPLE_HEIGHT, width: int = SAMPLE_WIDTH) -> list[str]:
    """Write the sample clip and its depth (as a white = near video) as mp4 into ``folder``; existing
    files of those names are kept. Returns the two paths."""
    from ..nodes.output import write_mp4

    os.makedirs(folder, exist_ok=True)
    images, depth = sample_clip(frames, height, width)
    paths = []
    for name, video in ((video_name, images), (depth_name, depth_to_disparity_image(depth))):
        path = os.path.join(folder, name)
        if not os.path.exists(path):
            write_mp4(path, video, SAMPLE_FPS)
        paths.append(path)
    return paths
