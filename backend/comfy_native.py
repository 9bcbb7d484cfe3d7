"""ComfyUI's own rectified-flow video models (Wan 2.x) through core's MODEL, VAE and sampling pieces.

Imported only inside ComfyUI (or a test that put its folder on ``sys.path``). Every model pass
goes through core's guider (``CFGGuider.sample``), so core loads the model with its memory
manager (``load_models_gpu`` inside ``prepare_sampling``) and every LoRA, model patch, wrapper and
quantised weight the user put upstream applies.

Spaces: a LATENT's ``samples`` are in ComfyUI's latent space (what VAEEncode gives); the method's
maths (inversion, SLM, K-RNR) runs in the model's space, ``process_latent_in`` of it (Wan:
per-channel standardised), where the noise is N(0, I). Flow levels: x = (1−σ)·x0 + σ·ε.
"""

from __future__ import annotations

import comfy.model_management
import comfy.model_sampling
import comfy.samplers
import comfy.utils
import torch

from ..errors import InverseDVSError
from ..krnr import ddim, levels, windows
from ..krnr.krnr import krnr_closed_form
from ..krnr.schedule import check_steps_strength, first_step_index

# The sigma grid of the method (core's Wan templates use it) and the sampler that makes the
# deterministic move between flow levels (Euler == DDIM with η = 0).
SCHEDULER = "simple"
SAMPLER = "euler"

# Wan's VAEs (2.1 and 2.2) compress time 4×: a latent frame holds 4 video frames, the first one 1.
TEMPORAL_COMPRESSION = 4
# The clip length each Wan model was trained and configured to generate at once (its window; longer clips are
# windowed): Wan 2.1 I2V and Wan 2.2 I2V A14B 81 frames (5 s at 16 fps: their configs' frame_num, the length of
# core's Wan templates); Wan 2.2 TI2V-5B 121 frames (5 s at 24 fps: its config's frame_num).
WINDOW_FRAMES = 81
TI2V_WINDOW_FRAMES = 121


def prediction_kind(sampling) -> str:
    """The name core gives a model_sampling's prediction kind (capitals: EPS, V_PREDICTION, EDM, CONST, X0, …)."""
    kinds = [c.__name__ for c in type(sampling).__mro__
             if c.__module__ == comfy.model_sampling.__name__ and c.__name__.isupper()]
    return kinds[0] if kinds else type(sampling).__name__


def check_flow_model(model, node: str):
    """The MODEL's model_sampling when it is rectified flow (core's CONST: Wan, …), else InverseDVSError."""
    sampling = model.get_model_object("model_sampling")
    if not isinstance(sampling, comfy.model_sampling.CONST):
        raise InverseDVSError(
            f"{node}: this node needs a rectified-flow video model such as Wan 2.1 / 2.2 image-to-video "
            f"(loaded with Load Diffusion Model), but the MODEL predicts {prediction_kind(sampling)}. For CogVideoX "
            "use the pack's own Load Video Model and K-RNR Invert / Sample nodes."
        )
    return sampling


def compression(vae, node: str) -> tuple[int, int]:
    """(temporal, spatial) compression of a video VAE, as the VAE reports them (Wan 2.1: 4, 8; Wan 2.2: 4, 16)."""
    temporal = vae.temporal_compression_decode() if getattr(vae, "latent_dim", 2) == 3 else None
    if temporal is None:
        raise InverseDVSError(
            f"{node}: the VAE is not a video VAE (it has no time compression); connect the video model's VAE "
            "(e.g. wan_2.1_vae.safetensors from Load VAE)."
        )
    return int(temporal), int(vae.spacial_compression_encode())


def latent_channels(model) -> int:
    """Channels of the MODEL's latents (Wan 2.1: 16, Wan 2.2 TI2V-5B: 48)."""
    return int(model.get_model_object("latent_format").latent_channels)


def keeps_first_frame(model) -> bool:
    """True for models conditioned on the image as a clean first latent frame rather than a concatenated
    condition: Wan 2.2 TI2V-5B (core's WAN22 with image_to_video), which core samples with a noise mask."""
    import comfy.model_base

    return isinstance(model.model, comfy.model_base.WAN22) and bool(getattr(model.model, "image_to_video", False))


