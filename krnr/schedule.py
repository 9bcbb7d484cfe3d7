"""The video model's noise schedule: ᾱ_t from a scheduler config, and the timestep grid.

CogVideoX-5B-I2V uses scaled-linear betas, an SNR shift (scale 1.0 = none), a zero-terminal-SNR
rescale (ᾱ at the last training timestep is exactly 0), v-prediction and "trailing" spacing.
"""

from __future__ import annotations

import math

import torch

from ..errors import InverseDVSError

# The scheduler settings shipped in CogVideoX-5B-I2V's scheduler/scheduler_config.json.
COGVIDEOX_5B_I2V_SCHEDULER = {
    "_class_name": "CogVideoXDDIMScheduler",
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "clip_sample_range": 1.0,
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "sample_max_value": 1.0,
    "set_alpha_to_one": True,
    "snr_shift_scale": 1.0,
    "steps_offset": 0,
    "timestep_spacing": "trailing",
    "trained_betas": None,
}

SUPPORTED_BETA_SCHEDULES = ("scaled_linear", "linear")


def scaled_linear_betas(beta_start: float, beta_end: float, n: int) -> torch.Tensor:
    """β_i = (√β_start + i/(n−1)·(√β_end − √β_start))², float64 [n], values in (0, 1)."""
    return torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=torch.float64) ** 2


def snr_shift(alpha_bar: torch.Tensor, scale: float) -> torch.Tensor:
    """ᾱ' = ᾱ / (s + (1 − s)·ᾱ): divides the signal-to-noise ratio by ``s`` ([N] float64, 0..1)."""
    return alpha_bar / (scale + (1.0 - scale) * alpha_bar)


def zero_terminal_snr(alpha_bar: torch.Tensor) -> torch.Tensor:
    """Shift and scale √ᾱ so the last value is 0 and the first unchanged ([N] float64, 0..1)."""
    root = alpha_bar.sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * (first / (first - last))
    return root**2


def alphas_cumprod(config: dict) -> torch.Tensor:
    """ᾱ_t for t = 0 … num_train_timesteps−1 from a diffusers scheduler config ([N] float64, 0..1)."""
    n = int(config.get("num_train_timesteps", 1000))
    kind = config.get("beta_schedule", "scaled_linear")
    if config.get("trained_betas") is not None:
        betas = torch.tensor(config["trained_betas"], dtype=torch.float64)
    elif kind == "scaled_linear":
        betas = scaled_linear_betas(config.get("beta_start", 0.00085), config.get("beta_end", 0.012), n)
    elif kind == "linear":
        betas = torch.linspace(config.get("beta_start", 0.00085), config.get("beta_end", 0.012), n, dtype=torch.float64)
    else:
        raise InverseDVSError(
            f"The model's scheduler uses beta_schedule '{kind}', which this pack does not know; "
            f"supported: {', '.join(SUPPORTED_BETA_SCHEDULES)}. Use a CogVideoX-5B-I2V model folder."
        )
    alpha_bar = torch.cumprod(1.0 - betas, dim=0)
    alpha_bar = snr_shift(alpha_bar, float(config.get("snr_shift_scale", 1.0)))
    if config.get("rescale_betas_zero_snr", False):
        alpha_bar = zero_terminal_snr(alpha_bar)
    return alpha_bar


def trailing_timesteps(steps: int, num_train: int) -> list[int]:
    """The full "trailing" grid, descending: round(num_train − i·num_train/steps) − 1 (30 steps: 999, 966, …, 32)."""
    ratio = num_train / steps
    return [int(round(num_train - i * ratio)) - 1 for i in range(steps)]


def first_step_index(steps: int, strength: float) -> int:
    """Index of the first sampled timestep for ``strength`` in (0, 1]: steps − ⌊steps·strength⌋."""
    return steps - min(int(steps * strength), steps)


class NoiseSchedule:
    """ᾱ_t of one model and its DDIM timestep arithmetic.

    ``alpha_bar(t)`` is ᾱ_t for t in [0, num_train); t < 0 means the clean end (ᾱ = 1).
    The DDIM step from timestep t lands on ``prev(t) = t − num_train // steps`` (the convention of
    CogVideoX's DDIM scheduler).
    """

    def __init__(self, config: dict | None = None):
        config = dict(COGVIDEOX_5B_I2V_SCHEDULER if config is None else config)
        pred = config.get("prediction_type", "v_prediction")
        if pred != "v_prediction":
            raise InverseDVSError(
                f"The model's scheduler predicts '{pred}', but this pack needs a v-prediction model "
                "(CogVideoX-5B-I2V). Use a CogVideoX-5B-I2V model folder."
            )
        spacing = config.get("timestep_spacing", "trailing")
        if spacing != "trailing":
            raise InverseDVSError(
                f"The model's scheduler uses timestep_spacing '{spacing}'; this pack implements the "
                "'trailing' spacing of CogVideoX-5B-I2V. Use that model's scheduler folder."
            )
        self.config = config
        self.num_train = int(config.get("num_train_timesteps", 1000))
        self.alphas_cumprod = alphas_cumprod(config)
        self.final_alpha_bar = 1.0 if config.get("set_alpha_to_one", True) else float(self.alphas_cumprod[0])

    def alpha_bar(self, t: int) -> float:
        """ᾱ_t as a Python float (t < 0: the clean end, 1.0 by default)."""
        t = int(t)
        return self.final_alpha_bar if t < 0 else float(self.alphas_cumprod[t])

    def grid(self, steps: int, strength: float = 1.0) -> list[int]:
        """Descending sampling timesteps for (steps, strength): 30 steps at 0.98 → 966, 932, …, 32."""
        check_steps_strength(steps, strength)
        return trailing_timesteps(steps, self.num_train)[first_step_index(steps, strength):]

    def prev(self, t: int, steps: int) -> int:
        """Timestep a DDIM step from ``t`` lands on (negative = clean)."""
        return int(t) - self.num_train // int(steps)


def check_steps_strength(steps: int, strength: float) -> None:
    """steps ≥ 1 (integer) and strength in (0, 1], else InverseDVSError."""
    if int(steps) != steps or steps < 1:
        raise InverseDVSError(f"steps = {steps} but at least 1 step is needed; 30 is the reference value.")
    if not (math.isfinite(strength) and 0.0 < strength <= 1.0):
        raise InverseDVSError(
            f"strength = {strength} is out of range; it must be in (0, 1]. 0.98 is the reference value."
        )
    if int(steps * strength) < 1:
        raise InverseDVSError(
            f"steps = {steps} at strength {strength} leaves no step to sample; raise steps or strength."
        )
