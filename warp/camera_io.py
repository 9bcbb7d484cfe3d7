"""Camera paths from other tools and the pack's own path file: parsing, conventions, alignment.

Formats read (each parsed here from its documented layout):
- COLMAP sparse model, text (cameras.txt + images.txt) or binary (cameras.bin + images.bin):
  world-to-camera poses as a unit quaternion (qw, qx, qy, qz; Hamilton) and a translation, OpenCV
  camera axes (x right, y down, z forward), intrinsics in pixels of the images COLMAP saw.
- nerfstudio / instant-ngp ``transforms.json``: camera-to-world 4x4 matrices with OpenGL camera
  axes (x right, y up, z back); intrinsics fl_x, fl_y, cx, cy, w, h or camera_angle_x, at the top
  level or per frame. Blender cameras use the same axes (scripts/blender_export_camera.py).
- The pack's own path file (JSON, see ``path_file_text``): a CameraPath exactly as the graph made it.

Both foreign formats put the principal point of a centred camera at (width/2, height/2): the
image spans 0..width with pixel centres at +0.5, which is the pack's (W−1)/2 with pixel centres at
integers. Imported cameras become a CameraPath (warp/camera.py): frames ordered by image name,
fitted to the clip's frame count (``fit_to_frames``), re-expressed in the source (anchor) camera's
coordinates, scaled so the distance from the source camera to the scene centre is one orbit radius
(Forward Warp then matches it to the depth at the anchor frame's centre), and focal lengths
converted to the clip's size the way Load Video resized the frames.
"""

from __future__ import annotations

import json
import math
import os
import re
import struct
from dataclasses import dataclass, field

import torch

from ..errors import InverseDVSError, decode_json
from .camera import MAX_FOV_X_DEG, MIN_FOV_X_DEG, POSE_DTYPE, CameraPath, camera_centers, compose, relative_transforms

# ----------------------------------------------------------------------------- identifiers

COLMAP, TRANSFORMS, PACK_FILE = "colmap", "transforms_json", "inversedvs_path"
COLMAP_FILES = {".txt": ("cameras.txt", "images.txt"), ".bin": ("cameras.bin", "images.bin")}
PATH_FILE_FORMAT = "inversedvs_camera_path"
PATH_FILE_VERSION = 1
PATH_FILE_SUFFIX = ".camera_path.json"

# What to do when the file's cameras do not match the clip's frames one to one.
REFUSE, RESAMPLE, FIRST_FRAMES = "refuse", "resample", "first_frames"
FRAME_MISMATCH_MODES = (REFUSE, RESAMPLE, FIRST_FRAMES)
# Which point is the scene centre, whose distance from the source camera becomes one orbit radius.
LOOK_AT, WORLD_ORIGIN, AS_IS = "look_at", "world_origin", "as_is"
SCALE_REFERENCES = (LOOK_AT, WORLD_ORIGIN, AS_IS)
# How the clip's frames were made from the imported cameras' images (Load Video's resize modes).
CROP, LETTERBOX, STRETCH = "crop_to_fill", "letterbox", "stretch"
RESIZE_MODES = (CROP, LETTERBOX, STRETCH)

# COLMAP camera models: id → (name, parameter count). Perspective ones are read (distortion
# coefficients are ignored); fisheye and FOV models are refused.
COLMAP_MODELS = {
    0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5), 4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5), 8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12), 11: ("RAD_TAN_THIN_PRISM_FISHEYE", 16),
}
COLMAP_MODEL_IDS = {name: model_id for model_id, (name, _) in COLMAP_MODELS.items()}
SINGLE_FOCAL_MODELS = ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL")
PERSPECTIVE_MODELS = ("SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "FULL_OPENCV")
# transforms.json camera_model values nerfstudio writes for perspective cameras.
TRANSFORMS_PERSPECTIVE_MODELS = ("OPENCV", "PINHOLE", "SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL")
# Camera axes: OpenGL (x right, y up, z back) → OpenCV (x right, y down, z forward) flips y and z.
OPENGL_TO_OPENCV = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=POSE_DTYPE))

# Tolerances. A rotation block may deviate this much from orthonormal (rounding in text files).
ROTATION_TOLERANCE = 1e-3
# The pack's cameras have square pixels and a centred principal point: allowed deviations.
SQUARE_PIXEL_TOLERANCE = 0.01  # relative difference of fx and fy in the clip
PRINCIPAL_POINT_TOLERANCE = 0.02  # offset from the centre, as a fraction of the clip's width / height
# The optical axes must spread this much for a look-at point: the smallest eigenvalue of
# Σ(I − d dᵀ) over the largest, about sin² of the angle they span (1 degree).
MIN_AXIS_SPREAD = math.sin(math.radians(1.0)) ** 2
# Cameras closer together than this (relative to the largest coordinate) count as not moving.
STILL_CAMERAS = 1e-9
SLERP_LINEAR_BELOW = 1e-6  # angle (radians) under which slerp falls back to normalised lerp


@dataclass(frozen=True)
class Lens:
    """Pinhole intrinsics of one imported camera, in pixels of its own image (which spans 0..width,
    so a centred principal point is (width/2, height/2)). ``height`` (and ``cy``) are None when the
    file gives only a horizontal field of view; ``width`` is then 1 (focal lengths in image widths).
    ``where`` says where the camera is defined, for messages."""

    fx: float
    fy: float
    cx: float
    cy: float | None
    width: float
    height: float | None
    where: str = field(default="", compare=False)


@dataclass(frozen=True)
class ImportedCameras:
    """Cameras read from a file, in the file's order.

    names:           image names (frames are ordered by them), or "" where the file has none.
    world_to_camera: [N, 4, 4] float64, OpenCV camera axes, the file's world and units.
    lenses:          one Lens per camera (each says where its camera is defined, for messages).
    """

    names: tuple[str, ...]
    world_to_camera: torch.Tensor
    lenses: tuple[Lens, ...]

    def subset(self, order) -> "ImportedCameras":
        order = list(order)
        return ImportedCameras(tuple(self.names[i] for i in order), self.world_to_camera[order],
                               tuple(self.lenses[i] for i in order))


