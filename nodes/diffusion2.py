"""Diffusion² (4D by score composition) on ComfyUI's own SVD img2vid and SV3D models.

The artist loads both checkpoints with core's Image Only Checkpoint Loader and makes the two conditions with core's
own nodes:

* core's SVD_img2vid_Conditioning with ``init_image`` = the reference time's orbit (V images, e.g. SV3D's output of
  the reference image): its item v conditions row v, view v's video;
* core's SV3D_Conditioning with ``init_image`` = the reference view's video (F frames, e.g. SVD's output of the
  reference image, or a user's clip for video-to-4D) and ``video_frames`` = V: its item f conditions column f.

Core's nodes encode a batch of init images into one CONDITIONING whose CLIP-vision embeddings [1, N, 1024] and
``concat_latent_image`` [N, 4, h, w] hold one item per image; the sampler splits them into the N
conditionings core's node would give for each image alone. It outputs the matrix as a LATENT, decoded IMAGEs and a
contact grid, all view-major (item v·F + f = view v at frame f); Pick (Diffusion²) takes one view's video or one
time's orbit out of them. Nothing here imports ComfyUI at load time; the backend does, when a node runs.
"""

from __future__ import annotations

import torch

from ..errors import InverseDVSError
from ..krnr import composition
from . import _validate
from ._choices import Choices
from .model import DEFAULT_SEED, MAX_SEED

CATEGORY = "InverseDVS/4d"
MAX_STEPS = 1000
MAX_CFG = 30.0
# Core's SVD / SV3D templates guide with cfg 2.5 (SVD with Video Linear CFG Guidance from 1.0).
DEFAULT_CFG = 2.5
DEFAULT_VIEWS = 21  # SV3D's orbit and the paper's
GRID_MAX_SIDE = 2048
# The most images a matrix may hold (V x F): 4096 at 576² is 16 GB of decoded float32 images in CPU memory.
MAX_MATRIX_IMAGES = 4096
ALONG = Choices(("view", "time"))
MATRIX_KEY = "inversedvs_matrix"  # what Sample (Diffusion², SVD x SV3D) adds to its LATENT: {"views": V, "frames": F}

_SVD_NODE = "SVD_img2vid_Conditioning"
_SV3D_NODE = "SV3D_Conditioning"
# What each core node always puts in its conditioning besides the image (how the two are told apart).
_SVD_KEYS = ("motion_bucket_id", "fps")
_SV3D_KEYS = ("elevation", "azimuth")


def _backend():
    from ..backend import comfy_svd

    return comfy_svd


def split_conditioning(conditioning, name: str, node: str, core_node: str, keys: tuple = ()) -> list:
    """One CONDITIONING per init image of core's SVD / SV3D conditioning node output.

    ``conditioning``: [[embeds [1, N, D], {"concat_latent_image": [N, C, h, w], …}]]. Returns N conditionings
    [[embeds[:, i:i+1], {…, "concat_latent_image": latent[i:i+1]}]], what the core node gives for image i alone.
    """
    hint = f"connect the {name.split('_')[-1]} output of core's {core_node}."
    entry = conditioning[0] if isinstance(conditioning, (list, tuple)) and len(conditioning) == 1 else None
    if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and isinstance(entry[0], torch.Tensor)
            and isinstance(entry[1], dict)):
        raise InverseDVSError(f"{node}: {name} is not one conditioning of core's {core_node}; {hint}")
    embeds, options = entry
    missing = [k for k in keys if k not in options]
    if missing:
        raise InverseDVSError(f"{node}: {name} is not the output of core's {core_node} (it has no "
                              f"{' / '.join(missing)}); {hint}")
    latent = options.get("concat_latent_image")
    if not isinstance(latent, torch.Tensor) or latent.ndim != 4:
        raise InverseDVSError(f"{node}: {name} carries no condition images (no concat_latent_image); {hint}")
    count = latent.shape[0]
    if embeds.ndim != 3 or embeds.shape[0] != 1 or embeds.shape[1] != count:
        raise InverseDVSError(
            f"{node}: {name} has {count} condition latents but CLIP-vision embeddings of shape "
            f"{tuple(embeds.shape)}; it must come straight from core's {core_node} (one batch of init images)."
        )
    return [[[embeds[:, i:i + 1], dict(options, concat_latent_image=latent[i:i + 1])]] for i in range(count)]


