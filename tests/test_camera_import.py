"""Load Camera Path / Save Camera Path: each format pinned by a scene rendered through the imported
cameras against the ground truth, round trips between formats, resampling, and bad files."""

import functools
import importlib.util
import json
import math
import os

import pytest
import torch

from _camera_files import colmap_binary, colmap_text, hamilton_matrix, look_at, to_file_world, transforms_json
from conftest import PACK_ROOT
from inversedvs.errors import InverseDVSError
from inversedvs.nodes import video
from inversedvs.nodes.camera import CameraTrajectory
from inversedvs.nodes.camera_import import LoadCameraPath, SaveCameraPath, list_camera_files
from inversedvs.warp import camera_io as cio
from inversedvs.warp import synthetic
from inversedvs.warp.camera import CameraPath, camera_centers, intrinsics, relative_transforms

# The clip: odd sizes put the centre pixel (H//2, W//2) on the optical axis.
FRAMES, H, W = 7, 33, 49
# The cameras' own images: another size and aspect; crop to fill scales by max(33/60, 49/98) = 0.55.
FILE_W, FILE_H = 98, 60
CROP_SCALE = max(H / FILE_H, W / FILE_W)
FOV_X_DEG = 70.0
CENTRE = torch.tensor([0.4, -0.3, 6.0], dtype=torch.float64)
DISTANCE = 3.0  # from every camera to the centre, in scene units (= the depth the pack sees)
# The reconstruction's world: rotated, 7.3 times larger, shifted.
FILE_SCALE = 7.3
NAMES = [f"frame_{i + 1:05}.png" for i in range(FRAMES)]
SHUFFLED = [4, 0, 6, 2, 5, 1, 3]  # the order images appear in the files


def _rotation(axis, deg):
    axis = torch.tensor(axis, dtype=torch.float64)
    axis = axis / axis.norm()
    half = math.radians(deg) / 2
    return hamilton_matrix((math.cos(half), *(axis * math.sin(half)).tolist()))


FILE_ROTATION = _rotation([0.3, -1.0, 0.5], 123.0)
FILE_OFFSET = torch.tensor([2.0, -5.0, 1.5], dtype=torch.float64)


def _ground_truth_cameras(frames=FRAMES, yaw_step=6.0):
    """Cameras on a sphere of radius DISTANCE about CENTRE, looking at it, some rolled."""
    poses = []
    for i in range(frames):
        yaw, pitch = math.radians(yaw_step * (i - 2)), math.radians(3.0 * math.sin(i))
        direction = torch.tensor([math.sin(yaw) * math.cos(pitch), math.sin(pitch), -math.cos(yaw) * math.cos(pitch)],
                                 dtype=torch.float64)
        poses.append(look_at(CENTRE + DISTANCE * direction, CENTRE, roll_deg=4.0 * math.cos(i)))
    return torch.stack(poses)


def _clip_focal():
    return (W / 2) / math.tan(math.radians(FOV_X_DEG) / 2)


def _file_lens():
    """The cameras' intrinsics in pixels of their own images (principal point at the centre, w/2)."""
    f = _clip_focal() / CROP_SCALE
    return {"fx": f, "fy": f, "cx": FILE_W / 2, "cy": FILE_H / 2, "w": FILE_W, "h": FILE_H}


GROUND_TRUTH = _ground_truth_cameras()
FILE_POSES = to_file_world(GROUND_TRUTH, FILE_ROTATION, FILE_SCALE, FILE_OFFSET)


def _scene():
    # a plane through the centre (so the depth at every anchor's centre pixel is DISTANCE) and spheres
    normal = torch.tensor([0.1, -0.2, 1.0], dtype=torch.float64)
    normal = normal / normal.norm()
    return synthetic.Scene(
        planes=(synthetic.Plane(tuple(normal.tolist()), float(normal @ CENTRE), (0.7, 0.4, 0.2), 0.6),),
        spheres=(synthetic.Sphere(tuple((CENTRE + torch.tensor([0.9, 0.35, -0.9], dtype=torch.float64)).tolist()),
                                  0.35, (0.2, 0.6, 0.9)),
                 synthetic.Sphere(tuple((CENTRE + torch.tensor([-0.8, -0.45, -0.6], dtype=torch.float64)).tolist()),
                                  0.3, (0.3, 0.9, 0.3))))


SCENE = _scene()
K_CLIP = intrinsics(H, W, FOV_X_DEG)[0]


@pytest.fixture()
def folders(tmp_path, monkeypatch):
    monkeypatch.setenv("INVERSEDVS_INPUT_DIR", str(tmp_path / "input"))
    monkeypatch.setenv("INVERSEDVS_OUTPUT_DIR", str(tmp_path / "output"))
    (tmp_path / "input").mkdir()
    (tmp_path / "output").mkdir()
    return tmp_path