def first_frame_noise_mask(model, samples: torch.Tensor) -> torch.Tensor | None:
    """The noise mask [B, 1, T, h, w] such a model is sampled with (0 = kept: the first latent frame; what core's
    Wan22ImageToVideoLatent gives), or None for models that take the image another way."""
    if not keeps_first_frame(model):
        return None
    mask = torch.ones(samples.shape[0], 1, *samples.shape[2:])
    mask[:, :, :1] = 0.0
    return mask


def window_frames(model) -> int:
    """Video frames of the model's window (``WINDOW_FRAMES``, or ``TI2V_WINDOW_FRAMES`` for Wan 2.2 TI2V-5B)."""
    return TI2V_WINDOW_FRAMES if keeps_first_frame(model) else WINDOW_FRAMES


def window_latent_frames(model) -> int:
    """Latent frames of the model's window (Wan 2.1 / 2.2 A14B: 21; TI2V-5B: 31)."""
    return (window_frames(model) - 1) // TEMPORAL_COMPRESSION + 1


def _fit_frames(t: torch.Tensor, span: windows.Span) -> torch.Tensor:
    """Frames [start, end) of ``t`` [B, C, T, h, w]; where ``t`` ends first, its last frame repeated."""
    start, end = span
    part = t[:, :, start:end]
    if part.shape[2] < end - start:
        last = t[:, :, -1:] if part.shape[2] == 0 else part[:, :, -1:]
        part = torch.cat([part, last.expand(-1, -1, end - start - part.shape[2], -1, -1)], dim=2)
    return part


def window_conditioning(conditioning, span: windows.Span, first_frame: torch.Tensor | None):
    """The CONDITIONING of one window [start, end) of latent frames, from the whole clip's.

    Wan I2V takes its start image as ``concat_latent_image`` [B, C, T, h, w] (LATENT space: what core's
    WanImageToVideo encodes, the image then grey frames) with ``concat_mask`` [B, 1, T, h, w] (0 = known). Both
    are cut to the window (their last frame repeated where they end before it); with ``first_frame``
    [B, C, 1, h, w] (LATENT space: the previous window's result at the window's start) that is the window's
    known first frame. Everything else (prompt, clip-vision embeds) stays. Entries without an image
    condition (Wan 2.2 TI2V-5B takes its image as a kept latent frame, ``window_latent``), and entries already
    of the window's length when ``first_frame`` is None, are passed on as they are.
    """
    out = []
    for embedding, values in conditioning:
        image = values.get("concat_latent_image")
        if image is None or (first_frame is None and tuple(span) == (0, image.shape[2])):
            out.append([embedding, values])
            continue
        image = _fit_frames(image, span).clone()
        mask = values.get("concat_mask")
        if mask is None and first_frame is not None:
            mask = torch.ones(image.shape[0], 1, image.shape[2], *image.shape[3:])
        if mask is not None:
            mask = _fit_frames(mask, span).clone()
        if first_frame is not None:
            frame = first_frame.to(image.device, image.dtype)
            if frame.shape[-2:] != image.shape[-2:]:  # core scales the image condition to the latent's grid too
                frame = comfy.utils.common_upscale(frame, image.shape[-1], image.shape[-2], "bilinear", "center")
            image[:, :, :1] = frame
            mask[:, :, :1] = 0.0
        values = dict(values, concat_latent_image=image)
        if mask is not None:
            values["concat_mask"] = mask
        out.append([embedding, values])
    return out


def window_latent(model, samples: torch.Tensor, first_frame: torch.Tensor | None) -> dict:
    """The sampler's LATENT for one window (``samples``: the window's slice, LATENT space). A model that keeps
    its first latent frame (Wan 2.2 TI2V-5B) gets it from ``first_frame`` (the previous window's result there)
    when given, and the noise mask that keeps it."""
    mask = first_frame_noise_mask(model, samples)
    if mask is None:
        return {"samples": samples}
    if first_frame is not None:
        samples = torch.cat([first_frame.to(samples.dtype), samples[:, :, 1:]], dim=2)
    return {"samples": samples, "noise_mask": mask}


def to_model_space(model, samples: torch.Tensor) -> torch.Tensor:
    """LATENT samples → the model's space, the way core's guider does it (an all-zero latent is left as is)."""
    samples = samples.float()
    if torch.count_nonzero(samples) == 0:
        return samples
    return model.get_model_object("process_latent_in")(samples)


def to_latent_space(model, x: torch.Tensor) -> torch.Tensor:
    """The model's space → LATENT samples (``process_latent_out``)."""
    return model.get_model_object("process_latent_out")(x.float())


