"""ComfyUI's own DDPM image models (SD 1.5 / SDXL class) through core's MODEL, guider and samplers.

Imported only inside ComfyUI (or a test that put its folder on ``sys.path``). Every model pass goes
through core's guider (``CFGGuider.sample``), so core's memory manager loads the model and every
LoRA, patch and wrapper upstream applies.

Spaces: a LATENT's ``samples`` are in ComfyUI's latent space (VAEEncode's); ``process_latent_in``
gives the model's space (SD 1.5: × 0.18215). Core's samplers keep x = x0 + σ·ε with
σ = √((1−ᾱ)/ᾱ); the method's maths runs in the DDPM space x/√(1+σ²) = √ᾱ·x0 + √(1−ᾱ)·ε, which is
what core feeds the UNet (``calculate_input``). DDIM's deterministic step is core's Euler step in
σ, so core's ``euler`` sampler on the method's grid is DDIM sampling.
"""

from __future__ import annotations

import comfy.model_management
import comfy.model_sampling
import comfy.samplers
import torch

from ..errors import InverseDVSError
from ..krnr import levels
from .comfy_native import (Progress, StartNoise, prediction_kind, sample_advanced, to_latent_space,  # noqa: F401
                           to_model_space)

# Core's prediction kinds this maths covers (SD 1.5 / SDXL: EPS; SD 2.x 768: V_PREDICTION), on a discrete schedule.
DDPM_KINDS = ("EPS", "V_PREDICTION")


def check_image_model(model, node: str):
    """The MODEL's model_sampling when it is a discrete DDPM schedule with ε or v prediction, else InverseDVSError."""
    sampling = model.get_model_object("model_sampling")
    kind = prediction_kind(sampling)
    if kind not in DDPM_KINDS or not isinstance(sampling, comfy.model_sampling.ModelSamplingDiscrete):
        raise InverseDVSError(
            f"{node}: this node needs a DDPM image model such as SD 1.5 or SDXL (core's Load Checkpoint or Load "
            f"Diffusion Model), but the MODEL predicts {kind}. For Wan use the native video nodes; for "
            "CogVideoX the pack's own Load Video Model."
        )
    return sampling


def num_timesteps(model) -> int:
    """Training timesteps of the model's schedule (1000 for SD 1.5 / SDXL)."""
    return len(model.get_model_object("model_sampling").sigmas)


def grid_sigmas(model, timesteps: list[int]) -> torch.Tensor:
    """σ at each timestep (ascending list starting at 0 = the clean level, σ = 0), float32 [len]."""
    sampling = model.get_model_object("model_sampling")
    sigmas = sampling.sigma(torch.tensor(timesteps[1:], dtype=torch.float32)).cpu().float()
    return torch.cat([torch.zeros(1), sigmas])


def level(sigma: float) -> levels.Level:
    """The DDPM level (√ᾱ, √(1−ᾱ)) of core's σ: ᾱ = 1/(1+σ²)."""
    return levels.ddpm_level(1.0 / (1.0 + float(sigma) ** 2))


