"""Output node: an IMAGE batch saved as an mp4 inside ComfyUI's output folder."""

from __future__ import annotations

import json
import os
import re
import uuid

import torch

from ..errors import InverseDVSError
from . import _host, _validate

VIDEO_EXTENSION = "mp4"
# Encoders tried in order: H.264 plays in every browser; MPEG-4 part 2 is in every FFmpeg build.
VIDEO_CODECS = ("libx264", "mpeg4")
PIXEL_FORMAT = "yuv420p"  # needs even width and height
DEFAULT_FPS = 8.0  # CogVideoX clips are 49 frames at 8 fps
DEFAULT_CRF = 19
MAX_CRF = 51
MAX_COUNTER_TRIES = 1000
DEFAULT_PREFIX = "InverseDVS/video"
DEFAULT_NAME = "video"  # the file name under a prefix that ends in '/' (a folder)
COUNTER_SUFFIX = f"_00000_.{VIDEO_EXTENSION}"  # what the counter adds to a name (5 digits, more past 99999)
NAME_MAX_BYTES = 255  # longest file name most file systems take (ext4, APFS, NTFS), when the OS does not say
PATH_MAX_BYTES = 4096
# faststart: the index goes before the frames, so browsers (ComfyUI's preview) can start playing at
# once; use_metadata_tags: free-form keys (prompt, workflow) are written, so ComfyUI restores the graph.
MP4_FLAGS = "+faststart+use_metadata_tags"


def _next_counter(folder: str, name: str) -> int:
    """One more than the largest counter of existing ``name_NNNNN_.*`` files in ``folder`` (ComfyUI's scheme)."""
    pattern = re.compile(re.escape(name) + r"_(\d+)_\.")
    taken = [0]
    if os.path.isdir(folder):
        for entry in os.listdir(folder):
            match = pattern.match(entry)
            if match:
                taken.append(int(match.group(1)))
    return max(taken) + 1


def _frame_uint8(frame: torch.Tensor, height: int, width: int):
    """One IMAGE frame [H, W, 3] in 0..1 → uint8 numpy [height, width, 3], edge-padded to the even size."""
    pixels = (frame.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).cpu()
    pad_h, pad_w = height - pixels.shape[0], width - pixels.shape[1]
    if pad_h or pad_w:
        pixels = torch.nn.functional.pad(pixels.permute(2, 0, 1)[None].float(), (0, pad_w, 0, pad_h),
                                         mode="replicate")[0].permute(1, 2, 0).to(torch.uint8)
    return pixels.numpy()


def _open_stream(container, fps: float, width: int, height: int, crf: int):
    import av
    from fractions import Fraction

    rate = Fraction(fps).limit_denominator(1001)
    for codec in VIDEO_CODECS:
        if codec in av.codecs_available:
            stream = container.add_stream(codec, rate=rate)
            break
    else:
        raise InverseDVSError("Save Video: this PyAV build has no H.264 or MPEG-4 encoder; reinstall 'av' from PyPI.")
    stream.width, stream.height, stream.pix_fmt = width, height, PIXEL_FORMAT
    if stream.codec_context.name == "libx264":
        stream.options = {"crf": str(crf)}
    return stream


def write_mp4(path: str, images: torch.Tensor, fps: float, crf: int = DEFAULT_CRF,
              metadata: dict[str, str] | None = None, progress: _host.Progress | None = None) -> None:
    """Encode IMAGE [F, H, W, 3] (0..1) to ``path`` as mp4; checks ComfyUI's interrupt before every frame."""
    import av

    height = images.shape[1] + images.shape[1] % 2
    width = images.shape[2] + images.shape[2] % 2
    with av.open(path, mode="w", format="mp4", options={"movflags": MP4_FLAGS}) as container:
        for key, value in (metadata or {}).items():
            container.metadata[key] = value
        stream = _open_stream(container, fps, width, height, crf)
        for frame in images:
            _host.throw_if_interrupted()
            video_frame = av.VideoFrame.from_ndarray(_frame_uint8(frame, height, width), format="rgb24")
            container.mux(stream.encode(video_frame))
            if progress is not None:
                progress.update(1)
        container.mux(stream.encode(None))


