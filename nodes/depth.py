"""Depth Estimate node: Depth Anything V2 (transformers) over a whole clip, temporally aligned.

Output: a disparity-like IMAGE (white = near, 0..1 over the clip) like other packs' depth nodes,
so either can feed Forward Warp.
"""

from __future__ import annotations

import glob
import logging
import os

import torch
import torch.nn.functional as F

from ..errors import InverseDVSError, decode_json
from ..warp import depth as dep
from . import _host, _validate
from ._choices import Choices

DEPTH_KIND = "inversedvs_depth"
DEFAULT_FOLDER = "Depth-Anything-V2-Small-hf"
PATCH = 14
DEFAULT_INPUT_SIZE = 518
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_BATCH = 8
ALIGNMENTS = Choices.for_names(dep.ALIGN_MODES)  # running, first_frame, off
MAX_BATCH = 256
MAX_INPUT_SIZE = 2044
# transformers' model_type of Depth Anything (V1 and V2); its "relative" variants predict disparity
# (white = near), which is what this node promises, the "metric" ones predict distances.
DEPTH_MODEL_TYPE = "depth_anything"
RELATIVE_ESTIMATION = "relative"
MAX_QUOTED_ERROR = 200  # characters of a library's own message quoted in ours
LOG = logging.getLogger(__name__)


def _folders() -> list[str]:
    return _host.model_dirs(DEPTH_KIND) or [DEFAULT_FOLDER]


def check_depth_folder(name: str, node: str) -> str:
    """The absolute folder of depth model ``name`` with config.json and safetensors weights, or a clear error."""
    path = _host.resolve_model_path(DEPTH_KIND, name)
    searched = ", ".join(_host.model_search_paths(DEPTH_KIND))
    if path is None or not os.path.isdir(path):
        raise InverseDVSError(
            f"{node}: depth model folder '{name}' was not found; looked in {searched}. Put a Depth Anything V2 "
            "folder in transformers layout there (config.json + model.safetensors, e.g. "
            "depth-anything/Depth-Anything-V2-Small-hf)."
        )
    missing = []
    if not os.path.isfile(os.path.join(path, "config.json")):
        missing.append("config.json")
    weights = glob.glob(os.path.join(path, "*.safetensors"))
    if not weights:
        missing.append("model.safetensors")
    if missing:
        raise InverseDVSError(f"{node}: the depth model folder {path} lacks {' and '.join(missing)} "
                              "(only safetensors weights are loaded).")
    for w in weights:
        _validate.check_safetensors_file(w, "depth weights", node)
    check_depth_config(_read_json(os.path.join(path, "config.json"), node), path, node)
    return path


def _read_json(path: str, node: str) -> dict:
    """The JSON object in ``path``, or a clear error naming the file."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as err:
        raise InverseDVSError(f"{node}: {path} could not be read ({str(err)[:MAX_QUOTED_ERROR]}). The model "
                              "folder is damaged; download it again.") from None
    data = decode_json(raw, f"{node}: {path}", "The model folder is damaged; download it again.")
    if not isinstance(data, dict):
        raise InverseDVSError(f"{node}: {path} holds no JSON object; the model folder is damaged, download it again.")
    return data


def check_depth_config(config: dict, path: str, node: str) -> None:
    """A relative Depth Anything config (model_type and estimation type), else a clear error."""
    model_type = config.get("model_type")
    if model_type != DEPTH_MODEL_TYPE:
        kind = model_type or config.get("_class_name") or (config.get("architectures") or ["unknown"])[0]
        raise InverseDVSError(
            f"{node}: {path} holds a '{kind}' model, not Depth Anything. Pick a Depth Anything V2 folder "
            "(e.g. depth-anything/Depth-Anything-V2-Small-hf) under models/inversedvs_depth/."
        )
    estimation = config.get("depth_estimation_type", RELATIVE_ESTIMATION)
    if estimation != RELATIVE_ESTIMATION:
        raise InverseDVSError(
            f"{node}: {path} is a {estimation} Depth Anything (it predicts distances, not white = near); use a "
            "relative one such as Depth-Anything-V2-Small-hf."
        )


def normalization(folder: str, node: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of the folder's preprocessor_config.json, ImageNet's when it has none."""
    path = os.path.join(folder, "preprocessor_config.json")
    if not os.path.isfile(path):
        return IMAGENET_MEAN, IMAGENET_STD
    cfg = _read_json(path, node)
    mean, std = cfg.get("image_mean", IMAGENET_MEAN), cfg.get("image_std", IMAGENET_STD)

    def three_numbers(values, positive):
        return (isinstance(values, (list, tuple)) and len(values) == 3
                and all(isinstance(v, (int, float)) and (v > 0 if positive else True) for v in values))
    if not (three_numbers(mean, False) and three_numbers(std, True)):
        raise InverseDVSError(f"{node}: {path} must give image_mean and image_std as 3 numbers each (std > 0); "
                              "the folder is damaged, download it again.")
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def load_depth_network(folder: str, device, dtype, node: str):
    """The Depth Anything network of ``folder`` on ``device`` in eval mode, or a clear error."""
    from transformers import AutoModelForDepthEstimation

    try:
        net = AutoModelForDepthEstimation.from_pretrained(folder, local_files_only=True, use_safetensors=True,
                                                          dtype=dtype)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as err:
        LOG.warning("%s: loading %s failed: %s", node, folder, err)
        raise InverseDVSError(f"{node}: the depth model in {folder} could not be loaded: its weights do not fit its "
                              "config.json, or a file is incomplete (the log has the details). Download the folder "
                              "again.") from None
    return net.to(device).eval()