def _write(folders, relative, data):
    path = folders / "input" / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)
    return relative


def _write_format(folders, fmt, poses=FILE_POSES, names=NAMES, order=SHUFFLED):
    lens = _file_lens()
    if fmt == "colmap_text":
        cameras, images = colmap_text(poses, names, lens, order=order)
        _write(folders, "scan/sparse/0/cameras.txt", cameras)
        return _write(folders, "scan/sparse/0/images.txt", images)
    if fmt == "colmap_binary":
        cameras, images = colmap_binary(poses, names, lens, order=order)
        _write(folders, "scan/sparse/1/cameras.bin", cameras)
        return _write(folders, "scan/sparse/1/images.bin", images)
    order = order if order is not None else range(len(names))
    return _write(folders, "scan/transforms.json", transforms_json(poses[list(order)], [names[k] for k in order], lens))


def _load(file, frames=FRAMES, mismatch=cio.REFUSE, anchor=0, reference=cio.LOOK_AT, radius_scale=1.0,
          resize=video.RESIZE_MODES[0], images=None):
    if images is None:
        images = torch.zeros(frames, H, W, 3)
    return LoadCameraPath().load(file, frames, mismatch, anchor, reference, radius_scale, resize, images)


@functools.lru_cache(maxsize=1)
def _truth():
    """The scene rendered from the ground-truth cameras (rendered once)."""
    return synthetic.render(SCENE, GROUND_TRUTH, K_CLIP, H, W, torch.zeros(FRAMES))


def _imported_render(path):
    """Render the scene through the imported path, with the radius the pack resolves from the depth."""
    anchor = path.anchor
    truth = _truth()
    radius = float(path.orbit_radius(truth["depth"]))
    cameras = path.anchor_to_frame(radius) @ GROUND_TRUTH[anchor]
    return synthetic.render(SCENE, cameras, path.target_intrinsics(H, W), H, W, torch.zeros(FRAMES)), truth, radius


FORMATS = ("colmap_text", "colmap_binary", "transforms_json")


@pytest.mark.parametrize("anchor", [0, 3])
@pytest.mark.parametrize("fmt", FORMATS)
def test_scene_rendered_through_imported_cameras_matches_ground_truth(folders, fmt, anchor):
    path, preview = _load(_write_format(folders, fmt), anchor=anchor)
    assert path.frames == FRAMES and path.anchor == anchor and preview.shape == (1, 256, 512, 3)
    assert abs(path.fov_x_deg - FOV_X_DEG) < 1e-9 and torch.allclose(path.zoom, torch.ones_like(path.zoom), atol=1e-12)
    render, truth, radius = _imported_render(path)
    assert abs(radius - DISTANCE) < 1e-9  # the scene centre sits one radius (the centre pixel's depth) away
    assert (truth["depth"] > 0).float().mean() > 0.99
    assert float((render["depth"] - truth["depth"]).abs().max()) < 1e-6
    assert float((render["image"] - truth["image"]).abs().max()) < 1e-6
    # the source camera is at rest in the path's world
    assert torch.allclose(path.world_to_camera[anchor], torch.eye(4, dtype=torch.float64), atol=1e-12)


def test_a_wrong_convention_would_show_in_the_render(folders):
    """The comparison above can fail: mirrored axes or an unscaled focal length change the picture."""
    path, _ = _load(_write_format(folders, "colmap_text"))
    truth = _truth()
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))
    wrong_axes = flip @ path.anchor_to_frame(DISTANCE) @ flip @ GROUND_TRUTH[0]
    wrong = synthetic.render(SCENE, wrong_axes, path.target_intrinsics(H, W), H, W, torch.zeros(FRAMES))
    assert float((wrong["image"][1:] - truth["image"][1:]).abs().max()) > 0.1
    width_fov = intrinsics(H, W, math.degrees(2 * math.atan(FILE_W / 2 / _file_lens()["fx"])))[0]
    wrong = synthetic.render(SCENE, GROUND_TRUTH, width_fov, H, W, torch.zeros(FRAMES))
    assert float((wrong["image"] - truth["image"]).abs().max()) > 0.1


def test_formats_round_trip_to_the_same_path(folders):
    paths = [_load(_write_format(folders, fmt))[0] for fmt in FORMATS]
    for other in paths[1:]:
        assert float((other.world_to_camera - paths[0].world_to_camera).abs().max()) < 1e-6
        assert float((other.zoom - paths[0].zoom).abs().max()) < 1e-6
        assert abs(other.fov_x_deg - paths[0].fov_x_deg) < 1e-6
    # the readers return the file's poses themselves (world and units of the file), not only the same path
    for fmt in FORMATS:
        read = cio.in_name_order(cio.read_camera_file(str(folders / "input" / _write_format(folders, fmt)))[1])
        assert list(read.names) == [n if fmt != "transforms_json" else f"images/{n}" for n in NAMES]
        assert float((read.world_to_camera - FILE_POSES).abs().max()) < 1e-6


