"""ComfyUI's own SVD (img2vid) and SV3D models, jointly sampling Diffusion²'s V × F matrix through core's guiders.

Imported only inside ComfyUI (or a test that put its folder on ``sys.path``). The maths is
``krnr.composition``; this module gives it the two denoisers:

* a row (view v's F frames) is one call of core's CFGGuider on the video MODEL, batch F, with the conditioning
  core's SVD_img2vid_Conditioning gives for the reference orbit's image v;
* a column (time f's V views) is one call of core's CFGGuider on the SV3D MODEL, batch V, with the conditioning
  SV3D_Conditioning gives for the reference video's frame f (its azimuths and elevations).

So one step costs V + F guider calls (each one UNet pass of the batch, two with classifier-free guidance, which core
batches as it always does). Each guider is opened the way core samples (``CFGGuider.sample``: model patches,
wrappers, hooks, ``prepare_sampling`` loading the model with core's memory manager), the two nested so both stay
prepared; each row's / column's conditioning is made ready with core's ``process_conds``, as the guider does for its
own. Before every batch of rows or columns core is asked again to load that model (``load_models_gpu`` with core's
memory estimate), so when the two models do not fit together core swaps them rather than failing.

Space: core's k-diffusion space (x = x0 + σ·n, EDM σ from 0.002 to 700 for SVD and SV3D). The start is core's
noise scaling of the seed's noise; the result goes out through ``process_latent_out`` as LATENT samples.
"""

from __future__ import annotations

import comfy.model_base
import comfy.model_management
import comfy.model_sampling
import comfy.sample
import comfy.sampler_helpers
import comfy.samplers
import torch

from ..errors import InverseDVSError
from ..krnr import composition
from .comfy_native import Progress, prediction_kind

# The σ grid: core's Karras schedule (ρ = 7), the EDM discretisation the SVD / SV3D reference samplers use.
SCHEDULER = "karras"


def _multiview_classes():
    return comfy.model_base.SV3D_u, comfy.model_base.SV3D_p


def _kind(model) -> str:
    return type(model.model).__name__


def check_models(video_model, multiview_model, node: str) -> None:
    """The video MODEL is core's SVD img2vid, the multi-view MODEL is SV3D (u or p), both EDM v-prediction on the
    same σ range; else InverseDVSError naming the input."""
    video = getattr(video_model, "model", None)
    if not isinstance(video, comfy.model_base.SVD_img2vid) or isinstance(video, _multiview_classes()):
        raise InverseDVSError(
            f"{node}: video_model must be Stable Video Diffusion img2vid (svd / svd_xt from core's Image Only "
            f"Checkpoint Loader), but it is {_kind(video_model) if video is not None else type(video_model).__name__}."
        )
    multiview = getattr(multiview_model, "model", None)
    if not isinstance(multiview, _multiview_classes()):
        raise InverseDVSError(
            f"{node}: multiview_model must be SV3D (sv3d_u or sv3d_p from core's Image Only Checkpoint Loader), but it "
            f"is {_kind(multiview_model) if multiview is not None else type(multiview_model).__name__}."
        )
    ranges = []
    for name, model in (("video_model", video_model), ("multiview_model", multiview_model)):
        sampling = model.get_model_object("model_sampling")
        if not isinstance(sampling, comfy.model_sampling.ModelSamplingContinuousEDM) or \
                not isinstance(sampling, comfy.model_sampling.V_PREDICTION):
            raise InverseDVSError(
                f"{node}: {name} predicts {prediction_kind(sampling)} on {type(sampling).__name__}; the matrix needs "
                "both models' EDM v-prediction schedule (remove any Model Sampling node that changes it)."
            )
        ranges.append((round(float(sampling.sigma_min), 6), round(float(sampling.sigma_max), 4)))
    if ranges[0] != ranges[1]:
        raise InverseDVSError(
            f"{node}: the models' noise ranges differ (video σ {ranges[0][0]}-{ranges[0][1]}, multi-view σ "
            f"{ranges[1][0]}-{ranges[1][1]}); both must denoise the same noise levels (use the models unpatched)."
        )


def latent_channels(model) -> int:
    return int(model.get_model_object("latent_format").latent_channels)


def sigmas(model, steps: int) -> torch.Tensor:
    """Descending σ of ``steps`` steps on the model's schedule (core's Karras grid), float32 [steps + 1], last 0."""
    return comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), SCHEDULER, int(steps)).cpu().float()


def matrix_noise(views: int, frames: int, shape: tuple, seed: int) -> torch.Tensor:
    """The start noise of the matrix [V, F, C, h, w]: core's ``prepare_noise`` for a batch of V·F latents, so view
    v's frames are items v·F … v·F + F − 1 of what core draws for that batch."""
    latent = torch.zeros(views * frames, *shape)
    return composition.from_batch(comfy.sample.prepare_noise(latent, int(seed)), views)


class _Inside(comfy.samplers.Sampler):
    """A SAMPLER that runs ``body(model_wrap, sigmas, extra_args)`` where core's guider runs a sampler, so the guider's
    model, patches and conditioning are prepared while it runs; what it returns is kept in ``result``."""

    def __init__(self, body):
        self.body, self.result = body, None

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        self.result = self.body(model_wrap, sigmas, extra_args)
        return latent_image


def _open(guider, shape: tuple, sigmas: torch.Tensor, seed: int, body):
    """Run ``body`` inside ``guider.sample`` for a latent of ``shape``; returns what ``body`` returned."""
    inside = _Inside(body)
    zeros = torch.zeros(shape)
    guider.sample(zeros, zeros, inside, sigmas, disable_pbar=True, seed=seed)
    return inside.result


