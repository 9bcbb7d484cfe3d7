"""Method nodes: KRNRInvert, StochasticLatentModulate, Sample.

Separate nodes so ComfyUI's cache keeps the inversion while k, guidance, preservation or the seed
change. The image condition travels with the LATENT from VAE Encode Video (the first warped frame
encoded alone, as the model was trained), so inversion and sampling see the same one.

A clip longer than the model's window (CogVideoX-5B-I2V: 49 frames = 13 latent frames) is inverted
and sampled window by window (``krnr.windows``): K-RNR Invert chooses the windows (``window_overlap``)
and records them in its output, Sample runs the same ones. Only one window's latent is on the device
at a time; each window after the first is conditioned on the latent frame at its start as the window
before made it, and its overlap is pulled towards that window's result.
"""

from __future__ import annotations

import torch

from ..errors import InverseDVSError
from . import _host, _validate
from ..krnr.noise_init import seeded_generator
from ._choices import Choices
from .model import DEFAULT_SEED, LOW_VRAM_OPTION, MAX_SEED, MODEL_TYPE, check_model, check_model_latent, text_embeds

INVERSION_ENDS = Choices(("sampling_start", "terminal"), renamed={"terminal (reference)": "terminal"})
DEFAULT_INVERSION_END = "terminal"
MODES = ("paper", "reference")
SLM_SCOPES = Choices(("tensor", "channel", "frame"), renamed={"tensor (reference)": "tensor"})
CLEAN_SOURCES = Choices(("posterior_sample", "posterior_mean"),
                        renamed={"posterior sample (reference)": "posterior_sample", "posterior mean": "posterior_mean"})
DEFAULT_STEPS = 30
DEFAULT_STRENGTH = 0.98
DEFAULT_K = 6
MAX_K = 100
DEFAULT_GUIDANCE = 10.0
DEFAULT_PRESERVATION = 1.0
# Video frames consecutive windows share (a multiple of the VAE's 4): 8 = 2 latent frames. On the shipped
# small model (17-frame windows, benchmarks/results/long_clip.json) overlap 8 measured the best windowed
# fidelity at 65 and 97 frames (16.4 / 16.2 dB seen vs 16.2 / 16.1 at 12 and 16.1 / 16.1 at 4) with the
# seam error within 2 % of the error inside windows, and needs 8 windows for 97 frames where 12 needs 11.
DEFAULT_WINDOW_OVERLAP = 8
MAX_WINDOW_OVERLAP = 1000