def full_grid(model, steps: int) -> torch.Tensor:
    """Descending sigmas of ``steps`` steps, float32 [steps + 1], from σ_max (1 for Wan) to 0."""
    sampling = model.get_model_object("model_sampling")
    return comfy.samplers.calculate_sigmas(sampling, SCHEDULER, int(steps)).cpu().float()


def sampling_sigmas(model, steps: int, strength: float) -> torch.Tensor:
    """The sampling grid for (steps, strength): the full grid less its first steps − ⌊steps·strength⌋ levels."""
    check_steps_strength(steps, strength)
    return full_grid(model, steps)[first_step_index(steps, strength):]


def inversion_sigmas(model, steps: int, strength: float, to_terminal: bool) -> torch.Tensor:
    """Ascending sigmas inversion visits: 0 up to the sampling start, or up to σ_max when ``to_terminal``."""
    grid = full_grid(model, steps) if to_terminal else sampling_sigmas(model, steps, strength)
    return grid.flip(0)


class Progress:
    """ComfyUI's progress bar over ``total`` steps, with its cancel checked at every step."""

    def __init__(self, total: int):
        self.bar = comfy.utils.ProgressBar(int(total))

    @staticmethod
    def check_cancel() -> None:
        comfy.model_management.throw_exception_if_processing_interrupted()

    def step(self) -> None:
        self.bar.update(1)
        self.check_cancel()


class ClipProgress:
    """One progress bar, with core's latent previews, over every sampler run of a windowed clip (``total`` steps);
    ``run(steps)`` gives the callback of the next run of ``steps`` steps."""

    def __init__(self, model, total: int):
        import latent_preview

        self.preview = latent_preview.prepare_callback(model, int(total))
        self.total, self.done = int(total), 0

    def run(self, steps: int):
        offset = self.done
        self.done += int(steps)
        return lambda step, x0, x, _steps: self.preview(offset + step, x0, x, self.total)


class FlowInversion(comfy.samplers.Sampler):
    """A SAMPLER that marches the clean latent up an ascending sigma grid (deterministic flow inversion).

    Move i takes x from σ_i to σ_{i+1} along the velocity the model gives at σ_{i+1}:
    u = (x − D(x, σ_{i+1}))/σ_{i+1}, read at σ_i's level; one model pass per step.
    """

    def __init__(self, progress: Progress):
        self.progress = progress

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        ones = latent_image.new_ones([latent_image.shape[0]])
        options = {"model_options": extra_args["model_options"], "seed": extra_args.get("seed")}
        values = [float(s) for s in sigmas]
        # kept latent cells (a noise mask) stay the clean latent, as core's own samplers keep them
        inpaint = comfy.samplers.KSamplerX0Inpaint(model_wrap, sigmas)
        inpaint.latent_image, inpaint.noise = latent_image, noise

        def predict(x, i):
            self.progress.check_cancel()
            sigma_to = values[i + 1]
            denoised = inpaint(x, sigmas[i + 1] * ones, denoise_mask, **options)
            velocity = (x - denoised) / sigma_to
            return levels.from_velocity(x, velocity, levels.flow_level(values[i]))

        targets = [levels.flow_level(s) for s in values[1:]]
        return levels.march(latent_image, targets, predict, lambda i, x: self.progress.step())


def expert_split(sigmas: torch.Tensor, boundary: float) -> int:
    """Where a two-expert model (Wan 2.2 A14B) hands over on a descending grid: the first index whose sigma is
    below ``boundary``. Steps evaluated at σ ≥ boundary (indices before it) are the high-noise expert's."""
    below = (sigmas < boundary).nonzero()
    return int(below[0]) if below.numel() else len(sigmas) - 1


