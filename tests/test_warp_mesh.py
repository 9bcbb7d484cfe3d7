"""The mesh rasteriser behind the forward warp: watertight under magnification, exact interpolation,
tears only at occlusion edges, and independent of how the candidates are sliced."""

import pytest
import torch

from inversedvs.warp import camera as cam
from inversedvs.warp import raster, splat

H, W = 24, 32


def _ramp(frames=1, height=H, width=W):
    """A colour that is linear in the pixel position: triangles reproduce it exactly."""
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                          indexing="ij")
    image = torch.stack([u / width, v / height, 0.5 + 0.2 * u / width - 0.3 * v / height], -1)
    return image.expand(frames, height, width, 3).contiguous()


def _zoom(factor, shift=(0.0, 0.0)):
    """Target intrinsics [1, 3, 3] magnifying the source by ``factor`` about the centre, shifted (px)."""
    K = cam.intrinsics(H, W, 60.0)
    K_t = K.clone()
    K_t[:, 0, 0] *= factor
    K_t[:, 1, 1] *= factor
    K_t[:, 0, 2] += shift[0]
    K_t[:, 1, 2] += shift[1]
    return K[0], K_t


@pytest.mark.parametrize("factor, shift", [(1.7, (0.3, -0.2)), (3.0, (0.0, 0.0)), (2.3, (0.5, 0.5))])
def test_a_magnified_plane_has_no_hole_and_is_interpolated_exactly(factor, shift):
    """Zooming into a fronto-parallel plane: every target pixel is covered (no crack, however large
    the triangles), and a colour linear in the source position comes out as that linear function
    of the inverse-mapped position."""
    K_s, K_t = _zoom(factor, shift)
    images, depth = _ramp(), torch.full((1, H, W), 3.0)
    warped, mask = splat.forward_warp(images, depth, torch.eye(4).unsqueeze(0), K_s, K_t)
    assert float(mask.max()) == 0.0
    v, u = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    # inverse map of the zoom: source position of each target pixel centre
    su = (u - K_t[0, 0, 2]) / factor + K_s[0, 2]
    sv = (v - K_t[0, 1, 2]) / factor + K_s[1, 2]
    expected = torch.stack([su / W, sv / H, 0.5 + 0.2 * su / W - 0.3 * sv / H], -1)
    assert float((warped[0] - expected).abs().max()) < 2e-3  # positions are snapped to 1/256 px


