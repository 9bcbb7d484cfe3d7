"""Noise levels x = a·x0 + b·ε for both model families, the deterministic move between them, and K-RNR.

DDPM / v-prediction (CogVideoX): a = √ᾱ, b = √(1−ᾱ); rectified flow (Wan, ComfyUI's FLOW models):
a = 1−σ, b = σ. A model's prediction at a level is turned into (x̂0, ε̂); moving to another level
is x_to = a_to·x̂0 + b_to·ε̂ (``noisy`` of the prediction). Towards less noise that is DDIM's η = 0
step (DDPM) or the Euler step x + (σ_to − σ)·u (flow); towards more noise it is inversion.
Zero-terminal SNR is the level (0, 1). Tensors are any shape (latents [B, C, T, h, w]); a and b
are Python floats.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import torch


class Level(NamedTuple):
    """One noise level: x = a·x0 + b·ε (a, b ≥ 0 floats)."""

    a: float
    b: float


# x at a level, the model's (x̂0, ε̂) for it
Prediction = tuple[torch.Tensor, torch.Tensor]
Predict = Callable[[torch.Tensor, int], Prediction]
MarchCallback = Callable[[int, torch.Tensor], None]


def ddpm_level(alpha_bar: float) -> Level:
    """(√ᾱ, √(1−ᾱ)) for ᾱ in [0, 1]: a DDPM / v-prediction schedule's level."""
    return Level(alpha_bar**0.5, (1.0 - alpha_bar) ** 0.5)


def flow_level(sigma: float) -> Level:
    """(1−σ, σ) for σ in [0, 1]: a rectified-flow level (ComfyUI's noise_scaling(σ, ε, x0))."""
    return Level(1.0 - sigma, sigma)


def as_level(level: Level | float) -> Level:
    """A Level as is; a bare float is ᾱ of a DDPM schedule (the CogVideoX path passes ᾱ_t)."""
    return level if isinstance(level, Level) else ddpm_level(float(level))


def noisy(x0: torch.Tensor, eps: torch.Tensor, level: Level) -> torch.Tensor:
    """a·x0 + b·ε: x0 and ε put at ``level`` (same shapes in and out)."""
    return level.a * x0 + level.b * eps


def from_v(x: torch.Tensor, v: torch.Tensor, level: Level) -> Prediction:
    """(x̂0, ε̂) from a v-prediction v = a·ε − b·x0 at a DDPM level: x̂0 = a·x − b·v, ε̂ = a·v + b·x."""
    return level.a * x - level.b * v, level.a * v + level.b * x


def v_from(x0: torch.Tensor, eps: torch.Tensor, level: Level) -> torch.Tensor:
    """v = a·ε − b·x0 (the v-prediction target at a DDPM level)."""
    return level.a * eps - level.b * x0


def from_velocity(x: torch.Tensor, u: torch.Tensor, level: Level) -> Prediction:
    """(x̂0, ε̂) from a flow velocity u = ε − x0 at a flow level (a = 1−σ, b = σ): x̂0 = x − b·u, ε̂ = x + a·u."""
    return x - level.b * u, x + level.a * u


def march(x: torch.Tensor, targets: Sequence[Level], predict: Predict,
          callback: MarchCallback | None = None) -> torch.Tensor:
    """Deterministic moves of x, one per target level, each along one ``predict`` call.

    ``predict(x, i)`` returns the model's (x̂0, ε̂) for x (it knows the level x is taken at and where
    it asks the model); move i lands on ``targets[i]``. Noise falling is sampling, rising is
    inversion. ``callback(i, x)`` runs after move i. Returns x at targets[-1].
    """
    for i, level in enumerate(targets):
        x0, eps = predict(x, i)
        x = noisy(x0, eps, level)
        if callback is not None:
            callback(i, x)
    return x
