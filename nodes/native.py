"""The method on ComfyUI's own flow video models (Wan 2.x image-to-video), in core's vocabulary.

Core's loaders give MODEL / VAE / CLIP, core's VAEEncode the warped video's LATENT, core's
WanImageToVideo the image-conditioned CONDITIONING. These nodes add what core lacks: an inversion,
SLM on LATENTs, and a NOISE (the K-RNR start), a GUIDER (per-position guidance) and SIGMAS for
core's SamplerCustomAdvanced or any sampler that takes them; Sample (Wan) wires all of it.
Nothing here imports ComfyUI at load time; the backend does, when a node runs.

Clips longer than the model's window (backend: 81 frames for Wan 2.1 / 2.2 A14B, 121 for TI2V-5B) are
inverted and sampled window by window (``krnr.windows``, as the CogVideoX nodes do): Invert chooses the
windows (``window_overlap``) and records them, Sample runs the same ones, each window after the first
conditioned on the previous window's result at its start (Wan I2V: the window's concat_latent_image /
concat_mask; TI2V-5B: its kept first latent frame) and pulled towards that result across the overlap.
Core's sampler sees one window at a time, so the five-node wiring (K-RNR Noise, Guider into
SamplerCustomAdvanced) refuses clips longer than one window. Core's VAE Encode drops the frames past
the last 4k+1; Pad Frames pads the warped video and its mask so none is lost.
"""

from __future__ import annotations

import torch

from ..errors import InverseDVSError
from ..krnr.noise_init import seeded_generator
from . import _validate
from .diffusion import (DEFAULT_GUIDANCE, DEFAULT_K, DEFAULT_PRESERVATION, DEFAULT_SEED, DEFAULT_STRENGTH,
                        DEFAULT_WINDOW_OVERLAP, INVERSION_ENDS, MAX_K, MAX_SEED, MAX_WINDOW_OVERLAP, SLM_SCOPES,
                        check_pairing, clip_windows, latent_masks, recorded_windows)

CATEGORY = "InverseDVS/native"
# Inversion of the native path: to the sampling start is what reconstructs with k = 0.
DEFAULT_NATIVE_INVERSION_END = INVERSION_ENDS[0]
# Core's Wan 2.1 / 2.2 image-to-video templates sample 20 steps; at 20 the method costs 1.37x plain core
# generation of the same clip (benchmarks/results/native_wan.json).
DEFAULT_NATIVE_STEPS = 20
# Wan 2.2 I2V A14B hands over from its high-noise to its low-noise expert below σ = 0.9 (its own config).
DEFAULT_EXPERT_BOUNDARY = 0.9
# A start sigma the noise was inverted for and the grid a sampler is given must agree this closely.
SIGMA_MATCH = 1e-6

_MODEL = ("MODEL", {"tooltip": "The video model from core's Load Diffusion Model (Wan 2.1 / 2.2 image-to-video), "
                               "with any LoRA or patch nodes in between."})
_VAE = ("VAE", {"tooltip": "The model's VAE (core's Load VAE); its compression sets the latent grid of the mask."})
_MASK = ("MASK", {"tooltip": "Hole mask from Forward Warp (1 = not seen), same frames and size as the warped video."})
_CLEAN = ("LATENT", {"tooltip": "The warped video encoded by core's VAE Encode."})
_INVERTED = ("LATENT", {"tooltip": "The inverted noise from Invert (InverseDVS, native)."})
_STEPS = ("INT", {"default": DEFAULT_NATIVE_STEPS, "min": 1, "max": 1000,
                  "tooltip": "Steps of the sigma grid; use the same value for inversion and sampling."})
_STRENGTH = ("FLOAT", {"default": DEFAULT_STRENGTH, "min": 0.01, "max": 1.0, "step": 0.01,
                       "tooltip": "Where sampling starts on the grid (1.0 = pure noise; 0.98 skips the first "
                                  "step); use the same value for inversion and sampling."})
_SEED = ("INT", {"default": DEFAULT_SEED, "min": 0, "max": MAX_SEED,
                 "tooltip": "Seed of SLM's random draws (and of stochastic samplers)."})
_SCOPE = (SLM_SCOPES, {"default": SLM_SCOPES[0],
                       "tooltip": "Where SLM draws fill values from: tensor = anywhere in the latent (the "
                                  "reference's), channel = the same channel, frame = the same channel and latent "
                                  "frame."})
