"""Single-image novel views on ComfyUI's own image models (SD 1.5 / SDXL class) by signal/noise fusion.

Core's loaders give MODEL / CLIP / VAE, core's VAE Encode the source image's LATENT and core's text
encode the prompts. Invert Image DDIM-inverts the latent to a timestep and keeps equation 1's split
(signal / mean and noise / variance terms); Novel View Fusion warps the mean to the new camera with
the image's depth (the geometry nodes' camera path) and fuses it with the source's noise (strategy
A or B); Novel View Sample runs DDIM from there with core's guider. Core's VAE Decode gives the IMAGE.
Separate nodes, so ComfyUI keeps the inversion while the camera, strategy or sampling settings change.
"""

from __future__ import annotations

import torch

from ..errors import InverseDVSError
from ..krnr import fusion
from ..krnr.noise_init import seeded_generator
from ..warp import depth as dep
from ..warp.splat import cell_depth, warp_latent
from . import _validate
from ._choices import Choices
from .camera import CAMERA_PATH_TYPE
from .model import DEFAULT_SEED, MAX_SEED
from .warp import DEPTH_KIND_CHOICES, check_camera_path, check_depth_kind, path_transforms

CATEGORY = "InverseDVS/novel_view"
# The method's inversion: 30 DDIM steps up to timestep 600.
DEFAULT_STEPS = 30
DEFAULT_TIMESTEP = 600
# Below the schedule's top timestep (core starts a grid at σ_max from scaled noise, not from a given latent).
MAX_TIMESTEP = 990
STRATEGIES = Choices(fusion.STRATEGIES)
VIEWS = Choices(("last", "all"))
DEFAULT_CFG = 1.0
MAX_CFG = 30.0
# Holes of the warped mean are filled by SLM's draws within the same channel and view.
HOLE_FILL_SCOPE = "frame"
FUSION_KEY = "inversedvs_fusion"  # what Invert Image adds to its LATENT
START_KEY = "inversedvs_fusion_start"  # what Novel View Fusion adds to its LATENT

_MODEL = ("MODEL", {"tooltip": "The image model from core's Load Checkpoint or Load Diffusion Model (SD 1.5 / SDXL "
                               "class), with any LoRA or patch nodes in between."})
_EMPTY = ("CONDITIONING", {"tooltip": "An empty prompt from core's CLIP Text Encode: the condition of the inversion "
                                      "and of strategy A's noise prediction (use the same one for both)."})
_SEED = ("INT", {"default": DEFAULT_SEED, "min": 0, "max": MAX_SEED,
                 "tooltip": "Seed of the draws that fill the warped mean's holes from its visible cells."})


def _backend():
    from ..backend import comfy_image

    return comfy_image


def _check_image_latent(model, latent, node: str, name: str) -> torch.Tensor:
    """An image LATENT [1, C, h, w] with the MODEL's latent channels, finite; returns its samples."""
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if not isinstance(samples, torch.Tensor):
        raise InverseDVSError(f"{node}: {name} is not a LATENT (no 'samples' tensor); connect core's VAE Encode.")
    if samples.ndim != 4 or samples.shape[0] != 1 or samples.numel() == 0:
        raise InverseDVSError(
            f"{node}: {name} has shape {tuple(samples.shape)}; one image's latent [1, channels, height, width] is "
            "needed (encode a single image with core's VAE Encode; split a batch with Latent From Batch)."
        )
    channels = int(model.get_model_object("latent_format").latent_channels)
    if samples.shape[1] != channels:
        raise InverseDVSError(
            f"{node}: {name} has {samples.shape[1]} channels but this model's latents have {channels}; encode the "
            "image with this model's VAE."
        )
    if not torch.isfinite(samples).all():
        raise InverseDVSError(f"{node}: {name} contains NaN or infinite values; check the node that made it.")
    return samples