def test_colmap_quaternion_and_transforms_axes_are_pinned():
    """Known values: q = (cos 45°, 0, sin 45°, 0) turns 90° about y; an OpenGL camera at rest sees -z."""
    cameras = cio.parse_colmap_cameras_text("1 PINHOLE 100 80 90 90 50 40\n")
    half = math.sqrt(0.5)
    imported = cio.parse_colmap_images_text(f"7 {half} 0 {half} 0 1 2 3 1 a.png\n\n", cameras)
    expected = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]], dtype=torch.float64)
    assert torch.allclose(imported.world_to_camera[0, :3, :3], expected, atol=1e-12)
    assert imported.world_to_camera[0, :3, 3].tolist() == [1.0, 2.0, 3.0]
    assert imported.lenses[0] == cio.Lens(90.0, 90.0, 50.0, 40.0, 100.0, 80.0)
    document = {"fl_x": 50, "w": 100, "h": 80, "frames": [{"transform_matrix": torch.eye(4).tolist()}]}
    w2c = cio.parse_transforms(json.dumps(document)).world_to_camera[0]
    ahead = w2c @ torch.tensor([0.0, 0.0, -5.0, 1.0], dtype=torch.float64)  # in front of the OpenGL camera
    up = w2c @ torch.tensor([0.0, 1.0, -5.0, 1.0], dtype=torch.float64)  # above it
    assert ahead[:3].tolist() == [0.0, 0.0, 5.0] and up[1] < 0  # OpenCV: z forward, y down


def test_rotations_round_trip_through_quaternions_including_half_turns():
    g = torch.Generator().manual_seed(3)
    q = torch.randn(200, 4, generator=g, dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True)
    R = cio.quaternion_to_matrix(q)
    half_turns = torch.stack([torch.diag(torch.tensor(d, dtype=torch.float64))
                              for d in ([1.0, -1, -1], [-1.0, 1, -1], [-1.0, -1, 1])])
    R = torch.cat([R, half_turns])
    back = cio.quaternion_to_matrix(cio.matrix_to_quaternion(R))
    assert float((back - R).abs().max()) < 1e-12
    for k in range(3):
        assert torch.allclose(R[k], hamilton_matrix(q[k]), atol=1e-12)


def test_scale_references_agree_when_the_world_origin_is_the_centre(folders):
    centred = to_file_world(GROUND_TRUTH, FILE_ROTATION, FILE_SCALE, -FILE_SCALE * FILE_ROTATION @ CENTRE)
    file = _write_format(folders, "colmap_binary", poses=centred)
    look, _ = _load(file, reference=cio.LOOK_AT)
    origin, _ = _load(file, reference=cio.WORLD_ORIGIN)
    assert float((look.world_to_camera - origin.world_to_camera).abs().max()) < 1e-9
    as_is, _ = _load(file, reference=cio.AS_IS, radius_scale=0.5)
    # as_is keeps the file's units: the centre is FILE_SCALE·DISTANCE file units away
    ratio = as_is.world_to_camera[1:, :3, 3].norm(dim=-1) / look.world_to_camera[1:, :3, 3].norm(dim=-1)
    assert torch.allclose(ratio, torch.full_like(ratio, FILE_SCALE * DISTANCE), rtol=1e-9)
    assert as_is.radius_scale == 0.5


def test_a_dolly_needs_another_scale_reference(folders):
    poses = torch.stack([look_at(torch.tensor([0.0, 0.0, 0.2 * i], dtype=torch.float64), CENTRE * 10)
                         for i in range(FRAMES)])
    file = _write_format(folders, "colmap_text", poses=poses)
    with pytest.raises(InverseDVSError, match="look in \\(nearly\\) the same direction.*world_origin"):
        _load(file)
    path, _ = _load(file, reference=cio.AS_IS)
    assert torch.allclose(camera_centers(path.world_to_camera)[-1].norm(), torch.tensor(1.2, dtype=torch.float64))