_K = ("INT", {"default": DEFAULT_K, "min": 0, "max": MAX_K,
              "tooltip": "K-RNR order: the start is (1−σᵏ)·x0 + σᵏ·ε at the start sigma σ; 0 starts from the "
                         "inverted noise itself."})
_GUIDANCE = ("FLOAT", {"default": DEFAULT_GUIDANCE, "min": 0.0, "max": 30.0, "step": 0.5,
                       "tooltip": "Classifier-free guidance in unseen latent cells."})
_PRESERVATION = ("FLOAT", {"default": DEFAULT_PRESERVATION, "min": 0.0, "max": 30.0, "step": 0.5,
                           "tooltip": "Guidance in visible cells (1.0 = the prompt only, no push)."})
_HIGH_NOISE = ("MODEL", {"tooltip": "Wan 2.2 A14B only: the high-noise expert (its own Load Diffusion Model); "
                                    "'model' is then the low-noise expert. Leave unconnected for one-model Wan."})
_BOUNDARY = ("FLOAT", {"default": DEFAULT_EXPERT_BOUNDARY, "min": 0.0, "max": 1.0, "step": 0.005,
                       "tooltip": "With two experts: steps at σ ≥ this use the high-noise expert (Wan 2.2 I2V A14B: "
                                  "0.9, T2V A14B: 0.875); inversion and sampling switch at the same σ."})
_WINDOW_OVERLAP = ("INT", {"default": DEFAULT_WINDOW_OVERLAP, "min": 4, "max": MAX_WINDOW_OVERLAP, "step": 4,
                           "tooltip": "Clips longer than the model's window (81 frames for Wan 2.1 / 2.2 A14B, 121 for "
                                      "Wan 2.2 TI2V-5B) are inverted and sampled in windows that share this many "
                                      "frames (a multiple of 4); Sample (native) uses the same windows. More overlap: "
                                      "smoother seams, more passes. Unused when the clip fits one window."})
_DYNAMIC = ("BOOLEAN", {"default": True,
                        "tooltip": "The reference's dynamic (cosine) guidance schedule in unseen cells, on the "
                                   "model's timestep (1000·σ for Wan)."})


def _backend():
    from ..backend import comfy_native

    return comfy_native


def _check_model_latent(model, latent, node: str, name: str) -> torch.Tensor:
    """A video LATENT whose channels are the MODEL's latent channels; returns its samples."""
    samples = _validate.check_latent(latent, node, name=name)
    channels = _backend().latent_channels(model)
    if samples.shape[1] != channels:
        raise InverseDVSError(
            f"{node}: {name} has {samples.shape[1]} channels but this model's latents have {channels}; encode the "
            "warped video with this model's VAE (core's VAE Encode)."
        )
    return samples


def _windows(model, latent_frames: int, overlap: int, node: str) -> list[tuple[int, int]]:
    """The model's windows [start, end) over ``latent_frames`` latent frames sharing ``overlap`` video frames."""
    native = _backend()
    return clip_windows(latent_frames, overlap, native.TEMPORAL_COMPRESSION, native.window_latent_frames(model), node)


def _check_one_window(model, latent_frames: int, node: str) -> None:
    """Core's sampler runs one window: refuse a clip longer than the model's window, naming what runs it."""
    native = _backend()
    window = native.window_latent_frames(model)
    if latent_frames > window:
        frames = (latent_frames - 1) * native.TEMPORAL_COMPRESSION + 1
        raise InverseDVSError(
            f"{node}: the clip is {frames} frames ({latent_frames} latent frames), longer than this model's window "
            f"of {native.window_frames(model)} frames, and a sampler runs one window at once. Use Sample "
            "(InverseDVS, native), which samples a long clip window by window as Invert (native) inverted it, or "
            f"cut the video to at most {native.window_frames(model)} frames (core's ImageFromBatch)."
        )


