"""Load Video node: a video file from ComfyUI's input folder, decoded with PyAV, resized to the
model's size, with frame selection like ComfyUI's own video loaders."""

from __future__ import annotations

import hashlib
import itertools
import math
import os
from dataclasses import dataclass

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
MAX_FRAMES, MAX_SKIP, MAX_NTH = 100_000, 1_000_000, 1000
SIZE_STEP = 8
DEFAULT_FPS = 8.0
RESIZE_CHUNK = 16  # frames resized at once (bounds the float copy of full-size frames)
HASH_CHUNK = 1 << 20
# Frames the output buffer starts with when the container does not say how many it holds; it
# doubles (memory checked each time) as frames arrive.
UNKNOWN_COUNT_START = 64
# Display matrices are 16.16 fixed point; an entry this small next to the others counts as 0
# (about 1°, as FFmpeg's own autorotate allows).
RIGHT_ANGLE_TOLERANCE = 0.02


def list_videos() -> list[str]:
    """Names (sorted) of the video files in ComfyUI's input folder that Load Video reads."""
    return _host.list_input_files(_is_video)


def _is_video(name: str) -> bool:
    return name.lower().endswith(VIDEO_EXTENSIONS)


def video_path(name: str, node: str) -> str:
    """Absolute path of input video ``name``: a listed name (any characters the file system allows,
    ':' and '\\' included) as is, otherwise a clear error — leaving the input folder or missing."""
    path = _validate.input_file(name, "video", node, "Upload it with the node's upload button or copy it there.",
                                keep=_is_video)
    if not _is_video(path):
        raise InverseDVSError(f"{node}: '{name}' is not a video file ({', '.join(VIDEO_EXTENSIONS)}).")
    return path


# ----------------------------------------------------------------------------- display geometry


@dataclass(frozen=True)
class Orientation:
    """How stored pixels become the picture to show: transpose (swap rows and columns), then mirror
    the rows (upside down) and/or the columns (left-right)."""

    transpose: bool = False
    flip_rows: bool = False
    flip_cols: bool = False


UPRIGHT = Orientation()


def orientation_from_matrix(matrix, name: str, node: str) -> Orientation:
    """The Orientation of an FFmpeg display matrix (9 int32, 16.16 fixed point, row-major [a b u; c d v;
    x y w]: a displayed pixel is x' = a·x + c·y, y' = b·x + d·y). Only right angles and mirrors exist
    in practice (phones write 0, 90, 180, 270); another angle is a clear error."""
    a, b, c, d = (float(matrix[i]) for i in (0, 1, 3, 4))
    straight, crossed = max(abs(a), abs(d)), max(abs(b), abs(c))
    if crossed <= RIGHT_ANGLE_TOLERANCE * straight:
        return Orientation(False, flip_rows=d < 0, flip_cols=a < 0)
    if straight <= RIGHT_ANGLE_TOLERANCE * crossed:
        return Orientation(True, flip_rows=b < 0, flip_cols=c < 0)
    counter_clockwise = -math.degrees(math.atan2(b, a))
    turn = "counter-clockwise" if counter_clockwise > 0 else "clockwise"
    raise InverseDVSError(f"{node}: '{name}' asks to be shown turned {abs(counter_clockwise):.0f}° {turn}; only "
                          "quarter turns are supported. Re-export the video upright.")


def frame_orientation(frame, name: str, node: str) -> Orientation:
    """The Orientation a decoded PyAV frame carries (its display matrix side data), UPRIGHT without one."""
    import av
    import numpy as np

    side = frame.side_data.get(av.sidedata.sidedata.Type.DISPLAYMATRIX)
    if side is None:
        return UPRIGHT
    return orientation_from_matrix(np.frombuffer(side, dtype=np.int32), name, node)


def orient(pixels: torch.Tensor, orientation: Orientation) -> torch.Tensor:
    """Stored pixels [h, w, C] → displayed [h, w, C] or [w, h, C] (a view or one copy)."""
    if orientation.transpose:
        pixels = pixels.transpose(0, 1)
    dims = [i for i, on in ((0, orientation.flip_rows), (1, orientation.flip_cols)) if on]
    return pixels.flip(dims) if dims else pixels


def sample_aspect(stream) -> float:
    """Width of one stored pixel over its height: the container's value, else the codec's, else 1."""
    for ratio in (stream.sample_aspect_ratio, stream.codec_context.sample_aspect_ratio):
        if ratio:
            return float(ratio)
    return 1.0


def display_size(height: int, width: int, aspect: float, orientation: Orientation) -> tuple[int, int]:
    """(H, W) of the picture shown for stored height × width pixels of aspect ``aspect`` (the
    width is stretched, as players do), then turned by ``orientation``."""
    shown_w = max(1, round(width * aspect))
    return (shown_w, height) if orientation.transpose else (height, shown_w)