def _claim(temporary: str, folder: str, name: str, extension: str = VIDEO_EXTENSION, node: str = "Save Video") -> str:
    """Give ``temporary`` its final ``name_NNNNN_.extension`` name without ever replacing an existing file."""
    for _ in range(MAX_COUNTER_TRIES):
        final = os.path.join(folder, f"{name}_{_next_counter(folder, name):05}_.{extension}")
        try:
            os.link(temporary, final)  # fails if ``final`` appeared meanwhile; never overwrites
        except FileExistsError:
            continue
        except OSError:  # file systems without hard links: rename (checked first, so no overwrite in practice)
            if os.path.exists(final):
                continue
            os.rename(temporary, final)
            return final
        os.unlink(temporary)
        return final
    raise InverseDVSError(f"{node}: could not find a free file name for '{name}' in {folder}.")


def output_relative(path: str, root: str) -> str:
    """``path`` (a file ``write_new_file`` wrote) relative to the output folder ``root``, with '/' separators."""
    return os.path.relpath(path, os.path.realpath(root)).replace(os.sep, "/")


def write_new_file(filename_prefix: str, extension: str, node: str, write) -> tuple[str, str]:
    """Write ``<filename_prefix>_NNNNN_.<extension>`` inside ComfyUI's output folder with
    ``write(path)``: into a hidden temporary file first, given its final name only when complete,
    never replacing an existing file. The prefix is checked by ``save_target``. Returns (the final
    path, the output folder)."""
    root = _host.output_directory()
    folder, name = save_target(root, filename_prefix, node)
    temporary = os.path.join(folder, f".inversedvs-{os.getpid()}-{uuid.uuid4().hex[:12]}.partial")
    try:
        write(temporary)
        return _claim(temporary, folder, name, extension, node), root
    except OSError as err:
        raise InverseDVSError(f"{node}: the file could not be written to {folder} ({err.strerror or err}). "
                              "Check the free disk space and that the output folder is writable.") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


def _name_limit(folder: str, key: str, default: int) -> int:
    try:
        return int(os.pathconf(folder, key))
    except (AttributeError, OSError, ValueError):  # Windows has no pathconf
        return default


def save_target(root: str, prefix: str, node: str) -> tuple[str, str]:
    """(folder, name) for ``prefix`` inside ``root`` (ComfyUI's output folder): '/' makes sub-folders, a
    prefix ending in '/' saves as DEFAULT_NAME inside that folder. Refuses, with the reason, prefixes
    that leave the folder, parts too long for a file name, and folder parts that are existing files."""
    parts = _validate.check_relative_name(prefix, "filename_prefix", node, "ComfyUI's output folder")
    if prefix.rstrip().endswith(("/", "\\")):
        parts.append(DEFAULT_NAME)
    real_root = os.path.realpath(root)
    name_max = _name_limit(real_root if os.path.isdir(real_root) else os.path.dirname(real_root), "PC_NAME_MAX",
                           NAME_MAX_BYTES)
    for i, part in enumerate(parts):
        budget = name_max - (len(COUNTER_SUFFIX) if i == len(parts) - 1 else 0)
        if len(os.fsencode(part)) > budget:
            raise InverseDVSError(
                f"{node}: filename_prefix part '{part[:40]}…' is {len(os.fsencode(part))} bytes long, but a "
                f"{'file' if i == len(parts) - 1 else 'folder'} name can hold at most {budget} here"
                f"{' (the counter and .mp4 take the rest)' if i == len(parts) - 1 else ''}. Shorten it."
            )
    target = _validate.join_inside(root, "/".join(parts), "filename_prefix", node, "ComfyUI's output folder")
    if len(os.fsencode(target)) + len(COUNTER_SUFFIX) > _name_limit(real_root, "PC_PATH_MAX", PATH_MAX_BYTES):
        raise InverseDVSError(f"{node}: filename_prefix '{prefix[:40]}…' makes a path too long for the file system; "
                              "use fewer or shorter folder names.")
    folder = os.path.dirname(target)
    walked = real_root
    for part in parts[:-1]:
        walked = os.path.join(walked, part)
        if os.path.exists(walked) and not os.path.isdir(walked):
            shown = os.path.relpath(walked, real_root).replace(os.sep, "/")
            raise InverseDVSError(
                f"{node}: filename_prefix '{prefix}' puts the video inside '{shown}', which is an existing file in "
                "the output folder, not a folder. Choose another folder name."
            )
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as err:
        raise InverseDVSError(f"{node}: could not create the folder for filename_prefix '{prefix}' in the output "
                              f"folder ({err.strerror or err}). Check that the output folder is writable.") from None
    return folder, os.path.basename(target)


