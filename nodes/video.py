"""Load Video node: a video file from ComfyUI's input folder, decoded with PyAV, resized to the
model's size, with frame selection like ComfyUI's own video loaders."""

from __future__ import annotations

import hashlib
import os

import torch
import torch.nn.functional as F

from ..errors import InverseDVSError
from . import _host, _validate
from ._choices import Choices

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".gif")
RESIZE_MODES = Choices(("crop_to_fill", "letterbox", "stretch"), renamed={"crop to fill": "crop_to_fill"})
DEFAULT_FRAMES = 49
DEFAULT_WIDTH, DEFAULT_HEIGHT = 720, 480
MAX_SIZE = 8192
SIZE_STEP = 8
DEFAULT_FPS = 8.0
RESIZE_CHUNK = 16  # frames resized at once (bounds the float copy of full-size frames)
HASH_CHUNK = 1 << 20


def list_videos() -> list[str]:
    """Video files in ComfyUI's input folder (sorted, relative names; sub-folders included)."""
    return _host.list_input_files(lambda name: name.endswith(VIDEO_EXTENSIONS))


def video_path(name: str, node: str) -> str:
    """Absolute path of input video ``name``, refusing names that leave the input folder or do not exist."""
    return _validate.input_file(name, "video", node, "Upload it with the node's upload button or copy it there.")


def fit_size(src_h: int, src_w: int, dst_h: int, dst_w: int, mode: str) -> tuple[int, int]:
    """Size (h, w) to scale a src_h×src_w frame to before cropping/padding to dst_h×dst_w under ``mode``."""
    if mode == "stretch":
        return dst_h, dst_w
    scale = max(dst_h / src_h, dst_w / src_w) if mode == "crop_to_fill" else min(dst_h / src_h, dst_w / src_w)
    return max(1, round(src_h * scale)), max(1, round(src_w * scale))


def resize_frames(frames: torch.Tensor, height: int, width: int, mode: str) -> torch.Tensor:
    """uint8 frames [F, h, w, 3] → float IMAGE [F, height, width, 3] in 0..1 under ``mode`` (one of
    RESIZE_MODES: centre crop to fill, letterbox with black bars, or stretch)."""
    src_h, src_w = frames.shape[1:3]
    scaled_h, scaled_w = fit_size(src_h, src_w, height, width, mode)
    out = torch.zeros(frames.shape[0], height, width, 3)
    for start in range(0, frames.shape[0], RESIZE_CHUNK):
        chunk = frames[start:start + RESIZE_CHUNK].permute(0, 3, 1, 2).float().div_(255.0)
        if (scaled_h, scaled_w) != (src_h, src_w):
            chunk = F.interpolate(chunk, size=(scaled_h, scaled_w), mode="bilinear", align_corners=False,
                                  antialias=True).clamp_(0, 1)
        chunk = chunk.permute(0, 2, 3, 1)
        top, left = (scaled_h - height) // 2, (scaled_w - width) // 2
        if mode == "letterbox":
            out[start:start + chunk.shape[0], -top:-top + scaled_h, -left:-left + scaled_w] = chunk
        else:
            out[start:start + chunk.shape[0]] = chunk[:, top:top + height, left:left + width]
    return out


def decode_frames(path: str, skip_first: int, every_nth: int, cap: int, node: str):
    """Decode the selected frames of ``path`` with PyAV: skip ``skip_first``, then keep every
    ``every_nth``, at most ``cap`` (0 = all). Returns (uint8 [F, h, w, 3], fps, frames in the file's header)."""
    import av

    name = os.path.basename(path)
    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise InverseDVSError(f"{node}: '{name}' could not be opened as a video ({err}). The file may be "
                              "corrupt, truncated or not a video; re-export it as mp4 (H.264).") from None
    with container:
        if not container.streams.video:
            raise InverseDVSError(f"{node}: '{name}' has no video stream (audio only?); pick a video file.")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or DEFAULT_FPS)
        header_frames = int(stream.frames or 0)
        kept, seen = [], 0
        try:
            for frame in container.decode(stream):
                _host.throw_if_interrupted()
                index, seen = seen, seen + 1
                if index < skip_first or (index - skip_first) % every_nth:
                    continue
                kept.append(torch.from_numpy(frame.to_ndarray(format="rgb24")))
                if cap and len(kept) >= cap:
                    break
        except av.error.FFmpegError as err:
            raise InverseDVSError(f"{node}: '{name}' is corrupt or truncated: decoding stopped after {seen} "
                                  f"frames ({err}). Re-export the video.") from None
    complete = cap and len(kept) >= cap
    if header_frames and not complete and seen < header_frames:
        raise InverseDVSError(
            f"{node}: '{name}' is truncated: its header lists {header_frames} frames but only {seen} could be "
            "decoded. Re-export or re-download the video."
        )
    if not kept:
        raise InverseDVSError(
            f"{node}: no frames left from '{name}' ({seen} decoded) after skip_first_frames = {skip_first} and "
            f"select_every_nth = {every_nth}. Lower skip_first_frames."
            if seen else f"{node}: '{name}' contains no decodable video frames."
        )
    return torch.stack(kept), fps / every_nth, header_frames


