"""Deterministic DDIM sampling and inversion for a v-prediction model, as pure tensor maths.

A v-prediction model outputs v = √ᾱ·ε − √(1−ᾱ)·x0 for the noisy latent x = √ᾱ·x0 + √(1−ᾱ)·ε:
the DDPM case of ``levels`` (a = √ᾱ, b = √(1−ᾱ)), marched with ``levels.march``.
The loops take ``predict_v(x, t) -> v`` (any batched callable: a transformer, a test double) and
an optional ``callback(i, t, x)`` run after each step (progress bars, interrupts).
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from . import levels
from .schedule import NoiseSchedule
from .windows import Anchor, anchored

PredictV = Callable[[torch.Tensor, int], torch.Tensor]
StepCallback = Callable[[int, int, torch.Tensor], None]


def x0_from_v(x: torch.Tensor, v: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """Clean latent x0 = √ᾱ·x − √(1−ᾱ)·v (same shape as ``x``)."""
    return levels.from_v(x, v, levels.ddpm_level(alpha_bar))[0]


def eps_from_v(x: torch.Tensor, v: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """Noise ε = √ᾱ·v + √(1−ᾱ)·x (same shape as ``x``)."""
    return levels.from_v(x, v, levels.ddpm_level(alpha_bar))[1]


def v_from_x0_eps(x0: torch.Tensor, eps: torch.Tensor, alpha_bar: float) -> torch.Tensor:
    """Velocity v = √ᾱ·ε − √(1−ᾱ)·x0 (same shape as ``x0``)."""
    return levels.v_from(x0, eps, levels.ddpm_level(alpha_bar))


def ddim_move(x: torch.Tensor, v: torch.Tensor, alpha_from: float, alpha_to: float) -> torch.Tensor:
    """Move x from noise level ᾱ_from to ᾱ_to along the model's (x0, ε): √ᾱ_to·x0 + √(1−ᾱ_to)·ε.

    With ᾱ_to > ᾱ_from this is one DDIM sampling step (η = 0), with ᾱ_to < ᾱ_from one DDIM
    inversion step. ``x``, ``v``: [...], any shape; returns the same shape and dtype.
    """
    x0, eps = levels.from_v(x, v, levels.ddpm_level(alpha_from))
    return levels.noisy(x0, eps, levels.ddpm_level(alpha_to))


def ddim_step(schedule: NoiseSchedule, x: torch.Tensor, v: torch.Tensor, t: int, steps: int) -> torch.Tensor:
    """One sampling step from timestep ``t`` to ``schedule.prev(t, steps)`` (x: [...] latent)."""
    return ddim_move(x, v, schedule.alpha_bar(t), schedule.alpha_bar(schedule.prev(t, steps)))


def ddim_inversion_step(schedule: NoiseSchedule, x: torch.Tensor, v: torch.Tensor, t: int, steps: int) -> torch.Tensor:
    """One inversion step from level ``prev(t)`` up to timestep ``t``; ``v`` is the model's output at (x, t)."""
    return ddim_move(x, v, schedule.alpha_bar(schedule.prev(t, steps)), schedule.alpha_bar(t))


def _march(schedule: NoiseSchedule, x: torch.Tensor, timesteps: list[int], froms: list[int], tos: list[int],
           predict_v: PredictV, callback: StepCallback | None, anchor: Anchor | None = None) -> torch.Tensor:
    """One DDIM move per timestep: the model asked at timesteps[i], x taken at ᾱ(froms[i]), moved to ᾱ(tos[i]);
    the model's x̂0 pulled to ``anchor`` (``windows.anchored``) before each move."""
    level = lambda t: levels.ddpm_level(schedule.alpha_bar(t))  # noqa: E731

    def predict(x, i):
        x0, eps = levels.from_v(x, predict_v(x, timesteps[i]).to(x.dtype), level(froms[i]))
        return anchored(x0, anchor), eps

    report = None if callback is None else (lambda i, x: callback(i, timesteps[i], x))
    return levels.march(x, [level(t) for t in tos], predict, report)


def sample(schedule: NoiseSchedule, x: torch.Tensor, timesteps: list[int], steps: int, predict_v: PredictV,
           callback: StepCallback | None = None, anchor: Anchor | None = None) -> torch.Tensor:
    """DDIM sampling: x at timesteps[0] → clean latent, one model call per timestep (descending list).

    Each step goes from t to ``schedule.prev(t)``. ``x``: noisy latent [B, C, T, h, w] (any shape
    ``predict_v`` accepts); returns the same shape. ``anchor``: latent frames pulled to a previous
    window's result (``windows.anchored``), none by default.
    """
    return _march(schedule, x, timesteps, timesteps, [schedule.prev(t, steps) for t in timesteps], predict_v,
                  callback, anchor)


def invert(schedule: NoiseSchedule, x0: torch.Tensor, timesteps: list[int], steps: int, predict_v: PredictV,
           callback: StepCallback | None = None) -> torch.Tensor:
    """DDIM inversion: clean latent → noisy latent at timesteps[-1], one model call per timestep (ascending list).

    Each step goes from ``schedule.prev(t)`` up to t, the model asked at t. At a zero-terminal-SNR
    last timestep (ᾱ = 0) the result is the model's noise prediction ε. ``x0``: [B, C, T, h, w];
    returns the same shape.
    """
    return _march(schedule, x0, timesteps, [schedule.prev(t, steps) for t in timesteps], timesteps, predict_v,
                  callback)


def inversion_timesteps(schedule: NoiseSchedule, steps: int, strength: float, to_terminal: bool) -> list[int]:
    """Ascending timesteps inversion visits: up to the sampling start (``to_terminal`` False) or the grid's top.

    30 steps, strength 0.98: 32 … 966 (29 steps), or 32 … 999 (30 steps) when ``to_terminal``.
    """
    full = schedule.grid(steps, 1.0)
    start = schedule.grid(steps, strength)[0]
    ascending = full[::-1]
    return ascending if to_terminal else ascending[: ascending.index(start) + 1]


def dynamic_guidance(scale: float, t: int, steps: int) -> float:
    """The guidance weight the reference applies in unseen cells when dynamic guidance is on.

    It mirrors CogVideoX's cosine schedule c_t = 1 + scale·(1 − cos(π·((steps − t)/steps)^5))/2
    around the scale: w_t = scale + 2 − c_t, so w_t stays in [1, scale + 1]. ``t`` is the timestep
    value (0…999), as in the reference and in CogVideoX's diffusers pipeline.
    """
    cosine = 1.0 + scale * (1.0 - math.cos(math.pi * ((steps - t) / steps) ** 5.0)) / 2.0
    return scale + 2.0 - cosine


def guided_velocity(v_uncond: torch.Tensor, v_cond: torch.Tensor, unseen: torch.Tensor, guidance: float,
                    preservation: float) -> torch.Tensor:
    """Per-position classifier-free guidance: v_u + w·(v_c − v_u), w = guidance where ``unseen`` else preservation.

    ``v_uncond``, ``v_cond``: [B, C, T, h, w]; ``unseen``: [T, h, w] bool (broadcast over batch and channels).
    """
    w = torch.where(unseen.to(v_cond.device), float(guidance), float(preservation)).to(v_cond.dtype)
    return v_uncond + w * (v_cond - v_uncond)