def workflow_metadata(prompt, extra_pnginfo) -> dict[str, str]:
    """Container tags that let ComfyUI restore the graph from the file, as core's Save Video writes
    them: 'prompt' (the API graph) and each EXTRA_PNGINFO entry (the UI 'workflow'), as JSON text.
    Empty when ComfyUI runs with --disable-metadata."""
    if _host.metadata_disabled():
        return {}
    metadata = {key: json.dumps(value) for key, value in (extra_pnginfo or {}).items()}
    if prompt is not None:
        metadata["prompt"] = json.dumps(prompt)
    return metadata


class SaveVideo:
    """Save frames as an mp4 in ComfyUI's output folder and show it in the node."""

    DISPLAY_NAME = "Save Video (InverseDVS)"
    CATEGORY = "InverseDVS/output"
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("filename",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "Frames to save, in order (a video is a batch of frames)."}),
                "fps": ("FLOAT", {"default": DEFAULT_FPS, "min": 1.0, "max": 120.0, "step": 1.0,
                                  "tooltip": "Frames per second of the saved video (CogVideoX clips play at 8)."}),
                "filename_prefix": ("STRING", {"default": DEFAULT_PREFIX,
                                               "tooltip": "Name inside ComfyUI's output folder; '/' makes sub-folders "
                                                          f"(ending in '/' saves as '{DEFAULT_NAME}' in that folder). A "
                                                          "counter is appended, nothing is overwritten. The workflow "
                                                          "is stored in the file: drop it on ComfyUI to get it back."}),
            },
            "optional": {
                "crf": ("INT", {"default": DEFAULT_CRF, "min": 0, "max": MAX_CRF,
                                "tooltip": "H.264 quality: lower is better and bigger (0 = lossless, 19 is visually clean)."}),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    def save(self, images, fps, filename_prefix, crf=DEFAULT_CRF, prompt=None, extra_pnginfo=None):
        node = "Save Video"
        images = _validate.check_image(images, "images", node)
        _validate.check_range(fps, 1.0, 120.0, "fps", node)
        crf = _validate.check_whole_number(crf, 0, MAX_CRF, "crf", node)
        final, root = write_new_file(filename_prefix, VIDEO_EXTENSION, node, lambda path: write_mp4(
            path, images, fps, crf, workflow_metadata(prompt, extra_pnginfo), _host.Progress(images.shape[0])))
        folder = os.path.dirname(final)
        subfolder = os.path.relpath(folder, os.path.realpath(root))
        subfolder = "" if subfolder == "." else subfolder.replace(os.sep, "/")
        filename = os.path.basename(final)
        result = {"filename": filename, "subfolder": subfolder, "type": "output"}
        relative = f"{subfolder}/{filename}" if subfolder else filename
        return {"ui": {"images": [result], "animated": (True,)}, "result": (relative,)}


NODES = (SaveVideo,)