def test_missing_images_are_refused_or_interpolated(folders):
    kept = [0, 1, 2, 5, 6]  # frames 4 and 5 (numbers) were not registered
    file = _write_format(folders, "colmap_text", poses=FILE_POSES[kept], names=[NAMES[k] for k in kept],
                         order=[3, 0, 4, 1, 2])
    with pytest.raises(InverseDVSError, match="fewer poses than frames.*resample"):
        _load(file)
    path, _ = _load(file, mismatch=cio.RESAMPLE)
    full, _ = _load(_write_format(folders, "colmap_binary"))
    raw = cio.in_name_order(cio.read_camera_file(str(folders / "input" / file))[1]).world_to_camera
    resampled = cio.fit_to_frames(raw, torch.ones(5, dtype=torch.float64), sorted(NAMES[k] for k in kept), FRAMES,
                                  cio.RESAMPLE, "x")[0]
    assert torch.equal(resampled[kept], raw)  # frames with an image are the imported cameras, bit for bit
    for k in kept:
        assert float((path.world_to_camera[k] - full.world_to_camera[k]).abs().max()) < 1e-9
    centres, truth = camera_centers(path.world_to_camera), camera_centers(full.world_to_camera)
    for k, w in ((3, 1 / 3), (4, 2 / 3)):  # positions lerped between frames 3 and 6 (numbers)
        assert torch.allclose(centres[k], truth[2] + w * (truth[5] - truth[2]), atol=1e-9)
        # rotation slerped: the angle to each neighbour is w and 1-w of the whole turn
        def angle(a, b):
            cos = ((a[:3, :3] @ b[:3, :3].T).trace() - 1) / 2
            return math.acos(max(-1.0, min(1.0, float(cos))))
        whole = angle(full.world_to_camera[2], full.world_to_camera[5])
        assert abs(angle(path.world_to_camera[k], full.world_to_camera[2]) - w * whole) < 1e-9
        assert abs(angle(path.world_to_camera[k], full.world_to_camera[5]) - (1 - w) * whole) < 1e-9
    seven = [0, 1, 2, 3, 5, 6, 7]
    gap_file = _write_format(folders, "colmap_binary", poses=_ground_truth_cameras(8)[seven],
                             names=[f"frame_{k + 1:05}.png" for k in seven], order=None)
    with pytest.raises(InverseDVSError, match="images are missing: frame number\\(s\\) 5 "):
        _load(gap_file)  # seven poses for seven frames, but one is missing in the middle


def test_more_poses_than_frames(folders):
    file = _write_format(folders, "transforms_json")
    with pytest.raises(InverseDVSError, match="more poses than frames.*first_frames"):
        _load(file, frames=4, images=torch.zeros(4, H, W, 3))
    first, _ = _load(file, frames=4, mismatch=cio.FIRST_FRAMES, images=torch.zeros(4, H, W, 3))
    full, _ = _load(file)
    assert torch.allclose(first.world_to_camera, full.world_to_camera[:4], atol=1e-12)
    spread, _ = _load(file, frames=4, mismatch=cio.RESAMPLE, images=torch.zeros(4, H, W, 3))
    assert torch.allclose(spread.world_to_camera, full.world_to_camera[[0, 2, 4, 6]], atol=1e-9)


def test_focal_lengths_follow_the_resize_mode():
    lens = cio.Lens(100.0, 100.0, 80.0, 45.0, 160.0, 90.0)  # 16:9 images
    crop = cio.clip_focal(lens, (480, 720), cio.CROP)  # height fits: scale 480/90
    letterbox = cio.clip_focal(lens, (480, 720), cio.LETTERBOX)  # width fits: scale 720/160
    assert crop == pytest.approx(100 * 480 / 90 / 720) and letterbox == pytest.approx(100 * 720 / 160 / 720)
    assert cio.clip_focal(lens, None, cio.CROP) == pytest.approx(100 / 160)
    with pytest.raises(InverseDVSError, match="stretch changed the aspect ratio"):
        cio.clip_focal(lens, (480, 720), cio.STRETCH)
    assert list(cio.RESIZE_MODES) == list(video.RESIZE_MODES)


def test_zoom_follows_the_focal_lengths(folders):
    lens = _file_lens()
    document = json.loads(transforms_json(FILE_POSES, NAMES, lens))
    for i, frame in enumerate(document["frames"]):
        frame["fl_x"] = frame["fl_y"] = lens["fx"] * (1 + 0.1 * i)
    path, _ = _load(_write(folders, "zoom/transforms.json", json.dumps(document)), anchor=2)
    assert torch.allclose(path.zoom, torch.tensor([(1 + 0.1 * i) / 1.2 for i in range(FRAMES)], dtype=torch.float64))
    expected = math.degrees(2 * math.atan(W / 2 / (_clip_focal() * 1.2)))
    assert abs(path.fov_x_deg - expected) < 1e-9