def clip_windows(latent_frames: int, overlap: int, stride: int, window: int, node: str) -> list[tuple[int, int]]:
    """Windows [start, end) of ``window`` latent frames over ``latent_frames`` latent frames sharing ``overlap``
    video frames (``stride``: the VAE's time compression; both from the model's backend)."""
    from ..krnr.windows import window_spans

    overlap = _validate.check_whole_number(overlap, stride, MAX_WINDOW_OVERLAP, "window_overlap", node)
    if latent_frames > window and (overlap % stride or overlap // stride >= window):
        quarter = max(1, window // 4) * stride
        raise InverseDVSError(
            f"{node}: window_overlap = {overlap} frames; it must be a multiple of {stride} and shorter than the "
            f"model's window of {(window - 1) * stride + 1} frames (e.g. {quarter}, a quarter of the window)."
        )
    return window_spans(latent_frames, window, overlap // stride)


def recorded_windows(noise: dict, latent_frames: int, stride: int, window: int, node: str) -> list[tuple[int, int]]:
    """The windows the inversion recorded with ``noise`` (checked: they cover ``latent_frames`` and none is longer
    than the model's ``window``), else the model's default ones (``clip_windows``)."""
    recorded = (noise.get("inversion") or {}).get("windows")
    if not recorded:
        return clip_windows(latent_frames, DEFAULT_WINDOW_OVERLAP, stride, window, node)
    spans = [tuple(int(v) for v in span) for span in recorded]
    if spans[0][0] != 0 or spans[-1][1] != latent_frames or max(end - start for start, end in spans) > window:
        raise InverseDVSError(
            f"{node}: the noise records windows {spans} that do not fit this clip's {latent_frames} latent "
            "frames or this model's window; connect the noise the inversion made from this clip with this model."
        )
    return spans


def _window_shape(samples: torch.Tensor, spans) -> tuple[int, ...]:
    """Shape [B, C, T_window, h, w] of the largest window the denoiser sees."""
    return (*samples.shape[:2], max(e - s for s, e in spans), *samples.shape[3:])


def _step_callback(progress: _host.Progress):
    """Per-step hook of the DDIM loops: advance the progress bar, stop on ComfyUI's cancel."""

    def callback(i, t, x):
        progress.update(1)
        _host.throw_if_interrupted()

    return callback


def latent_masks(mask: torch.Tensor, samples: torch.Tensor, node: str, temporal: int, spatial: int,
                 frame_count: int | None = None):
    """Pixel hole MASK [F, H, W] → (visibility [T,h,w], unseen, fully_unseen) checked against latent [B,C,T,h,w].

    ``temporal``, ``spatial``: the VAE's compression factors, as its backend reports them (CogVideoX: 4, 8).
    ``frame_count``: the video's real frames when VAE Encode Video padded it (the mask is padded the same
    way); default all (T−1)·temporal + 1.
    """
    from ..krnr.windows import pad_frames
    from ..slm.masks import fully_unseen_cells, latent_visibility, unseen_cells

    mask = _validate.check_mask(mask, "mask", node)
    frames, height, width = mask.shape
    t, h, w = samples.shape[2:]
    padded = (t - 1) * temporal + 1
    expected = (frame_count or padded, h * spatial, w * spatial)
    if (frames, height, width) != expected:
        raise InverseDVSError(
            f"{node}: the mask is {frames} frames of {width}x{height} but the latent belongs to a video of "
            f"{expected[0]} frames of {expected[2]}x{expected[1]}. Use the mask that Forward Warp made together "
            "with the warped video you encoded."
        )
    v = latent_visibility(pad_frames(mask, padded), temporal, spatial)
    return v, unseen_cells(v), fully_unseen_cells(v)


def _clean_x0(clean: dict, generator: torch.Generator, source: str = CLEAN_SOURCES[0]) -> torch.Tensor:
    """x0 for SLM/K-RNR: an already modulated clean latent as is, else a posterior sample (or the mean)."""
    from ..krnr.noise_init import posterior_sample

    if clean.get("slm"):
        return clean["samples"].float()
    mean = clean.get("mean", clean["samples"]).float()
    std = clean.get("std")
    if source == CLEAN_SOURCES[1] or std is None:
        return mean
    return posterior_sample(mean, std.float(), generator)


def _condition(latent: dict, node: str) -> torch.Tensor:
    """The image condition [1, C, 1, h, w] VAE Encode Video stored with the latent."""
    image = latent.get("image")
    if not isinstance(image, torch.Tensor):
        raise InverseDVSError(
            f"{node}: this LATENT carries no image condition; connect the LATENT from VAE Encode Video "
            "(InverseDVS), directly or through Stochastic Latent Modulation."
        )
    return image.float()


def _source(latent: dict) -> str:
    """Fingerprint of the encoded video a LATENT came from (VAE Encode Video's ``source``, else its samples')."""
    return latent.get("source") or _validate.tensor_fingerprint(latent["samples"])


def check_pairing(clean: dict, noise: dict, node: str, model=None) -> None:
    """``noise`` must be K-RNR Invert's inversion of this very ``clean`` latent (and of ``model``'s weights).

    Refuses latents of different shapes, the two inputs swapped, noise inverted from another video
    or with another image condition, and latents or noise made with other weights — mistakes that
    would otherwise give a silently wrong video.
    """
    if noise["samples"].shape != clean["samples"].shape:
        raise InverseDVSError(
            f"{node}: clean latent {tuple(clean['samples'].shape)} and noise {tuple(noise['samples'].shape)} differ; "
            "invert the same latent you connect as 'clean'."
        )
    if "inversion" in clean or ("source" in noise and "inversion" not in noise):
        raise InverseDVSError(
            f"{node}: 'clean' and 'noise' look swapped: connect VAE Encode Video's LATENT (or SLM's clean) as "
            "'clean' and K-RNR Invert's output (or SLM's noise) as 'noise'."
        )
    inv = noise.get("inversion") or {}
    if inv.get("source") is not None and inv["source"] != _source(clean):
        raise InverseDVSError(
            f"{node}: the noise was inverted from another video than the 'clean' latent. Connect the LATENT "
            "that went into K-RNR Invert as 'clean' (invert this video again if it changed)."
        )
    image = clean.get("image")
    if inv.get("image") is not None and isinstance(image, torch.Tensor) \
            and inv["image"] != _validate.tensor_fingerprint(image):
        raise InverseDVSError(
            f"{node}: the noise was inverted with another image condition than this 'clean' latent carries "
            "(VAE Encode Video ran again with another image_condition or seed). Invert this latent again."
        )
    if model is None:
        return
    for name, latent in (("noise", noise), ("clean", clean)):
        made_with = latent.get("weights")
        if made_with is not None and made_with != model.weights_id:
            raise InverseDVSError(
                f"{node}: {name} was made with other weights than the loaded model (another model folder, LoRA or "
                "LoRA strength). Run VAE Encode Video and K-RNR Invert again with this model."
            )


class KRNRInvert:
    """DDIM-invert the warped video's latent with an empty prompt (one transformer pass per step)."""

    DISPLAY_NAME = "K-RNR Invert (InverseDVS)"
    CATEGORY = "InverseDVS/diffusion"
    FUNCTION = "invert"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("noise",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL_TYPE, {"tooltip": "The loaded video model."}),
                "latent": ("LATENT", {"tooltip": "The warped video's latent from VAE Encode Video, which also carries "
                                                 "the image condition (the first frame)."}),
                "steps": ("INT", {"default": DEFAULT_STEPS, "min": 1, "max": 1000,
                                  "tooltip": "Timestep grid size; use the same value in Sample (30 = reference)."}),
                "strength": ("FLOAT", {"default": DEFAULT_STRENGTH, "min": 0.01, "max": 1.0, "step": 0.01,
                                       "tooltip": "Where sampling starts (0.98 with 30 steps = timestep 966); "
                                                  "use the same value in Sample."}),
                "inversion_end": (INVERSION_ENDS, {"default": DEFAULT_INVERSION_END,
                                                         "tooltip": "terminal (the reference's, default): invert every step up "
                                                                    "to 999, as the released code does; with K-RNR it "
                                                                    "reconstructed the input best in our measurements "
                                                                    "(docs/diffusion.md). sampling_start: stop at the "
                                                                    "timestep sampling starts from; better for low "
                                                                    "strengths (< 0.9) with k = 0."}),
            },
            "optional": {
                "window_overlap": ("INT", {"default": DEFAULT_WINDOW_OVERLAP, "min": 4, "max": MAX_WINDOW_OVERLAP,
                                           "step": 4,
                                           "tooltip": "Clips longer than the model's window (49 frames for "
                                                      "CogVideoX-5B-I2V) are inverted and sampled in windows "
                                                      "that share this many frames (a multiple of 4); Sample "
                                                      "uses the same windows. More overlap: smoother seams, "
                                                      "more passes. Unused when the clip fits one window."}),
            },
        }

    def invert(self, model, latent, steps, strength, inversion_end, window_overlap=DEFAULT_WINDOW_OVERLAP):
        from ..krnr import ddim, windows

        node = self.DISPLAY_NAME
        check_model(model, node)
        samples = check_model_latent(latent, model, node)
        if "inversion" in latent:
            raise InverseDVSError(
                f"{node}: this LATENT is already an inverted noise; connect VAE Encode Video's LATENT here."
            )
        steps = _validate.check_steps(steps, node)
        strength = _validate.check_strength(strength, node)
        if inversion_end not in INVERSION_ENDS:
            raise InverseDVSError(f"{node}: inversion_end must be one of {', '.join(INVERSION_ENDS)}.")
        model.check_latent_size(samples.shape[3], samples.shape[4], node)
        spans = clip_windows(samples.shape[2], window_overlap, model.temporal_compression, model.window_latent_frames,
                             node)
        schedule = model.schedule
        start = schedule.grid(steps, strength)[0]
        timesteps = ddim.inversion_timesteps(schedule, steps, strength, inversion_end == INVERSION_ENDS[1])
        empty = model.empty_text_embeds()
        progress = _host.Progress(len(spans) * len(timesteps))
        step = _step_callback(progress)

        def invert_window(i, span, x0, condition, anchor):
            with model.transformer_session(condition, empty) as predict_v:
                return ddim.invert(schedule, x0.to(model.device), timesteps, steps, predict_v, step).cpu()

        try:
            with _validate.out_of_memory_as_error(node, "inverting the video", LOW_VRAM_OPTION,
                                                  **_validate.denoiser_memory(model, _window_shape(samples, spans), 1)), \
                    model.denoiser_held():
                noise = windows.invert_windows(samples.float(), spans, _condition(latent, node), invert_window)
        except BaseException:
            model.release()
            raise
        info = {"steps": steps, "strength": strength, "start": start, "end": timesteps[-1], "source": _source(latent),
                "image": _validate.tensor_fingerprint(_condition(latent, node)), "windows": spans}
        return ({"samples": noise, "model": model.model_id, "weights": model.weights_id, "inversion": info},)


class StochasticLatentModulate:
    """Fill unseen latent cells of the clean latent and of the inverted noise with values drawn from visible cells."""

    DISPLAY_NAME = "Stochastic Latent Modulation (InverseDVS)"
    CATEGORY = "InverseDVS/diffusion"
    FUNCTION = "modulate"
    RETURN_TYPES = ("LATENT", "LATENT", "MASK")
    RETURN_NAMES = ("clean", "noise", "latent_unseen")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "clean": ("LATENT", {"tooltip": "The warped video's latent from VAE Encode."}),
                "noise": ("LATENT", {"tooltip": "The inverted noise from K-RNR Invert."}),
                "mask": ("MASK", {"tooltip": "Hole mask from Forward Warp (1 = not seen), same frames and size as the video."}),
                "seed": ("INT", {"default": DEFAULT_SEED, "min": 0, "max": MAX_SEED,
                                 "tooltip": "Seed of the posterior sample and of the random draws."}),
            },
            "optional": {
                "scope": (SLM_SCOPES, {"default": SLM_SCOPES[0],
                                       "tooltip": "Where fill values are drawn from: tensor = anywhere in the latent "
                                                  "(the reference's), channel = the same channel, frame = the same "
                                                  "channel and latent frame."}),
                "clean_from": (CLEAN_SOURCES, {"default": CLEAN_SOURCES[0],
                                               "tooltip": "Clean latent x0: posterior_sample = a seeded sample of the VAE "
                                                          "posterior (the reference's), posterior_mean = its mean."}),
            },
        }

    def modulate(self, clean, noise, mask, seed, scope=SLM_SCOPES[0], clean_from=CLEAN_SOURCES[0]):
        from ..slm.modulate import stochastic_latent_modulation

        node = self.DISPLAY_NAME
        x_samples = _validate.check_latent(clean, node, name="clean")
        eps = _validate.check_latent(noise, node, channels=x_samples.shape[1], name="noise")
        check_pairing(clean, noise, node)
        if scope not in SLM_SCOPES or clean_from not in CLEAN_SOURCES:
            raise InverseDVSError(f"{node}: scope must be one of {SLM_SCOPES}, clean_from one of {CLEAN_SOURCES}.")
        from ..backend import cogvideox

        _, unseen, fully = latent_masks(mask, x_samples, node, cogvideox.TEMPORAL_COMPRESSION,
                                        cogvideox.SPATIAL_COMPRESSION, frame_count=clean.get("frame_count"))
        generator = seeded_generator(seed)
        x0 = _clean_x0(clean, generator, clean_from)
        x0, eps = stochastic_latent_modulation(x0, eps.float(), unseen, fully, generator, scope)
        clean_out = dict(clean, samples=x0, slm=True)
        noise_out = dict(noise, samples=eps, slm=True)
        return (clean_out, noise_out, unseen.float())