def fit_size(src_h: int, src_w: int, dst_h: int, dst_w: int, mode: str) -> tuple[int, int]:
    """Size (h, w) to scale a src_h×src_w frame to before cropping/padding to dst_h×dst_w under ``mode``."""
    if mode == "stretch":
        return dst_h, dst_w
    scale = max(dst_h / src_h, dst_w / src_w) if mode == "crop_to_fill" else min(dst_h / src_h, dst_w / src_w)
    return max(1, round(src_h * scale)), max(1, round(src_w * scale))


def resize_frames(frames: torch.Tensor, height: int, width: int, mode: str,
                  shown: tuple[int, int] | None = None) -> torch.Tensor:
    """uint8 frames [F, h, w, 3] → float IMAGE [F, height, width, 3] in 0..1 under ``mode`` (one of
    RESIZE_MODES: centre crop to fill, letterbox with black bars, or stretch). ``shown``: the (H, W)
    the frames are shown at when their pixels are not square (default: their own size)."""
    src_h, src_w = frames.shape[1:3]
    scaled_h, scaled_w = fit_size(*(shown or (src_h, src_w)), height, width, mode)
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


# ----------------------------------------------------------------------------- decoding


def frames_in_container(stream, container) -> int:
    """Frames the container says the stream holds: its frame count, else duration × rate; 0 = unknown."""
    if stream.frames:
        return int(stream.frames)
    rate = stream.average_rate or stream.guessed_rate
    if stream.duration and stream.time_base and rate:
        return max(1, round(float(stream.duration * stream.time_base * rate)))
    if container.duration and rate:
        return max(1, round(container.duration / 1_000_000 * float(rate)))
    return 0