def test_saved_path_reloads_bit_for_bit(folders):
    made, _ = CameraTrajectory().build("reference loop2", "", 9, 0.8, 4, 62.0, 1.0)
    zoomed, _ = CameraTrajectory().build("zoom in", "", 9, 1.0, 0, 62.0, 1.0)
    for path in (made, zoomed, _load(_write_format(folders, "colmap_text"))[0]):
        saved = SaveCameraPath().save(path, "paths/mine")["result"][0]
        assert saved.startswith("paths/mine_") and saved.endswith(cio.PATH_FILE_SUFFIX)
        os.replace(folders / "output" / saved, folders / "input" / os.path.basename(saved))
        again, _ = _load(os.path.basename(saved), frames=path.frames, images=torch.zeros(path.frames, H, W, 3))
        assert torch.equal(again.world_to_camera, path.world_to_camera) and torch.equal(again.zoom, path.zoom)
        assert (again.fov_x_deg, again.radius_scale, again.anchor, again.label) == \
               (path.fov_x_deg, path.radius_scale, path.anchor, path.label)


def test_saving_never_overwrites_and_an_edited_file_is_read(folders):
    path, _ = CameraTrajectory().build("orbit right", "", 5, 1.0, 0, 62.0, 1.0)
    first = SaveCameraPath().save(path, "p")["result"][0]
    second = SaveCameraPath().save(path, "p")["result"][0]
    assert first != second and (folders / "output" / first).read_text() == (folders / "output" / second).read_text()
    document = json.loads((folders / "output" / first).read_text())
    document["frames"][4]["zoom"] = 2.0
    document["radius_scale"] = 0.5
    _write(folders, "edited.camera_path.json", json.dumps(document))
    before = LoadCameraPath.IS_CHANGED("edited.camera_path.json")
    again, _ = _load("edited.camera_path.json", frames=5, radius_scale=2.0, images=torch.zeros(5, H, W, 3))
    assert again.zoom[4] == 2.0 and again.radius_scale == 1.0  # the file's 0.5 times the widget's 2
    with pytest.raises(InverseDVSError, match="^Load Camera Path \\(InverseDVS\\): radius_scale \\(times the saved "
                                              "path's\\) = 0.005 is out of range"):
        _load("edited.camera_path.json", frames=5, radius_scale=0.01)
    document["frames"][4]["zoom"] = 3.0
    _write(folders, "edited.camera_path.json", json.dumps(document))
    assert LoadCameraPath.IS_CHANGED("edited.camera_path.json") != before
    longer, _ = _load("edited.camera_path.json", frames=9, mismatch=cio.RESAMPLE)
    assert longer.frames == 9 and torch.allclose(longer.world_to_camera[[0, 2, 4, 6, 8]], path.world_to_camera)


def test_the_file_list_and_the_colmap_pair(folders):
    _write_format(folders, "colmap_text")
    _write_format(folders, "colmap_binary")
    _write_format(folders, "transforms_json")
    _write(folders, "clip.mp4", b"")
    assert list_camera_files() == ["scan/sparse/0/images.txt", "scan/sparse/1/images.bin", "scan/transforms.json"]
    before = LoadCameraPath.IS_CHANGED("scan/sparse/0/images.txt")
    text = (folders / "input" / "scan/sparse/0/cameras.txt").read_text()
    _write(folders, "scan/sparse/0/cameras.txt", text.replace("PINHOLE", "SIMPLE_PINHOLE").rsplit(" ", 3)[0] + " 49 30\n")
    assert LoadCameraPath.IS_CHANGED("scan/sparse/0/images.txt") != before  # the cameras file counts too
    assert LoadCameraPath.VALIDATE_INPUTS("nothing/images.txt").startswith("Load Camera Path")


def test_preview_draws_the_imported_path_and_its_centre(folders):
    _, preview = _load(_write_format(folders, "colmap_text"))
    _, moved = _load(_write_format(folders, "colmap_text"), anchor=5)
    assert float((preview - moved).abs().max()) > 0.5
    still, _ = CameraTrajectory().build("still (identity)", "", FRAMES, 1.0, 0, 62.0, 1.0)
    assert float((preview - _load_preview_of(still)).abs().max()) > 0.5


def _load_preview_of(path):
    from inversedvs.warp.path_preview import path_preview
    return path_preview(path)