def orbit_of(conditioning, name: str, node: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(azimuths [V], elevations [V]) in degrees (float64) of core's SV3D_Conditioning output: the cameras of the
    V views its conditioning asks SV3D for."""
    entry = split_conditioning(conditioning, name, node, _SV3D_NODE, _SV3D_KEYS)[0][0][1]
    angles = []
    for key in ("azimuth", "elevation"):
        values = entry[key]
        try:
            tensor = torch.as_tensor([float(v) for v in values], dtype=torch.float64)
        except (TypeError, ValueError):
            tensor = None
        if tensor is None or tensor.numel() == 0 or not torch.isfinite(tensor).all():
            raise InverseDVSError(f"{node}: {name}'s {key} is not a list of finite angles; connect core's "
                                  f"{_SV3D_NODE} output unchanged.")
        angles.append(tensor)
    if angles[0].numel() != angles[1].numel():
        raise InverseDVSError(f"{node}: {name} has {angles[0].numel()} azimuths but {angles[1].numel()} "
                              f"elevations; connect core's {_SV3D_NODE} output unchanged.")
    return angles[0], angles[1]


def _pairs(positive, negative, names: tuple[str, str], node: str, core_node: str, keys: tuple,
           what: str) -> list[dict]:
    pos = split_conditioning(positive, names[0], node, core_node, keys)
    neg = split_conditioning(negative, names[1], node, core_node, keys)
    if len(pos) != len(neg):
        raise InverseDVSError(f"{node}: {names[0]} holds {len(pos)} {what} but {names[1]} {len(neg)}; connect the "
                              f"positive and negative outputs of the same {core_node}.")
    return [{"positive": p, "negative": n} for p, n in zip(pos, neg)]


def matrix_conditions(video_positive, video_negative, multiview_positive, multiview_negative, node: str):
    """(row conditionings [V], column conditionings [F], latent shape (C, h, w)) from the two core nodes' outputs."""
    rows = _pairs(video_positive, video_negative, ("video_positive", "video_negative"), node, _SVD_NODE,
                  _SVD_KEYS, "orbit images (views)")
    columns = _pairs(multiview_positive, multiview_negative, ("multiview_positive", "multiview_negative"), node,
                     _SV3D_NODE, _SV3D_KEYS, "video frames")
    views, frames = len(rows), len(columns)
    for key in ("azimuth", "elevation"):
        angles = columns[0]["positive"][0][1].get(key)
        if isinstance(angles, (list, tuple)) and len(angles) != views:
            raise InverseDVSError(
                f"{node}: multiview_positive is for {len(angles)} views ({_SV3D_NODE}'s video_frames) but the "
                f"reference orbit in video_positive has {views} images; set video_frames to {views}, or give "
                f"{_SVD_NODE} the whole orbit ({len(angles)} images) as init_image."
            )
    row_latent = rows[0]["positive"][0][1]["concat_latent_image"].shape[1:]
    column_latent = columns[0]["positive"][0][1]["concat_latent_image"].shape[1:]
    if tuple(row_latent) != tuple(column_latent):
        raise InverseDVSError(
            f"{node}: the orbit was encoded at {row_latent[2] * 8}x{row_latent[1] * 8} ({_SVD_NODE}) but the video "
            f"at {column_latent[2] * 8}x{column_latent[1] * 8} ({_SV3D_NODE}); give both nodes the same width and "
            "height (576x576 for SV3D)."
        )
    if frames * views > MAX_MATRIX_IMAGES:
        raise InverseDVSError(f"{node}: a {views} x {frames} matrix is more than {MAX_MATRIX_IMAGES} images; use fewer "
                              "views or frames.")
    return rows, columns, tuple(int(n) for n in row_latent)


class Diffusion2Sample:
    """Jointly denoise the V views × F frames matrix: rows by the video model, columns by SV3D, blended by s."""

    DISPLAY_NAME = "Sample (Diffusion², SVD x SV3D)"
    CATEGORY = CATEGORY
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT", "IMAGE", "IMAGE", "INT")
    RETURN_NAMES = ("matrix", "images", "grid", "views")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "video_model": ("MODEL", {"tooltip": "Stable Video Diffusion img2vid (svd / svd_xt) from core's Image "
                                                     "Only Checkpoint Loader; patches such as Video Linear CFG "
                                                     "Guidance apply to every row."}),
                "video_positive": ("CONDITIONING", {
                    "tooltip": "positive of core's SVD_img2vid_Conditioning with init_image = the reference time's "
                               "orbit (V images): image v conditions row v (view v's video)."}),
                "video_negative": ("CONDITIONING", {"tooltip": "negative of the same SVD_img2vid_Conditioning."}),
                "multiview_model": ("MODEL", {"tooltip": "SV3D (sv3d_p or sv3d_u) from core's Image Only Checkpoint "
                                                         "Loader; it denoises every column (one time's V views)."}),
                "multiview_positive": ("CONDITIONING", {
                    "tooltip": "positive of core's SV3D_Conditioning with init_image = the reference view's video (F "
                               "frames) and video_frames = V: frame f conditions column f."}),
                "multiview_negative": ("CONDITIONING", {"tooltip": "negative of the same SV3D_Conditioning."}),
                "vae": ("VAE", {"tooltip": "The checkpoint's VAE (SVD and SV3D share it); decodes each view's video."}),
                "steps": ("INT", {"default": composition.DEFAULT_STEPS, "min": 1, "max": MAX_STEPS,
                                  "tooltip": "Euler steps on core's Karras σ grid (50 = the paper's). Each costs V "
                                             "video-model calls of F frames and F SV3D calls of V views."}),
                "video_cfg": ("FLOAT", {"default": DEFAULT_CFG, "min": 0.0, "max": MAX_CFG, "step": 0.1,
                                        "tooltip": "Classifier-free guidance of the video model (1.0 = no negative "
                                                   "pass)."}),
                "multiview_cfg": ("FLOAT", {"default": DEFAULT_CFG, "min": 0.0, "max": MAX_CFG, "step": 0.1,
                                            "tooltip": "Classifier-free guidance of SV3D (1.0 = no negative pass)."}),
                "s": ("FLOAT", {"default": composition.DEFAULT_S, "min": 0.0, "max": 1.0, "step": 0.05,
                                "tooltip": "Weight of the video model's estimate (1 - s goes to SV3D's); 0.5 = the "
                                           "paper's. 1.0 samples each view's video alone, 0.0 each time's orbit "
                                           "alone."}),
                "vrs_steps": ("INT", {"default": composition.DEFAULT_VRS_STEPS, "min": 0, "max": MAX_STEPS,
                                      "tooltip": "Variance-reducing sampling: the first steps are taken twice, re-noised "
                                                 "in between, to reconcile the two models (5 = the paper's; 0 = off)."}),
                "seed": ("INT", {"default": DEFAULT_SEED, "min": 0, "max": MAX_SEED,
                                 "tooltip": "Seed of the start noise (core's, for a batch of V x F latents) and of the "
                                            "VRS re-noising."}),
            }
        }

    def sample(self, video_model, video_positive, video_negative, multiview_model, multiview_positive,
               multiview_negative, vae, steps, video_cfg, multiview_cfg, s, vrs_steps, seed):
        node = self.DISPLAY_NAME
        steps = _validate.check_whole_number(steps, 1, MAX_STEPS, "steps", node)
        vrs_steps = _validate.check_whole_number(vrs_steps, 0, steps, "vrs_steps", node,
                                                 "It counts the first steps that are repeated.")
        s = _validate.check_range(s, 0.0, 1.0, "s", node)
        video_cfg = _validate.check_range(video_cfg, 0.0, MAX_CFG, "video_cfg", node)
        multiview_cfg = _validate.check_range(multiview_cfg, 0.0, MAX_CFG, "multiview_cfg", node)
        seed = _validate.check_whole_number(seed, 0, MAX_SEED, "seed", node)
        rows, columns, shape = matrix_conditions(video_positive, video_negative, multiview_positive,
                                                 multiview_negative, node)
        svd = _backend()
        svd.check_models(video_model, multiview_model, node)
        channels = svd.latent_channels(video_model)
        if shape[0] != channels:
            raise InverseDVSError(f"{node}: the condition latents have {shape[0]} channels but the models' have "
                                  f"{channels}; encode the images with the checkpoint's VAE.")
        samples = svd.sample_matrix(video_model, rows, video_cfg, multiview_model, columns, multiview_cfg, shape,
                                    steps, s, vrs_steps, seed)
        _validate.check_finite_result(samples, "the matrix", node, "Lower the cfg values or check the conditionings.")
        views = len(rows)
        images = svd.decode_views(vae, samples, views)
        sheet = composition.grid(images, views, GRID_MAX_SIDE)
        latent = {"samples": samples, MATRIX_KEY: {"views": views, "frames": len(columns)}}
        return (latent, images, sheet, views)