def invert(model, positive, samples: torch.Tensor, sigmas: torch.Tensor, high_noise_model=None,
           boundary: float = 1.0, progress: Progress | None = None) -> torch.Tensor:
    """Invert LATENT samples [B, C, T, h, w] up ``sigmas`` (ascending from 0) with the I2V conditioning ``positive``.

    No classifier-free guidance (one pass per step); a model that keeps its first latent frame
    (``keeps_first_frame``) keeps it clean here too. With ``high_noise_model`` (Wan 2.2 A14B's other
    expert) every move whose target sigma is ≥ ``boundary`` is predicted by it, as sampling would.
    ``progress``: the bar to advance (a windowed clip shares one); default one of these steps.
    Returns the inverted latent in LATENT space.
    """
    progress = progress or Progress(len(sigmas) - 1)
    segments = [(model, sigmas)]
    if high_noise_model is not None:
        handover = len(sigmas) - 1 - expert_split(sigmas.flip(0), boundary)
        segments = [(model, sigmas[:handover + 1]), (high_noise_model, sigmas[handover:])]
    x = samples.float()
    for expert, part in segments:
        if len(part) < 2:
            continue
        guider = comfy.samplers.CFGGuider(expert)
        guider.inner_set_conds({"positive": positive})
        guider.set_cfg(1.0)
        zeros = torch.zeros_like(x)
        x = guider.sample(zeros, x, FlowInversion(progress), part, denoise_mask=first_frame_noise_mask(expert, x),
                          disable_pbar=True, seed=0).float()
    return x.to(comfy.model_management.intermediate_device())


class StartNoise:
    """A NOISE that makes core's sampler start exactly on a prepared latent (K-RNR's, a fused novel-view start).

    ``start``: the start latent in the model's space (any shape the sampler's LATENT has); ``sigma0``:
    sigmas[0] of the grid it is sampled on (float32, as the sampler sees it). Core's sampler starts from
    noise_scaling(σ_0, n, L) = σ_0·n + c(σ_0)·L (flow: c = 1−σ_0; DDPM models: c = 1 below σ_max), so for
    the LATENT L it is given, n solves that for ``start`` in float64; the sampler's float32 arithmetic then
    lands within one or two float32 steps of ``start`` (fl(σ_0·n) + fl(c·L) does not reach every float32,
    so no n can be exact everywhere). ``node`` names the node in errors.
    """

    def __init__(self, model, start: torch.Tensor, sigma0: torch.Tensor, seed: int, node: str):
        self.model = model
        self.start = start.float().cpu()
        self.sigma0 = sigma0.float().cpu().reshape(())
        self.seed = int(seed)
        self.node = node

    def generate_noise(self, input_latent: dict) -> torch.Tensor:
        latent = input_latent["samples"]
        if tuple(latent.shape) != tuple(self.start.shape):
            raise InverseDVSError(
                f"{self.node}: the sampler's LATENT is {tuple(latent.shape)} but the start latent is "
                f"{tuple(self.start.shape)}; give the sampler a LATENT of the same size (the one the start was "
                "made from)."
            )
        latent = to_model_space(self.model, latent).cpu()
        sampling = self.model.get_model_object("model_sampling")
        keep = sampling.noise_scaling(self.sigma0, torch.zeros_like(latent), latent)
        return ((self.start.double() - keep.double()) / self.sigma0.double()).float()


def krnr_start(x0: torch.Tensor, eps: torch.Tensor, sigma0: float, k: int) -> torch.Tensor:
    """ε⁽ᵏ⁾ at flow level σ_0 (x0, eps in the model's space, [B, C, T, h, w])."""
    return krnr_closed_form(x0.float(), eps.float(), levels.flow_level(float(sigma0)), int(k))


