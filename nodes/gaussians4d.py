"""Diffusion²'s second stage: dynamic 3D Gaussians fitted to the matrix, rendered from new cameras, saved as PLY.

Fit Dynamic Gaussians takes the matrix's images (view-major, as Sample (Diffusion², SVD x SV3D) gives them) and
the SV3D conditioning the matrix was sampled with, whose elevations and azimuths are the cameras; the result is
an ``INVERSEDVS_DYNAMIC_GAUSSIANS`` value that Render Dynamic Gaussians draws along an orbit and through time and
Save Dynamic Gaussians (PLY) writes one splat file per frame of. The maths is ``gaussians/``; gsplat's CUDA
rasteriser renders when it is installed and the device is a GPU, the pack's torch one otherwise.
"""

from __future__ import annotations

import logging
import math
import os

import torch

from ..errors import InverseDVSError
from ..gaussians import cameras, fit, ply, render, store
from . import _host, _validate
from ._choices import Choices
from .diffusion2 import CATEGORY, DEFAULT_VIEWS, MAX_MATRIX_IMAGES, orbit_of
from .model import DEFAULT_SEED, MAX_SEED
from .output import output_relative, write_new_file

LOG = logging.getLogger(__name__)
GAUSSIANS_TYPE = "INVERSEDVS_DYNAMIC_GAUSSIANS"
DIRECTION = Choices(("auto", "right", "left"))
RENDERER = Choices(("auto", "gsplat", "torch"))
BACKGROUND = Choices(("white", "black"))
BACKGROUND_RGB = {"white": (1.0, 1.0, 1.0), "black": (0.0, 0.0, 0.0)}
MAX_ITERATIONS = 100_000
MAX_GAUSSIANS = 2_000_000
MIN_SIDE = 16  # pixels; SSIM's 11-pixel window needs room, smaller matrices are refused
MAX_RENDER_FRAMES = 4096
MAX_RENDER_SIDE = 4096
DEFAULT_RENDER_FRAMES = 48
PLY_EXTENSION = "ply"
DEFAULT_PLY_PREFIX = "InverseDVS/gaussians"
FILE_EXTENSION = "gaussians4d.safetensors"  # Save Dynamic Gaussians' files, what Load Dynamic Gaussians lists
DEFAULT_FILE_PREFIX = "InverseDVS/object"


def _engine(choice: str, device: torch.device, node: str) -> str:
    if choice not in RENDERER:
        raise InverseDVSError(f"{node}: renderer must be one of {', '.join(RENDERER)}.")
    if choice == "torch":
        return "torch"
    if not render.gsplat_checked(device) and render.gsplat_available():
        LOG.warning("%s: checking gsplat on %s; its first use compiles its CUDA kernels (about 1.5 minutes, once "
                    "per machine).", node, device)
    problem = render.gsplat_problem(device)
    if not problem:
        return "gsplat"
    if choice == "gsplat":
        raise InverseDVSError(f"{node}: renderer is gsplat, but {problem}. Set renderer to auto or torch (much "
                              "slower: for small images), or install gsplat with a CUDA toolkit matching torch.")
    LOG.warning("%s: %s; rendering with the pack's torch rasteriser, which is much slower (about an hour for "
                "the paper's 21 x 25 x 576² fit on an H200, against a minute with gsplat).", node, problem)
    return "torch"


def _lighter(engine: str) -> str:
    """What to change when a fit or render runs out of memory (for ``out_of_memory_as_error``)."""
    return ("renderer = auto with gsplat installed on a GPU (far less memory than the torch rasteriser)"
            if engine == "torch" else "fewer gaussians")


def _write_bytes(path: str, data: bytes) -> None:
    with open(path, "wb") as handle:
        handle.write(data)


def _check_gaussians(value, node: str) -> fit.Fitted:
    if not isinstance(value, fit.Fitted):
        raise InverseDVSError(f"{node}: gaussians must be the output of Fit Dynamic Gaussians (Diffusion²); "
                              "connect its gaussians output here.")
    return value


