"""Camera Trajectory and Forward Warp nodes: outputs, preview, and clear errors."""

import pytest
import torch

from inversedvs.errors import InverseDVSError
from inversedvs.nodes.camera import CameraTrajectory
from inversedvs.nodes.warp import DEPTH_KIND_CHOICES, ForwardWarp
from inversedvs.warp import trajectory as traj
from inversedvs.warp.camera import DEFAULT_FOV_X_DEG, CameraPath
from inversedvs.warp.sample import depth_to_disparity_image, sample_clip

RELATIVE, METRIC = DEPTH_KIND_CHOICES
FRAMES, HEIGHT, WIDTH = 5, 48, 72


def _path(preset="orbit right", keyframes="", frames=FRAMES, radius_scale=1.0, anchor=0, fov=DEFAULT_FOV_X_DEG,
          amount=1.0):
    return CameraTrajectory().build(preset, keyframes, frames, radius_scale, anchor, fov, amount)


@pytest.fixture(scope="module")
def clip():
    return sample_clip(FRAMES, HEIGHT, WIDTH)


def test_preset_gives_a_path_and_a_preview():
    path, preview = _path()
    assert isinstance(path, CameraPath) and path.frames == FRAMES and path.label == "orbit right"
    assert preview.shape == (1, 256, 512, 3) and 0.0 <= float(preview.min()) and float(preview.max()) <= 1.0
    other = _path("arc up")[1]
    assert float((preview - other).abs().max()) > 0.5  # the picture shows the move


def test_custom_keyframes_are_parsed():
    path, _ = _path(traj.CUSTOM, "0 0\n0 -20\n0 0.1", frames=9)
    expected = traj.camera_path(traj.Keyframes(phi=(0.0, -20.0), forward=(0.0, 0.1)), 9)
    assert torch.allclose(path.world_to_camera, expected.world_to_camera)


@pytest.mark.parametrize("keyframes, message", [
    ("0 10\n0 20", "missing: radius offset r"),
    ("0 10\nzero 20\n0 0", "line 2 .* has 'zero', which is not a number"),
    ("0\n0 20\n0 0", "line 1 .* has 1 value"),
    ("", "keyframe text is empty"),
])
def test_malformed_keyframes_name_the_line(keyframes, message):
    with pytest.raises(InverseDVSError, match="Camera Trajectory .*" + message):
        _path(traj.CUSTOM, keyframes)


@pytest.mark.parametrize("kwargs, message", [
    ({"radius_scale": 0.0}, "radius_scale = 0 is out of range"),
    ({"fov": 179.0}, "fov_x_deg = 179 is out of range"),
    ({"anchor": 7}, "anchor_frame = 7 but the path has 5 frames"),
    ({"frames": 0}, "frames = 0"),
])
def test_out_of_range_settings_are_refused(kwargs, message):
    with pytest.raises(InverseDVSError, match=message):
        _path(**kwargs)


def test_forward_warp_with_exact_metric_depth_and_with_a_relative_depth_image(clip):
    images, depth = clip
    path, _ = _path("orbit left")
    warped, mask = ForwardWarp().warp(images, depth.unsqueeze(-1), path, METRIC, 0)
    assert warped.shape == images.shape and mask.shape == images.shape[:3]
    assert float(mask[0].max()) == 0.0 and 0.02 < float(mask[-1].mean()) < 0.5
    warped_rel, mask_rel = ForwardWarp().warp(images, depth_to_disparity_image(depth), path, RELATIVE, 2)
    assert warped_rel.shape == images.shape and float(mask_rel[-1].mean()) > 0.02


def test_one_image_with_its_depth_is_seen_from_every_camera_of_the_path(clip):
    images, depth = clip
    path, _ = _path("orbit left")
    one, mask_one = ForwardWarp().warp(images[:1], depth[:1].unsqueeze(-1), path, METRIC, 0)
    same, mask_same = ForwardWarp().warp(images[:1].expand(FRAMES, -1, -1, -1),
                                         depth[:1].expand(FRAMES, -1, -1).unsqueeze(-1), path, METRIC, 0)
    assert one.shape == (FRAMES, HEIGHT, WIDTH, 3) and torch.equal(one, same) and torch.equal(mask_one, mask_same)
    assert float(mask_one[0].max()) == 0.0 and float(mask_one[-1].mean()) > 0.02
    with pytest.raises(InverseDVSError, match="frame counts disagree"):  # a clip still needs the path's frames
        ForwardWarp().warp(images[:2], depth[:2].unsqueeze(-1), path, METRIC, 0)


def test_identity_through_the_node(clip):
    images, depth = clip
    path, _ = _path(traj.STILL)
    warped, mask = ForwardWarp().warp(images, depth_to_disparity_image(depth), path, RELATIVE, 0)
    assert float(mask.max()) == 0.0 and float((warped - images).abs().max()) < 1e-5


@pytest.mark.parametrize("change, message", [
    (lambda i, d, p: (i[:4], d, p), r"frame counts disagree \(images has 4, depth has 5, camera_path has 5\)"),
    (lambda i, d, p: (i, d, _path(frames=9)[0]), r"camera_path has 9"),
    (lambda i, d, p: (i, d[:, :40], p), r"frame sizes disagree \(images is 72x48, depth is 72x40\)"),
    (lambda i, d, p: (i, d.fill_(float("nan")), p), "NaN"),
    (lambda i, d, p: (i, torch.full_like(d, 0.5), p), "constant"),
    (lambda i, d, p: (i, d, "orbit right"), "must come from Camera Trajectory"),
    (lambda i, d, p: (i, d[..., 0:1].squeeze(-1).unsqueeze(1), p), r"depth must be an IMAGE"),
    (lambda i, d, p: (i[..., :2], d, p), "IMAGE batch"),
])
def test_forward_warp_refuses_bad_inputs(clip, change, message):
    images, depth = clip
    path, _ = _path()
    args = change(images.clone(), depth_to_disparity_image(depth), path)
    with pytest.raises(InverseDVSError, match=message):
        ForwardWarp().warp(*args, RELATIVE, 0)


def test_metric_depth_with_no_depth_at_the_centre_is_refused(clip):
    images, depth = clip
    depth = depth.clone()
    depth[0, HEIGHT // 2, WIDTH // 2] = 0.0
    with pytest.raises(InverseDVSError, match="centre of anchor frame 0 is not positive"):
        ForwardWarp().warp(images, depth.unsqueeze(-1), _path()[0], METRIC, 0)


def test_preview_marks_pivot_anchor_and_cameras():
    from inversedvs.warp import path_preview as pp

    _, preview = _path("orbit right", frames=13)
    image = preview[0]

    def count(color):
        return int(((image - torch.tensor(color)).abs().amax(-1) < 1e-3).sum())

    assert count(pp.PIVOT) > 2 * 30  # a dot in each of the two views
    assert count(pp.ANCHOR) > 2 * 30
    assert count(pp.LAST.tolist()) > 0  # the first camera is the anchor here, drawn green on top
    # the orbit to the right draws cameras right of the pivot in the top view (left half)
    top = image[:, : pp.PANEL_SIZE]
    last = ((top - pp.LAST).abs().amax(-1) < 1e-3).nonzero()
    pivot = ((top - torch.tensor(pp.PIVOT)).abs().amax(-1) < 1e-3).nonzero()
    assert float(last[:, 1].float().mean()) > float(pivot[:, 1].float().mean()) + 20