def _step_scene(near=2.0, far=4.0):
    """Left half a far blue surface, right half a near red one."""
    images = torch.zeros(1, H, W, 3)
    images[0, :, : W // 2] = torch.tensor([0.0, 0.0, 1.0])
    images[0, :, W // 2:] = torch.tensor([1.0, 0.0, 0.0])
    depth = torch.full((1, H, W), far)
    depth[0, :, W // 2:] = near
    return images, depth


def _truck(distance):
    """Camera moved left by ``distance``: near surfaces move right more than far ones, so a gap
    opens on the left of a near surface."""
    T = torch.eye(4).unsqueeze(0)
    T[0, 0, 3] = distance
    return T


def _inside_holes(seen):
    """Holes [H, W] with seen pixels left and right of them in their row (not the border a move uncovers)."""
    seen = seen.int()
    return (seen == 0) & (seen.cummax(1).values > 0) & (seen.flip(1).cummax(1).values.flip(1) > 0)


def test_an_occlusion_edge_tears_and_no_colour_bleeds_across_it():
    images, depth = _step_scene()
    K = cam.intrinsics(H, W, 60.0)
    warped, mask = splat.forward_warp(images, depth, _truck(1.0), K[0], K)
    seen = mask[0] < 0.5
    fx = float(K[0, 0, 0])
    gap = 1.0 * fx * (1 / 2.0 - 1 / 4.0)  # how much more the near edge moves than the far one (px)
    opened = (gap - 1.0)  # less the half-pixel footprints of the two edge pixels
    holes_per_row = _inside_holes(seen).sum(1).float()
    assert bool((holes_per_row - opened).abs().max() <= 1.5)  # whole pixel centres in an interval that long
    red, blue = warped[0][seen][:, 0], warped[0][seen][:, 2]
    assert bool(((red == 1.0) & (blue == 0.0) | (red == 0.0) & (blue == 1.0)).all())  # pure colours only


def test_the_tear_threshold_separates_one_surface_from_two():
    """A depth step just below TEAR_DEPTH_RATIO is one (steep) surface: the move stretches it but it
    stays whole; a step just above is an occlusion edge and opens into a hole."""
    width = 96
    K = cam.intrinsics(H, width, 60.0)
    for ratio, torn in ((raster.TEAR_DEPTH_RATIO * 0.98, False), (raster.TEAR_DEPTH_RATIO * 1.02, True)):
        depth = torch.full((1, H, width), 2.0 * ratio)
        depth[0, :, width // 2:] = 2.0
        gap = 0.5 * float(K[0, 0, 0]) * (1 / 2.0 - 1 / (2.0 * ratio))
        assert gap > 1.5  # wider than the footprints of the two edge pixels can cover
        _, mask = splat.forward_warp(_ramp(width=width), depth, _truck(0.5), K[0], K)
        holes = _inside_holes(mask[0] < 0.5)
        assert bool(holes.any(1).all()) == torn and bool(holes.any()) == torn, ratio


@pytest.mark.parametrize("setting, value", [("CANDIDATE_CHUNK", 97), ("SMALL_BOX", 0), ("CPU_SLICE", 40),
                                            ("_sliced", lambda device: False)])
def test_slicing_the_candidates_or_listing_every_one_changes_nothing(monkeypatch, setting, value):
    """The same bits whether the candidates are processed in small slices, or every quad's centres are
    listed (SMALL_BOX = 0) instead of stepping the edge functions of small quads, and whether the grid
    is processed in slices of one row (CPU_SLICE below a row) or all at once (as on a GPU)."""
    images, depth = _step_scene()
    images, depth = images.expand(2, -1, -1, -1), depth.expand(2, -1, -1)  # two frames, two moves
    K_s, K_t = _zoom(1.3, (0.25, 0.0))
    T = torch.cat([_truck(0.1), _truck(-0.2)])
    T[:, :3, :3] = cam.rotation_y(torch.tensor([4.0, -3.0])).float()
    whole = splat.forward_warp(images, depth, T, K_s, K_t)
    assert 0.0 < float(whole[1].mean()) < 0.5 and not torch.equal(whole[1][0], whole[1][1])
    monkeypatch.setattr(raster, setting, value)
    other = splat.forward_warp(images, depth, T, K_s, K_t)
    assert torch.equal(whole[0], other[0]) and torch.equal(whole[1], other[1])


def test_a_surface_turned_away_is_not_drawn():
    """Source pixels whose target positions are mirrored (the surface seen from behind) give holes."""
    u = (W - 1 - torch.arange(W, dtype=torch.float32)).view(1, 1, W).expand(1, H, W).contiguous()
    v = torch.arange(H, dtype=torch.float32).view(1, H, 1).expand(1, H, W).contiguous()
    depth = torch.full((1, H, W), 2.0)
    _, _, seen = raster.rasterize(u + 0.5, v + 0.5, 1.0 / depth, depth, torch.ones(1, H, W, dtype=torch.bool))
    assert float(seen[0, 2:-2, 2:-2].float().mean()) < 0.05


def test_the_warp_runs_in_inference_mode_and_under_no_grad_as_outside():
    """ComfyUI runs nodes in inference mode: the warp's CPU threads write its tensors in that mode
    too, and give the same result as outside it."""
    images, depth = _step_scene()
    images, depth = images.expand(3, -1, -1, -1), depth.expand(3, -1, -1)
    K_s, K_t = _zoom(1.2)
    T = torch.cat([_truck(0.1), _truck(0.0), _truck(-0.1)])
    plain = splat.forward_warp(images, depth, T, K_s, K_t)
    with torch.inference_mode():
        inside = splat.forward_warp(images.clone(), depth.clone(), T.clone(), K_s, K_t)
    with torch.no_grad():
        no_grad = splat.forward_warp(images, depth, T, K_s, K_t)
    for other in (inside, no_grad):
        assert torch.equal(plain[0], other[0]) and torch.equal(plain[1], other[1])