class FitDynamicGaussians:
    """Fit canonical Gaussians and a deformation field to the V x F matrix seen from its SV3D orbit."""

    DISPLAY_NAME = "Fit Dynamic Gaussians (Diffusion²)"
    CATEGORY = CATEGORY
    FUNCTION = "fit"
    RETURN_TYPES = (GAUSSIANS_TYPE, "IMAGE")
    RETURN_NAMES = ("gaussians", "renders")

    @classmethod
    def INPUT_TYPES(cls):
        defaults = fit.FitConfig()
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The matrix: Sample (Diffusion², SVD x SV3D)'s images, V x F "
                                                "view-major (view v at frame f is item v·F + f)."}),
                "multiview_positive": ("CONDITIONING", {
                    "tooltip": "The positive of core's SV3D_Conditioning the matrix was sampled with: its "
                               "elevation and V azimuths are the cameras the Gaussians are fitted from."}),
                "iterations": ("INT", {"default": defaults.iterations, "min": 1, "max": MAX_ITERATIONS,
                                       "tooltip": "Optimisation steps in all (5000 = the paper's); each renders "
                                                  f"{defaults.views_per_step} views of one frame."}),
                "warmup": ("INT", {"default": defaults.warmup, "min": 0, "max": MAX_ITERATIONS,
                                   "tooltip": "The first steps fit static Gaussians to the reference time's orbit "
                                              "(frame 0) alone (3000 = the paper's); the rest fit the motion."}),
                "gaussians": ("INT", {"default": defaults.gaussians, "min": 1, "max": MAX_GAUSSIANS,
                                      "tooltip": "Gaussians at the start, in a ball about the object's centre; "
                                                 "densification adds where detail is missing."}),
                "direction": (DIRECTION, {"default": DIRECTION[0],
                                          "tooltip": "Which way the orbit turns as the azimuth grows: right / left "
                                                     "(the camera moves to its right / left). auto tries both "
                                                     "briefly on frame 0 and keeps the one that fits."}),
                "fov_deg": ("FLOAT", {"default": cameras.SV3D_FOV_DEG, "min": 5.0, "max": 120.0, "step": 0.1,
                                      "tooltip": "The cameras' horizontal field of view (33.8 = SV3D's, at 2 units "
                                                 "from the object)."}),
                "background": (BACKGROUND, {"default": BACKGROUND[0],
                                            "tooltip": "The colour behind the object in the images: white "
                                                       "(SV3D's) or black."}),
                "renderer": (RENDERER, {"default": RENDERER[0],
                                        "tooltip": "auto: gsplat's CUDA rasteriser when it is installed and the "
                                                   "device is a GPU, else the pack's torch one (slow: small "
                                                   "images). gsplat / torch: that one."}),
                "seed": ("INT", {"default": DEFAULT_SEED, "min": 0, "max": MAX_SEED,
                                 "tooltip": "Seed of the start Gaussians and of the views each step draws."}),
            }
        }

    def fit(self, images, multiview_positive, iterations, warmup, gaussians, direction, fov_deg, background,
            renderer, seed):
        node = self.DISPLAY_NAME
        images = _validate.check_image(images, "images", node)
        azimuth, elevation = orbit_of(multiview_positive, "multiview_positive", node)
        views = len(azimuth)
        if images.shape[0] % views:
            raise InverseDVSError(f"{node}: {images.shape[0]} images are not {views} views (the SV3D conditioning's "
                                  "azimuths) of equal length; connect the matrix sampled with this conditioning.")
        if images.shape[0] > MAX_MATRIX_IMAGES:
            raise InverseDVSError(f"{node}: {images.shape[0]} images are more than a matrix holds "
                                  f"({MAX_MATRIX_IMAGES}).")
        height, width = images.shape[1:3]
        if min(height, width) < MIN_SIDE:
            raise InverseDVSError(f"{node}: the images are {width}x{height}; the fit needs at least "
                                  f"{MIN_SIDE}x{MIN_SIDE} pixels; sample the matrix larger (SV3D's size is "
                                  "576x576) or upscale its images with core's Upscale Image.")
        iterations = _validate.check_whole_number(iterations, 1, MAX_ITERATIONS, "iterations", node)
        warmup = _validate.check_whole_number(warmup, 0, iterations, "warmup", node,
                                              "It counts the first of the iterations.")
        gaussians = _validate.check_whole_number(gaussians, 1, MAX_GAUSSIANS, "gaussians", node)
        fov_deg = _validate.check_range(fov_deg, 5.0, 120.0, "fov_deg", node)
        seed = _validate.check_whole_number(seed, 0, MAX_SEED, "seed", node)
        if direction not in DIRECTION:
            raise InverseDVSError(f"{node}: direction must be one of {', '.join(DIRECTION)}.")
        if direction == "auto" and int(warmup * fit.PROBE_FRACTION) < 1:
            raise InverseDVSError(f"{node}: direction = auto tries both directions during the warm-up, and warmup = "
                                  f"{warmup} leaves no room; set warmup to at least {math.ceil(1 / fit.PROBE_FRACTION)} "
                                  "or choose right or left.")
        if background not in BACKGROUND:
            raise InverseDVSError(f"{node}: background must be one of {', '.join(BACKGROUND)}.")
        device = _host.torch_device()
        engine = _engine(renderer, device, node)
        frames = images.shape[0] // views
        targets = images.reshape(views, frames, height, width, 3)
        config = fit.FitConfig(iterations=iterations, warmup=warmup, gaussians=gaussians, seed=seed,
                               max_gaussians=max(fit.FitConfig().max_gaussians, gaussians))
        progress = _host.Progress(iterations + (fit.probe_iterations(config) if direction == "auto" else 0))

        def step(_iteration, _loss):
            progress.update(1)
            _host.throw_if_interrupted()

        with _validate.out_of_memory_as_error(node, "fitting the Gaussians", _lighter(engine), device=device):
            fitted = fit.fit_matrix(targets, azimuth, elevation, config, direction, cameras.SV3D_RADIUS, fov_deg,
                                    torch.tensor(BACKGROUND_RGB[background]), engine, device, step)
            # every matrix image, view-major: camera v at frame f is item v·F + f
            renders, _ = fit.render_fitted(fitted, azimuth.repeat_interleave(frames),
                                           elevation.repeat_interleave(frames),
                                           torch.arange(frames, dtype=torch.float64).repeat(views), height, width,
                                           engine, device)
        renders = renders.clamp(0, 1)
        return (fitted, renders)