class Diffusion2Pick:
    """One view's video or one time's orbit out of the matrix's images (view-major)."""

    DISPLAY_NAME = "Pick (Diffusion²)"
    CATEGORY = CATEGORY
    FUNCTION = "pick"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The images output of Sample (Diffusion², SVD x SV3D), or core's VAE Decode of its "
                                                "matrix (V x F images, view-major)."}),
                "views": ("INT", {"default": DEFAULT_VIEWS, "min": 1, "max": 4096,
                                  "tooltip": "V, the matrix's views: link Sample (Diffusion², SVD x SV3D)'s views output."}),
                "along": (ALONG, {"default": ALONG[0],
                                  "tooltip": "view: one view's video (F frames, for Save Video). time: the orbit at "
                                             "one frame (V views)."}),
                "index": ("INT", {"default": 0, "min": 0, "max": 4095,
                                  "tooltip": "Which view (0 = the reference view) or which frame (0 = the reference "
                                             "time)."}),
            }
        }

    def pick(self, images, views, along, index):
        node = self.DISPLAY_NAME
        images = _validate.check_image(images, "images", node)
        views = _validate.check_whole_number(views, 1, 4096, "views", node)
        if along not in ALONG:
            raise InverseDVSError(f"{node}: along must be one of {', '.join(ALONG)}.")
        if images.shape[0] % views:
            raise InverseDVSError(f"{node}: {images.shape[0]} images are not {views} views of equal length; set views "
                                  "to the matrix's V (Sample (Diffusion², SVD x SV3D)'s views output).")
        count = views if along == "view" else images.shape[0] // views
        index = _validate.check_whole_number(index, 0, count - 1, "index", node,
                                             f"The matrix has {count} {'views' if along == 'view' else 'frames'}.")
        return (composition.pick(images, views, along, index).contiguous(),)


NODES = (Diffusion2Sample, Diffusion2Pick)