def test_blender_exporter_intrinsics_and_document():
    spec = importlib.util.spec_from_file_location("blender_export_camera",
                                                  os.path.join(PACK_ROOT, "scripts", "blender_export_camera.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # importable without Blender: bpy is only needed to run it
    lens = module.pinhole_intrinsics(50.0, 36.0, 24.0, "AUTO", 1920, 1080, 0.0, 0.0)
    assert lens["fl_x"] == pytest.approx(50 / 36 * 1920) and lens["fl_y"] == lens["fl_x"]
    assert (lens["cx"], lens["cy"], lens["w"], lens["h"]) == (960.0, 540.0, 1920, 1080)
    tall = module.pinhole_intrinsics(50.0, 36.0, 24.0, "AUTO", 1080, 1920, 0.0, 0.0)
    assert tall["fl_x"] == pytest.approx(50 / 36 * 1920)  # AUTO fits the sensor width to the longer side
    vertical = module.pinhole_intrinsics(50.0, 36.0, 24.0, "VERTICAL", 1920, 1080, 0.1, 0.0)
    assert vertical["fl_y"] == pytest.approx(50 / 24 * 1080) and vertical["cx"] == pytest.approx(960 - 0.1 * 1080)
    # Blender's camera matrix_world is camera-to-world with the camera looking down its -z, y up
    c2w = torch.linalg.inv(FILE_POSES) @ torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64))
    file_lens = _file_lens()
    intr = {"fl_x": file_lens["fx"], "fl_y": file_lens["fy"], "cx": file_lens["cx"], "cy": file_lens["cy"],
            "w": FILE_W, "h": FILE_H}
    frames = [(f"frame_{i + 1:05}", m.tolist()) for i, m in enumerate(c2w)]
    read = cio.parse_transforms(module.transforms_document(frames, [intr] * FRAMES))
    assert float((read.world_to_camera - FILE_POSES).abs().max()) < 1e-9
    assert read.lenses[0] == cio.Lens(intr["fl_x"], intr["fl_y"], intr["cx"], intr["cy"], FILE_W, FILE_H)
    zooming = [dict(intr, fl_x=intr["fl_x"] * (1 + i), fl_y=intr["fl_y"] * (1 + i)) for i in range(FRAMES)]
    read = cio.parse_transforms(module.transforms_document(frames, zooming))
    assert [lens.fx for lens in read.lenses] == [lens["fl_x"] for lens in zooming]


@pytest.mark.parametrize("text, message", [
    ("1 FANCY 10 10 1 2 3\n", "unknown camera model 'FANCY'"),
    ("1 OPENCV_FISHEYE 10 10 1 1 5 5 0 0 0 0\n", "not a perspective"),
    ("1 PINHOLE 10 10 1 1 5\n", "has 4 parameters but the line gives 3"),
    ("# c\n1 PINHOLE 10 10 nan 1 5 5\n", "line 2: parameter 1 is 'nan'"),
])
def test_bad_cameras_text_names_the_line(text, message):
    with pytest.raises(InverseDVSError, match=message):
        cio.parse_colmap_cameras_text(text)


@pytest.mark.parametrize("text, message", [
    ("1 1 0 0 0 0 0 0 9 a.png\n\n", "uses camera 9"),
    ("1 1 0 0 0 inf 0 0 1 a.png\n\n", "line 1: TX is 'inf'"),
    ("1 1 0 0 0 0 0 0 1 a.png\n2 1 0 0 0 0 0 0 1 b.png\n", "line 2: expected the 2-D points"),
    ("# only comments\n", "no images are listed"),
    ("1 0 0 0 0 0 0 0 1 a.png\n", "quaternion QW QX QY QZ is zero"),
])
def test_bad_images_text_names_the_line(text, message):
    cameras = cio.parse_colmap_cameras_text("1 PINHOLE 10 10 10 10 5 5\n")
    with pytest.raises(InverseDVSError, match=message):
        cio.parse_colmap_images_text(text, cameras)


def test_truncated_binary_files_are_named():
    cameras, images = colmap_binary(FILE_POSES, NAMES, _file_lens())
    with pytest.raises(InverseDVSError, match="cameras.bin: the file ends at byte 20 inside camera 1 of 1"):
        cio.parse_colmap_cameras_binary(cameras[:20])
    parsed = cio.parse_colmap_cameras_binary(cameras)
    with pytest.raises(InverseDVSError, match="images.bin: the file ends .* inside image 7 of 7"):
        cio.parse_colmap_images_binary(images[:-30], parsed)
    bad = bytearray(cameras)
    bad[12:16] = (99).to_bytes(4, "little")
    with pytest.raises(InverseDVSError, match="unknown camera model id 99"):
        cio.parse_colmap_cameras_binary(bytes(bad))


@pytest.mark.parametrize("document, message", [
    ({"w": 10, "h": 10, "fl_x": 5}, "no 'frames' list"),
    ({"fl_x": 5, "w": 10, "h": 10, "frames": [{"file_path": "a"}]}, "frames\\[0\\]: 'transform_matrix' is missing"),
    ({"frames": [{"transform_matrix": torch.eye(4).tolist()}]}, "frames\\[0\\]: no focal length"),
    ({"fl_x": 5, "frames": [{"transform_matrix": torch.eye(4).tolist()}]}, "'w' and 'h' is missing"),
    ({"fl_x": 5, "w": 10, "h": 10, "frames": [{"transform_matrix": torch.diag(torch.tensor([2.0, 2, 2, 1])).tolist()}]}, "is not a rotation"),
    ({"fl_x": 5, "w": 10, "h": 10, "camera_model": "OPENCV_FISHEYE",
      "frames": [{"transform_matrix": torch.eye(4).tolist()}]}, "camera_model 'OPENCV_FISHEYE'"),
    ({"fl_x": "5", "w": 10, "h": 10, "frames": [{"transform_matrix": torch.eye(4).tolist()}]}, "'fl_x' is \"5\""),
    ({"fl_x": 10 ** 400, "w": 10, "h": 10, "frames": [{"transform_matrix": torch.eye(4).tolist()}]},
     "'fl_x' is 1000.*only finite numbers"),  # a JSON integer no float holds
])
def test_bad_transforms_name_the_field(document, message):
    with pytest.raises(InverseDVSError, match=message):
        cio.parse_transforms(json.dumps(document))