class ImageInvert:
    """DDIM inversion of one image's LATENT up to a timestep, keeping the signal / noise split of its last step."""

    DISPLAY_NAME = "Invert Image (InverseDVS, DDIM)"
    CATEGORY = CATEGORY
    FUNCTION = "invert"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("inversion",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": _MODEL,
                "positive": _EMPTY,
                "latent": ("LATENT", {"tooltip": "The source image encoded by core's VAE Encode (one image)."}),
                "steps": ("INT", {"default": DEFAULT_STEPS, "min": 1, "max": MAX_TIMESTEP,
                                  "tooltip": "DDIM steps from the clean image up to the timestep (30 = the method's); "
                                             "sampling walks the same grid back."}),
                "timestep": ("INT", {"default": DEFAULT_TIMESTEP, "min": 1, "max": MAX_TIMESTEP,
                                     "tooltip": "How far to invert, on the model's 0-999 scale (600 = the method's): "
                                                "higher leaves more to the model, lower keeps more of the source."}),
            }
        }

    def invert(self, model, positive, latent, steps, timestep):
        node = self.DISPLAY_NAME
        image = _backend()
        image.check_image_model(model, node)
        samples = _check_image_latent(model, latent, node, "latent")
        top = min(MAX_TIMESTEP, image.num_timesteps(model) - 2)
        timestep = _validate.check_whole_number(timestep, 1, top, "timestep", node)
        steps = _validate.check_whole_number(steps, 1, timestep, "steps", node,
                                             "Each step must advance at least one timestep.")
        grid = fusion.inversion_timesteps(steps, timestep)
        sigmas = image.grid_sigmas(model, grid)
        out = image.invert(model, positive, samples, sigmas)
        mean, noise = fusion.split_inversion(out["x0_hat"], out["eps_hat"], image.level(float(sigmas[-1])))
        info = {"steps": steps, "timestep": timestep, "sigmas": sigmas, "mean": mean, "noise": noise,
                "inverted": out["inverted"]}
        return ({"samples": image.to_latent_space(model, out["inverted"]), FUSION_KEY: info},)


