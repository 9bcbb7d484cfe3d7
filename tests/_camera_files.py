"""Writers of COLMAP (text, binary) and transforms.json files for the camera-import tests, written
from the formats' documentation independently of the pack's readers, and the ground-truth cameras."""

from __future__ import annotations

import json
import math
import struct

import torch

# COLMAP model ids and parameter counts used here (from COLMAP's documentation).
MODEL_IDS = {"SIMPLE_PINHOLE": 0, "PINHOLE": 1, "SIMPLE_RADIAL": 2, "OPENCV": 4}


def hamilton_matrix(q) -> torch.Tensor:
    """Rotation [3, 3] of the unit quaternion (w, x, y, z), textbook Hamilton form."""
    w, x, y, z = (float(v) for v in q)
    return torch.tensor([
        [w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), w * w - x * x - y * y + z * z],
    ], dtype=torch.float64)


def quaternion_of(R: torch.Tensor) -> tuple[float, float, float, float]:
    """(w, x, y, z) of rotation R [3, 3]: the eigenvector of the largest eigenvalue of the symmetric
    4x4 matrix built from R (Bar-Itzhack), checked against ``hamilton_matrix``."""
    r = R.to(torch.float64)
    K = torch.tensor([
        [r[0, 0] - r[1, 1] - r[2, 2], r[1, 0] + r[0, 1], r[2, 0] + r[0, 2], r[2, 1] - r[1, 2]],
        [r[1, 0] + r[0, 1], r[1, 1] - r[0, 0] - r[2, 2], r[2, 1] + r[1, 2], r[0, 2] - r[2, 0]],
        [r[2, 0] + r[0, 2], r[2, 1] + r[1, 2], r[2, 2] - r[0, 0] - r[1, 1], r[1, 0] - r[0, 1]],
        [r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1], r[0, 0] + r[1, 1] + r[2, 2]],
    ], dtype=torch.float64) / 3.0
    _, vectors = torch.linalg.eigh(K)
    x, y, z, w = vectors[:, -1].tolist()
    q = (w, x, y, z)
    assert torch.allclose(hamilton_matrix(q), r, atol=1e-12), "quaternion helper is wrong"
    return q


def look_at(centre: torch.Tensor, target: torch.Tensor, roll_deg: float = 0.0) -> torch.Tensor:
    """World-to-camera [4, 4] (OpenCV axes, y down) of a camera at ``centre`` looking at ``target``."""
    z = target - centre
    z = z / z.norm()
    down = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64)
    x = torch.linalg.cross(down, z)
    x = x / x.norm()
    y = torch.linalg.cross(z, x)
    R = torch.stack([x, y, z])
    a = math.radians(roll_deg)
    roll = torch.tensor([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]], dtype=torch.float64)
    R = roll @ R
    M = torch.eye(4, dtype=torch.float64)
    M[:3, :3] = R
    M[:3, 3] = -R @ centre
    return M


def to_file_world(w2c: torch.Tensor, rotation: torch.Tensor, scale: float, offset: torch.Tensor) -> torch.Tensor:
    """The same cameras [N, 4, 4] in a world X' = scale·rotation·X + offset (how a reconstruction's
    world differs from the scene's): W' = [R·rotationᵀ | scale·t − R·rotationᵀ·offset]."""
    out = w2c.clone()
    R = w2c[:, :3, :3] @ rotation.T
    out[:, :3, :3] = R
    out[:, :3, 3] = scale * w2c[:, :3, 3] - (R @ offset.unsqueeze(-1)).squeeze(-1)
    return out


def colmap_text(w2c: torch.Tensor, names, lens: dict, model: str = "PINHOLE", order=None) -> tuple[str, str]:
    """(cameras.txt, images.txt) of cameras [N, 4, 4] sharing one camera ``lens`` (fx, fy, cx, cy, w, h)."""
    params = {"SIMPLE_PINHOLE": [lens["fx"], lens["cx"], lens["cy"]],
              "PINHOLE": [lens["fx"], lens["fy"], lens["cx"], lens["cy"]],
              "SIMPLE_RADIAL": [lens["fx"], lens["cx"], lens["cy"], 0.0],
              "OPENCV": [lens["fx"], lens["fy"], lens["cx"], lens["cy"], 0, 0, 0, 0]}[model]
    cameras = ("# Camera list with one line of data per camera:\n#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n"
               f"3 {model} {lens['w']} {lens['h']} " + " ".join(repr(float(p)) for p in params) + "\n")
    lines = ["# Image list with two lines of data per image:", "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
             "#   POINTS2D[] as (X, Y, POINT3D_ID)"]
    for k in order if order is not None else range(len(names)):
        q = quaternion_of(w2c[k, :3, :3])
        t = w2c[k, :3, 3].tolist()
        lines.append(" ".join([str(k + 10)] + [repr(v) for v in (*q, *t)] + ["3", names[k]]))
        lines.append("12.5 3.25 7 40.0 11.0 -1" if k % 2 else "")
    return cameras, "\n".join(lines) + "\n"


def colmap_binary(w2c: torch.Tensor, names, lens: dict, model: str = "PINHOLE", order=None) -> tuple[bytes, bytes]:
    """(cameras.bin, images.bin) with the same content as ``colmap_text``."""
    params = {"SIMPLE_PINHOLE": [lens["fx"], lens["cx"], lens["cy"]],
              "PINHOLE": [lens["fx"], lens["fy"], lens["cx"], lens["cy"]]}[model]
    cameras = struct.pack("<Q", 1) + struct.pack("<iiQQ", 3, MODEL_IDS[model], lens["w"], lens["h"])
    cameras += struct.pack("<" + "d" * len(params), *params)
    order = list(order) if order is not None else list(range(len(names)))
    images = struct.pack("<Q", len(order))
    for k in order:
        q = quaternion_of(w2c[k, :3, :3])
        images += struct.pack("<I7dI", k + 10, *q, *w2c[k, :3, 3].tolist(), 3)
        images += names[k].encode() + b"\x00"
        points = [(12.5, 3.25, 7), (40.0, 11.0, -1)] if k % 2 else []
        images += struct.pack("<Q", len(points)) + b"".join(struct.pack("<ddq", *p) for p in points)
    return cameras, images


def transforms_json(w2c: torch.Tensor, names, lens: dict) -> str:
    """A nerfstudio transforms.json: camera-to-world matrices with OpenGL camera axes (y up, z back)."""
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))
    frames = [{"file_path": f"images/{name}", "transform_matrix": (torch.linalg.inv(m) @ flip).tolist()}
              for name, m in zip(names, w2c)]
    document = {"camera_model": "OPENCV", "fl_x": lens["fx"], "fl_y": lens["fy"], "cx": lens["cx"], "cy": lens["cy"],
                "w": lens["w"], "h": lens["h"], "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0, "frames": frames}
    return json.dumps(document, indent=1)