@pytest.mark.parametrize("text, reason", [
    ('{"frames": ' + "[" * 100_000, "nested too deeply"),
    ('{"fl_x": 1' + "0" * 5000 + "}", "Exceeds the limit"),
    (b'{"fl_x": "\xff"}', "byte 10 is not UTF-8"),
])
def test_json_the_decoder_refuses_is_named_not_raised_from_deep_inside(text, reason):
    with pytest.raises(InverseDVSError, match=f"transforms.json is not valid JSON \\({reason}"):
        cio.parse_transforms(text)


def test_non_finite_json_and_broken_json_are_named():
    text = '{"fl_x": 5, "w": 10, "h": 10, "frames": [{"transform_matrix": [[1,0,0,NaN],[0,1,0,0],[0,0,1,0],[0,0,0,1]]}]}'
    with pytest.raises(InverseDVSError, match="frames\\[0\\]: 'transform_matrix' is nan"):
        cio.parse_transforms(text)
    with pytest.raises(InverseDVSError, match="not valid JSON \\(line 2, column 1"):
        cio.parse_transforms('{"frames": [\n')


def test_camera_angle_only_transforms_use_the_clip_aspect(folders):
    document = {"camera_angle_x": math.radians(FOV_X_DEG),
                "frames": [{"file_path": f"./train/r_{i}", "transform_matrix": m.tolist()} for i, m in
                           enumerate(torch.linalg.inv(FILE_POSES) @ cio.OPENGL_TO_OPENCV)]}
    path, _ = _load(_write(folders, "nerf_synthetic/transforms_train.json", json.dumps(document)))
    assert abs(path.fov_x_deg - FOV_X_DEG) < 1e-9
    render, truth, _ = _imported_render(path)
    assert float((render["image"] - truth["image"]).abs().max()) < 1e-6


def test_forward_warp_through_an_imported_path_matches_the_truth(folders):
    """The whole geometric chain: the anchor frame warped with its depth along the imported COLMAP
    path (radius resolved by Forward Warp from the depth) equals the warp along the true cameras,
    and both match renders from the true cameras as well as the splat resolves at this size."""
    from inversedvs.nodes.warp import DEPTH_KIND_CHOICES, ForwardWarp

    anchor = 3
    imported, _ = _load(_write_format(folders, "colmap_binary"), anchor=anchor)
    truth = _truth()
    images = truth["image"][anchor].float().expand(FRAMES, H, W, 3).contiguous()
    depth = truth["depth"][anchor].float()[None, :, :, None].expand(FRAMES, H, W, 3).contiguous()
    source = GROUND_TRUTH[anchor].expand(FRAMES, 4, 4)
    visible = synthetic.visible_from(SCENE, truth["points"], source, K_CLIP, H, W, torch.zeros(FRAMES))
    moved = (torch.arange(FRAMES) != anchor)[:, None, None]
    exact = relative_transforms(GROUND_TRUTH, anchor)
    exact[:, :3, 3] /= DISTANCE

    def warp(path):
        warped, mask = ForwardWarp().warp(images, depth, path, DEPTH_KIND_CHOICES[1], 0, "cpu")
        both = visible & (mask < 0.5) & moved
        return warped, 10 * math.log10(1 / float(((warped - truth["image"].float()) ** 2).mean(-1)[both].mean()))

    warped, psnr = warp(imported)
    true_warp, _ = warp(CameraPath(exact, imported.zoom, FOV_X_DEG, 1.0, anchor, "truth"))
    _, off_scale = warp(CameraPath(exact, imported.zoom, FOV_X_DEG, 1.1, anchor, "10% too far"))
    print(f"\nimported COLMAP path, warp vs truth: PSNR {psnr:.2f} dB (radius 10% off: {off_scale:.2f} dB)")
    assert float((warped - true_warp).abs().max()) < 1e-4
    assert psnr > 25 and psnr > off_scale + 2


