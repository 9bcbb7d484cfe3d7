"""Load Camera Path / Save Camera Path nodes: camera paths from COLMAP, transforms.json (nerfstudio,
instant-ngp, Blender) or the pack's own path file in ComfyUI's input folder, and paths saved from
the graph into the output folder."""

from __future__ import annotations

import hashlib
import os

from ..errors import InverseDVSError
from ..warp import camera_io as cio
from ..warp.camera import CameraPath
from ..warp.path_preview import path_preview
from . import _host, _validate
from .camera import CAMERA_PATH_TYPE, DEFAULT_FRAMES, MAX_FRAMES, MAX_RADIUS_SCALE, MIN_RADIUS_SCALE
from .output import output_relative, write_new_file
from .video import RESIZE_MODES

COLMAP_IMAGE_FILES = tuple(files[1] for files in cio.COLMAP_FILES.values())
DEFAULT_SAVE_PREFIX = "InverseDVS/camera_path"


def is_camera_file(name: str) -> bool:
    """Whether a file name (lower case) is one Load Camera Path reads."""
    return name in COLMAP_IMAGE_FILES or name.endswith(".json")


def list_camera_files() -> list[str]:
    """Camera files in ComfyUI's input folder: COLMAP images.txt/.bin and .json files (sub-folders included)."""
    return _host.list_input_files(is_camera_file)


def _hash_files(paths) -> str:
    digest = hashlib.sha256()
    for path in paths:
        if os.path.isfile(path):
            with open(path, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


class LoadCameraPath:
    """Import a camera path made elsewhere (COLMAP, nerfstudio / instant-ngp / Blender transforms.json)
    or saved by Save Camera Path, aligned to the clip: the source camera at rest, the scene centre
    one orbit radius away, focal lengths converted to the clip's size."""

    DISPLAY_NAME = "Load Camera Path (InverseDVS)"
    CATEGORY = "InverseDVS/geometry"
    FUNCTION = "load"
    RETURN_TYPES = (CAMERA_PATH_TYPE, "IMAGE")
    RETURN_NAMES = ("camera_path", "preview")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "file": (list_camera_files(), {
                    "tooltip": "A camera file in ComfyUI's input folder (sub-folders allowed): COLMAP's images.txt or "
                               "images.bin (cameras.txt / cameras.bin must sit next to it), a transforms.json "
                               "(nerfstudio, instant-ngp, scripts/blender_export_camera.py), or a "
                               f"'{cio.PATH_FILE_SUFFIX}' written by Save Camera Path."}),
                "frames": ("INT", {
                    "default": DEFAULT_FRAMES, "min": 1, "max": MAX_FRAMES,
                    "tooltip": "Frames of the path: the video's frame count (49 for CogVideoX). Ignored when images "
                               "are connected (their count is used)."}),
                "frame_mismatch": (list(cio.FRAME_MISMATCH_MODES), {
                    "default": cio.REFUSE,
                    "tooltip": "When the file's cameras are not one per frame (a different count, or images missing "
                               "from the numbered sequence): refuse = stop with an error; resample = spread the "
                               "file's path over the clip (rotations slerped, positions and focal lengths "
                               "interpolated, missing images filled in); first_frames = use the first cameras."}),
                "anchor_frame": ("INT", {
                    "default": 0, "min": 0, "max": MAX_FRAMES - 1,
                    "tooltip": "The frame whose imported camera filmed the input (0 = the first camera in name "
                               "order). The path is expressed from this camera. A saved path keeps its own."}),
                "scale_reference": (list(cio.SCALE_REFERENCES), {
                    "default": cio.LOOK_AT,
                    "tooltip": "Imported units are arbitrary; the distance from the source camera to the scene centre "
                               "becomes one orbit radius (the depth at the anchor frame's centre). look_at: the point "
                               "the cameras' optical axes pass closest to. world_origin: the file's origin (nerfstudio "
                               "and instant-ngp centre scenes there). as_is: one unit of the file = one radius. "
                               "Not used for saved paths."}),
                "radius_scale": ("FLOAT", {
                    "default": 1.0, "min": MIN_RADIUS_SCALE, "max": MAX_RADIUS_SCALE, "step": 0.05,
                    "tooltip": "Multiplies the orbit radius (as in Camera Trajectory): above 1 the imported moves are "
                               "larger relative to the scene, below 1 smaller. A saved path's own scale is multiplied."}),
                "resize": (RESIZE_MODES, {
                    "default": RESIZE_MODES[0],
                    "tooltip": "How Load Video fitted the imported cameras' images to the clip (its resize setting: "
                               "crop_to_fill, letterbox or stretch); focal lengths are converted the same way. Needs images connected; without them the "
                               "clip is taken to have the cameras' own aspect ratio."}),
            },
            "optional": {
                "images": ("IMAGE", {"tooltip": "The clip the path is for (optional): its frame count and size are "
                                                "used for frames and for converting focal lengths."}),
            },
        }

    @classmethod
    def _paths(cls, file, node):
        path = _validate.input_file(file, "camera file", node, keep=is_camera_file)
        folder, name = os.path.split(path)
        for cameras_name, images_name in cio.COLMAP_FILES.values():
            if name.lower() == images_name:
                return [path, os.path.join(folder, cameras_name)]
        return [path]

    @classmethod
    def IS_CHANGED(cls, file, **_):
        """The files' content hash, so ComfyUI reloads when a file changes."""
        try:
            return _hash_files(cls._paths(file, cls.DISPLAY_NAME))
        except InverseDVSError:
            return ""

    @classmethod
    def VALIDATE_INPUTS(cls, file, **_):
        try:
            cls._paths(file, cls.DISPLAY_NAME)
        except InverseDVSError as err:
            return str(err)
        return True

    def load(self, file, frames, frame_mismatch, anchor_frame, scale_reference, radius_scale, resize, images=None):
        node = self.DISPLAY_NAME
        _validate.check_range(radius_scale, MIN_RADIUS_SCALE, MAX_RADIUS_SCALE, "radius_scale", node)
        clip_size = None
        if images is not None:
            images = _validate.check_image(images, "images", node)
            frames, clip_size = images.shape[0], tuple(images.shape[1:3])
        if int(frames) != frames or frames < 1:
            raise InverseDVSError(f"{node}: frames = {frames}; at least 1 frame is needed (49 for CogVideoX).")
        path = self._paths(file, node)[0]
        label = os.path.basename(file.replace("\\", "/"))
        try:
            kind, cameras = cio.read_camera_file(path)
            if kind == cio.PACK_FILE:
                camera_path, centre = cio.refit_path(cameras, int(frames), frame_mismatch, radius_scale, label), None
            else:
                camera_path, centre = cio.cameras_to_path(cameras, int(frames), int(anchor_frame), frame_mismatch,
                                                          scale_reference, radius_scale, clip_size, resize, label)
        except InverseDVSError as err:
            raise InverseDVSError(f"{node}: {err}") from None
        _validate.check_range(camera_path.radius_scale, MIN_RADIUS_SCALE, MAX_RADIUS_SCALE,
                              "radius_scale (times the saved path's)", node)
        return (camera_path, path_preview(camera_path, pivot=centre))