def _clean_and_noise(model, clean, noise, node: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The samples of the clean latent and the inverted noise: the model's channels, paired as
    ``diffusion.check_pairing`` requires (one shape, not swapped)."""
    x_samples = _check_model_latent(model, clean, node, "clean")
    eps_samples = _check_model_latent(model, noise, node, "noise")
    check_pairing(clean, noise, node)
    return x_samples, eps_samples


class NativePadFrames:
    """Pad the warped video and its hole mask to the VAE's 4k+1 frames (the last frame repeated) for core's VAE Encode,
    which drops the frames past the last 4k+1; frame_count (the real frames) drops the padding again after decoding."""

    DISPLAY_NAME = "Pad Frames (InverseDVS, native)"
    CATEGORY = CATEGORY
    FUNCTION = "pad"
    RETURN_TYPES = ("IMAGE", "MASK", "INT")
    RETURN_NAMES = ("images", "mask", "frame_count")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The warped video from Forward Warp, any number of frames."}),
                "mask": ("MASK", {"tooltip": "Its hole mask from Forward Warp, same frames and size."}),
                "vae": ("VAE", {"tooltip": "The model's VAE (core's Load VAE): its time compression sets the padding "
                                           "(Wan: to 4k+1 frames)."}),
            }
        }

    def pad(self, images, mask, vae):
        from ..krnr.windows import pad_frames, padded_count

        node = self.DISPLAY_NAME
        images = _validate.check_image(images, "images", node)
        mask = _validate.check_mask(mask, "mask", node)
        frames = _validate.check_frame_counts(node, images=images.shape[0], mask=mask.shape[0])
        _validate.check_same_size(node, images=tuple(images.shape[1:3]), mask=tuple(mask.shape[1:3]))
        temporal, _ = _backend().compression(vae, node)
        count = padded_count(frames, temporal)
        return (pad_frames(images, count), pad_frames(mask, count), frames)


class NativeInvert:
    """Flow inversion of the warped video's LATENT with the image condition (one model pass per step)."""

    DISPLAY_NAME = "Invert (InverseDVS, native)"
    CATEGORY = CATEGORY
    FUNCTION = "invert"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("noise",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": _MODEL,
                "positive": ("CONDITIONING", {"tooltip": "WanImageToVideo's positive output, made from an empty "
                                                         "prompt and the first warped frame as start image (its length "
                                                         "the clip's, or 81 for a longer clip: each window gets its "
                                                         "own image condition)."}),
                "latent": _CLEAN,
                "steps": _STEPS,
                "strength": _STRENGTH,
                "inversion_end": (INVERSION_ENDS, {
                    "default": DEFAULT_NATIVE_INVERSION_END,
                    "tooltip": "sampling_start (default): invert up to the sigma sampling starts from (with k = 0 "
                               "sampling then reconstructs the input). terminal: up to σ = 1, where the result is "
                               "the model's noise and forgets the input (K-RNR re-injects it)."}),
            },
            "optional": {"model_high_noise": _HIGH_NOISE, "boundary": _BOUNDARY, "window_overlap": _WINDOW_OVERLAP},
        }

    def invert(self, model, positive, latent, steps, strength, inversion_end, model_high_noise=None,
               boundary=DEFAULT_EXPERT_BOUNDARY, window_overlap=DEFAULT_WINDOW_OVERLAP):
        from ..krnr import windows

        node = self.DISPLAY_NAME
        native = _backend()
        native.check_flow_model(model, node)
        samples = _check_model_latent(model, latent, node, "latent")
        steps = _validate.check_steps(steps, node)
        strength = _validate.check_strength(strength, node)
        if inversion_end not in INVERSION_ENDS:
            raise InverseDVSError(f"{node}: inversion_end must be one of {', '.join(INVERSION_ENDS)}.")
        boundary = _check_experts(model, model_high_noise, boundary, node)
        spans = _windows(model, samples.shape[2], window_overlap, node)
        sigmas = native.inversion_sigmas(model, steps, strength, inversion_end == INVERSION_ENDS[1])
        progress = native.Progress(len(spans) * (len(sigmas) - 1))

        def invert_window(i, span, x0, condition, anchor):
            conditioning = native.window_conditioning(positive, span, condition)
            return native.invert(model, conditioning, x0, sigmas, model_high_noise, boundary, progress)

        noise = windows.invert_windows(samples.float(), spans, None, invert_window)
        start = float(native.sampling_sigmas(model, steps, strength)[0])
        info = {"steps": steps, "strength": strength, "start_sigma": start, "end_sigma": float(sigmas[-1]),
                "windows": spans, "expert_boundary": None if model_high_noise is None else boundary}
        return ({"samples": noise, "inversion": info},)


def _check_experts(model, high_noise_model, boundary, node: str) -> float:
    """The boundary, checked, when a high-noise expert is connected (it must be a flow model with the low-noise
    expert's latents)."""
    if high_noise_model is None:
        return float(boundary)
    native = _backend()
    native.check_flow_model(high_noise_model, node)
    if native.latent_channels(high_noise_model) != native.latent_channels(model):
        raise InverseDVSError(
            f"{node}: model_high_noise has {native.latent_channels(high_noise_model)}-channel latents but model has "
            f"{native.latent_channels(model)}; connect the two experts of one Wan 2.2 A14B (high noise and low noise)."
        )
    return float(_validate.check_range(boundary, 0.0, 1.0, "boundary", node))