class PositionGuider(comfy.samplers.CFGGuider):
    """A GUIDER with per-position classifier-free guidance on the latent grid.

    Denoised = uncond + w·(cond − uncond), w = ``guidance`` (or its dynamic schedule) where ``unseen``
    ([T, h, w] bool) and ``preservation`` elsewhere; mixing denoised predictions with weights that sum to
    one is the same as mixing flow velocities. With every weight 1 only the positive pass runs.
    """

    anchor = None  # a window's pull towards the previous window's result (``set_anchor``)

    def set_guidance(self, unseen: torch.Tensor, guidance: float, preservation: float, dynamic: bool,
                     steps: int | None = None) -> None:
        """``steps``: the whole grid's step count for the dynamic schedule (None: the sampler's sigmas, which
        is the whole grid unless it was split, e.g. between two experts)."""
        self.unseen = unseen.bool()
        self.guidance, self.preservation, self.dynamic = float(guidance), float(preservation), bool(dynamic)
        self.steps = int(steps) if steps else None

    def set_anchor(self, anchor: windows.Anchor | None) -> None:
        """Pull every denoised prediction to ``anchor`` (its target in LATENT space, as ``windows.anchor_for``
        makes it from the clip's result so far): the overlap blend of a window after the first."""
        self.anchor = None if anchor is None else windows.Anchor(
            to_model_space(self.model_patcher, anchor.target), anchor.weight)

    def uniform(self) -> bool:
        return not self.dynamic and self.guidance == 1.0 and self.preservation == 1.0

    def unseen_weight(self, sigma: torch.Tensor, model_options: dict) -> float:
        if not self.dynamic:
            return self.guidance
        sampling = self.model_patcher.get_model_object("model_sampling")
        grid = model_options.get("transformer_options", {}).get("sample_sigmas")
        steps = self.steps or (len(grid) - 1 if grid is not None else 1)
        return ddim.dynamic_guidance(self.guidance, float(sampling.timestep(sigma.reshape(-1)[0])), steps)

    def predict_noise(self, x, timestep, model_options={}, seed=None):
        comfy.model_management.throw_exception_if_processing_interrupted()
        if tuple(x.shape[2:]) != tuple(self.unseen.shape):
            raise InverseDVSError(
                f"InverseDVS guider: the latent grid is {tuple(x.shape[2:])} but the unseen mask is "
                f"{tuple(self.unseen.shape)}; use the latent_unseen mask made for the same video."
            )
        positive, negative = self.conds.get("positive"), self.conds.get("negative")
        if self.uniform() and not model_options.get("disable_cfg1_optimization", False):
            negative = None
        cond, uncond = comfy.samplers.calc_cond_batch(self.inner_model, [positive, negative], x, timestep,
                                                      model_options)
        if negative is None:
            weight = 1.0
        else:
            unseen = self.unseen.to(x.device)
            weight = torch.where(unseen, self.unseen_weight(timestep, model_options), self.preservation)
            weight = weight.to(x.dtype)[None, None]
        denoised = comfy.samplers.cfg_function(self.inner_model, cond, uncond, weight, x, timestep,
                                               model_options=model_options, cond=positive, uncond=negative)
        return windows.anchored(denoised, self.anchor)


def make_guider(model, positive, negative, unseen: torch.Tensor, guidance: float, preservation: float,
                dynamic: bool, steps: int | None = None) -> PositionGuider:
    guider = PositionGuider(model)
    guider.set_conds(positive, negative)
    guider.set_guidance(unseen, guidance, preservation, dynamic, steps)
    return guider


def sampler():
    """Core's Euler sampler: the deterministic move between flow levels."""
    return comfy.samplers.sampler_object(SAMPLER)


def sample_advanced(noise, guider, sigmas: torch.Tensor, latent: dict, progress: ClipProgress | None = None) -> dict:
    """What core's SamplerCustomAdvanced does with these pieces (its own node, so both give the same bits).

    With ``progress`` (a windowed clip), the same sampler call with that bar's callback in place of the node's
    own bar of this run's steps."""
    from comfy_extras.nodes_custom_sampler import SamplerCustomAdvanced

    if progress is None:
        return SamplerCustomAdvanced().sample(noise, guider, sampler(), sigmas, latent)[0]
    import comfy.sample

    latent = dict(latent, samples=comfy.sample.fix_empty_latent_channels(guider.model_patcher, latent["samples"]))
    samples = guider.sample(noise.generate_noise(latent), latent["samples"], sampler(), sigmas,
                            denoise_mask=latent.get("noise_mask"), callback=progress.run(len(sigmas) - 1),
                            disable_pbar=True, seed=noise.seed)
    return dict(latent, samples=samples.to(comfy.model_management.intermediate_device()))


def sample_experts(noise, guider, sigmas: torch.Tensor, latent: dict, high_noise_guider=None,
                   boundary: float = 1.0, progress: ClipProgress | None = None) -> dict:
    """``sample_advanced``, with Wan 2.2 A14B's high-noise expert (``high_noise_guider``) on the steps evaluated
    at σ ≥ ``boundary`` and ``guider`` (the low-noise expert) on the rest: what core's two-sampler template does,
    the second sampler continuing from the first's latent with no noise added."""
    from comfy_extras.nodes_custom_sampler import Noise_EmptyNoise

    split = expert_split(sigmas, boundary) if high_noise_guider is not None else 0
    if split == 0:
        return sample_advanced(noise, guider, sigmas, latent, progress)
    if split == len(sigmas) - 1:
        return sample_advanced(noise, high_noise_guider, sigmas, latent, progress)
    high = sample_advanced(noise, high_noise_guider, sigmas[:split + 1], latent, progress)
    return sample_advanced(Noise_EmptyNoise(), guider, sigmas[split:], high, progress)
