"""Export a Blender camera's animation as a transforms.json that Load Camera Path (InverseDVS) reads.

Run it with Blender (any 2.8+ version), from a terminal:

    blender my_scene.blend --background --python scripts/blender_export_camera.py -- \
        --out /path/to/ComfyUI/input/my_move/transforms.json [--camera Camera] [--start 1 --end 49] [--step 1]

or paste it into Blender's Text Editor and press Run Script (it then writes transforms.json next to
the .blend file, for the scene's camera and frame range). One frame of the scene range = one frame
of the clip: set the range to the clip's frame count (49 for CogVideoX) or let Load Camera Path
resample. The file holds, per frame, the camera's world matrix (camera-to-world; a Blender camera
looks down its own -z with +y up, the axes transforms.json uses) and its intrinsics in pixels of
the render resolution (lens, sensor fit and shift applied; animated focal lengths become zoom).
Object scale is removed from the matrices. Only bpy is needed; the arithmetic below runs without it.
"""

from __future__ import annotations

import argparse
import json
import sys


def pinhole_intrinsics(lens_mm: float, sensor_width_mm: float, sensor_height_mm: float, sensor_fit: str,
                       width: int, height: int, shift_x: float, shift_y: float) -> dict:
    """fl_x, fl_y, cx, cy, w, h (pixels; the image spans 0..w) of a Blender perspective camera.

    The sensor size that applies is the width for sensor fit HORIZONTAL (and AUTO on a landscape or
    square frame), the height for VERTICAL (and AUTO on a portrait frame, where AUTO still uses the
    sensor *width* across the longer side); it spans that side of the frame. Shift is in units of
    that side; a positive shift moves the view right / up, so the principal point moves left / down.
    """
    fit = sensor_fit.upper()
    if fit == "AUTO":
        side = max(width, height)
        sensor = sensor_width_mm
    elif fit == "HORIZONTAL":
        side, sensor = width, sensor_width_mm
    elif fit == "VERTICAL":
        side, sensor = height, sensor_height_mm
    else:
        raise ValueError(f"unknown sensor fit {sensor_fit!r}")
    focal = lens_mm / sensor * side
    return {"fl_x": focal, "fl_y": focal, "cx": width / 2 - shift_x * side, "cy": height / 2 + shift_y * side,
            "w": int(width), "h": int(height)}


def transforms_document(frames, lenses) -> str:
    """The transforms.json text for ``frames`` [(name, 4x4 camera-to-world rows)] and one intrinsics
    dict per frame in ``lenses`` (written once at the top level when they are all equal)."""
    lenses = list(lenses)
    shared = all(lens == lenses[0] for lens in lenses)
    document = {"camera_model": "PINHOLE", **(lenses[0] if shared else {"w": lenses[0]["w"], "h": lenses[0]["h"]})}
    document["frames"] = [
        {"file_path": name, "transform_matrix": [list(map(float, row)) for row in matrix],
         **({} if shared else {k: v for k, v in lens.items() if k not in ("w", "h")})}
        for (name, matrix), lens in zip(frames, lenses)
    ]
    return json.dumps(document, indent=1)


def _arguments(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="//transforms.json", help="output file ('//' = next to the .blend)")
    parser.add_argument("--camera", default=None, help="camera object name (default: the scene's camera)")
    parser.add_argument("--start", type=int, default=None, help="first frame (default: the scene's start)")
    parser.add_argument("--end", type=int, default=None, help="last frame, included (default: the scene's end)")
    parser.add_argument("--step", type=int, default=1, help="export every n-th frame")
    return parser.parse_args(argv[argv.index("--") + 1:] if "--" in argv else [])


def main(argv) -> None:
    import bpy  # noqa: PLC0415 - only inside Blender
    from mathutils import Matrix  # noqa: PLC0415

    args = _arguments(argv)
    scene = bpy.context.scene
    camera = bpy.data.objects.get(args.camera) if args.camera else scene.camera
    if camera is None or camera.type != "CAMERA":
        raise SystemExit("blender_export_camera: no camera; pass --camera NAME or set the scene's camera.")
    if camera.data.type != "PERSP":
        raise SystemExit(f"blender_export_camera: camera '{camera.name}' is {camera.data.type}; only perspective "
                         "cameras can be exported.")
    render = scene.render
    scale = render.resolution_percentage / 100.0
    width, height = round(render.resolution_x * scale), round(render.resolution_y * scale)
    if abs(render.pixel_aspect_x - render.pixel_aspect_y) > 1e-6:
        raise SystemExit("blender_export_camera: non-square pixels (pixel aspect); set both to 1.")
    start = scene.frame_start if args.start is None else args.start
    end = scene.frame_end if args.end is None else args.end
    frames, lenses = [], []
    for number in range(start, end + 1, max(1, args.step)):
        scene.frame_set(number)
        location, rotation, _ = camera.matrix_world.decompose()
        matrix = Matrix.Translation(location) @ rotation.to_matrix().to_4x4()
        data = camera.data
        frames.append((f"frame_{number:05}", [list(row) for row in matrix]))
        lenses.append(pinhole_intrinsics(data.lens, data.sensor_width, data.sensor_height, data.sensor_fit,
                                         width, height, data.shift_x, data.shift_y))
    out = bpy.path.abspath(args.out)
    with open(out, "w", encoding="utf-8") as f:
        f.write(transforms_document(frames, lenses))
    print(f"blender_export_camera: wrote {len(frames)} frames of '{camera.name}' to {out}")


if __name__ == "__main__":
    main(sys.argv)
