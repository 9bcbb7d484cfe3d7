"""Keyframe text, interpolation, presets and the reference's path files."""

import math
import os

import pytest
import torch

from conftest import SHARED_DATA
from inversedvs.errors import InverseDVSError
from inversedvs.warp import camera as cam
from inversedvs.warp import trajectory as traj

TRAJECTORIES = os.path.join(SHARED_DATA, "trajectories")
REFERENCE_FILES = ("loop1", "loop2", "loop3", "loop4", "oscillating_wave", "wave1")
FRAMES = 49


def _read(name):
    path = os.path.join(TRAJECTORIES, name + ".txt")
    if not os.path.isfile(path):
        pytest.skip(f"{path} is not here (the shared data lives beside the clone)")
    with open(path) as f:
        return f.read()


def _reference_relative_poses(theta, phi, r, radius):
    """Anchor→frame transforms the way the reference builds them, written independently: extrinsics
    E = Ry(φ)·Rx(θ)·[diag(-1, 1, -1) | (0, 0, -r·radius)], then radius added to E's z translation."""
    def rx(a):
        c, s = math.cos(math.radians(a)), math.sin(math.radians(a))
        return torch.tensor([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=torch.float64)

    def ry(a):
        c, s = math.cos(math.radians(a)), math.sin(math.radians(a))
        return torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=torch.float64)

    poses = []
    for th, ph, rr in zip(theta.tolist(), phi.tolist(), r.tolist()):
        E = torch.eye(4, dtype=torch.float64)
        E[:3, :3] = torch.diag(torch.tensor([-1.0, 1.0, -1.0], dtype=torch.float64))
        E[2, 3] = -rr * radius
        R = torch.eye(4, dtype=torch.float64)
        R[:3, :3] = ry(ph) @ rx(th)
        E = R @ E
        E[2, 3] += radius
        poses.append(E)
    poses = torch.stack(poses)
    return poses @ torch.linalg.inv(poses[0])


@pytest.mark.parametrize("name", REFERENCE_FILES)
def test_reference_path_files_parse_to_the_reference_poses(name):
    scipy_interpolate = pytest.importorskip("scipy.interpolate")
    import numpy as np

    keys = traj.parse_keyframes(_read(name), name)
    lists = (keys.theta, keys.phi, keys.forward)
    per_frame = []
    for values in lists:  # independent interpolation: SciPy's not-a-knot cubic spline / numpy linear
        x, x_new = np.linspace(0, 1, len(values)), np.linspace(0, 1, FRAMES)
        if len(values) > traj.LINEAR_MAX_KEYFRAMES:
            y = scipy_interpolate.CubicSpline(x, values)(x_new)
        else:
            y = np.interp(x_new, x, values)
        per_frame.append(torch.from_numpy(y))
    radius = 2.7
    expected = _reference_relative_poses(*per_frame, radius)
    path = traj.camera_path(keys, FRAMES)
    assert torch.allclose(path.anchor_to_frame(radius), expected, atol=1e-9)
    assert torch.allclose(path.anchor_to_frame(radius)[0], torch.eye(4, dtype=torch.float64), atol=1e-12)


def test_loop1_and_wave1_as_stored_are_well_formed_three_line_files():
    """The files hold three lines each (no trailing newline). Their 'malformed' look comes from
    printing several files with `cat`, which glues one file's last line to the next file's first."""
    loop1, wave1 = traj.parse_keyframes(_read("loop1"), "loop1"), traj.parse_keyframes(_read("wave1"), "wave1")
    assert (len(loop1.theta), len(loop1.phi), len(loop1.forward)) == (13, 9, 8)
    assert loop1.forward[-1] == 0.0 and min(loop1.phi) == -30.0
    assert wave1.theta == (0.0, 30.0) and wave1.forward == (0.0, 0.0) and len(wave1.phi) == 11


def test_the_glued_forms_of_loop1_and_wave1_are_rejected_naming_the_line():
    glued = _read("loop1") + _read("loop2")  # what `cat loop1.txt loop2.txt` shows: "... 0.09 00 2 10 ..."
    with pytest.raises(InverseDVSError, match=r"line 4 is a 4th line"):
        traj.parse_keyframes(glued, "loop1")
    without_radius = "\n".join(_read("wave1").splitlines()[:2])
    with pytest.raises(InverseDVSError, match=r"missing: radius offset r"):
        traj.parse_keyframes(without_radius, "wave1")


@pytest.mark.parametrize("text, message", [
    ("", "keyframe text is empty"),
    ("   \n \n", "keyframe text is empty"),
    ("0 10\n0 20", r"found 2 line\(s\).*missing: radius offset r"),
    ("0 10", r"missing: azimuth φ \(degrees\), radius offset r"),
    ("0 10\n0 2O\n0 0", r"line 2 \(azimuth φ \(degrees\)\) has '2O', which is not a number"),
    ("0 10\n0 20\n0 0.1,0.2", r"line 3 .* has '0.1,0.2'"),
    ("0 10\n5\n0 0", r"line 2 .* has 1 value; at least 2"),
    ("0 nan\n0 1\n0 0", r"line 1 .* only finite numbers"),
    ("0 1\n0 1\n0 0\n0 0", r"line 4 is a 4th line"),
])
def test_malformed_keyframes_give_clear_errors(text, message):
    with pytest.raises(InverseDVSError, match=message):
        traj.parse_keyframes(text)