def test_colmap_documentation_example_lines_are_read():
    """The two-line layout and rounded quaternions of COLMAP's own documentation example."""
    cameras = cio.parse_colmap_cameras_text("# Camera list\n1 SIMPLE_PINHOLE 3072 2304 2559.81 1536 1152\n"
                                            "2 PINHOLE 3072 2304 2560.56 2560.56 1536 1152\n")
    text = ("# Image list with two lines of data per image:\n"
            "1 0.851773 0.0165051 0.503764 -0.142941 -0.737434 1.02973 3.74354 1 P1180141.JPG\n"
            "2362.39 248.498 58396 1784.7 268.254 59027 1784.7 268.254 -1\n"
            "2 0.851773 0.0165051 0.503764 -0.142941 -0.737434 1.02973 3.74354 2 P1180142.JPG\n"
            "1190.83 663.957 23056 1258.77 640.354 59070\n")
    read = cio.parse_colmap_images_text(text, cameras)
    R = read.world_to_camera[:, :3, :3]
    assert read.names == ("P1180141.JPG", "P1180142.JPG")
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(2, 3, 3), atol=1e-12)
    assert torch.allclose(torch.linalg.det(R), torch.ones(2, dtype=torch.float64))
    assert read.lenses[0].fx == read.lenses[0].fy == 2559.81 and read.lenses[1].cx == 1536


def _mutated_json(rng, value, depth: int = 0):
    """``value`` with one random edit somewhere inside: a key dropped, an item replaced by something hostile."""
    hostile = [None, "x", -1, 0, 1e300, 10 ** 400, [], {}, True, [[1]], float("nan")]
    if isinstance(value, dict) and value:
        out, key = dict(value), rng.choice(sorted(value))
        if rng.random() < 0.25:
            del out[key]
        else:
            out[key] = _mutated_json(rng, value[key], depth + 1) if rng.random() < 0.6 else rng.choice(hostile)
        return out
    if isinstance(value, list) and value:
        out, i = list(value), rng.randrange(len(value))
        out[i] = _mutated_json(rng, value[i], depth + 1) if rng.random() < 0.6 else rng.choice(hostile)
        return out
    return rng.choice(hostile + [value])


def _mutated_text(rng, text: str) -> str:
    chars = list(text)
    for _ in range(rng.randint(0, 2)):
        i = rng.randrange(len(chars) + 1)
        if chars and rng.random() < 0.3:
            del chars[min(i, len(chars) - 1)]
        else:
            chars.insert(i, rng.choice([" ", "\n", "#", "-", ".", "e", "9", " nan ", " inf ", " 1e400 ", "\n\n",
                                        " 99999999999999999999 "]))
    return "".join(chars)


def test_mutated_camera_files_only_ever_raise_the_packs_error():
    """A few hundred seeded mutations of valid transforms.json, COLMAP text and COLMAP binary files: each either
    imports to a finite path or is refused with InverseDVSError, never another exception from deep inside."""
    import random

    rng = random.Random(0)
    poses = [[[1, 0, 0, 0.1 * i], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]] for i in range(5)]
    document = {"camera_angle_x": 0.8, "frames": [{"file_path": f"f{i}.png", "transform_matrix": m}
                                                  for i, m in enumerate(poses)]}
    cameras_txt = "1 PINHOLE 640 480 500 500 320 240\n"
    images_txt = "".join(f"{i + 1} 1 0 0 0 {0.1 * i} 0 0 1 f{i}.png\n\n" for i in range(5))
    good_cameras = cio.parse_colmap_cameras_text(cameras_txt)

    def to_path(cameras):
        for reference in cio.SCALE_REFERENCES:
            try:
                path, centre = cio.cameras_to_path(cameras, 5, 0, cio.RESAMPLE, reference, 1.0, (720, 480), cio.CROP,
                                                   "test")
            except InverseDVSError:
                continue
            assert torch.isfinite(path.world_to_camera).all() and torch.isfinite(path.zoom).all()
            assert torch.isfinite(centre).all() and math.isfinite(path.fov_x_deg)

    imported = [0, 0, 0, 0]
    for _ in range(200):
        doc = document
        for _ in range(rng.randint(0, 2)):
            doc = _mutated_json(rng, doc)
        for kind, parse in enumerate((lambda: cio.parse_transforms(json.dumps(doc)),
                      lambda: cio.parse_colmap_images_text(_mutated_text(rng, images_txt),
                                                           cio.parse_colmap_cameras_text(_mutated_text(rng, cameras_txt))),
                      lambda: cio.parse_colmap_cameras_binary(bytes(rng.randrange(256) for _ in range(rng.randint(0, 80)))),
                      lambda: cio.parse_colmap_images_binary(bytes(rng.randrange(256) for _ in range(rng.randint(0, 120))),
                                                             good_cameras))):
            try:
                cameras = parse()
            except InverseDVSError:
                continue
            if isinstance(cameras, cio.ImportedCameras):
                imported[kind] += 1
                to_path(cameras)
    assert min(imported[:2]) >= 30, imported  # many files stay valid, so the import path itself is exercised