def network_size(height: int, width: int, input_size: int) -> tuple[int, int]:
    """Input size for the network: shorter side ≈ input_size, both sides multiples of the 14-px patch."""
    scale = input_size / min(height, width)
    return (max(PATCH, round(height * scale / PATCH) * PATCH), max(PATCH, round(width * scale / PATCH) * PATCH))


def estimate_disparity(model, images: torch.Tensor, input_size: int, batch: int, mean, std, device, dtype,
                       progress=None) -> torch.Tensor:
    """Raw relative disparity [F, H, W] (float32, CPU) of IMAGE [F, H, W, 3], ``batch`` frames per pass."""
    f, h, w, _ = images.shape
    size = network_size(h, w, input_size)
    mean_t = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=device).view(1, 3, 1, 1)
    out = torch.empty(f, h, w)
    with torch.inference_mode():
        for start in range(0, f, batch):
            _host.throw_if_interrupted()
            x = images[start:start + batch].to(device).permute(0, 3, 1, 2).float()
            x = F.interpolate(x, size=size, mode="bicubic", align_corners=False).clamp_(0, 1)
            x = ((x - mean_t) / std_t).to(dtype)
            pred = model(pixel_values=x).predicted_depth.float().unsqueeze(1)
            out[start:start + batch] = F.interpolate(pred, size=(h, w), mode="bilinear", align_corners=False)[:, 0].cpu()
            if progress is not None:
                progress.update(x.shape[0])
    return out


class DepthEstimate:
    """Per-frame Depth Anything V2 depth of a video, aligned over time so it does not flicker."""

    DISPLAY_NAME = "Depth Estimate (InverseDVS)"
    CATEGORY = "InverseDVS/geometry"
    FUNCTION = "estimate"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("depth",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The video frames [frames, height, width, 3]."}),
                "model": (_folders(), {"tooltip": "A Depth Anything V2 folder (transformers layout: config.json + "
                                                  "model.safetensors) under models/inversedvs_depth/."}),
                "temporal_alignment": (ALIGNMENTS, {
                    "default": ALIGNMENTS[0],
                    "tooltip": "Fit every frame's scale and shift to a reference so the depth does not flicker: "
                               "running = an average of the frames before (follows slow changes), first_frame = "
                               "frame 0, off = raw per-frame output."}),
                "input_size": ("INT", {"default": DEFAULT_INPUT_SIZE, "min": PATCH, "max": MAX_INPUT_SIZE, "step": PATCH,
                                       "tooltip": "Shorter side of the network input in pixels (multiple of 14); "
                                                  "518 is what Depth Anything V2 was trained at."}),
                "batch_size": ("INT", {"default": DEFAULT_BATCH, "min": 1, "max": MAX_BATCH,
                                       "tooltip": "Frames per network pass (lower it if memory runs out)."}),
            },
        }

    def estimate(self, images, model, temporal_alignment, input_size, batch_size):
        node = self.DISPLAY_NAME
        images = _validate.check_image(images, "images", node)
        if temporal_alignment not in ALIGNMENTS:
            raise InverseDVSError(f"{node}: temporal_alignment '{temporal_alignment}' is unknown; use one of "
                                  f"{', '.join(ALIGNMENTS)}.")
        input_size = _validate.check_whole_number(input_size, PATCH, MAX_INPUT_SIZE, "input_size", node,
                                                  hint=f"{DEFAULT_INPUT_SIZE} is what Depth Anything V2 was trained at.")
        batch_size = _validate.check_whole_number(batch_size, 1, MAX_BATCH, "batch_size", node,
                                                  hint="It is how many frames go through the network at once.")
        folder = check_depth_folder(model, node)
        mean, std = normalization(folder, node)
        device = _host.torch_device()
        dtype = torch.float16 if device.type == "cuda" else torch.float32
        net = load_depth_network(folder, device, dtype, node)
        try:
            with _validate.out_of_memory_as_error(node, "estimating depth", "a lower batch_size on this node",
                                                  device=device):
                raw = estimate_disparity(net, images, input_size, batch_size, mean, std, device, dtype,
                                         _host.Progress(images.shape[0]))
        finally:
            del net
            if device.type == "cuda":
                torch.cuda.empty_cache()
        aligned = dep.align_temporal(raw, ALIGNMENTS.library_name(temporal_alignment))
        return (dep.map_to_image(dep.normalize_clip(aligned)),)


NODES = (DepthEstimate,)