class RenderDynamicGaussians:
    """The fitted object filmed by a camera moving on its orbit's sphere while time runs."""

    DISPLAY_NAME = "Render Dynamic Gaussians"
    CATEGORY = CATEGORY
    FUNCTION = "render"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("images", "mask")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "gaussians": (GAUSSIANS_TYPE, {"tooltip": "Fit Dynamic Gaussians (Diffusion²)'s output."}),
                "frames": ("INT", {"default": DEFAULT_RENDER_FRAMES, "min": 1, "max": MAX_RENDER_FRAMES,
                                   "tooltip": "Frames of the rendered video."}),
                "azimuth_start": ("FLOAT", {"default": 0.0, "min": -3600.0, "max": 3600.0, "step": 1.0,
                                            "tooltip": "Camera azimuth at the first frame, degrees (0 = the "
                                                       "reference view), turning as the fit's orbit did."}),
                "azimuth_end": ("FLOAT", {"default": 360.0, "min": -3600.0, "max": 3600.0, "step": 1.0,
                                          "tooltip": "Camera azimuth at the last frame, degrees (360 = once "
                                                     "around)."}),
                "elevation": ("FLOAT", {"default": 0.0, "min": -89.0, "max": 89.0, "step": 0.5,
                                        "tooltip": "Camera elevation, degrees (positive = from above)."}),
                "time_start": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                         "tooltip": "The object's time at the first frame: 0 = the matrix's frame 0 "
                                                    "(reference time), 1 = its last frame."}),
                "time_end": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01,
                                       "tooltip": "The object's time at the last frame (equal to time_start: "
                                                  "frozen time)."}),
                "width": ("INT", {"default": 0, "min": 0, "max": MAX_RENDER_SIDE,
                                  "tooltip": "Output width in pixels (0 = the matrix's)."}),
                "height": ("INT", {"default": 0, "min": 0, "max": MAX_RENDER_SIDE,
                                   "tooltip": "Output height in pixels (0 = the matrix's)."}),
                "renderer": (RENDERER, {"default": RENDERER[0],
                                        "tooltip": "auto: gsplat on a GPU when installed, else the pack's torch "
                                                   "rasteriser. gsplat / torch: that one."}),
            }
        }

    def render(self, gaussians, frames, azimuth_start, azimuth_end, elevation, time_start, time_end, width, height,
               renderer):
        node = self.DISPLAY_NAME
        fitted = _check_gaussians(gaussians, node)
        frames = _validate.check_whole_number(frames, 1, MAX_RENDER_FRAMES, "frames", node)
        for name, value in (("azimuth_start", azimuth_start), ("azimuth_end", azimuth_end)):
            _validate.check_range(value, -3600.0, 3600.0, name, node)
        elevation = _validate.check_range(elevation, -89.0, 89.0, "elevation", node)
        time_start = _validate.check_range(time_start, 0.0, 1.0, "time_start", node)
        time_end = _validate.check_range(time_end, 0.0, 1.0, "time_end", node)
        width = _validate.check_whole_number(width, 0, MAX_RENDER_SIDE, "width", node) or fitted.width
        height = _validate.check_whole_number(height, 0, MAX_RENDER_SIDE, "height", node) or fitted.height
        device = _host.torch_device()
        engine = _engine(renderer, device, node)
        azimuth = cameras.interpolate_orbit(float(azimuth_start), float(azimuth_end), frames)
        times = cameras.interpolate_orbit(time_start, time_end, frames) * (fitted.frames - 1)
        with _validate.out_of_memory_as_error(node, "rendering", _lighter(engine), device=device):
            images, alpha = fit.render_fitted(fitted, azimuth, torch.full((frames,), elevation, dtype=torch.float64),
                                              times, height, width, engine, device)
        return (images.clamp(0, 1), alpha.clamp(0, 1))