class SaveCameraPath:
    """Save a camera path (from Camera Trajectory or Load Camera Path) as a JSON file in the output
    folder, to edit and load again with Load Camera Path (copy it into the input folder)."""

    DISPLAY_NAME = "Save Camera Path (InverseDVS)"
    CATEGORY = "InverseDVS/geometry"
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("filename",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "camera_path": (CAMERA_PATH_TYPE, {"tooltip": "The path to save, from Camera Trajectory or Load "
                                                              "Camera Path."}),
                "filename_prefix": ("STRING", {
                    "default": DEFAULT_SAVE_PREFIX,
                    "tooltip": "Name inside ComfyUI's output folder; '/' makes sub-folders. A counter and "
                               f"'{cio.PATH_FILE_SUFFIX}' are appended, nothing is overwritten."}),
            },
        }

    def save(self, camera_path, filename_prefix):
        node = self.DISPLAY_NAME
        if not isinstance(camera_path, CameraPath):
            raise InverseDVSError(f"{node}: camera_path must come from Camera Trajectory or Load Camera Path (InverseDVS).")
        text = cio.path_file_text(camera_path)

        def write(path):
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)

        final, root = write_new_file(filename_prefix, cio.PATH_FILE_SUFFIX.lstrip("."), node, write)
        relative = output_relative(final, root)
        return {"ui": {"text": [relative]}, "result": (relative,)}


NODES = (LoadCameraPath, SaveCameraPath)