def _check_same_experts(noise: dict, boundary: float | None, node: str) -> None:
    """Refuse sampling with other experts than the inversion used (one model, or two split at ``boundary``): the
    inverted noise is only the right start for the models that made it."""
    inv = noise.get("inversion") or {}
    if "expert_boundary" not in inv:  # not made by Invert (native)
        return
    recorded = inv["expert_boundary"]

    def told(b):
        return "one model" if b is None else f"two experts split at boundary {b:g}"

    if (recorded is None) != (boundary is None) or (boundary is not None and abs(recorded - boundary) > 1e-6):
        raise InverseDVSError(
            f"{node}: the noise was inverted with {told(recorded)} but this node samples with {told(boundary)}. "
            "Connect the same model_high_noise (or none) and boundary to Invert (native) and to this node."
        )


class NativeModulate:
    """SLM on core LATENTs: unseen cells of the clean latent and the inverted noise filled from visible cells."""

    DISPLAY_NAME = "Stochastic Latent Modulation (InverseDVS, native)"
    CATEGORY = CATEGORY
    FUNCTION = "modulate"
    RETURN_TYPES = ("LATENT", "LATENT", "MASK")
    RETURN_NAMES = ("clean", "noise", "latent_unseen")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": _MODEL,
                "vae": _VAE,
                "clean": _CLEAN,
                "noise": _INVERTED,
                "mask": _MASK,
                "seed": _SEED,
            },
            "optional": {"scope": _SCOPE},
        }

    def modulate(self, model, vae, clean, noise, mask, seed, scope=SLM_SCOPES[0]):
        from ..slm.modulate import stochastic_latent_modulation

        node = self.DISPLAY_NAME
        native = _backend()
        native.check_flow_model(model, node)
        x_samples, eps_samples = _clean_and_noise(model, clean, noise, node)
        if scope not in SLM_SCOPES:
            raise InverseDVSError(f"{node}: scope must be one of {', '.join(SLM_SCOPES)}.")
        temporal, spatial = native.compression(vae, node)
        _, unseen, fully = latent_masks(mask, x_samples, node, temporal, spatial)
        x0, eps = native.to_model_space(model, x_samples), native.to_model_space(model, eps_samples)
        modulated_x0, eps = stochastic_latent_modulation(x0, eps, unseen, fully, seeded_generator(seed), scope)
        kept = native.first_frame_noise_mask(model, x_samples)
        if kept is not None:  # Wan 2.2 TI2V-5B: the sampler keeps the first latent frame as encoded (its image)
            modulated_x0 = torch.where(kept.bool(), modulated_x0, x0)
        clean_out = dict(clean, samples=native.to_latent_space(model, modulated_x0), slm=True, slm_seed=int(seed))
        if kept is not None:
            clean_out["noise_mask"] = kept
        noise_out = dict(noise, samples=native.to_latent_space(model, eps), slm=True, slm_seed=int(seed))
        return (clean_out, noise_out, unseen.float())


class NativeSigmas:
    """SIGMAS of the method: the model's grid of ``steps`` steps, started at ``strength``."""

    DISPLAY_NAME = "Sigmas (InverseDVS, native)"
    CATEGORY = CATEGORY
    FUNCTION = "sigmas"
    RETURN_TYPES = ("SIGMAS",)
    RETURN_NAMES = ("sigmas",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": _MODEL, "steps": _STEPS, "strength": _STRENGTH}}

    def sigmas(self, model, steps, strength):
        node = self.DISPLAY_NAME
        native = _backend()
        native.check_flow_model(model, node)
        return (native.sampling_sigmas(model, _validate.check_steps(steps, node),
                                       _validate.check_strength(strength, node)),)


class NativeKRNRNoise:
    """NOISE for core's samplers whose start is the K-RNR latent (1−σᵏ)·x0 + σᵏ·ε at the grid's first sigma (one model
    window at most: 81 frames on Wan 2.1; Sample (native) runs longer clips window by window)."""

    DISPLAY_NAME = "K-RNR Noise (InverseDVS, native)"
    CATEGORY = CATEGORY
    FUNCTION = "noise"
    RETURN_TYPES = ("NOISE",)
    RETURN_NAMES = ("noise",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": _MODEL,
                "clean": ("LATENT", {"tooltip": "The clean latent from Stochastic Latent Modulation (native)."}),
                "noise": ("LATENT", {"tooltip": "The inverted noise from Stochastic Latent Modulation (native)."}),
                "sigmas": ("SIGMAS", {"tooltip": "The grid the sampler runs (Sigmas (InverseDVS, native)); K-RNR is "
                                                 "taken at its first sigma."}),
                "k": _K,
            }
        }

    def noise(self, model, clean, noise, sigmas, k):
        node = self.DISPLAY_NAME
        start, sigma0 = _krnr_start(model, clean, noise, sigmas, k, node)
        _check_one_window(model, start.shape[2], node)
        return (_backend().StartNoise(model, start, sigma0, clean.get("slm_seed", DEFAULT_SEED), node),)


