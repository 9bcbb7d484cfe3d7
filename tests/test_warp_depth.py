"""Relative disparity → depth, depth validation, temporal alignment of depth videos."""

import pytest
import torch

from inversedvs.errors import InverseDVSError
from inversedvs.warp import depth as dep
from inversedvs.warp.sample import sample_clip


def test_disparity_to_depth_follows_the_reference_constants():
    disparity = torch.tensor([[[0.2, 0.6, 1.0]], [[0.4, 0.8, 0.2]]])  # clip min 0.2, max 1.0
    depth = dep.disparity_to_depth(disparity)
    normalised = (disparity - 0.2) / 0.8
    expected = (dep.DISPARITY_TO_DEPTH / normalised.clamp_min(dep.DISPARITY_EPS)).clamp(dep.DEPTH_NEAR, dep.DEPTH_FAR)
    assert torch.allclose(depth, expected)
    assert float(depth.min()) == pytest.approx(10000 / 3900)  # white (nearest) pixel
    assert float(depth.max()) == dep.DEPTH_FAR  # the clip's farthest pixel
    assert float(depth[0, 0, 2]) < float(depth[0, 0, 1]) < float(depth[0, 0, 0])  # white = near


def test_normalisation_is_over_the_whole_clip_not_per_frame():
    disparity = torch.stack([torch.linspace(0, 0.5, 10).view(1, 10), torch.linspace(0.5, 1, 10).view(1, 10)])
    depth = dep.disparity_to_depth(disparity)
    assert float(depth[1].min()) == pytest.approx(dep.DISPARITY_TO_DEPTH)
    assert float(depth[0, 0, -1]) == pytest.approx(2 * dep.DISPARITY_TO_DEPTH)  # 0.5 of the clip's range


def test_image_channels_become_one_map():
    rgb = torch.rand(2, 4, 5, 3)
    assert torch.allclose(dep.image_to_map(rgb), rgb.mean(-1))
    assert torch.equal(dep.image_to_map(rgb[..., :1]), rgb[..., 0])
    assert torch.equal(dep.map_to_image(rgb[..., 0])[..., 2], rgb[..., 0])


@pytest.mark.parametrize("make, message", [
    (lambda d: d.index_fill(1, torch.tensor([2]), float("nan")), "NaN"),
    (lambda d: d.index_fill(1, torch.tensor([2]), float("inf")), "infinite"),
    (lambda d: torch.zeros_like(d), "zero \\(or negative\\) everywhere"),
    (lambda d: torch.full_like(d, 0.4), "constant \\(0.4 everywhere\\)"),
])
def test_depth_without_geometry_is_refused(make, message):
    with pytest.raises(InverseDVSError, match=message):
        dep.check_depth_map(make(torch.rand(3, 6, 8)), dep.RELATIVE, "Forward Warp")


def test_metric_depth_passes_through():
    z = torch.rand(2, 3, 4) * 5 + 1
    assert torch.equal(dep.depth_for_warp(z, dep.METRIC), z)


@pytest.fixture(scope="module")
def jittered():
    """Disparity of the sample clip (exact, dynamic) with a random scale and shift per frame, as a
    per-frame depth network produces it, plus a little pixel noise."""
    _, depth = sample_clip(17, 60, 90)
    truth = 1.0 / depth
    g = torch.Generator().manual_seed(3)
    scale = 0.6 + 0.8 * torch.rand(17, 1, 1, generator=g)
    shift = 0.3 * torch.rand(17, 1, 1, generator=g)
    noisy = scale * truth + shift + 0.002 * torch.randn(truth.shape, generator=g)
    return truth, noisy


def test_fit_scale_shift_recovers_an_affine_map():
    x = torch.rand(3, 50)
    s, b = dep.fit_scale_shift(x, 2.5 * x - 0.7)
    assert torch.allclose(s, torch.full((3,), 2.5), atol=1e-5) and torch.allclose(b, torch.full((3,), -0.7), atol=1e-5)


@pytest.mark.parametrize("mode", [dep.ALIGN_FIRST, dep.ALIGN_RUNNING])
def test_alignment_removes_flicker_of_a_dynamic_clip(jittered, mode):
    truth, noisy = jittered
    before, after, ideal = (dep.temporal_flicker(noisy), dep.temporal_flicker(dep.align_temporal(noisy, mode)),
                            dep.temporal_flicker(truth))
    def error(d):  # mean distance to the exact disparity after ONE best scale and shift for the whole clip
        s, b = dep.fit_scale_shift(d.reshape(1, -1), truth.reshape(1, -1))
        return float((s * d + b - truth).abs().mean() / (truth.max() - truth.min()))

    error_before, error_after = error(noisy), error(dep.align_temporal(noisy, mode))
    print(f"\n{mode}: flicker {before:.4f} → {after:.4f} (exact depth: {ideal:.4f}); "
          f"error vs exact {error_before:.4f} → {error_after:.4f}")
    assert after < 0.3 * before
    assert error_after < 0.3 * error_before  # the clip now has one consistent depth scale


def test_alignment_off_changes_nothing(jittered):
    _, noisy = jittered
    assert torch.equal(dep.align_temporal(noisy, dep.ALIGN_OFF), noisy)
    with pytest.raises(InverseDVSError, match="unknown"):
        dep.align_temporal(noisy, "sideways")