def selected_count(total: int, skip_first: int, every_nth: int, cap: int) -> int:
    """Frames kept of ``total``: skip ``skip_first``, keep every ``every_nth``, at most ``cap`` (0 = all)."""
    kept = max(0, -(-(total - skip_first) // every_nth))
    return min(kept, cap) if cap else kept


def _open(path: str, node: str):
    import av

    try:
        return av.open(path)
    except (av.error.FFmpegError, OSError, UnicodeError) as err:
        raise InverseDVSError(f"{node}: '{os.path.basename(path)}' could not be opened as a video ({err}). The "
                              "file may be corrupt, truncated or not a video; re-export it as mp4 (H.264).") from None


def _grown(buffer: torch.Tensor, node: str) -> torch.Tensor:
    """``buffer`` [n, H, W, 3] copied into one twice as long (refused first when it cannot fit)."""
    n, h, w, _ = buffer.shape
    _validate.check_video_memory(3 * n, h, w, node)  # the old and the new buffer, for a moment
    grown = torch.empty(2 * n, h, w, 3)
    grown[:n] = buffer
    return grown


def decode_video(path: str, skip_first: int, every_nth: int, cap: int, height: int, width: int, mode: str,
                 node: str) -> tuple[torch.Tensor, float]:
    """The selected frames of ``path`` as a float IMAGE [F, height, width, 3] (0 = the first frame's
    shown size) and their fps. Frames are shown as players show them (rotation, mirroring and
    non-square pixels applied) and resized one by one as they are decoded, so only the output is
    held; a stream whose size changes mid-way is scaled frame by frame to the first frame's output
    size. Selection: skip ``skip_first``, then keep every ``every_nth``, at most ``cap`` (0 = all),
    counting frames in presentation order; fps is the stream's average rate over ``every_nth``.
    Memory is checked from the container's frame count before any frame but the first (which gives
    the shown size) is decoded."""
    import av

    name = os.path.basename(path)
    with _open(path, node) as container:
        if not container.streams.video:
            raise InverseDVSError(f"{node}: '{name}' has no video stream (audio only?); pick a video file.")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate or stream.guessed_rate or DEFAULT_FPS)
        header_frames = int(stream.frames or 0)
        demuxed = 0

        def decoded():
            nonlocal demuxed
            for packet in container.demux(stream):
                demuxed += packet.size > 0  # pre-roll packets an edit list hides are counted too
                yield from packet.decode()

        frames, seen, kept = decoded(), 0, 0
        try:
            first = next(frames, None)
            if first is None:
                raise InverseDVSError(f"{node}: '{name}' contains no decodable video frames.")
            shown = display_size(first.height, first.width, sample_aspect(stream), frame_orientation(first, name, node))
            out_h, out_w = height or shown[0], width or shown[1]
            expected = selected_count(frames_in_container(stream, container), skip_first, every_nth, cap)
            expected = expected or cap or UNKNOWN_COUNT_START
            _validate.check_video_memory(expected, out_h, out_w, node)
            buffer = torch.empty(expected, out_h, out_w, 3)
            for frame in itertools.chain((first,), frames):
                _host.throw_if_interrupted()
                index, seen = seen, seen + 1
                if index < skip_first or (index - skip_first) % every_nth:
                    continue
                if kept == buffer.shape[0]:  # the container under-counted its frames
                    buffer = _grown(buffer, node)
                buffer[kept] = frame_image(frame, stream, out_h, out_w, mode, name, node)
                kept += 1
                if cap and kept >= cap:
                    break
        except av.error.FFmpegError as err:
            raise InverseDVSError(f"{node}: '{name}' is corrupt or truncated: decoding stopped after {seen} "
                                  f"frames ({err}). Re-export the video.") from None
    complete = cap and kept >= cap
    if header_frames and not complete and demuxed < header_frames:
        raise InverseDVSError(
            f"{node}: '{name}' is truncated: its header lists {header_frames} frames but only {demuxed} are in "
            "the file. Re-export or re-download the video."
        )
    if not kept:
        raise InverseDVSError(
            f"{node}: no frames left from '{name}' ({seen} decoded) after skip_first_frames = {skip_first} and "
            f"select_every_nth = {every_nth}. Lower skip_first_frames."
        )
    if 2 * kept < buffer.shape[0]:  # the container over-counted: give the unused frames back
        return buffer[:kept].clone(), fps / every_nth
    return buffer[:kept], fps / every_nth


def frame_image(frame, stream, height: int, width: int, mode: str, name: str, node: str) -> torch.Tensor:
    """One decoded PyAV frame → float [height, width, 3] in 0..1, shown as players show it, resized by ``mode``."""
    orientation = frame_orientation(frame, name, node)
    pixels = orient(torch.from_numpy(frame.to_ndarray(format="rgb24")), orientation)
    shown = display_size(frame.height, frame.width, sample_aspect(stream), orientation)
    return resize_frames(pixels[None], height, width, mode, shown)[0]


class LoadVideo:
    """Load a video from ComfyUI's input folder as an IMAGE batch, sized for the model; every selected frame is
    kept (VAE Encode Video pads to the model's 4k+1 frames and VAE Decode Video drops the padding again).

    Workflows saved by earlier versions carry a ``trim_to_4k_plus_1`` value after ``resize``; ComfyUI passes a node
    only the inputs it declares, so they load and run, keeping every frame."""

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
                                          "tooltip": "A video file in ComfyUI's input folder (upload one with the button). "
                                                     "Frames are shown as players show them: phone rotation and "
                                                     "non-square pixels are applied; a variable-frame-rate clip keeps "
                                                     "every frame, in order, at its average rate."}),
                "frame_load_cap": ("INT", {"default": DEFAULT_FRAMES, "min": 0, "max": MAX_FRAMES,
                                           "tooltip": "At most this many frames are loaded (0 = all). CogVideoX uses 49."}),
                "skip_first_frames": ("INT", {"default": 0, "min": 0, "max": MAX_SKIP,
                                              "tooltip": "Frames skipped at the start of the file."}),
                "select_every_nth": ("INT", {"default": 1, "min": 1, "max": MAX_NTH,
                                             "tooltip": "Keep one frame in n (2 = every other frame; fps is divided by n)."}),
                "width": ("INT", {"default": DEFAULT_WIDTH, "min": 0, "max": MAX_SIZE, "step": SIZE_STEP,
                                  "tooltip": "Output width in pixels (0 = the video's own size, as shown: upright, at its "
                                             "display aspect; a clip whose size changes mid-way is scaled to its "
                                             "first frame's). CogVideoX: 720."}),
                "height": ("INT", {"default": DEFAULT_HEIGHT, "min": 0, "max": MAX_SIZE, "step": SIZE_STEP,
                                   "tooltip": "Output height in pixels (0 = the video's own size). CogVideoX: 480."}),
                "resize": (RESIZE_MODES, {"default": RESIZE_MODES[0],
                                                "tooltip": "crop_to_fill: scale to cover the size and cut the overflow "
                                                           "(centred). letterbox: fit inside, pad with black. stretch: "
                                                           "scale each axis separately."}),
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
    def VALIDATE_INPUTS(cls, video=None):
        """The file check, in place of ComfyUI's choice check for ``video`` only (ComfyUI skips its own
        checks exactly for the inputs named here, so every other input keeps its range/choice check).
        A ``video`` wired from another node is not known yet (ComfyUI passes none): checked at run time."""
        if video is None:
            return True
        try:
            video_path(video, cls.DISPLAY_NAME)
        except InverseDVSError as err:
            return str(err)
        return True

    def load(self, video, frame_load_cap, skip_first_frames, select_every_nth, width, height, resize):
        node = self.DISPLAY_NAME
        if resize not in RESIZE_MODES:
            raise InverseDVSError(f"{node}: resize '{resize}' is unknown; use one of {', '.join(RESIZE_MODES)}.")
        cap = _validate.check_whole_number(frame_load_cap, 0, MAX_FRAMES, "frame_load_cap", node)
        skip = _validate.check_whole_number(skip_first_frames, 0, MAX_SKIP, "skip_first_frames", node)
        nth = _validate.check_whole_number(select_every_nth, 1, MAX_NTH, "select_every_nth", node)
        width = _validate.check_whole_number(width, 0, MAX_SIZE, "width", node)
        height = _validate.check_whole_number(height, 0, MAX_SIZE, "height", node)
        path = video_path(video, node)
        images, fps = decode_video(path, skip, nth, cap, height, width, resize, node)
        return (images, fps, int(images.shape[0]))


NODES = (LoadVideo,)