class NovelViewFusion:
    """The inverted mean warped to the new camera and fused with the source's noise (strategy A or B): the DDIM
    start latent of the new view."""

    DISPLAY_NAME = "Novel View Fusion (InverseDVS)"
    CATEGORY = CATEGORY
    FUNCTION = "fuse"
    RETURN_TYPES = ("LATENT", "MASK")
    RETURN_NAMES = ("start", "latent_holes")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": _MODEL,
                "positive": _EMPTY,
                "inversion": ("LATENT", {"tooltip": "The output of Invert Image (InverseDVS, DDIM)."}),
                "depth": ("IMAGE", {"tooltip": "Depth of the source image at its size (white = near for relative "
                                               "maps): this pack's Depth Estimate or any depth node's IMAGE."}),
                "camera_path": (CAMERA_PATH_TYPE, {"tooltip": "The new camera from Camera Trajectory or Load Camera "
                                                              "Path; its anchor camera is the source image's."}),
                "depth_kind": (DEPTH_KIND_CHOICES, {
                    "default": DEPTH_KIND_CHOICES[0],
                    "tooltip": "relative: disparity-like maps where white = near (Depth Anything and most depth "
                               "nodes). metric: values are distances along the camera axis (any unit)."}),
                "views": (VIEWS, {"default": VIEWS[0],
                                  "tooltip": "last: one view from the path's last camera. all: one view per camera "
                                             "of the path, as a batch."}),
                "strategy": (STRATEGIES, {
                    "default": STRATEGIES[0],
                    "tooltip": "a_noise_term: warped mean + the source's noise term is the fused latent; the "
                               "model's noise prediction for it, re-weighted, is added to the mean (one model pass "
                               "per view). b_inverted_latent: the source's whole inverted latent, weighted as "
                               "noise, is added to the warped mean (no model pass)."}),
                "seed": _SEED,
            }
        }

    def fuse(self, model, positive, inversion, depth, camera_path, depth_kind, views, strategy, seed):
        node = self.DISPLAY_NAME
        info = inversion.get(FUSION_KEY) if isinstance(inversion, dict) else None
        if info is None:
            raise InverseDVSError(f"{node}: connect the output of Invert Image (InverseDVS, DDIM) to inversion; a "
                                  "plain LATENT carries no signal / noise split.")
        check_camera_path(camera_path, node)
        check_depth_kind(depth_kind, node)
        if views not in VIEWS:
            raise InverseDVSError(f"{node}: views must be one of {', '.join(VIEWS)}.")
        if strategy not in STRATEGIES:
            raise InverseDVSError(f"{node}: strategy must be one of {', '.join(STRATEGIES)}.")
        mean, noise = info["mean"], info["noise"]
        h, w = mean.shape[-2:]
        z = self._depth(depth, depth_kind, h, w, node)
        image = _backend()
        image.check_image_model(model, node)
        _check_image_latent(model, inversion, node, "inversion")
        n = camera_path.frames
        transforms = path_transforms(camera_path, z.expand(n, -1, -1), node)
        K_target = camera_path.target_intrinsics(h, w)
        if views == VIEWS[0]:
            transforms, K_target = transforms[-1:], K_target[-1:]
        warped, holes = warp_latent(mean[0], cell_depth(z, z.shape[-1] // w)[0], transforms,
                                    camera_path.source_intrinsics(h, w), K_target)
        if bool(holes.flatten(1).all(1).any()):
            raise InverseDVSError(f"{node}: nothing of the image is visible from one of the path's cameras: the "
                                  "camera moved behind the scene or far away from it; use a smaller move.")
        # holes of the warped mean: values drawn from its visible cells, same channel and view (views as frames)
        filled = fusion_fill(warped, holes, seed)
        views_n = filled.shape[0]
        level = image.level(float(info["sigmas"][-1]))
        source_noise = noise.expand(views_n, -1, -1, -1)
        if strategy == fusion.STRATEGY_NOISE_TERM:
            fused = fusion.fused_input(filled, source_noise)
            eps = image.predict_noise(model, positive, fused, info["sigmas"][-1])
            start = fusion.start_from_prediction(filled, eps, level)
        else:
            start = fusion.start_from_inversion(filled, info["inverted"].expand(views_n, -1, -1, -1), level)
        _validate.check_finite_result(start, "the fused latent", node, "Check the depth map and the camera move.")
        out = {"samples": image.to_latent_space(model, start),
               START_KEY: {"start": start, "sigmas": info["sigmas"], "strategy": strategy, "seed": int(seed)}}
        return (out, holes.float())

    @staticmethod
    def _depth(depth, depth_kind: str, h: int, w: int, node: str) -> torch.Tensor:
        """The source's depth z [1, H, W] for warping, H and W the latent's size times one whole factor."""
        _validate.check_depth_image(depth, node)
        if depth.shape[0] != 1:
            raise InverseDVSError(f"{node}: depth holds {depth.shape[0]} frames; give the one depth map of the source "
                                  "image (e.g. core's Image From Batch).")
        height, width = depth.shape[1:3]
        factor = height // h
        if factor < 1 or height != factor * h or width != factor * w:
            raise InverseDVSError(
                f"{node}: the depth is {width}x{height} but the inverted latent is {w}x{h} cells; give the depth map "
                "of the source image at the image's size (the size that was VAE-encoded)."
            )
        depth_map = dep.check_depth_map(dep.image_to_map(depth), depth_kind, node)
        return dep.depth_for_warp(depth_map.float().cpu(), depth_kind)


def fusion_fill(warped: torch.Tensor, holes: torch.Tensor, seed: int) -> torch.Tensor:
    """Warped means [N, C, h, w] with the ``holes`` [N, h, w] cells drawn from the same view and channel."""
    from ..slm.modulate import fill_unseen

    as_video = warped.permute(1, 0, 2, 3).unsqueeze(0)  # [1, C, N, h, w]: views as frames
    filled = fill_unseen(as_video, holes, seeded_generator(seed), HOLE_FILL_SCOPE, what="warped mean")
    return filled[0].permute(1, 0, 2, 3).contiguous()


class NovelViewSample:
    """DDIM sampling of the fused start latent down the inversion's grid, with core's guider and sampler."""

    DISPLAY_NAME = "Novel View Sample (InverseDVS)"
    CATEGORY = CATEGORY
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": _MODEL,
                "positive": ("CONDITIONING", {"tooltip": "Your prompt from core's CLIP Text Encode (or the empty one "
                                                         "for the inversion's)."}),
                "negative": ("CONDITIONING", {"tooltip": "Negative prompt from core's CLIP Text Encode."}),
                "start": ("LATENT", {"tooltip": "The start latent from Novel View Fusion (InverseDVS)."}),
                "cfg": ("FLOAT", {"default": DEFAULT_CFG, "min": 0.0, "max": MAX_CFG, "step": 0.1,
                                  "tooltip": "Classifier-free guidance (1.0 = the positive prompt only, which keeps "
                                             "closest to the source)."}),
            }
        }

    def sample(self, model, positive, negative, start, cfg):
        node = self.DISPLAY_NAME
        info = start.get(START_KEY) if isinstance(start, dict) else None
        if info is None:
            raise InverseDVSError(f"{node}: connect the start output of Novel View Fusion (InverseDVS) to start.")
        _validate.check_range(cfg, 0.0, MAX_CFG, "cfg", node)
        image = _backend()
        image.check_image_model(model, node)
        latent = image.sample(model, positive, negative, cfg, info["start"], info["sigmas"].flip(0), info["seed"],
                              node)
        return ({"samples": latent},)


NODES = (ImageInvert, NovelViewFusion, NovelViewSample)
