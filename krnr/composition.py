"""Diffusion² score composition of a video model and a multi-view model over a V × F image matrix, as pure torch.

The matrix holds V views × F frames of one dynamic object. It is kept **view-major**:

* as a tensor ``x`` [V, F, C, h, w]: row ``x[v]`` is view v's video (F frames), column ``x[:, f]`` is the
  orbit at time f (V views);
* as a ComfyUI batch [V·F, …] (LATENT ``samples``, IMAGE): item ``b = v·F + f`` (``to_batch`` / ``from_batch``).

Space: core's k-diffusion space for EDM-style models (SVD, SV3D), x = x0 + σ·n; a denoiser D(x, σ) gives x̂0 (what
core's guider returns, CFG included). The score is ∇log p = (D − x)/σ², so the paper's convex combination of the
video model's row score and the multi-view model's column score (its equation 5, weight ``s`` on the row)

    ∇log p(I) ≈ s·∇log p(row) + (1 − s)·∇log p(column)

is, with weights summing to one, the same combination of the two denoised estimates: D = s·D_row + (1 − s)·D_col
(``compose``). The step is Euler on the probability-flow ODE, d = (x − D)/σ, x ← x + (σ_next − σ)·d (its
algorithm 1, and core's ``euler`` sampler, with the same tensor arithmetic so that s = 1 or 0 gives core's bits).

Variance-reducing sampling (VRS): in each of the first ``vrs_steps`` steps, after the step to σ_next the latent is
re-noised with ε ~ N(0, I) as x_next + (σ − σ_next)·ε (total noise level √(σ_next² + (σ − σ_next)²), between σ_next
and σ, with less variance than σ) and the step at σ is taken again from it: one extra evaluation of both models per
repeated step (algorithm 1 with R = 2).

The paper's equation 5 weights the video (row) score by s; its algorithm 1 prints the weights the other way round.
This module follows equation 5: s = 1 is the video model alone, s = 0 the multi-view model alone.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

# The paper's defaults: s fixed at 0.5 in every step, VRS in the first five steps, 50 steps.
DEFAULT_S = 0.5
DEFAULT_VRS_STEPS = 5
DEFAULT_STEPS = 50
# Extra evaluations of a VRS step (algorithm 1's R = 2: the step is taken twice).
VRS_REPEATS = 2

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def to_batch(x: torch.Tensor) -> torch.Tensor:
    """The matrix [V, F, …] as a view-major batch [V·F, …] (item v·F + f)."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def from_batch(batch: torch.Tensor, views: int) -> torch.Tensor:
    """A view-major batch [V·F, …] as the matrix [V, F, …]; ``views`` = V must divide the batch."""
    if views < 1 or batch.shape[0] % views:
        raise ValueError(f"a batch of {batch.shape[0]} is not {views} views of equal length")
    return batch.reshape(views, batch.shape[0] // views, *batch.shape[1:])


def compose(row: torch.Tensor, column: torch.Tensor | None, s: float) -> torch.Tensor:
    """Equation 5 on denoised estimates: s·row + (1 − s)·column (same shapes, the matrix [V, F, …]).

    s = 1 returns ``row`` itself and s = 0 ``column`` itself (the estimate of the model with weight 0 is not used and
    may be None), so the endpoints are exactly one model's sampling.
    """
    s = float(s)
    if s == 1.0:
        return row
    if s == 0.0:
        return column
    return s * row + (1.0 - s) * column


def euler_step(x: torch.Tensor, denoised: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor) -> torch.Tensor:
    """One Euler step of the probability-flow ODE from σ to σ_next (0-d tensors): x + (σ_next − σ)·(x − D)/σ.

    The operations are core's ``sample_euler``'s (``to_d`` then ``x + d·dt``), so a row stepped here has the bits
    core's sampler gives it.
    """
    d = (x - denoised) / sigma.reshape([1] * x.ndim)
    dt = sigma_next - sigma
    return x + d * dt


def vrs_renoise(x_next: torch.Tensor, sigma: torch.Tensor, sigma_next: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Algorithm 1's rollback: x_next + (σ − σ_next)·ε, the latent the step at σ is taken again from."""
    return x_next + (sigma - sigma_next) * noise


def evaluation_plan(steps: int, vrs_steps: int) -> list[int]:
    """The step index of every evaluation of the models, in order: steps < ``vrs_steps`` appear twice.

    steps = 4, vrs_steps = 2 → [0, 0, 1, 1, 2, 3]; ``vrs_steps`` beyond ``steps`` repeats every step.
    """
    if steps < 1 or vrs_steps < 0:
        raise ValueError(f"need steps >= 1 and vrs_steps >= 0, got {steps}, {vrs_steps}")
    plan = []
    for i in range(steps):
        plan += [i] * (VRS_REPEATS if i < vrs_steps else 1)
    return plan


def weights_used(s: float) -> tuple[bool, bool]:
    """(rows needed, columns needed) for weight s: a model with weight 0 is not evaluated."""
    return float(s) != 0.0, float(s) != 1.0


def sample(x: torch.Tensor, sigmas: torch.Tensor, denoise_rows: Denoiser, denoise_columns: Denoiser, s: float,
           vrs_steps: int, draw_noise: Callable[[tuple], torch.Tensor],
           on_evaluation: Callable[[int, torch.Tensor], None] | None = None) -> torch.Tensor:
    """Joint denoising of the matrix (algorithm 1 with equation 5's weights).

    ``x``: the start, [V, F, C, h, w] at σ_0 (already scaled noise). ``sigmas``: descending noise levels [N + 1]
    (float32, the last usually 0). ``denoise_rows(x, σ)`` / ``denoise_columns(x, σ)``: the video / multi-view
    model's x̂0 for the whole matrix [V, F, C, h, w] (each row / column denoised on its own) at the 0-d σ.
    ``s`` in [0, 1]; ``vrs_steps``: how many first steps are taken twice with a rollback in between.
    ``draw_noise(shape)``: ε for a rollback (a tensor like x). ``on_evaluation(i, denoised)``: after every
    evaluation of step i. Returns the matrix at σ_N.
    """
    if x.ndim != 5:
        raise ValueError(f"the matrix must be [V, F, C, h, w], got {tuple(x.shape)}")
    if not 0.0 <= float(s) <= 1.0:
        raise ValueError(f"s must be in [0, 1], got {s}")
    steps = len(sigmas) - 1
    use_rows, use_columns = weights_used(s)
    plan = evaluation_plan(steps, vrs_steps) if steps >= 1 else []
    for k, i in enumerate(plan):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        row = denoise_rows(x, sigma) if use_rows else None
        column = denoise_columns(x, sigma) if use_columns else None
        denoised = compose(row, column, s)
        if on_evaluation is not None:
            on_evaluation(i, denoised)
        x_next = euler_step(x, denoised, sigma, sigma_next)
        repeat = k + 1 < len(plan) and plan[k + 1] == i
        x = vrs_renoise(x_next, sigma, sigma_next, draw_noise(tuple(x.shape)).to(x)) if repeat else x_next
    return x


def grid(images: torch.Tensor, views: int, max_side: int = 2048) -> torch.Tensor:
    """A contact sheet of a view-major IMAGE batch [V·F, H, W, 3]: one row per view, one column per frame.

    Tiles are shrunk (area average) so the sheet's longer side is at most ``max_side`` pixels; returns
    [1, V·h, F·w, 3] in the images' range.
    """
    matrix = from_batch(images, views)
    v, f, height, width, c = matrix.shape
    scale = min(1.0, max_side / max(f * width, v * height))
    h, w = max(1, int(height * scale)), max(1, int(width * scale))
    tiles = to_batch(matrix).movedim(-1, 1)
    if (h, w) != (height, width):
        tiles = F.interpolate(tiles.float(), size=(h, w), mode="area")
    tiles = tiles.movedim(1, -1).reshape(v, f, h, w, c)
    return tiles.permute(0, 2, 1, 3, 4).reshape(1, v * h, f * w, c).to(images.dtype)


def pick(batch: torch.Tensor, views: int, along: str, index: int) -> torch.Tensor:
    """One view's video (``along`` = "view": F items) or one time's orbit ("time": V items) of a view-major batch."""
    matrix = from_batch(batch, views)
    if along == "view":
        return matrix[index]
    if along == "time":
        return matrix[:, index]
    raise ValueError(f"along must be 'view' or 'time', got {along!r}")