def _krnr_start(model, clean, noise, sigmas, k, node: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The K-RNR start (model space, the clip's shape) and the grid's first sigma, the inputs checked as K-RNR
    Noise (native) checks them."""
    native = _backend()
    native.check_flow_model(model, node)
    x_samples, eps_samples = _clean_and_noise(model, clean, noise, node)
    if not (clean.get("slm") and noise.get("slm")):
        raise InverseDVSError(
            f"{node}: connect the clean and noise outputs of Stochastic Latent Modulation (InverseDVS, native); "
            "K-RNR starts from the modulated latents."
        )
    if int(k) < 0:
        raise InverseDVSError(f"{node}: k = {k}; the K-RNR order must be 0 or more.")
    if not isinstance(sigmas, torch.Tensor) or sigmas.ndim != 1 or sigmas.numel() < 2:
        raise InverseDVSError(f"{node}: sigmas must be a grid of at least one step (SIGMAS).")
    sigma0 = sigmas[0].float()
    inv = noise.get("inversion")
    if inv is not None and abs(float(sigma0) - inv["start_sigma"]) > SIGMA_MATCH:
        raise InverseDVSError(
            f"{node}: the noise was inverted for a sampling start at σ = {inv['start_sigma']:.6f} (steps "
            f"{inv['steps']}, strength {inv['strength']}) but the sigmas start at σ = {float(sigma0):.6f}. Use "
            "the same steps and strength for Invert and Sigmas."
        )
    x0 = native.to_model_space(model, x_samples)
    eps = native.to_model_space(model, eps_samples)
    return native.krnr_start(x0, eps, float(sigma0), int(k)), sigma0


class NativeGuider:
    """GUIDER with per-position guidance: guidance (dynamic schedule) in unseen cells, preservation in visible ones (one
    model window at most, as K-RNR Noise)."""

    DISPLAY_NAME = "Guider (InverseDVS, native)"
    CATEGORY = CATEGORY
    FUNCTION = "guider"
    RETURN_TYPES = ("GUIDER",)
    RETURN_NAMES = ("guider",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": _MODEL,
                "positive": ("CONDITIONING", {"tooltip": "WanImageToVideo's positive output (your prompt, first "
                                                         "warped frame as start image)."}),
                "negative": ("CONDITIONING", {"tooltip": "WanImageToVideo's negative output."}),
                "latent_unseen": ("MASK", {"tooltip": "Unseen latent cells from Stochastic Latent Modulation "
                                                      "(native), [latent frames, height, width]."}),
                "guidance": _GUIDANCE,
                "preservation": _PRESERVATION,
                "dynamic_guidance": _DYNAMIC,
            },
            "optional": {
                "steps": ("INT", {"default": 0, "min": 0, "max": 1000,
                                  "tooltip": "0: the dynamic schedule counts the sampler's own sigmas. When one grid "
                                             "is split between two samplers (Wan 2.2 A14B's experts), give the whole "
                                             "grid's step count (the unsplit SIGMAS' length − 1) so both halves "
                                             "follow one schedule."}),
            },
        }

    def guider(self, model, positive, negative, latent_unseen, guidance, preservation, dynamic_guidance, steps=0):
        node = self.DISPLAY_NAME
        native = _backend()
        native.check_flow_model(model, node)
        unseen = _validate.check_mask(latent_unseen, "latent_unseen", node) > 0.5
        _check_one_window(model, unseen.shape[0], node)
        _validate.check_range(guidance, 0.0, 100.0, "guidance", node)
        _validate.check_range(preservation, 0.0, 100.0, "preservation", node)
        # the image condition cut (or extended) to the clip's latent frames: WanImageToVideo's length may differ
        positive, negative = (native.window_conditioning(c, (0, unseen.shape[0]), None) for c in (positive, negative))
        return (native.make_guider(model, positive, negative, unseen, guidance, preservation, dynamic_guidance,
                                   int(steps) or None),)


class NativeSample:
    """The whole sampling side in one node: SLM, K-RNR Noise, Guider, Sigmas and core's SamplerCustomAdvanced (Euler)."""

    DISPLAY_NAME = "Sample (InverseDVS, native)"
    CATEGORY = CATEGORY
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": _MODEL,
                "vae": _VAE,
                "positive": NativeGuider.INPUT_TYPES()["required"]["positive"],
                "negative": NativeGuider.INPUT_TYPES()["required"]["negative"],
                "clean": _CLEAN,
                "noise": _INVERTED,
                "mask": _MASK,
                "steps": _STEPS,
                "strength": _STRENGTH,
                "k": _K,
                "guidance": _GUIDANCE,
                "preservation": _PRESERVATION,
                "dynamic_guidance": _DYNAMIC,
                "seed": _SEED,
            },
            "optional": {"scope": _SCOPE, "model_high_noise": _HIGH_NOISE, "boundary": _BOUNDARY},
        }

    def sample(self, model, vae, positive, negative, clean, noise, mask, steps, strength, k, guidance, preservation,
               dynamic_guidance, seed, scope=SLM_SCOPES[0], model_high_noise=None, boundary=DEFAULT_EXPERT_BOUNDARY):
        node = self.DISPLAY_NAME
        native = _backend()
        clean_m, noise_m, unseen = NativeModulate().modulate(model, vae, clean, noise, mask, seed, scope)
        (sigmas,) = NativeSigmas().sigmas(model, steps, strength)
        boundary = _check_experts(model, model_high_noise, boundary, node)
        _check_same_experts(noise, None if model_high_noise is None else boundary, node)
        # split between two experts, each guider still counts the whole grid's steps
        grid_steps = len(sigmas) - 1 if model_high_noise is not None else 0
        spans = recorded_windows(noise, clean_m["samples"].shape[2], native.TEMPORAL_COMPRESSION,
                                 native.window_latent_frames(model), node)
        # a model that keeps its first latent frame gets SLM's clean LATENT, which carries the noise mask
        latent = clean_m if "noise_mask" in clean_m else {"samples": clean["samples"]}
        if len(spans) == 1:  # the five-node wiring, as is
            (start,) = NativeKRNRNoise().noise(model, clean_m, noise_m, sigmas, k)
            (guider,) = NativeGuider().guider(model, positive, negative, unseen, guidance, preservation,
                                              dynamic_guidance, grid_steps)
            high = None if model_high_noise is None else NativeGuider().guider(
                model_high_noise, positive, negative, unseen, guidance, preservation, dynamic_guidance, grid_steps)[0]
            out = native.sample_experts(start, guider, sigmas, latent, high, boundary)
            return ({"samples": out["samples"]},)

        from ..krnr import windows

        start, sigma0 = _krnr_start(model, clean_m, noise_m, sigmas, k, node)
        slm_seed = clean_m.get("slm_seed", DEFAULT_SEED)
        progress = native.ClipProgress(model, len(spans) * (len(sigmas) - 1))

        def guider_of(expert, span, condition, anchor):
            pos, neg = (native.window_conditioning(c, span, condition) for c in (positive, negative))
            (guider,) = NativeGuider().guider(expert, pos, neg, unseen[span[0]:span[1]], guidance, preservation,
                                              dynamic_guidance, grid_steps)
            guider.set_anchor(anchor)
            return guider

        def sample_window(i, span, window_start, condition, anchor):
            window_latent = native.window_latent(model, latent["samples"][:, :, span[0]:span[1]], condition)
            high = None if model_high_noise is None else guider_of(model_high_noise, span, condition, anchor)
            out = native.sample_experts(native.StartNoise(model, window_start, sigma0, slm_seed, node),
                                        guider_of(model, span, condition, anchor), sigmas, window_latent, high,
                                        boundary, progress)
            return out["samples"].float().cpu()

        return ({"samples": windows.sample_windows(start, spans, None, sample_window)},)


NODES = (NativePadFrames, NativeInvert, NativeModulate, NativeSigmas, NativeKRNRNoise, NativeGuider, NativeSample)