def test_blank_and_comment_lines_are_ignored_and_line_numbers_are_the_files():
    keys = traj.parse_keyframes("# my path\n\n0 10\n0 20\n\n0 0.1\n")
    assert keys.theta == (0.0, 10.0) and keys.phi == (0.0, 20.0) and keys.forward == (0.0, 0.1)
    with pytest.raises(InverseDVSError, match="line 4"):
        traj.parse_keyframes("# my path\n\n0 10\n0 x\n0 0")
    assert traj.parse_keyframes(traj.format_keyframes(keys)) == traj.Keyframes(keys.theta, keys.phi, keys.forward)


def test_spline_passes_through_keyframes_and_keeps_the_ends_exact():
    values = [0.0, 5.0, -3.0, 8.0, 1.0, 2.5]
    out = traj.interpolate_keyframes(values, 26)  # 26 frames: keyframes sit on frames 0, 5, 10, ...
    assert torch.allclose(out[::5], torch.tensor(values, dtype=torch.float64), atol=1e-12)
    assert out[0] == values[0] and out[-1] == values[-1]
    # smooth: the second differences change gradually (C2), unlike piecewise-linear interpolation's kinks
    def jumps(y):
        second = y[2:] - 2 * y[1:-1] + y[:-2]
        return float((second[1:] - second[:-1]).abs().max())
    import numpy as np

    linear = torch.from_numpy(np.interp(np.linspace(0, 1, 26), np.linspace(0, 1, 6), values))
    assert torch.allclose(linear[::5], torch.tensor(values, dtype=torch.float64), atol=1e-12)
    assert jumps(out) < 0.5 * jumps(linear)


def test_spline_reproduces_a_cubic_exactly():
    x = torch.linspace(0, 1, 7, dtype=torch.float64)
    cubic = lambda t: 2 * t**3 - 3 * t**2 + 0.5 * t + 1  # noqa: E731
    out = traj.interpolate_keyframes(cubic(x).tolist(), 31)
    assert torch.allclose(out, cubic(torch.linspace(0, 1, 31, dtype=torch.float64)), atol=1e-12)


def test_three_or_fewer_keyframes_are_linear():
    out = traj.interpolate_keyframes([0.0, 10.0, 0.0], 5)
    assert out.tolist() == [0.0, 5.0, 10.0, 5.0, 0.0]
    assert traj.interpolate_keyframes([3.0, 9.0], 1).tolist() == [3.0]


def test_orbit_conventions():
    """Positive φ moves the camera right, positive θ up, positive r toward the pivot; the camera
    keeps looking at the pivot and stays at distance 1 (the radius) from it."""
    def centre(**kw):
        return cam.camera_centers(traj.camera_path(traj.Keyframes(**kw), 2).world_to_camera)[1]

    c = centre(phi=(0.0, 30.0))
    assert torch.allclose(c, torch.tensor([0.5, 0.0, 1 - math.cos(math.radians(30))], dtype=torch.float64))
    assert float(centre(theta=(0.0, 20.0))[1]) < 0  # y is down: up is negative y
    assert torch.allclose(centre(forward=(0.0, 0.25)), torch.tensor([0.0, 0.0, 0.25], dtype=torch.float64))
    path = traj.camera_path(traj.Keyframes(theta=(0.0, 15.0), phi=(0.0, -40.0)), 5)
    pivot_in_camera = path.world_to_camera[:, :3, :3] @ torch.tensor([0, 0, 1.0], dtype=torch.float64) \
        + path.world_to_camera[:, :3, 3]
    assert torch.allclose(pivot_in_camera, torch.tensor([0, 0, 1.0], dtype=torch.float64).expand(5, 3), atol=1e-12)


@pytest.mark.parametrize("preset", [p for p in traj.PRESETS])
def test_every_preset_builds_a_path_that_starts_at_rest(preset):
    path = traj.camera_path(traj.preset_keyframes(preset), FRAMES)
    assert path.world_to_camera.shape == (FRAMES, 4, 4) and path.zoom.shape == (FRAMES,)
    assert torch.allclose(path.world_to_camera[0], torch.eye(4, dtype=torch.float64), atol=1e-12)
    moved = (path.world_to_camera - torch.eye(4, dtype=torch.float64)).abs().max() + (path.zoom - 1).abs().max()
    assert (float(moved) > 0.05) == (preset != traj.STILL)


