"""The deformation field: where each canonical Gaussian is at time t.

An MLP of the canonical mean μ [3] and the time t in [0, 1] (both positionally encoded) gives a translation δμ, a
quaternion offset δq and a log-scale offset δs, so that at time t a Gaussian has mean μ + δμ, rotation q + δq and
log-scale s + δs (a 6-DoF motion plus a size change, as in deformable 3D Gaussians). Its output layer starts at
zero: an untrained field moves nothing.
"""

from __future__ import annotations

import math

import torch
from torch import nn

POSITION_FREQUENCIES = 10
TIME_FREQUENCIES = 6
DEPTH = 8
WIDTH = 256
SKIP_LAYER = 4  # the encoded input is fed again before this layer


def positional_encoding(x: torch.Tensor, frequencies: int) -> torch.Tensor:
    """[..., D] → [..., D·(1 + 2·frequencies)]: x, then sin(2^k·π·x) and cos(2^k·π·x) for k < frequencies."""
    scales = (2.0 ** torch.arange(frequencies, dtype=x.dtype, device=x.device)) * math.pi
    angles = (x.unsqueeze(-1) * scales).flatten(-2)
    return torch.cat([x, torch.sin(angles), torch.cos(angles)], dim=-1)


class DeformationField(nn.Module):
    """(μ [N, 3], t) → (δμ [N, 3], δq [N, 4], δs [N, 3]); ``depth`` ReLU layers of ``width``."""

    def __init__(self, depth: int = DEPTH, width: int = WIDTH, position_frequencies: int = POSITION_FREQUENCIES,
                 time_frequencies: int = TIME_FREQUENCIES):
        super().__init__()
        self.position_frequencies, self.time_frequencies = position_frequencies, time_frequencies
        inputs = 3 * (1 + 2 * position_frequencies) + (1 + 2 * time_frequencies)
        skip = SKIP_LAYER if depth > SKIP_LAYER else -1
        self.skip = skip
        self.layers = nn.ModuleList(
            nn.Linear(inputs if i == 0 else width + (inputs if i == skip else 0), width) for i in range(depth))
        self.head = nn.Linear(width, 3 + 4 + 3)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, means: torch.Tensor, t: float):
        time = torch.full_like(means[:, :1], float(t))
        x = torch.cat([positional_encoding(means, self.position_frequencies),
                       positional_encoding(time, self.time_frequencies)], dim=-1)
        h = x
        for i, layer in enumerate(self.layers):
            h = torch.relu(layer(torch.cat([h, x], dim=-1) if i == self.skip else h))
        out = self.head(h)
        return out[:, :3], out[:, 3:7], out[:, 7:]


def deform(means: torch.Tensor, quats: torch.Tensor, log_scales: torch.Tensor, field: DeformationField | None,
           t: float):
    """(means [N, 3], quats [N, 4], log-scales [N, 3]) at time ``t``; unchanged with ``field`` None (static)."""
    if field is None:
        return means, quats, log_scales
    d_mean, d_quat, d_scale = field(means, t)
    return means + d_mean, quats + d_quat, log_scales + d_scale