def to_core(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """A DDPM-space latent at σ → core's sampler space x·√(1+σ²)."""
    return x * (1.0 + float(sigma) ** 2) ** 0.5


def _predict(model_wrap, x: torch.Tensor, sigma: torch.Tensor, options: dict) -> torch.Tensor:
    """ε̂ the model predicts for the DDPM-space latent ``x`` asked at σ (one pass; the UNet sees ``x`` itself)."""
    x_core = to_core(x, float(sigma))
    denoised = model_wrap(x_core, sigma.reshape(1).expand(x.shape[0]), **options)
    return (x_core - denoised) / sigma


class DDIMInversion(comfy.samplers.Sampler):
    """A SAMPLER that marches its own clean latent up an ascending σ grid (deterministic DDIM inversion).

    Move i takes x from σ_i to σ_{i+1}: the UNet sees x (DDPM space) at the timestep of σ_{i+1}, its ε̂
    and x̂0 = (x − b_i·ε̂)/a_i give x_{i+1} = a_{i+1}·x̂0 + b_{i+1}·ε̂; one pass per step. ``x0``: the
    clean latent in the model's space [B, C, h, w]. After ``sample``, ``result`` is the inverted latent
    (DDPM space) and ``last`` the (x̂0, ε̂) of the final move (equation 1's split).
    """

    def __init__(self, x0: torch.Tensor, progress: Progress):
        self.x0, self.progress, self.last, self.result = x0, progress, None, None

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        options = {"model_options": extra_args["model_options"], "seed": extra_args.get("seed")}
        values = [float(s) for s in sigmas]

        def predict(x, i):
            self.progress.check_cancel()
            eps = _predict(model_wrap, x, sigmas[i + 1], options)
            here = level(values[i])
            self.last = ((x - here.b * eps) / here.a, eps)
            return self.last

        targets = [level(s) for s in values[1:]]
        x0 = self.x0.to(latent_image.device, torch.float32)
        self.result = levels.march(x0, targets, predict, lambda i, x: self.progress.step())
        return self.result


class NoisePrediction(comfy.samplers.Sampler):
    """A SAMPLER of one pass: ``result`` is the model's ε̂ for its own DDPM-space latent ``x`` [B, C, h, w] at
    σ = sigmas[0]."""

    def __init__(self, x: torch.Tensor):
        self.x, self.result = x, None

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        Progress.check_cancel()
        options = {"model_options": extra_args["model_options"], "seed": extra_args.get("seed")}
        self.result = _predict(model_wrap, self.x.to(latent_image.device, torch.float32), sigmas[0], options)
        return self.result


def _run(model, positive, sampler, sigmas: torch.Tensor, shape) -> None:
    """Run one of this module's SAMPLERs through core's guider (one conditioning, no guidance); it keeps its
    result in the model's space (the guider's own return value is process_latent_out of it)."""
    guider = comfy.samplers.CFGGuider(model)
    guider.inner_set_conds({"positive": positive})
    guider.set_cfg(1.0)
    zeros = torch.zeros(shape, dtype=torch.float32)
    guider.sample(zeros, zeros, sampler, sigmas, disable_pbar=True, seed=0)


def invert(model, positive, samples: torch.Tensor, sigmas: torch.Tensor) -> dict:
    """DDIM-invert LATENT samples [B, C, h, w] up ``sigmas`` (ascending from 0) with ``positive``.

    Returns, in the DDPM space of the model (float32, on core's intermediate device): ``inverted`` (the
    latent at the last level), ``x0_hat`` and ``eps_hat`` (the last move's prediction).
    """
    sampler = DDIMInversion(to_model_space(model, samples), Progress(len(sigmas) - 1))
    _run(model, positive, sampler, sigmas, samples.shape)
    device = comfy.model_management.intermediate_device()
    x0_hat, eps_hat = sampler.last
    return {"inverted": sampler.result.to(device), "x0_hat": x0_hat.to(device), "eps_hat": eps_hat.to(device)}


def predict_noise(model, positive, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The model's ε̂ for the DDPM-space latent ``x`` [B, C, h, w] at σ (one pass through core's guider)."""
    sampler = NoisePrediction(x)
    _run(model, positive, sampler, sigma.reshape(1).float(), x.shape)
    return sampler.result.to(comfy.model_management.intermediate_device())


def sample(model, positive, negative, cfg: float, start: torch.Tensor, sigmas: torch.Tensor, seed: int,
           node: str) -> torch.Tensor:
    """DDIM sampling of the DDPM-space ``start`` [B, C, h, w] down ``sigmas`` (descending, ending at 0) with core's
    CFGGuider (``cfg``) and Euler sampler through core's SamplerCustomAdvanced; returns LATENT samples."""
    sigma0 = sigmas[0].float()
    noise = StartNoise(model, to_core(start, float(sigma0)), sigma0, seed, node)
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(positive, negative)
    guider.set_cfg(float(cfg))
    return sample_advanced(noise, guider, sigmas, {"samples": torch.zeros(start.shape)})["samples"]