def test_amount_scales_and_reverses_presets():
    right = traj.camera_path(traj.preset_keyframes("orbit right", 2.0), 3)
    left = traj.camera_path(traj.preset_keyframes("orbit right", -1.0), 3)
    assert float(cam.camera_centers(right.world_to_camera)[-1, 0]) == pytest.approx(math.sin(math.radians(60)))
    assert float(cam.camera_centers(left.world_to_camera)[-1, 0]) == pytest.approx(-0.5)
    zoom = traj.camera_path(traj.preset_keyframes("zoom in", 2.0), 3)
    assert float(zoom.zoom[-1]) == pytest.approx(traj.ZOOM**2)


def test_anchor_and_frames_are_checked():
    with pytest.raises(InverseDVSError, match="anchor_frame = 9 but the path has 9 frames"):
        traj.camera_path(traj.Keyframes(), 9, anchor=9)
    with pytest.raises(InverseDVSError, match="at least 1 frame"):
        traj.camera_path(traj.Keyframes(), 0)


def test_anchor_frame_is_the_identity_of_the_relative_transforms():
    path = traj.camera_path(traj.preset_keyframes("orbit left"), 9, anchor=4)
    T = path.anchor_to_frame(2.0)
    assert torch.allclose(T[4], torch.eye(4, dtype=torch.float64), atol=1e-12)
    assert not torch.allclose(T[0], torch.eye(4, dtype=torch.float64), atol=1e-3)


def test_orbit_radius_is_centre_depth_times_scale_capped():
    depth = torch.full((3, 9, 11), 7.0)
    depth[1, 4, 5] = 2.0
    assert float(traj.camera_path(traj.Keyframes(), 3, anchor=1, radius_scale=1.5).orbit_radius(depth)) == 3.0
    assert float(traj.camera_path(traj.Keyframes(), 3, anchor=0).orbit_radius(depth)) == cam.MAX_ORBIT_RADIUS


def test_field_of_view_sets_the_focal_length_at_any_resolution():
    K_ref = cam.intrinsics(576, 1024, cam.DEFAULT_FOV_X_DEG)[0]
    assert float(K_ref[0, 0]) == pytest.approx(cam.REFERENCE_FOCAL_PX)
    K_small = cam.intrinsics(480, 720, cam.DEFAULT_FOV_X_DEG)[0]
    assert float(K_small[0, 0]) == pytest.approx(cam.REFERENCE_FOCAL_PX * 720 / 1024)
    assert float(K_small[0, 2]) == pytest.approx(359.5) and float(K_small[1, 2]) == pytest.approx(239.5)


def test_the_linear_time_spline_agrees_with_scipy_at_every_length():
    scipy_interpolate = pytest.importorskip("scipy.interpolate")
    import numpy as np

    for n in (4, 5, 6, 9, 64, 1001):
        values = np.random.default_rng(n).normal(size=n)
        x, x_new = np.linspace(0, 1, n), np.linspace(0, 1, FRAMES)
        expected = torch.from_numpy(scipy_interpolate.CubicSpline(x, values)(x_new))
        assert torch.allclose(traj.interpolate_keyframes(values.tolist(), FRAMES), expected, atol=1e-10), n


def test_the_tridiagonal_solver_matches_a_dense_solve_batched():
    g = torch.Generator().manual_seed(0)
    for n in (1, 2, 3, 8, 37):
        lower, upper, rhs = (torch.rand(4, n, generator=g, dtype=torch.float64) for _ in range(3))
        diag = 3 + torch.rand(4, n, generator=g, dtype=torch.float64)
        dense = torch.diag_embed(diag) + torch.diag_embed(lower[:, 1:], -1) + torch.diag_embed(upper[:, :-1], 1)
        expected = torch.linalg.solve(dense, rhs[..., None])[..., 0]
        assert torch.allclose(traj.solve_tridiagonal(lower, diag, upper, rhs), expected, atol=1e-12), n


def test_three_lines_of_ten_thousand_keyframes_build_a_path_in_well_under_a_second():
    import time

    g = torch.Generator().manual_seed(3)
    lines = [" ".join(f"{v:.4f}" for v in (torch.randn(traj.MAX_KEYFRAMES, generator=g) * s).tolist())
             for s in (10.0, 10.0, 0.1)]
    start = time.perf_counter()
    path = traj.camera_path(traj.parse_keyframes("\n".join(lines)), FRAMES)
    elapsed = time.perf_counter() - start
    assert path.world_to_camera.shape == (FRAMES, 4, 4) and torch.isfinite(path.world_to_camera).all()
    assert elapsed < 0.5, f"{elapsed:.2f} s"


def test_more_keyframes_than_the_bound_are_refused_naming_the_line():
    text = "0 1\n" + " ".join(["1"] * (traj.MAX_KEYFRAMES + 1)) + "\n0 0"
    with pytest.raises(InverseDVSError, match=r"line 2 \(azimuth φ \(degrees\)\) has 10001 values; at most 10000"):
        traj.parse_keyframes(text)
