"""A set of 3D Gaussians as optimisable tensors, and how they start.

Stored unconstrained, as 3D Gaussian splatting files store them: means [N, 3], quaternions [N, 4] (w, x, y, z, any
norm), log-scales [N, 3], opacity logits [N] and the colour's degree-0 spherical-harmonic coefficient [N, 3]
(RGB = 0.5 + SH_C0·sh0). ``activated`` gives what the renderer takes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

SH_C0 = 0.28209479177387814  # the degree-0 real spherical harmonic, 1 / (2·√π)
START_OPACITY = 0.1
# A new Gaussian's size: this fraction of the spacing of ``count`` points filling the ball.
START_SIZE = 0.5


@dataclass
class Gaussians:
    means: torch.Tensor  # [N, 3] world
    quats: torch.Tensor  # [N, 4] (w, x, y, z), any nonzero norm
    log_scales: torch.Tensor  # [N, 3]
    opacity_logits: torch.Tensor  # [N]
    sh0: torch.Tensor  # [N, 3]

    def __len__(self) -> int:
        return self.means.shape[0]

    def tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def map(self, fn) -> "Gaussians":
        """A new set with ``fn`` applied to every tensor (e.g. ``lambda t: t[keep]``, ``.detach()``, ``.to(...)``)."""
        return Gaussians(**{name: fn(t) for name, t in self.tensors().items()})

    def activated(self):
        """(means [N, 3], unit quaternions [N, 4], scales [N, 3] > 0, opacities [N] in (0, 1), RGB [N, 3] ≥ 0)."""
        return (self.means, torch.nn.functional.normalize(self.quats, dim=-1), torch.exp(self.log_scales),
                torch.sigmoid(self.opacity_logits), rgb_from_sh0(self.sh0))


def rgb_from_sh0(sh0: torch.Tensor) -> torch.Tensor:
    """RGB [..., 3] (≥ 0, 1 = white) of degree-0 SH coefficients [..., 3]: 0.5 + SH_C0·sh0, clamped below at 0."""
    return torch.clamp_min(0.5 + SH_C0 * sh0, 0.0)


def sh0_from_rgb(rgb: torch.Tensor) -> torch.Tensor:
    """The inverse of ``rgb_from_sh0`` for RGB [..., 3] ≥ 0."""
    return (rgb - 0.5) / SH_C0


def in_ball(count: int, radius: float, generator: torch.Generator, dtype=torch.float32) -> Gaussians:
    """``count`` grey, round, faint Gaussians uniformly inside the ball of ``radius`` about the origin.

    Each is a sphere of ``START_SIZE`` times the points' mean spacing, radius·(4π/3 / count)^(1/3), with opacity
    ``START_OPACITY``; what the fit starts from when nothing is known of the object but its extent.
    """
    direction = torch.nn.functional.normalize(torch.randn(count, 3, generator=generator, dtype=dtype), dim=-1)
    distance = radius * torch.rand(count, 1, generator=generator, dtype=dtype) ** (1.0 / 3.0)
    spacing = radius * (4.0 * math.pi / 3.0 / count) ** (1.0 / 3.0)
    quats = torch.zeros(count, 4, dtype=dtype)
    quats[:, 0] = 1.0
    return Gaussians(
        means=direction * distance,
        quats=quats,
        log_scales=torch.full((count, 3), math.log(START_SIZE * spacing), dtype=dtype),
        opacity_logits=torch.full((count,), math.log(START_OPACITY / (1 - START_OPACITY)), dtype=dtype),
        sh0=torch.zeros(count, 3, dtype=dtype),
    )