class SaveDynamicGaussians:
    """One 3D Gaussian splatting PLY file per frame of the fitted object, in ComfyUI's output folder."""

    DISPLAY_NAME = "Save Dynamic Gaussians (PLY)"
    CATEGORY = CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("files",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "gaussians": (GAUSSIANS_TYPE, {"tooltip": "Fit Dynamic Gaussians (Diffusion²)'s output."}),
                "filename_prefix": ("STRING", {"default": DEFAULT_PLY_PREFIX,
                                               "tooltip": "Name inside ComfyUI's output folder; '/' makes "
                                                          "sub-folders. Frame f is saved as <prefix>_fNNN with a "
                                                          "counter appended; nothing is overwritten."}),
            }
        }

    def save(self, gaussians, filename_prefix):
        node = self.DISPLAY_NAME
        fitted = _check_gaussians(gaussians, node)
        digits = max(3, len(str(fitted.frames - 1)))
        saved = []
        progress = _host.Progress(fitted.frames)
        for f in range(fitted.frames):
            data = ply.ply_bytes(fit.deformed_at(fitted, f))
            final, root = write_new_file(f"{filename_prefix}_f{f:0{digits}}", PLY_EXTENSION, node,
                                         lambda path: _write_bytes(path, data))
            saved.append(final)
            progress.update(1)
            _host.throw_if_interrupted()
        relative = [output_relative(p, root) for p in saved]
        return {"ui": {"text": ["\n".join(relative)]}, "result": ("\n".join(relative),)}