class Sample:
    """K-RNR start latent, then DDIM sampling with per-position guidance: guidance in unseen cells, preservation elsewhere."""

    DISPLAY_NAME = "Sample (InverseDVS)"
    CATEGORY = "InverseDVS/diffusion"
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL_TYPE, {"tooltip": "The loaded video model."}),
                "positive": ("CONDITIONING", {"tooltip": "Prompt embedding from Encode Text."}),
                "negative": ("CONDITIONING", {"tooltip": "Negative prompt embedding from Encode Text."}),
                "clean": ("LATENT", {"tooltip": "The warped video's latent (from VAE Encode, or modulated by SLM)."}),
                "noise": ("LATENT", {"tooltip": "The inverted noise (from K-RNR Invert, or modulated by SLM)."}),
                "mask": ("MASK", {"tooltip": "Hole mask from Forward Warp (1 = not seen)."}),
                "steps": ("INT", {"default": DEFAULT_STEPS, "min": 1, "max": 1000,
                                  "tooltip": "Must equal K-RNR Invert's steps (30 = reference)."}),
                "strength": ("FLOAT", {"default": DEFAULT_STRENGTH, "min": 0.01, "max": 1.0, "step": 0.01,
                                       "tooltip": "Must equal K-RNR Invert's strength (0.98 = start at timestep 966)."}),
                "k": ("INT", {"default": DEFAULT_K, "min": 0, "max": MAX_K,
                              "tooltip": "K-RNR order: how much of the input is re-injected into the start noise "
                                         "(paper mode). 6 equals what the released code effectively uses. "
                                         "Ignored by reference mode, where every k gives order 2 per round."}),
                "mode": (list(MODES), {"default": MODES[0],
                                       "tooltip": "paper: K-RNR closed form with order k. reference: the released code "
                                                  "(adaptive normalisation with the VAE statistics, three SLM + K-RNR rounds)."}),
                "guidance": ("FLOAT", {"default": DEFAULT_GUIDANCE, "min": 0.0, "max": 30.0, "step": 0.5,
                                       "tooltip": "Classifier-free guidance in unseen cells (reference: 10 or 12)."}),
                "preservation": ("FLOAT", {"default": DEFAULT_PRESERVATION, "min": 0.0, "max": 30.0, "step": 0.5,
                                           "tooltip": "Guidance in visible cells (reference 1.0 = prompt only, no push)."}),
                "dynamic_guidance": ("BOOLEAN", {"default": True,
                                                 "tooltip": "The reference's dynamic (cosine) guidance schedule in unseen cells: the weight moves between 1 and guidance + 1 over the steps."}),
                "seed": ("INT", {"default": DEFAULT_SEED, "min": 0, "max": MAX_SEED,
                                 "tooltip": "Seed of the posterior sample and of SLM's draws (reference 42)."}),
            }
        }

    def sample(self, model, positive, negative, clean, noise, mask, steps, strength, k, mode, guidance,
               preservation, dynamic_guidance, seed):
        from ..krnr import ddim, windows
        from ..krnr.noise_init import initial_latent

        node = self.DISPLAY_NAME
        check_model(model, node)
        x_samples = check_model_latent(clean, model, node, "clean")
        eps = check_model_latent(noise, model, node, "noise")
        check_pairing(clean, noise, node, model)
        steps = _validate.check_steps(steps, node)
        strength = _validate.check_strength(strength, node)
        if mode not in MODES:
            raise InverseDVSError(f"{node}: mode must be one of {', '.join(MODES)}.")
        if int(k) < 0:
            raise InverseDVSError(f"{node}: k = {k}; the K-RNR order must be 0 or more.")
        _validate.check_range(guidance, 0.0, 100.0, "guidance", node)
        _validate.check_range(preservation, 0.0, 100.0, "preservation", node)
        model.check_latent_size(x_samples.shape[3], x_samples.shape[4], node)
        schedule = model.schedule
        timesteps = schedule.grid(steps, strength)
        start = timesteps[0]
        inv = noise.get("inversion")
        if inv is not None and (inv.get("steps"), inv.get("start")) != (steps, start):
            raise InverseDVSError(
                f"{node}: the noise was inverted with steps = {inv.get('steps')}, strength = {inv.get('strength')} "
                f"(start timestep {inv.get('start')}), but Sample uses steps = {steps}, strength = {strength} "
                f"(start timestep {start}). Use the same steps and strength in both nodes."
            )
        _, unseen, fully = latent_masks(mask, x_samples, node, *model.compression(),
                                        frame_count=clean.get("frame_count"))
        spans = recorded_windows(noise, x_samples.shape[2], model.temporal_compression, model.window_latent_frames,
                                 node)
        pos = text_embeds(positive, model, node, "positive")
        neg = text_embeds(negative, model, node, "negative")

        generator = seeded_generator(seed)
        x0 = _clean_x0(clean, generator)
        stats = {}
        if mode == "reference":
            if clean.get("mean") is None or clean.get("std") is None:
                raise InverseDVSError(
                    f"{node}: reference mode needs the VAE posterior mean and std; connect the LATENT from "
                    "VAE Encode Video (InverseDVS) (directly or through SLM) as 'clean'."
                )
            stats = {"mean": clean["mean"].float(), "std": clean["std"].float()}
        _, x_start = initial_latent(x0, eps.float(), unseen, fully, schedule.alpha_bar(start), int(k), mode,
                                    generator, slm=not noise.get("slm"), **stats)

        guided = guidance != 1.0 or preservation != 1.0 or dynamic_guidance
        embeds = torch.cat([neg, pos], dim=0) if guided else pos

        progress = _host.Progress(len(spans) * len(timesteps))
        step = _step_callback(progress)

        def sample_window(i, span, x, condition, anchor):
            window_unseen = unseen[span[0]:span[1]]
            with model.transformer_session(condition, embeds) as predict_v:
                def guided_v(x, t):
                    v = predict_v(x, t)
                    if not guided:
                        return v
                    scale = ddim.dynamic_guidance(guidance, t, steps) if dynamic_guidance else guidance
                    return ddim.guided_velocity(v[:1], v[1:], window_unseen, scale, preservation)

                return ddim.sample(schedule, x.to(model.device), timesteps, steps, guided_v, step, anchor).cpu()

        memory = _validate.denoiser_memory(model, _window_shape(x_samples, spans), embeds.shape[0])
        try:
            with _validate.out_of_memory_as_error(node, "sampling", LOW_VRAM_OPTION, **memory), model.denoiser_held():
                result = windows.sample_windows(x_start, spans, _condition(clean, node), sample_window)
        except BaseException:
            model.release()
            raise
        out = {"samples": result, "model": model.model_id}
        if clean.get("frame_count") is not None:
            out["frame_count"] = clean["frame_count"]
        return (out,)


NODES = (KRNRInvert, StochasticLatentModulate, Sample)