def trim_4k_plus_1(count: int) -> int:
    """The largest 4k+1 frame count ≤ count (count ≥ 1)."""
    return (count - 1) // _validate.TEMPORAL_STRIDE * _validate.TEMPORAL_STRIDE + 1


class LoadVideo:
    """Load a video from ComfyUI's input folder as an IMAGE batch, sized and trimmed for the model."""

    DISPLAY_NAME = "Load Video (InverseDVS)"
    CATEGORY = "InverseDVS/io"
    FUNCTION = "load"
    RETURN_TYPES = ("IMAGE", "FLOAT", "INT")
    RETURN_NAMES = ("images", "fps", "frame_count")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "video": (list_videos(), {"video_upload": True,
                                          "tooltip": "A video file in ComfyUI's input folder (upload one with the button)."}),
                "frame_load_cap": ("INT", {"default": DEFAULT_FRAMES, "min": 0, "max": 100000,
                                           "tooltip": "At most this many frames are loaded (0 = all). CogVideoX uses 49."}),
                "skip_first_frames": ("INT", {"default": 0, "min": 0, "max": 1000000,
                                              "tooltip": "Frames skipped at the start of the file."}),
                "select_every_nth": ("INT", {"default": 1, "min": 1, "max": 1000,
                                             "tooltip": "Keep one frame in n (2 = every other frame; fps is divided by n)."}),
                "width": ("INT", {"default": DEFAULT_WIDTH, "min": 0, "max": MAX_SIZE, "step": SIZE_STEP,
                                  "tooltip": "Output width in pixels (0 = the video's own size). CogVideoX: 720."}),
                "height": ("INT", {"default": DEFAULT_HEIGHT, "min": 0, "max": MAX_SIZE, "step": SIZE_STEP,
                                   "tooltip": "Output height in pixels (0 = the video's own size). CogVideoX: 480."}),
                "resize": (RESIZE_MODES, {"default": RESIZE_MODES[0],
                                                "tooltip": "crop_to_fill: scale to cover the size and cut the overflow "
                                                           "(centred). letterbox: fit inside, pad with black. stretch: "
                                                           "scale each axis separately."}),
                "trim_to_4k_plus_1": ("BOOLEAN", {"default": True,
                                                  "tooltip": "Drop trailing frames so the count is 4k+1 (1, 5, …, 49), "
                                                             "which the CogVideoX VAE needs."}),
            },
        }

    @classmethod
    def IS_CHANGED(cls, video, **_):
        """The file's content hash, so ComfyUI reloads when the file changes."""
        try:
            path = video_path(video, cls.DISPLAY_NAME)
        except InverseDVSError:
            return ""
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(HASH_CHUNK), b""):
                digest.update(block)
        return digest.hexdigest()

    @classmethod
    def VALIDATE_INPUTS(cls, video, **_):
        try:
            video_path(video, cls.DISPLAY_NAME)
        except InverseDVSError as err:
            return str(err)
        return True

    def load(self, video, frame_load_cap, skip_first_frames, select_every_nth, width, height, resize,
             trim_to_4k_plus_1):
        node = self.DISPLAY_NAME
        if resize not in RESIZE_MODES:
            raise InverseDVSError(f"{node}: resize '{resize}' is unknown; use one of {', '.join(RESIZE_MODES)}.")
        if frame_load_cap < 0 or skip_first_frames < 0 or select_every_nth < 1 or width < 0 or height < 0:
            raise InverseDVSError(f"{node}: frame_load_cap, skip_first_frames, width and height must be ≥ 0 and "
                                  "select_every_nth ≥ 1.")
        path = video_path(video, node)
        frames, fps, _ = decode_frames(path, int(skip_first_frames), int(select_every_nth), int(frame_load_cap), node)
        if trim_to_4k_plus_1:
            frames = frames[:trim_4k_plus_1(frames.shape[0])]
        out_h = int(height) or frames.shape[1]
        out_w = int(width) or frames.shape[2]
        _validate.check_video_memory(frames.shape[0], out_h, out_w, node, copies=2)
        images = resize_frames(frames, out_h, out_w, resize)
        return (images, fps, int(images.shape[0]))


NODES = (LoadVideo,)