def is_gaussians_file(name: str) -> bool:
    """Whether a (lower-case) file name is one Load Dynamic Gaussians lists."""
    return name.endswith("." + FILE_EXTENSION)


class SaveDynamicGaussiansFile:
    """The whole fitted object (canonical Gaussians, deformation field, orbit) as one safetensors file, to render
    again in a later session with Load Dynamic Gaussians."""

    DISPLAY_NAME = "Save Dynamic Gaussians"
    CATEGORY = CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("file",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "gaussians": (GAUSSIANS_TYPE, {"tooltip": "Fit Dynamic Gaussians (Diffusion²)'s output."}),
                "filename_prefix": ("STRING", {"default": DEFAULT_FILE_PREFIX,
                                               "tooltip": "Name inside ComfyUI's output folder; '/' makes "
                                                          f"sub-folders. A counter and '.{FILE_EXTENSION}' are "
                                                          "appended; nothing is overwritten. Copy the file into "
                                                          "the input folder to load it."}),
            }
        }

    def save(self, gaussians, filename_prefix):
        import safetensors.torch

        node = self.DISPLAY_NAME
        tensors, metadata = store.to_state(_check_gaussians(gaussians, node))
        final, root = write_new_file(filename_prefix, FILE_EXTENSION, node,
                                     lambda path: safetensors.torch.save_file(tensors, path, metadata))
        relative = output_relative(final, root)
        return {"ui": {"text": [relative]}, "result": (relative,)}


class LoadDynamicGaussians:
    """A fitted object saved by Save Dynamic Gaussians, from ComfyUI's input folder."""

    DISPLAY_NAME = "Load Dynamic Gaussians"
    CATEGORY = CATEGORY
    FUNCTION = "load"
    RETURN_TYPES = (GAUSSIANS_TYPE,)
    RETURN_NAMES = ("gaussians",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "file": (_host.list_input_files(is_gaussians_file), {
                    "tooltip": f"A '.{FILE_EXTENSION}' file written by Save Dynamic Gaussians, in ComfyUI's input "
                               "folder (sub-folders allowed)."}),
            }
        }

    @classmethod
    def _path(cls, file) -> str:
        return _validate.input_file(file, "dynamic Gaussians file", cls.DISPLAY_NAME,
                                    "Save one with Save Dynamic Gaussians and copy it there.", keep=is_gaussians_file)

    @classmethod
    def IS_CHANGED(cls, file, **_):
        """The file's modification time and size, so ComfyUI reloads a replaced file."""
        try:
            info = os.stat(cls._path(file))
        except (InverseDVSError, OSError):
            return ""
        return f"{info.st_mtime_ns}-{info.st_size}"

    @classmethod
    def VALIDATE_INPUTS(cls, file, **_):
        try:
            cls._path(file)
        except InverseDVSError as err:
            return str(err)
        return True

    def load(self, file):
        import safetensors
        import safetensors.torch

        node = self.DISPLAY_NAME
        path = _validate.check_safetensors_file(self._path(file), "dynamic Gaussians file", node,
                                                "save the object again with Save Dynamic Gaussians.")
        name = os.path.basename(path)
        try:
            with safetensors.safe_open(path, framework="pt") as handle:
                metadata = handle.metadata()
            tensors = safetensors.torch.load_file(path)
            fitted = store.from_state(tensors, metadata)
        except ValueError as err:
            raise InverseDVSError(f"{node}: '{name}' cannot be loaded: {err}. Save it again with Save Dynamic "
                                  "Gaussians.") from None
        except Exception as err:  # noqa: BLE001 - a damaged file safetensors refuses
            raise InverseDVSError(f"{node}: '{name}' is not a readable safetensors file ({type(err).__name__}). "
                                  "Save it again with Save Dynamic Gaussians.") from None
        return (fitted,)


NODES = (FitDynamicGaussians, RenderDynamicGaussians, SaveDynamicGaussians, SaveDynamicGaussiansFile,
         LoadDynamicGaussians)