class _Lines:
    """The rows (or columns) of the matrix as one model's guider calls, each with its own prepared conditioning."""

    def __init__(self, guider, conds: list[dict], axis: int, extra_args: dict, progress: Progress):
        self.guider, self.axis, self.progress = guider, axis, progress
        self.options = {"model_options": extra_args["model_options"], "seed": extra_args.get("seed")}
        self.conds = conds
        self.model = guider.model_patcher

    def prepare(self, device, shape: tuple, seed: int) -> None:
        """Each line's conditioning as core's guider prepares its own (``process_conds`` for a latent of ``shape``).

        The lines' conditionings come from core's SVD / SV3D conditioning nodes, which set no hooks, so the guider's
        hook preprocessing has nothing to do for them."""
        model = self.guider.inner_model
        zeros = torch.zeros(shape, device=device)
        ready = []
        for i, cond in enumerate(self.conds):
            copies = {k: [c.copy() for c in comfy.sampler_helpers.convert_cond(v)] for k, v in cond.items()}
            if i == 0:  # what prepare_sampling estimates from (the converted conditioning), for every line's call
                self.memory = comfy.sampler_helpers.estimate_memory(self.model, shape, copies)
            ready.append(comfy.samplers.process_conds(model, zeros, copies, device, zeros, None, seed))
        self.conds = ready

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        required, minimum = self.memory
        comfy.model_management.load_models_gpu([self.model], memory_required=required,
                                               minimum_memory_required=minimum)
        out = []
        for i, cond in enumerate(self.conds):
            self.progress.check_cancel()
            line = x[i] if self.axis == 0 else x[:, i].contiguous()
            self.guider.conds = cond
            ones = line.new_ones([line.shape[0]])
            out.append(self.guider(line, sigma * ones, **self.options))
            self.progress.step()
        return torch.stack(out, dim=self.axis)


def sample_matrix(video_model, video_conds: list[dict], video_cfg: float, multiview_model, multiview_conds: list[dict],
                  multiview_cfg: float, latent_shape: tuple, steps: int, s: float, vrs_steps: int, seed: int,
                  noise: torch.Tensor | None = None, first_steps: int | None = None) -> torch.Tensor:
    """Diffusion²'s joint sampling; returns the matrix as LATENT samples [V·F, C, h, w], view-major.

    ``video_conds[v]`` / ``multiview_conds[f]``: {"positive": …, "negative": …} CONDITIONING of row v / column f
    (V rows, F columns). ``latent_shape``: (C, h, w). ``noise``: the start noise [V, F, C, h, w] (default: the
    seed's, ``matrix_noise``). Rollback noise is drawn from a generator seeded with seed + 1. ``first_steps``:
    stop after that many steps of the ``steps`` grid (a benchmark's partial run; the result is then still noisy).
    """
    views, frames = len(video_conds), len(multiview_conds)
    grid = sigmas(video_model, steps)
    if first_steps is not None:
        grid = grid[:int(first_steps) + 1]
        steps = len(grid) - 1
    if noise is None:
        noise = matrix_noise(views, frames, latent_shape, seed)
    plan = composition.evaluation_plan(steps, vrs_steps)
    use_rows, use_columns = composition.weights_used(s)
    progress = Progress(len(plan) * (views * use_rows + frames * use_columns))
    rollback = torch.Generator().manual_seed((int(seed) + 1) % 2**64)
    row_shape, column_shape = (frames, *latent_shape), (views, *latent_shape)

    def guider(model, conds, cfg):
        g = comfy.samplers.CFGGuider(model)
        g.set_conds(conds[0]["positive"], conds[0]["negative"])
        g.set_cfg(float(cfg))
        return g

    video_guider = guider(video_model, video_conds, video_cfg)
    multiview_guider = guider(multiview_model, multiview_conds, multiview_cfg)

    def with_video(video_wrap, grid_dev, video_args):
        def with_multiview(multiview_wrap, _grid, multiview_args):
            device = grid_dev.device
            rows = _Lines(video_guider, video_conds, 0, video_args, progress)
            columns = _Lines(multiview_guider, multiview_conds, 1, multiview_args, progress)
            rows.prepare(device, row_shape, seed)
            columns.prepare(device, column_shape, seed)
            sampling = video_wrap.inner_model.model_sampling
            start = noise.to(device, torch.float32)
            start = sampling.noise_scaling(grid_dev[0], composition.to_batch(start),
                                           torch.zeros_like(composition.to_batch(start)),
                                           _Inside(None).max_denoise(video_wrap, grid_dev))
            x = composition.sample(composition.from_batch(start, views), grid_dev, rows, columns, s, vrs_steps,
                                   lambda shape: torch.randn(shape, generator=rollback))
            x = sampling.inverse_noise_scaling(grid_dev[-1], composition.to_batch(x))
            return video_wrap.inner_model.process_latent_out(x.to(torch.float32))

        return _open(multiview_guider, column_shape, grid, seed, with_multiview)

    out = _open(video_guider, row_shape, grid, seed, with_video)
    return out.to(comfy.model_management.intermediate_device())


def decode_views(vae, samples: torch.Tensor, views: int) -> torch.Tensor:
    """Core's VAE decode of each view's video (F latents at a time, as core decodes an SVD clip) → IMAGE [V·F, H, W, 3]
    in the matrix's order."""
    matrix = composition.from_batch(samples, views)
    images = []
    for v in range(views):
        Progress.check_cancel()
        images.append(vae.decode(matrix[v]))
    return torch.cat([im.reshape(-1, *im.shape[-3:]) for im in images], dim=0)