# ----------------------------------------------------------------------------- rotations


def quaternion_to_matrix(q: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [N, 3, 3] of unit quaternions q [N, 4] = (w, x, y, z) (Hamilton convention)."""
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(-1, 3, 3)


def matrix_to_quaternion(R: torch.Tensor) -> torch.Tensor:
    """Unit quaternions [N, 4] = (w, x, y, z) with w ≥ 0 of rotation matrices R [N, 3, 3].

    Each row uses the largest of 1 + trace, 1 + 2·R_xx − trace, … as the pivot (Shepperd's method),
    so it is exact to rounding for every rotation, including half turns.
    """
    m = R.reshape(-1, 3, 3)
    xx, yy, zz = m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]
    pivots = torch.stack([1 + xx + yy + zz, 1 + xx - yy - zz, 1 - xx + yy - zz, 1 - xx - yy + zz], -1)
    candidates = torch.stack([
        torch.stack([pivots[:, 0], m[:, 2, 1] - m[:, 1, 2], m[:, 0, 2] - m[:, 2, 0], m[:, 1, 0] - m[:, 0, 1]], -1),
        torch.stack([m[:, 2, 1] - m[:, 1, 2], pivots[:, 1], m[:, 0, 1] + m[:, 1, 0], m[:, 0, 2] + m[:, 2, 0]], -1),
        torch.stack([m[:, 0, 2] - m[:, 2, 0], m[:, 0, 1] + m[:, 1, 0], pivots[:, 2], m[:, 1, 2] + m[:, 2, 1]], -1),
        torch.stack([m[:, 1, 0] - m[:, 0, 1], m[:, 0, 2] + m[:, 2, 0], m[:, 1, 2] + m[:, 2, 1], pivots[:, 3]], -1),
    ], 1)  # [N, 4 pivots, 4]
    best = pivots.argmax(-1)
    q = candidates[torch.arange(m.shape[0]), best]
    q = q / q.norm(dim=-1, keepdim=True)
    return torch.where(q[:, :1] < 0, -q, q)


def slerp(q0: torch.Tensor, q1: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation [N, 4] between unit quaternions q0, q1 [N, 4] at weights w [N] in 0..1
    along the shorter arc (q1 is negated where q0·q1 < 0)."""
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    angle = torch.acos(dot)
    w = w.unsqueeze(-1)
    small = angle < SLERP_LINEAR_BELOW
    sin = torch.where(small, torch.ones_like(angle), torch.sin(angle))
    a = torch.where(small, 1 - w, torch.sin((1 - w) * angle) / sin)
    b = torch.where(small, w, torch.sin(w * angle) / sin)
    q = a * q0 + b * q1
    return q / q.norm(dim=-1, keepdim=True)


def rigid_inverse(M: torch.Tensor) -> torch.Tensor:
    """Inverses [N, 4, 4] of rigid motions M [N, 4, 4] = [R | t]: [Rᵀ | −Rᵀ t]."""
    Rt = M[:, :3, :3].transpose(1, 2)
    return compose(Rt, -(Rt @ M[:, :3, 3:]).squeeze(-1))


def opengl_camera_to_world_to_opencv_world_to_camera(c2w: torch.Tensor) -> torch.Tensor:
    """World-to-camera poses [N, 4, 4] with OpenCV camera axes from camera-to-world matrices
    [N, 4, 4] with OpenGL camera axes (transforms.json, Blender): W = (C · diag(1, −1, −1, 1))⁻¹."""
    return rigid_inverse(c2w @ OPENGL_TO_OPENCV)


# ----------------------------------------------------------------------------- small readers


def _number(word: str, where: str, field: str) -> float:
    try:
        value = float(word)
    except ValueError:
        raise InverseDVSError(f"{where}: {field} is '{word}', which is not a number.") from None
    if not math.isfinite(value):
        raise InverseDVSError(f"{where}: {field} is '{word}'; only finite numbers are allowed. Re-export the file.")
    return value


def _integer(word: str, where: str, field: str) -> int:
    try:
        return int(word)
    except ValueError:
        raise InverseDVSError(f"{where}: {field} is '{word}', which is not a whole number.") from None


def _check_finite(values, where: str, field: str) -> None:
    for v in values:
        if not math.isfinite(v):
            raise InverseDVSError(f"{where}: {field} holds {v}; only finite numbers are allowed. Re-export the file.")


def _colmap_lens(model: str, params, width: float, height: float, where: str) -> Lens:
    """The pinhole part of a COLMAP camera (distortion coefficients are not used)."""
    if model not in PERSPECTIVE_MODELS:
        raise InverseDVSError(
            f"{where}: camera model {model} is not a perspective (pinhole) camera, which is all the pack can "
            "warp. Undistort the images first (colmap image_undistorter writes PINHOLE cameras)."
        )
    if width <= 0 or height <= 0:
        raise InverseDVSError(f"{where}: the image size {width:g}x{height:g} must be positive.")
    if model in SINGLE_FOCAL_MODELS:
        f, cx, cy = params[:3]
        fx = fy = f
    else:
        fx, fy, cx, cy = params[:4]
    if fx <= 0 or fy <= 0:
        raise InverseDVSError(f"{where}: the focal length ({fx:g}, {fy:g} px) must be positive.")
    return Lens(float(fx), float(fy), float(cx), float(cy), float(width), float(height), where)


def _rotation_from_quaternion(q, where: str) -> torch.Tensor:
    q = torch.tensor(q, dtype=POSE_DTYPE)
    norm = float(q.norm())
    if norm < 1e-12:
        raise InverseDVSError(f"{where}: the quaternion QW QX QY QZ is zero; it must be a unit quaternion.")
    return quaternion_to_matrix((q / norm)[None])[0]


def _colmap_pose(q, t, where: str) -> torch.Tensor:
    return compose(_rotation_from_quaternion(q, where)[None], torch.tensor([t], dtype=POSE_DTYPE))[0]


def _read_bytes(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise InverseDVSError(f"{what} '{os.path.basename(path)}' could not be read ({err.strerror}).") from None


def _read_text(path: str) -> str:
    data = _read_bytes(path, "The camera file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InverseDVSError(f"'{os.path.basename(path)}' is not a text file (byte {err.start} is not UTF-8); "
                              "re-export it.") from None


# ----------------------------------------------------------------------------- COLMAP text


def _data_lines(text: str):
    """(line number, words) of the lines that are not comments (blank lines kept)."""
    return [(no, raw.split()) for no, raw in enumerate(text.splitlines(), start=1) if not raw.lstrip().startswith("#")]


def parse_colmap_cameras_text(text: str, source: str = "cameras.txt") -> dict[int, tuple[str, Lens]]:
    """COLMAP cameras.txt → {camera id: (where, Lens)}. Lines: CAMERA_ID MODEL WIDTH HEIGHT PARAMS[]."""
    cameras = {}
    for no, words in _data_lines(text):
        if not words:
            continue
        where = f"{source} line {no}"
        if len(words) < 4:
            raise InverseDVSError(f"{where}: a camera line needs CAMERA_ID MODEL WIDTH HEIGHT PARAMS…; "
                                  f"it has {len(words)} value(s).")
        camera_id, model = _integer(words[0], where, "CAMERA_ID"), words[1].upper()
        if model not in COLMAP_MODEL_IDS:
            raise InverseDVSError(
                f"{where}: unknown camera model '{words[1]}'. COLMAP's models are "
                f"{', '.join(COLMAP_MODEL_IDS)}; the pack reads {', '.join(PERSPECTIVE_MODELS)}."
            )
        count = COLMAP_MODELS[COLMAP_MODEL_IDS[model]][1]
        if len(words) != 4 + count:
            raise InverseDVSError(f"{where}: camera model {model} has {count} parameters but the line gives "
                                  f"{len(words) - 4}.")
        width, height = _number(words[2], where, "WIDTH"), _number(words[3], where, "HEIGHT")
        params = [_number(w, where, f"parameter {i + 1}") for i, w in enumerate(words[4:])]
        if camera_id in cameras:
            raise InverseDVSError(f"{where}: camera {camera_id} is defined twice (also at {cameras[camera_id][0]}).")
        cameras[camera_id] = (where, _colmap_lens(model, params, width, height, where))
    return cameras


def _looks_like_points(words) -> bool:
    if len(words) % 3:
        return False
    try:
        [float(w) for w in words]
    except ValueError:
        return False
    return True


def parse_colmap_images_text(text: str, cameras: dict, source: str = "images.txt") -> ImportedCameras:
    """COLMAP images.txt → ImportedCameras. Two lines per image: IMAGE_ID QW QX QY QZ TX TY TZ
    CAMERA_ID NAME, then its 2-D points (X Y POINT3D_ID …, may be empty; not used)."""
    names, poses, lenses = [], [], []
    lines = _data_lines(text)
    i = 0
    while i < len(lines):
        no, words = lines[i]
        i += 1
        if not words:
            continue
        where = f"{source} line {no}"
        if len(words) < 10:
            raise InverseDVSError(f"{where}: an image line needs IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME; "
                                  f"it has {len(words)} value(s).")
        _integer(words[0], where, "IMAGE_ID")
        fields = ("QW", "QX", "QY", "QZ", "TX", "TY", "TZ")
        values = [_number(w, where, f) for w, f in zip(words[1:8], fields)]
        camera_id = _integer(words[8], where, "CAMERA_ID")
        if camera_id not in cameras:
            raise InverseDVSError(
                f"{where}: image '{' '.join(words[9:])}' uses camera {camera_id}, which the cameras file does not "
                f"define (it has {', '.join(map(str, sorted(cameras))) or 'none'})."
            )
        if i < len(lines):
            next_no, next_words = lines[i]
            if next_words and not _looks_like_points(next_words):
                raise InverseDVSError(
                    f"{source} line {next_no}: expected the 2-D points of the image on line {no} (X Y POINT3D_ID "
                    "triples, or an empty line); images.txt has two lines per image."
                )
            i += 1
        names.append(" ".join(words[9:]))
        poses.append(_colmap_pose(values[:4], values[4:], where))
        lenses.append(cameras[camera_id][1])
    if not poses:
        raise InverseDVSError(f"{source}: no images are listed; the reconstruction registered no camera.")
    return ImportedCameras(tuple(names), torch.stack(poses), tuple(lenses))


# ----------------------------------------------------------------------------- COLMAP binary


class _Bytes:
    """A little-endian reader over ``data`` that names the file and the record on a short read."""

    def __init__(self, data: bytes, source: str):
        self.data, self.source, self.offset = data, source, 0

    def take(self, fmt: str, record: str):
        size = struct.calcsize("<" + fmt)
        if self.offset + size > len(self.data):
            raise InverseDVSError(
                f"{self.source}: the file ends at byte {len(self.data)} inside {record}; it is truncated. "
                "Export the model again (colmap model_converter)."
            )
        values = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += size
        return values

    def text(self, record: str) -> str:
        end = self.data.find(b"\x00", self.offset)
        if end < 0:
            raise InverseDVSError(f"{self.source}: the file ends inside the name of {record}; it is truncated.")
        name = self.data[self.offset:end].decode("utf-8", errors="replace")
        self.offset = end + 1
        return name


def parse_colmap_cameras_binary(data: bytes, source: str = "cameras.bin") -> dict[int, tuple[str, Lens]]:
    """COLMAP cameras.bin → {camera id: (where, Lens)}: uint64 count, then per camera int32 id,
    int32 model id, uint64 width, uint64 height, float64 params[count of the model]."""
    reader = _Bytes(data, source)
    (count,) = reader.take("Q", "the camera count")
    cameras = {}
    for k in range(count):
        record = f"camera {k + 1} of {count}"
        camera_id, model_id, width, height = reader.take("iiQQ", record)
        where = f"{source} camera {camera_id}"
        if model_id not in COLMAP_MODELS:
            raise InverseDVSError(f"{where}: unknown camera model id {model_id}; COLMAP's models are 0 to "
                                  f"{max(COLMAP_MODELS)}.")
        model, n = COLMAP_MODELS[model_id]
        params = reader.take("d" * n, record)
        _check_finite(params, where, "the parameters")
        cameras[camera_id] = (where, _colmap_lens(model, params, width, height, where))
    return cameras


def parse_colmap_images_binary(data: bytes, cameras: dict, source: str = "images.bin") -> ImportedCameras:
    """COLMAP images.bin → ImportedCameras: uint64 count, then per image uint32 id, float64 qw qx qy
    qz tx ty tz, uint32 camera id, NUL-terminated name, uint64 point count, (float64 x, float64 y,
    int64 point3D id) per point (skipped)."""
    reader = _Bytes(data, source)
    (count,) = reader.take("Q", "the image count")
    names, poses, lenses = [], [], []
    for k in range(count):
        record = f"image {k + 1} of {count}"
        image_id, qw, qx, qy, qz, tx, ty, tz, camera_id = reader.take("IdddddddI", record)
        name = reader.text(record)
        where = f"{source} image {image_id} ('{name}')"
        _check_finite((qw, qx, qy, qz, tx, ty, tz), where, "the pose")
        (points,) = reader.take("Q", record)
        if points > (len(data) - reader.offset) // 24:
            raise InverseDVSError(f"{where}: lists {points} 2-D points but the file ends before them; it is truncated.")
        reader.offset += 24 * points
        if camera_id not in cameras:
            raise InverseDVSError(f"{where}: uses camera {camera_id}, which cameras.bin does not define "
                                  f"(it has {', '.join(map(str, sorted(cameras))) or 'none'}).")
        names.append(name)
        poses.append(_colmap_pose((qw, qx, qy, qz), (tx, ty, tz), where))
        lenses.append(cameras[camera_id][1])
    if not poses:
        raise InverseDVSError(f"{source}: no images are listed; the reconstruction registered no camera.")
    return ImportedCameras(tuple(names), torch.stack(poses), tuple(lenses))


def read_colmap(images_path: str) -> ImportedCameras:
    """A COLMAP model from ``images_path`` (images.txt or images.bin) and the cameras file next to it."""
    folder, name = os.path.split(images_path)
    ext = os.path.splitext(name)[1].lower()
    if ext not in COLMAP_FILES:
        raise InverseDVSError(f"'{name}' is not a COLMAP model file; pick images.txt or images.bin.")
    cameras_name = COLMAP_FILES[ext][0]
    cameras_path = os.path.join(folder, cameras_name)
    if not os.path.isfile(cameras_path):
        raise InverseDVSError(
            f"{name}: {cameras_name} was not found next to it; COLMAP writes both files into the same folder "
            "(sparse/0/). Copy it there."
        )
    if ext == ".txt":
        cameras = parse_colmap_cameras_text(_read_text(cameras_path), cameras_name)
        return parse_colmap_images_text(_read_text(images_path), cameras, name)
    cameras = parse_colmap_cameras_binary(_read_bytes(cameras_path, "The camera file"), cameras_name)
    return parse_colmap_images_binary(_read_bytes(images_path, "The camera file"), cameras, name)


# ----------------------------------------------------------------------------- transforms.json


def _json_number(value, where: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InverseDVSError(f"{where}: '{field}' is {json.dumps(value)[:40]}, not a number.")
    try:
        number = float(value)
    except OverflowError:  # a JSON integer too large for a float
        number = math.inf
    if not math.isfinite(number):
        shown = value if isinstance(value, float) else f"{str(value)[:12]}… ({len(str(value))} digits)"
        raise InverseDVSError(f"{where}: '{field}' is {shown}; only finite numbers are allowed.")
    return number


def _matrix(value, where: str, field: str, nearest_rotation: bool = True) -> torch.Tensor:
    """A 4x4 rigid motion from nested JSON lists (4 rows, or 3 with 0 0 0 1 implied): the last row
    must be 0 0 0 1 and the 3x3 part a rotation within ROTATION_TOLERANCE; with
    ``nearest_rotation`` that part is replaced by the nearest exact rotation (rounding of the text)."""
    if not (isinstance(value, list) and len(value) in (3, 4)
            and all(isinstance(row, list) and len(row) == 4 for row in value)):
        raise InverseDVSError(f"{where}: '{field}' must be a 4x4 matrix (4 rows of 4 numbers).")
    rows = [[_json_number(v, where, field) for v in row] for row in value]
    M = torch.tensor(rows + ([[0.0, 0.0, 0.0, 1.0]] if len(rows) == 3 else []), dtype=POSE_DTYPE)
    R = M[:3, :3]
    if (M[3] - torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=POSE_DTYPE)).abs().max() > ROTATION_TOLERANCE:
        raise InverseDVSError(f"{where}: the last row of '{field}' is {M[3].tolist()}; it must be 0 0 0 1.")
    if (R.T @ R - torch.eye(3, dtype=POSE_DTYPE)).abs().max() > ROTATION_TOLERANCE or torch.det(R) <= 0:
        raise InverseDVSError(
            f"{where}: '{field}' is not a rotation plus translation (its 3x3 part is scaled, sheared or "
            "mirrored); export camera poses without scale."
        )
    if nearest_rotation:
        U, _, Vh = torch.linalg.svd(R)
        M[:3, :3] = U @ Vh
    return M


def _transforms_lens(frame: dict, top: dict, where: str) -> Lens:
    """Intrinsics of one frame: its own keys first, then the file's top level."""
    def get(key):
        return frame[key] if key in frame else top.get(key)

    model = get("camera_model")
    if model is not None and str(model).upper() not in TRANSFORMS_PERSPECTIVE_MODELS:
        raise InverseDVSError(f"{where}: camera_model '{model}' is not a perspective camera; the pack reads "
                              f"{', '.join(TRANSFORMS_PERSPECTIVE_MODELS)}. Undistort the images first.")
    numbers = {k: _json_number(get(k), where, k) for k in ("fl_x", "fl_y", "cx", "cy", "w", "h",
                                                           "camera_angle_x", "camera_angle_y") if get(k) is not None}
    w, h = numbers.get("w"), numbers.get("h")
    for key in ("camera_angle_x", "camera_angle_y"):
        if key in numbers and not 0 < numbers[key] < math.pi:
            raise InverseDVSError(f"{where}: '{key}' = {numbers[key]:g}; it is a field of view in radians, between 0 "
                                  "and π.")
    if "fl_x" in numbers or ("camera_angle_x" in numbers and w is not None):
        if w is None or h is None:
            raise InverseDVSError(f"{where}: the image size 'w' and 'h' is missing; focal lengths in pixels need it.")
        fx = numbers.get("fl_x", w / 2 / math.tan(numbers.get("camera_angle_x", 1.0) / 2))
        fy = numbers.get("fl_y", h / 2 / math.tan(numbers["camera_angle_y"] / 2) if "camera_angle_y" in numbers else fx)
        lens = Lens(fx, fy, numbers.get("cx", w / 2), numbers.get("cy", h / 2), w, h, where)
    elif "camera_angle_x" in numbers:
        fx = 0.5 / math.tan(numbers["camera_angle_x"] / 2)
        lens = Lens(fx, fx, 0.5, None, 1.0, None, where)
    else:
        raise InverseDVSError(f"{where}: no focal length: give 'fl_x' (pixels, with 'w' and 'h') or "
                              "'camera_angle_x' (radians), per frame or at the top level.")
    if lens.fx <= 0 or lens.fy <= 0 or lens.width <= 0 or (lens.height is not None and lens.height <= 0):
        raise InverseDVSError(f"{where}: focal lengths and image size must be positive.")
    return lens


def _load_json(text: str, source: str):
    return decode_json(text, source, "Export the file again.")


def parse_transforms(text: str, source: str = "transforms.json") -> ImportedCameras:
    """nerfstudio / instant-ngp transforms.json → ImportedCameras (OpenGL camera-to-world converted)."""
    data = _load_json(text, source)
    frames = data.get("frames") if isinstance(data, dict) else None
    if not isinstance(frames, list) or not frames:
        raise InverseDVSError(f"{source}: no 'frames' list; a transforms.json holds 'frames': [{{'file_path': …, "
                              "'transform_matrix': …}}, …].")
    names, poses, lenses = [], [], []
    for i, frame in enumerate(frames):
        where = f"{source} frames[{i}]"
        if not isinstance(frame, dict) or "transform_matrix" not in frame:
            raise InverseDVSError(f"{where}: 'transform_matrix' is missing (the camera-to-world 4x4 matrix).")
        poses.append(_matrix(frame["transform_matrix"], where, "transform_matrix"))
        lenses.append(_transforms_lens(frame, data, where))
        names.append(str(frame.get("file_path", "")))
    w2c = opengl_camera_to_world_to_opencv_world_to_camera(torch.stack(poses))
    return ImportedCameras(tuple(names), w2c, tuple(lenses))


# ----------------------------------------------------------------------------- the pack's path file


def path_file_text(path: CameraPath) -> str:
    """The pack's path file for ``path``: JSON, one entry per frame (world_to_camera as 4 rows,
    OpenCV axes, lengths in orbit radii; zoom), floats written so they read back bit for bit."""
    frames = [{"world_to_camera": [[float(v) for v in row] for row in w2c.tolist()], "zoom": float(z)}
              for w2c, z in zip(path.world_to_camera.to(POSE_DTYPE), path.zoom.to(POSE_DTYPE))]
    document = {
        "format": PATH_FILE_FORMAT, "version": PATH_FILE_VERSION, "label": path.label,
        "fov_x_deg": path.fov_x_deg, "radius_scale": path.radius_scale, "anchor_frame": path.anchor,
        "conventions": "world_to_camera maps world points to camera points (x right, y down, z forward); lengths "
                       "are in orbit radii (the depth at the anchor frame's centre times radius_scale); zoom "
                       "multiplies the focal length of fov_x_deg.",
        "frames": frames,
    }
    return json.dumps(document, indent=1)


def parse_path_file(data: dict, source: str) -> CameraPath:
    """A CameraPath from the pack's path file (already decoded JSON)."""
    version = data.get("version")
    if version != PATH_FILE_VERSION:
        raise InverseDVSError(f"{source}: path file version {version!r}; this pack reads version "
                              f"{PATH_FILE_VERSION}. Save the path again with Save Camera Path.")
    frames = data.get("frames")
    if not isinstance(frames, list) or not frames:
        raise InverseDVSError(f"{source}: 'frames' must be a non-empty list of {{'world_to_camera', 'zoom'}}.")
    poses, zoom = [], []
    for i, frame in enumerate(frames):
        where = f"{source} frames[{i}]"
        if not isinstance(frame, dict) or "world_to_camera" not in frame:
            raise InverseDVSError(f"{where}: 'world_to_camera' is missing.")
        poses.append(_matrix(frame["world_to_camera"], where, "world_to_camera", nearest_rotation=False))
        z = _json_number(frame.get("zoom", 1.0), where, "zoom")
        if z <= 0:
            raise InverseDVSError(f"{where}: 'zoom' = {z:g}; it must be positive (1 = no zoom).")
        zoom.append(z)
    for key in ("fov_x_deg", "radius_scale", "anchor_frame"):
        if key not in data:
            raise InverseDVSError(f"{source}: '{key}' is missing.")
    fov = _json_number(data["fov_x_deg"], source, "fov_x_deg")
    radius_scale = _json_number(data["radius_scale"], source, "radius_scale")
    anchor = data["anchor_frame"]
    if not MIN_FOV_X_DEG <= fov <= MAX_FOV_X_DEG:
        raise InverseDVSError(f"{source}: 'fov_x_deg' = {fov:g}; use {MIN_FOV_X_DEG:g} to {MAX_FOV_X_DEG:g}.")
    if radius_scale <= 0:
        raise InverseDVSError(f"{source}: 'radius_scale' = {radius_scale:g}; it must be positive.")
    if not isinstance(anchor, int) or isinstance(anchor, bool) or not 0 <= anchor < len(frames):
        raise InverseDVSError(f"{source}: 'anchor_frame' = {anchor!r}; use a frame index 0 to {len(frames) - 1}.")
    return CameraPath(world_to_camera=torch.stack(poses), zoom=torch.tensor(zoom, dtype=POSE_DTYPE), fov_x_deg=fov,
                      radius_scale=radius_scale, anchor=anchor, label=str(data.get("label", "path file")))


# ----------------------------------------------------------------------------- reading any file


def read_camera_file(path: str) -> tuple[str, ImportedCameras | CameraPath]:
    """(format id, cameras) of the file at ``path``: COLMAP images.txt/.bin (cameras file next to it),
    a transforms.json, or the pack's path file (a CameraPath)."""
    name = os.path.basename(path)
    lower = name.lower()
    if lower in (files[1] for files in COLMAP_FILES.values()):
        return COLMAP, read_colmap(path)
    if not lower.endswith(".json"):
        raise InverseDVSError(f"'{name}' is not a camera file the pack reads: pick a COLMAP images.txt or "
                              "images.bin, a transforms.json or a saved .camera_path.json.")
    text = _read_text(path)
    data = _load_json(text, name)
    if isinstance(data, dict) and data.get("format") == PATH_FILE_FORMAT:
        return PACK_FILE, parse_path_file(data, name)
    if isinstance(data, dict) and "frames" in data:
        return TRANSFORMS, parse_transforms(text, name)
    raise InverseDVSError(f"{name}: neither a transforms.json (no 'frames' list) nor a path saved by Save Camera "
                          "Path (no \"format\": \"inversedvs_camera_path\").")


# ----------------------------------------------------------------------------- frame order and count


def _natural_key(name: str):
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def in_name_order(cameras: ImportedCameras) -> ImportedCameras:
    """The cameras sorted by image name, numbers compared as numbers (frame_2 before frame_10); in the
    file's order when names are missing or repeated."""
    names = cameras.names
    if any(not n for n in names) or len(set(names)) != len(names):
        return cameras
    return cameras.subset(sorted(range(len(names)), key=lambda i: _natural_key(names[i])))


def frame_numbers(names) -> torch.Tensor | None:
    """The frame number in each image name (the last run of digits of the file name without its
    extension) as float64 [N], or None when a name has none or the numbers do not increase in the
    given order (then the order alone places the cameras in time)."""
    numbers = []
    for name in names:
        stem = os.path.splitext(os.path.basename(name.replace("\\", "/")))[0]
        digits = re.findall(r"\d+", stem)
        if not digits:
            return None
        numbers.append(int(digits[-1]))
    if any(b <= a for a, b in zip(numbers, numbers[1:])):
        return None
    return torch.tensor(numbers, dtype=POSE_DTYPE)


def missing_frame_numbers(numbers: torch.Tensor) -> list[int]:
    """Numbers absent from the regular sequence first, first + step, …, last (step = the greatest
    common divisor of the gaps, so every-nth-frame exports are regular)."""
    values = sorted(int(v) for v in numbers.tolist())
    if len(values) < 2:
        return []
    step = 0
    for a, b in zip(values, values[1:]):
        step = math.gcd(step, b - a)
    present = set(values)
    return [v for v in range(values[0], values[-1] + 1, step) if v not in present]


def interpolate_poses(world_to_camera: torch.Tensor, focal: torch.Tensor, times: torch.Tensor,
                      new_times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Poses [F, 4, 4] and focal lengths [F] at ``new_times`` [F] from poses [N, 4, 4], focal [N] at
    increasing ``times`` [N]: rotations slerped, camera centres and focal lengths lerped between the
    two neighbouring cameras (times outside the range are clamped to the ends)."""
    if world_to_camera.shape[0] == 1:
        return world_to_camera.expand(new_times.shape[0], 4, 4).clone(), focal.expand(new_times.shape[0]).clone()
    t = new_times.clamp(times[0], times[-1])
    i = torch.searchsorted(times, t, right=True).sub(1).clamp(0, times.shape[0] - 2)
    w = (t - times[i]) / (times[i + 1] - times[i])
    q = matrix_to_quaternion(world_to_camera[:, :3, :3])
    R = quaternion_to_matrix(slerp(q[i], q[i + 1], w))
    centers = camera_centers(world_to_camera)
    c = centers[i] + w.unsqueeze(-1) * (centers[i + 1] - centers[i])
    pose = compose(R, -(R @ c.unsqueeze(-1)).squeeze(-1))
    # on a camera: that camera, bit for bit
    pose = torch.where((w == 0)[:, None, None], world_to_camera[i], pose)
    pose = torch.where((w == 1)[:, None, None], world_to_camera[i + 1], pose)
    return pose, focal[i] + w * (focal[i + 1] - focal[i])


def fit_to_frames(world_to_camera: torch.Tensor, focal: torch.Tensor, names, frames: int, mode: str,
                  source: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Poses [frames, 4, 4] and focal lengths [frames] for a clip of ``frames`` frames from the file's
    N cameras (in frame order, named ``names``) under ``mode`` (one of FRAME_MISMATCH_MODES).

    Frame numbers in the names place the cameras in time; a missing number is a missing image.
    refuse: N must equal ``frames`` with no image missing. first_frames: the first ``frames``
    cameras, none missing among them. resample: ``frames`` evenly spaced instants from the first
    camera to the last, interpolated (``interpolate_poses``), which also fills missing images.
    """
    if mode not in FRAME_MISMATCH_MODES:
        raise InverseDVSError(f"{source}: frame_mismatch '{mode}' is unknown; use one of "
                              f"{', '.join(FRAME_MISMATCH_MODES)}.")
    n = world_to_camera.shape[0]
    numbers = frame_numbers(names)
    times = numbers if numbers is not None else torch.arange(n, dtype=POSE_DTYPE)
    if mode == RESAMPLE:
        if n == frames and (numbers is None or not missing_frame_numbers(numbers)):
            return world_to_camera, focal
        return interpolate_poses(world_to_camera, focal, times, torch.linspace(float(times[0]), float(times[-1]),
                                                                               frames, dtype=POSE_DTYPE))
    if mode == FIRST_FRAMES and n >= frames:
        world_to_camera, focal, times = world_to_camera[:frames], focal[:frames], times[:frames]
        numbers = None if numbers is None else times
    elif n != frames:
        fewer = "fewer" if n < frames else "more"
        raise InverseDVSError(
            f"{source}: {n} camera(s) but the clip has {frames} frames ({fewer} poses than frames). Set "
            f"frame_mismatch to '{RESAMPLE}' to spread the path over the clip (rotations slerped, positions "
            f"interpolated)" + (f" or '{FIRST_FRAMES}' to use the first {frames}" if n > frames else "")
            + ", or export one camera per frame."
        )
    missing = missing_frame_numbers(numbers) if numbers is not None else []
    if missing:
        shown = ", ".join(map(str, missing[:8])) + (" …" if len(missing) > 8 else "")
        raise InverseDVSError(
            f"{source}: images are missing: frame number(s) {shown} (between {int(times[0])} and {int(times[-1])}); "
            f"the reconstruction did not register them. Set frame_mismatch to '{RESAMPLE}' to interpolate them."
        )
    return world_to_camera, focal


# ----------------------------------------------------------------------------- intrinsics


def clip_focal(lens: Lens, clip_size: tuple[int, int] | None, resize: str) -> float:
    """Focal length fx of ``lens`` in units of the clip's width after the camera's image was resized
    to ``clip_size`` (height, width) with ``resize`` (Load Video's modes): (W/2)/fx = tan(fov_x/2)/…
    Without a clip size the clip is taken as the camera's image itself.

    Refuses a camera the pack cannot represent: pixels that are not square, or a principal point
    off the centre, in the clip (tolerances SQUARE_PIXEL_TOLERANCE, PRINCIPAL_POINT_TOLERANCE).
    """
    where = lens.where or "camera"
    if resize not in RESIZE_MODES:
        raise InverseDVSError(f"{where}: resize '{resize}' is unknown; use one of {', '.join(RESIZE_MODES)}.")
    if clip_size is None or lens.height is None:
        sx = sy = 1.0 if clip_size is None else clip_size[1] / lens.width
        height, width = (lens.height, lens.width) if clip_size is None else clip_size
    else:
        height, width = clip_size
        sx, sy = width / lens.width, height / lens.height
        if resize != STRETCH:
            sx = sy = max(sx, sy) if resize == CROP else min(sx, sy)
    fx, fy = lens.fx * sx, lens.fy * sy
    if lens.height is not None and abs(fy / fx - 1) > SQUARE_PIXEL_TOLERANCE:
        cause = " (resize = stretch changed the aspect ratio; use crop_to_fill)" if resize == STRETCH else ""
        raise InverseDVSError(
            f"{where}: the focal lengths fx = {fx:.4g} and fy = {fy:.4g} (clip pixels) differ{cause}; the pack's "
            "cameras have square pixels."
        )
    offsets = [((lens.cx - lens.width / 2) * sx, width, "cx")]
    if lens.cy is not None:
        offsets.append(((lens.cy - lens.height / 2) * sy, height, "cy"))
    for offset, size, field in offsets:
        if abs(offset) > PRINCIPAL_POINT_TOLERANCE * size:
            raise InverseDVSError(
                f"{where}: the principal point {field} is {offset:+.1f} px off the image centre ({abs(offset) / size:.1%} "
                f"of the size); the pack's cameras are centred (at most {PRINCIPAL_POINT_TOLERANCE:.0%}). Undistort "
                "or crop the images around the centre."
            )
    return fx / width


# ----------------------------------------------------------------------------- scale


def look_at_point(world_to_camera: torch.Tensor) -> torch.Tensor | None:
    """The point [3] closest to every camera's optical axis (least squares), or None when the axes
    are (nearly) parallel: solves Σ(I − d dᵀ) p = Σ(I − d dᵀ) c over cameras (centre c, axis d)."""
    d = world_to_camera[:, 2, :3]  # optical axes in world coordinates (third row of R)
    c = camera_centers(world_to_camera)
    P = torch.eye(3, dtype=d.dtype) - d.unsqueeze(-1) * d.unsqueeze(-2)  # [N, 3, 3] projections
    A, b = P.sum(0), (P @ c.unsqueeze(-1)).sum(0).squeeze(-1)
    eig = torch.linalg.eigvalsh(A)
    if eig[0] < MIN_AXIS_SPREAD * eig[-1]:
        return None
    return torch.linalg.solve(A, b)


def scene_centre(file_world_to_camera: torch.Tensor, anchor_world_to_camera: torch.Tensor, reference: str,
                 source: str) -> torch.Tensor:
    """The scene centre [3] in the source camera's coordinates, found from the file's own cameras
    ``file_world_to_camera`` [N, 4, 4] under ``reference`` (one of SCALE_REFERENCES);
    ``anchor_world_to_camera`` [4, 4] is the source camera in the file's world. Cameras that do not
    move need no scale: their centre is (0, 0, 1)."""
    unit = torch.tensor([0.0, 0.0, 1.0], dtype=POSE_DTYPE)
    if reference not in SCALE_REFERENCES:
        raise InverseDVSError(f"{source}: scale_reference '{reference}' is unknown; use one of "
                              f"{', '.join(SCALE_REFERENCES)}.")
    if reference == AS_IS:
        return unit
    centers = camera_centers(file_world_to_camera)
    spread = float((centers - centers[0]).norm(dim=-1).max())
    still = spread <= STILL_CAMERAS * max(1.0, float(centers.abs().max()))
    if reference == WORLD_ORIGIN:
        point = torch.zeros(3, dtype=POSE_DTYPE)
    else:
        point = look_at_point(file_world_to_camera)
        if point is None:
            if still:
                return unit
            raise InverseDVSError(
                f"{source}: the cameras look in (nearly) the same direction, so they point at no common scene "
                f"centre to scale by; set scale_reference to '{WORLD_ORIGIN}' (the scene is centred on the "
                f"world origin) or '{AS_IS}' (one unit of the file = one orbit radius)."
            )
    seen = anchor_world_to_camera[:3, :3] @ point + anchor_world_to_camera[:3, 3]
    if not seen[2] > 0:
        if still:
            return unit
        what = "the point the cameras look at" if reference == LOOK_AT else "the world origin"
        raise InverseDVSError(
            f"{source}: {what} is not in front of the source camera (depth {float(seen[2]):.3g}), so it cannot "
            f"set the scale; choose another anchor_frame or scale_reference ('{AS_IS}': one unit of the file = one "
            "orbit radius)."
        )
    return seen


# ----------------------------------------------------------------------------- cameras → path


def cameras_to_path(cameras: ImportedCameras, frames: int, anchor: int, mode: str, reference: str,
                    radius_scale: float, clip_size: tuple[int, int] | None, resize: str,
                    label: str) -> tuple[CameraPath, torch.Tensor]:
    """The CameraPath of imported ``cameras`` for a clip of ``frames`` frames, and the scene centre
    [3] in the path's world (the source camera at rest), in orbit radii, for the preview.

    Steps: name order; focal lengths in clip widths (``clip_focal``); ``fit_to_frames``; poses
    re-expressed relative to frame ``anchor``'s camera (W_i · W_anchor⁻¹, so it is at rest); lengths
    divided by the depth of the scene centre (``scene_centre``, from the file's own cameras) in that
    camera, so the centre is one orbit radius away; field of view from the anchor's focal length,
    zoom = f_i / f_anchor.
    """
    if not 0 <= anchor < frames:
        raise InverseDVSError(f"{label}: anchor_frame = {anchor} but the clip has {frames} frames; use 0 to "
                              f"{frames - 1}.")
    cameras = in_name_order(cameras)
    focal = torch.tensor([clip_focal(lens, clip_size, resize) for lens in cameras.lenses], dtype=POSE_DTYPE)
    w2c, focal = fit_to_frames(cameras.world_to_camera, focal, cameras.names, frames, mode, label)
    relative = relative_transforms(w2c, anchor)
    centre = scene_centre(cameras.world_to_camera, w2c[anchor], reference, label)
    distance = centre[2]
    unit = relative.clone()
    unit[:, :3, 3] = relative[:, :3, 3] / distance
    fov = math.degrees(2 * math.atan(0.5 / float(focal[anchor])))
    if not MIN_FOV_X_DEG <= fov <= MAX_FOV_X_DEG:
        raise InverseDVSError(
            f"{label}: the source camera's horizontal field of view is {fov:.1f}° in the clip; the pack warps "
            f"{MIN_FOV_X_DEG:g}° to {MAX_FOV_X_DEG:g}°. Check the focal length and image size in the file."
        )
    path = CameraPath(world_to_camera=unit, zoom=focal / focal[anchor], fov_x_deg=fov,
                      radius_scale=float(radius_scale), anchor=int(anchor), label=label)
    return path, centre / distance


def refit_path(path: CameraPath, frames: int, mode: str, radius_scale: float, source: str) -> CameraPath:
    """A saved CameraPath fitted to ``frames`` frames (``fit_to_frames`` on its poses and zoom; the
    anchor moves proportionally) with its radius scale multiplied by ``radius_scale``."""
    names = tuple(f"frame {i}" for i in range(path.frames))
    w2c, zoom = fit_to_frames(path.world_to_camera, path.zoom, names, frames, mode, source)
    anchor = path.anchor
    if mode == RESAMPLE and frames != path.frames:
        anchor = round(path.anchor * (frames - 1) / max(1, path.frames - 1))
    if anchor >= frames:
        raise InverseDVSError(f"{source}: the path's anchor frame {path.anchor} is not among the first {frames} "
                              f"frames; use frame_mismatch '{RESAMPLE}'.")
    return CameraPath(world_to_camera=w2c, zoom=zoom, fov_x_deg=path.fov_x_deg,
                      radius_scale=path.radius_scale * float(radius_scale), anchor=anchor, label=path.label)
