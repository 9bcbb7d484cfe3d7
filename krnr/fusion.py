"""Signal/noise fusion of DDIM-inverted image latents for single-image novel views, as pure tensor maths.

Latents are in the DDPM space: x = a·x0 + b·ε with a = √ᾱ, b = √(1−ᾱ) (``levels.Level``). DDIM
inversion's last move to the level t lands on x_t = a_t·x̂0 + b_t·ε̂, where (x̂0, ε̂) is the model's
prediction for the previous level; the method splits that sum into its signal / mean term
a_t·x̂0 and its noise / variance term b_t·ε̂ (equation 1). The mean is moved to the target view
(here by a forward warp), then one of two fusion strategies gives the DDIM start latent at t:

* ``STRATEGY_NOISE_TERM`` (A): the target mean plus the source's noise term is the fused input
  z = μ_tar + z_σ; the model's noise prediction ε for z at t gives the start μ_tar + b_t·ε.
* ``STRATEGY_INVERTED`` (B): the source's whole inverted latent stands in for the noise:
  the start is μ_tar + b_t·z_inv.

The printed strategies weight the noise by √(1+ᾱ); here it is b_t = √(1−ᾱ_t), the noise weight of
equation 1, so that with the source's own mean strategy A lands back on the source's inversion
(up to the model's change of prediction between two neighbouring levels).
Tensors are any shape (image latents [B, C, h, w]); a and b are Python floats.
"""

from __future__ import annotations

import torch

from .levels import Level

STRATEGY_NOISE_TERM = "a_noise_term"
STRATEGY_INVERTED = "b_inverted_latent"
STRATEGIES = (STRATEGY_NOISE_TERM, STRATEGY_INVERTED)


def split_inversion(x0_hat: torch.Tensor, eps_hat: torch.Tensor, level: Level) -> tuple[torch.Tensor, torch.Tensor]:
    """Equation 1: (signal / mean a·x̂0, noise / variance b·ε̂) of the inversion step landing on ``level``.

    ``x0_hat``, ``eps_hat``: the model's prediction that step moved along (same shape); their sum is
    the inverted latent a·x̂0 + b·ε̂.
    """
    return level.a * x0_hat, level.b * eps_hat


def fused_input(mean: torch.Tensor, noise_term: torch.Tensor) -> torch.Tensor:
    """Strategy A's fused latent z = μ_tar + z_σ (target mean, source noise term; same shapes)."""
    return mean + noise_term


def start_from_prediction(mean: torch.Tensor, eps: torch.Tensor, level: Level) -> torch.Tensor:
    """Strategy A's start μ_tar + b·ε, with ε the model's noise prediction for ``fused_input`` at ``level``."""
    return mean + level.b * eps


def start_from_inversion(mean: torch.Tensor, inverted: torch.Tensor, level: Level) -> torch.Tensor:
    """Strategy B's start μ_tar + b·z_inv (``inverted``: the source's whole inverted latent, same shape)."""
    return mean + level.b * inverted


def inversion_timesteps(steps: int, timestep: int) -> list[int]:
    """The DDIM grid 0 = t_0 < t_1 < … < t_steps = ``timestep``, evenly spaced (rounded), ascending.

    30 steps to 600 (the method's defaults): 0, 20, 40, …, 600. Needs 1 ≤ steps ≤ timestep so the
    timesteps are distinct; t_0 = 0 is the clean latent.
    """
    if not 1 <= steps <= timestep:
        raise ValueError(f"need 1 <= steps <= timestep, got steps={steps}, timestep={timestep}")
    return [round(i * timestep / steps) for i in range(steps + 1)]
