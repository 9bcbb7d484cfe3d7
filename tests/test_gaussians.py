"""The 4D Gaussian stage (gaussians/): projection against gsplat's torch reference, compositing by hand, tiling,
the orbit's conventions, SSIM against scikit-image, the deformation field, the PLY file, densification, and small
static and dynamic fits of the known object in _gaussian_scene."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

import _gaussian_scene as scene
from _gaussian_scene import matrix
from inversedvs.gaussians import cameras, deform, fit, losses, model, ply, render
from inversedvs.warp import camera


def _random_gaussians(n, seed=0, spread=0.8, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g, dtype=dtype) * 2 - 1) * spread
    quats = torch.randn(n, 4, generator=g, dtype=dtype)
    scales = torch.exp(torch.randn(n, 3, generator=g, dtype=dtype) * 0.5 - 3.0)
    opacities = torch.rand(n, generator=g, dtype=dtype) * 0.9 + 0.05
    colors = torch.rand(n, 3, generator=g, dtype=dtype)
    return means, quats, scales, opacities, colors


def _orbit(azimuth, elevation, height, width, direction=1.0, dtype=torch.float64):
    az = torch.tensor(azimuth, dtype=torch.float64)
    el = torch.tensor(elevation, dtype=torch.float64)
    return (cameras.orbit_poses(az, el, direction=direction).to(dtype),
            cameras.orbit_intrinsics(len(azimuth), height, width).to(dtype))


# ----------------------------------------------------------------------------------------------- projection

def test_projection_equals_gsplats_torch_reference():
    from gsplat.cuda._torch_impl import _fully_fused_projection

    H, W = 29, 37
    means, quats, scales, _, _ = _random_gaussians(400, spread=1.2)  # some off-screen: the Jacobian's clamp
    covs = render.covariance_3d(quats, scales)
    viewmats, Ks = _orbit([0.0, 45.0, 137.0, 250.0], [0.0, 10.0, -20.0, 30.0], H, W)
    m2d, conics, depths, drawn = render.project(means, covs, viewmats, Ks, H, W)
    K_gs = Ks.clone()
    K_gs[:, :2, 2] += 0.5
    radii, g_m2d, g_depths, g_conics, _ = _fully_fused_projection(means, covs, viewmats, K_gs, W, H, eps2d=render.EPS_2D,
                                                                  near_plane=render.NEAR)
    assert drawn.all()
    assert torch.allclose(g_m2d, m2d + 0.5, atol=1e-10, rtol=0)
    assert torch.allclose(g_depths, depths, atol=1e-12, rtol=0)
    assert torch.allclose(g_conics, conics, rtol=1e-9, atol=1e-12)
    on = radii > 0
    assert on.any() and (~on).any()  # both on-screen and culled Gaussians were compared
    ours = torch.ceil(render.footprint_radii(conics)).to(radii.dtype)
    assert torch.equal(ours[on], radii[on])
    # the Jacobian's clamp matters here: off-screen Gaussians' conics differ from unclamped ones
    x = (viewmats[:, None, :3, :3] @ means[None, :, :, None]).squeeze(-1) + viewmats[:, None, :3, 3]
    off = (m2d[..., 0] < -0.3 * W) | (m2d[..., 0] > 1.3 * W)
    assert off.any() and (x[..., 2] > 0).all()


def test_quaternions_are_normalised_and_covariances_are_rotated_scales():
    q = torch.tensor([[2.0, 0.0, 0.0, 0.0], [math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)]],
                     dtype=torch.float64)
    R = render.quaternion_to_rotation(q)
    assert torch.allclose(R[0], torch.eye(3, dtype=torch.float64))
    # 90 degrees about z: x -> y
    assert torch.allclose(R[1] @ torch.tensor([1.0, 0, 0], dtype=torch.float64),
                          torch.tensor([0.0, 1, 0], dtype=torch.float64), atol=1e-12)
    cov = render.covariance_3d(q, torch.tensor([[1.0, 2.0, 3.0]] * 2, dtype=torch.float64))
    assert torch.allclose(cov[0], torch.diag(torch.tensor([1.0, 4.0, 9.0], dtype=torch.float64)))
    assert torch.allclose(cov[1], torch.diag(torch.tensor([4.0, 1.0, 9.0], dtype=torch.float64)), atol=1e-12)


# ----------------------------------------------------------------------------------------------- compositing

def _composite(points, height=10, width=12, background=None):
    """points: (x, y, variance, opacity, rgb, depth) isotropic Gaussians given straight to ``composite``."""
    dt = torch.float64
    m2d = torch.tensor([[[p[0], p[1]] for p in points]], dtype=dt)
    conics = torch.tensor([[[1 / p[2], 0.0, 1 / p[2]] for p in points]], dtype=dt)
    opac = torch.tensor([p[3] for p in points], dtype=dt)
    colors = torch.tensor([p[4] for p in points], dtype=dt)
    depths = torch.tensor([[p[5] for p in points]], dtype=dt)
    drawn = torch.ones_like(depths, dtype=torch.bool)
    bg = None if background is None else torch.tensor(background, dtype=dt)
    image, alpha = render.composite(m2d, conics, opac, colors, depths, drawn, height, width, bg)
    return image[0], alpha[0]


def test_composite_matches_a_hand_computed_pixel():
    red, blue, bg = (1.0, 0.0, 0.0), (0.0, 0.2, 1.0), (0.3, 0.6, 0.9)
    # the far one listed first: compositing must sort by depth
    far = (6.0, 5.5, 4.0, 0.8, blue, 2.0)  # offset (1, 0.5) from pixel (5, 5)
    near = (5.0, 5.0, 4.0, 0.6, red, 1.0)
    image, alpha = _composite([far, near], background=bg)
    a1 = 0.6
    a2 = 0.8 * math.exp(-0.5 * (1.0 + 0.25) / 4.0)
    T = (1 - a1) * (1 - a2)
    expected = [a1 * r + (1 - a1) * a2 * b + T * k for r, b, k in zip(red, blue, bg)]
    assert torch.allclose(image[5, 5], torch.tensor(expected, dtype=torch.float64), atol=1e-12)
    assert alpha[5, 5].item() == pytest.approx(1 - T, abs=1e-12)
    # a pixel the near one barely reaches: (8, 5) is 3 pixels off it, 2 off the far one
    b1 = 0.6 * math.exp(-0.5 * 9 / 4.0)
    b2 = 0.8 * math.exp(-0.5 * (4 + 0.25) / 4.0)
    expected = [b1 * r + (1 - b1) * b2 * b + (1 - b1) * (1 - b2) * k for r, b, k in zip(red, blue, bg)]
    assert torch.allclose(image[5, 8], torch.tensor(expected, dtype=torch.float64), atol=1e-12)
    # swapping the depths puts blue in front
    image2, _ = _composite([far[:5] + (0.5,), near], background=bg)
    c1 = a2
    expected = [c1 * b + (1 - c1) * a1 * r + (1 - c1) * (1 - a1) * k for r, b, k in zip(red, blue, bg)]
    assert torch.allclose(image2[5, 5], torch.tensor(expected, dtype=torch.float64), atol=1e-12)
    # no background: black
    image3, alpha3 = _composite([far, near])
    assert torch.allclose(image3, image - (1 - alpha).unsqueeze(-1) * torch.tensor(bg, dtype=torch.float64),
                          atol=1e-12)
    assert torch.allclose(alpha3, alpha)


def test_compositing_stops_when_transmittance_would_fall_below_1e_4():
    bg = (1.0, 1.0, 1.0)
    front = (5.0, 5.0, 2.0, 0.9999, (1.0, 0.0, 0.0), 1.0)  # clamped to ALPHA_MAX: T = 1e-3 after it
    behind = (5.0, 5.0, 2.0, 0.999, (0.0, 1.0, 0.0), 2.0)  # would leave 1e-6 < 1e-4: not drawn, nor anything after
    last = (5.0, 5.0, 2.0, 0.5, (0.0, 0.0, 1.0), 3.0)
    image, alpha = _composite([front, behind, last], background=bg)
    T = 1 - render.ALPHA_MAX
    assert torch.allclose(image[5, 5], torch.tensor([render.ALPHA_MAX + T, T, T], dtype=torch.float64),
                          atol=1e-12)
    assert alpha[5, 5].item() == pytest.approx(render.ALPHA_MAX, abs=1e-12)
    # a half-transparent one behind leaves T = 5e-4 > 1e-4: it is drawn, and so is the one after it
    image, alpha = _composite([front, behind[:3] + (0.5,) + behind[4:], last], background=bg)
    T1, T2, T3 = T, T * 0.5, T * 0.25
    expected = torch.tensor([render.ALPHA_MAX + T3, 0.5 * T1 + T3, 0.5 * T2 + T3], dtype=torch.float64)
    assert torch.allclose(image[5, 5], expected, atol=1e-12)
    assert alpha[5, 5].item() == pytest.approx(1 - T3, abs=1e-12)


def test_alpha_below_1_over_255_is_skipped():
    bg = (0.2, 0.4, 0.6)
    faint = (5.0, 5.0, 2.0, 0.0035, (1.0, 0.0, 0.0), 1.0)  # 0.0035 < 1/255
    image, alpha = _composite([faint], background=bg)
    assert torch.equal(alpha, torch.zeros_like(alpha))
    assert torch.equal(image, torch.tensor(bg, dtype=torch.float64).expand_as(image))
    visible = faint[:3] + (0.0045,) + faint[4:]
    image, alpha = _composite([visible], background=bg)
    assert alpha[5, 5].item() == pytest.approx(0.0045, abs=1e-15)
    assert image[5, 5, 0].item() == pytest.approx(0.0045 + (1 - 0.0045) * 0.2, abs=1e-12)
    # a pixel where o·exp(-½d²/σ²) drops under 1/255 gets nothing: at 1 pixel 0.0045·e^(-1/4) < 1/255
    assert alpha[5, 6].item() == 0.0 and alpha[4, 5].item() == 0.0


def test_alpha_is_one_minus_transmittance_over_random_gaussians():
    means, quats, scales, opac, colors = _random_gaussians(60, seed=3, spread=0.4)
    viewmats, Ks = _orbit([20.0], [5.0], 21, 23)
    bg = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    image, alpha = render.render_torch(means, quats, scales, opac, colors, viewmats, Ks, 21, 23, bg)
    black, alpha0 = render.render_torch(means, quats, scales, opac, colors, viewmats, Ks, 21, 23)
    assert torch.allclose(alpha, alpha0)
    assert torch.allclose(image, black + (1 - alpha)[..., None] * bg, atol=1e-12)
    # white Gaussians on black: every channel is the alpha
    white, a = render.render_torch(means, quats, scales, opac, torch.ones_like(colors), viewmats, Ks, 21, 23)
    assert torch.allclose(white, a[..., None].expand_as(white), atol=1e-12)
    assert 0.05 < float(alpha.mean()) < 0.95 and float(alpha.max()) <= 1.0


def test_tiling_and_chunking_do_not_change_the_image(monkeypatch):
    H, W = 29, 37  # not multiples of 16
    means, quats, scales, opac, colors = _random_gaussians(150, seed=1, spread=0.5, dtype=torch.float32)
    opac = opac.clone()
    opac[:20] = 0.999  # tails of the most opaque too: the 3.33-sigma cut-off is below 1/255 there
    viewmats, Ks = _orbit([0.0, 70.0], [0.0, 15.0], H, W, dtype=torch.float32)
    bg = torch.tensor([1.0, 1.0, 1.0])
    args = (means, quats, scales, opac, colors, viewmats, Ks, H, W, bg)
    tiled, tiled_alpha = render.render_torch(*args)
    assert tiled.shape == (2, H, W, 3) and tiled_alpha.shape == (2, H, W)
    assert float(tiled_alpha.max()) > 0.9  # something is drawn, across tile borders
    monkeypatch.setattr(render, "TILE", 64)  # one tile
    one, one_alpha = render.render_torch(*args)
    assert (one - tiled).abs().max() < 1e-5 and (one_alpha - tiled_alpha).abs().max() < 1e-5
    monkeypatch.setattr(render, "TILE", 16)
    monkeypatch.setattr(render, "DENSE_BUDGET", 1000)  # one tile at a time
    chunked, chunked_alpha = render.render_torch(*args)
    assert (chunked - tiled).abs().max() < 1e-5 and (chunked_alpha - tiled_alpha).abs().max() < 1e-5


# ----------------------------------------------------------------------------------------------- cameras

def test_orbit_poses_conventions():
    r = 2.5
    f64 = dict(dtype=torch.float64)
    pose = cameras.orbit_poses(torch.tensor([0.0], **f64), torch.tensor([0.0], **f64), r)
    assert torch.allclose(pose[0, :3, :3], torch.eye(3, **f64))
    assert torch.allclose(camera.camera_centers(pose)[0], torch.tensor([0.0, 0.0, -r], **f64))
    for d, x in ((1.0, r), (-1.0, -r)):
        pose = cameras.orbit_poses(torch.tensor([90.0], **f64), torch.tensor([0.0], **f64), r, d)
        assert torch.allclose(camera.camera_centers(pose)[0], torch.tensor([x, 0.0, 0.0], **f64), atol=1e-12)
    pose = cameras.orbit_poses(torch.tensor([0.0], **f64), torch.tensor([30.0], **f64), r)
    centre = camera.camera_centers(pose)[0]
    assert centre[1] < 0 and torch.allclose(centre, torch.tensor([0.0, -r / 2, -r * math.sqrt(3) / 2], **f64))
    az = torch.tensor([0.0, 33.0, 90.0, 181.0, 300.0, 45.0], **f64)
    el = torch.tensor([0.0, 10.0, -25.0, 40.0, 5.0, 80.0], **f64)
    for d in (1.0, -1.0):
        poses = cameras.orbit_poses(az, el, r, d)
        assert poses.dtype == torch.float64 and poses.shape == (6, 4, 4)
        assert torch.allclose(camera.camera_centers(poses).norm(dim=-1), torch.full((6,), r, **f64))
        Ks = cameras.orbit_intrinsics(6, 24, 40)
        # the object's centre projects to the principal point: the camera looks at it
        origin = poses[:, :3, 3]
        pixels = (Ks @ origin.unsqueeze(-1)).squeeze(-1)
        pixels = pixels[:, :2] / pixels[:, 2:]
        assert torch.allclose(pixels, torch.tensor([(40 - 1) / 2, (24 - 1) / 2], **f64).expand(6, 2))
        # level: the camera's x axis (row 0 of R) has no world-y component
        assert torch.allclose(poses[:, 0, 1], torch.zeros(6, **f64), atol=1e-12)
    # direction -1 mirrors the orbit in x
    right = camera.camera_centers(cameras.orbit_poses(az, el, r, 1.0))
    left = camera.camera_centers(cameras.orbit_poses(az, el, r, -1.0))
    assert torch.allclose(left, right * torch.tensor([-1.0, 1.0, 1.0], **f64), atol=1e-12)
    K = cameras.orbit_intrinsics(3, 24, 40)
    assert K.shape == (3, 3, 3) and K[0, 0, 0] == K[0, 1, 1]
    assert K[0, 0, 0].item() == pytest.approx(20 / math.tan(math.radians(cameras.SV3D_FOV_DEG / 2)))
    assert torch.equal(cameras.interpolate_orbit(10.0, 30.0, 3), torch.tensor([10.0, 20.0, 30.0], **f64))
    assert torch.equal(cameras.interpolate_orbit(10.0, 30.0, 1), torch.tensor([10.0], **f64))


# ----------------------------------------------------------------------------------------------- losses

def test_ssim_equals_scikit_image():
    skimage_metrics = pytest.importorskip("skimage.metrics")
    g = torch.Generator().manual_seed(0)
    a = torch.rand(3, 24, 31, 3, generator=g, dtype=torch.float64)
    b = (a + 0.15 * torch.randn(3, 24, 31, 3, generator=g, dtype=torch.float64)).clamp(0, 1)
    b[1] = torch.rand(24, 31, 3, generator=g, dtype=torch.float64)  # unrelated
    b[2] = a[2] * 0.5 + 0.2  # contrast and brightness
    ours = losses.ssim(a, b)
    for i in range(3):
        ref = skimage_metrics.structural_similarity(a[i].numpy(), b[i].numpy(), gaussian_weights=True, sigma=1.5,
                                                    use_sample_covariance=False, data_range=1, channel_axis=-1)
        assert abs(float(ours[i]) - ref) < 1e-6
    assert float(ours[1]) < 0.1 < float(ours[0]) < 0.99
    assert torch.allclose(losses.ssim(a, a), torch.ones(3, dtype=torch.float64))


def test_photometric_loss_and_psnr():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(2, 16, 16, 3, generator=g)
    assert losses.photometric_loss(a, a).abs().max() < 1e-6
    b = (a + 0.1).clamp(0, 1)
    l1 = (a - b).abs().mean(dim=(1, 2, 3))
    expected = (1 - 0.2) * l1 + 0.2 * (1 - losses.ssim(a, b))
    assert torch.allclose(losses.photometric_loss(a, b), expected)
    assert torch.allclose(losses.photometric_loss(a, b, 0.0), l1)
    zeros = torch.zeros(2, 16, 16, 3)
    assert torch.allclose(losses.psnr(zeros, zeros + 0.1), torch.tensor([20.0, 20.0]), atol=1e-4)
    assert torch.allclose(losses.psnr(zeros, zeros + 0.01), torch.tensor([40.0, 40.0]), atol=1e-3)
    w = losses.gaussian_window(11, 1.5, torch.float64)
    assert w.sum().item() == pytest.approx(1.0) and torch.equal(w, w.flip(0)) and w.argmax() == 5


# ----------------------------------------------------------------------------------------------- deformation

def test_positional_encoding():
    x = torch.tensor([[0.5, 0.25]], dtype=torch.float64)
    e = deform.positional_encoding(x, 2)
    assert e.shape == (1, 2 * (1 + 2 * 2))
    s = math.sqrt(0.5)
    # x, then sin(2^k·π·x_d) d-major (x0 k0, x0 k1, x1 k0, x1 k1), then the cosines
    expected = [0.5, 0.25, 1.0, 0.0, s, 1.0, 0.0, -1.0, s, 0.0]
    assert torch.allclose(e[0], torch.tensor(expected, dtype=torch.float64), atol=1e-12)
    assert deform.positional_encoding(torch.zeros(5, 7, 3), 10).shape == (5, 7, 63)


def test_an_untrained_field_moves_nothing():
    torch.manual_seed(0)
    means = torch.randn(50, 3)
    quats, log_scales = torch.randn(50, 4), torch.randn(50, 3)
    for depth, width in ((8, 32), (2, 16)):  # with and without the skip connection
        field = deform.DeformationField(depth, width)
        d_mean, d_quat, d_scale = field(means, 0.7)
        assert d_mean.shape == (50, 3) and d_quat.shape == (50, 4) and d_scale.shape == (50, 3)
        assert torch.equal(d_mean, torch.zeros(50, 3)) and torch.equal(d_quat, torch.zeros(50, 4))
        assert torch.equal(d_scale, torch.zeros(50, 3))
        out = deform.deform(means, quats, log_scales, field, 0.3)
        assert all(torch.equal(o, i) for o, i in zip(out, (means, quats, log_scales)))
        # the field does depend on the mean and the time once its head is nonzero
        torch.nn.init.normal_(field.head.weight)
        a, b, c = field(means, 0.0)[0], field(means, 1.0)[0], field(means.flip(0), 0.0)[0]
        assert not torch.allclose(a, b) and torch.allclose(c, a.flip(0), atol=1e-6) and not torch.allclose(a, c)
        d_mean, d_quat, d_scale = field(means, 0.4)
        out = deform.deform(means, quats, log_scales, field, 0.4)
        assert torch.allclose(out[0], means + d_mean) and torch.allclose(out[1], quats + d_quat)
        assert torch.allclose(out[2], log_scales + d_scale)
    assert len(deform.DeformationField(8, 32).layers) == 8
    static = deform.deform(means, quats, log_scales, None, 0.5)
    assert static[0] is means and static[1] is quats and static[2] is log_scales


# ----------------------------------------------------------------------------------------------- PLY

def test_ply_round_trips_through_plyfile():
    plyfile = pytest.importorskip("plyfile")
    g = torch.Generator().manual_seed(2)
    n = 37
    gs = model.Gaussians(means=torch.randn(n, 3, generator=g), quats=torch.randn(n, 4, generator=g),
                         log_scales=torch.randn(n, 3, generator=g), opacity_logits=torch.randn(n, generator=g),
                         sh0=torch.randn(n, 3, generator=g, dtype=torch.float64))  # converted to float32
    data = plyfile.PlyData.read(io.BytesIO(ply.ply_bytes(gs)))
    vertex = data["vertex"]
    assert data.text is False and data.byte_order == "<" and vertex.count == n
    names = [p.name for p in vertex.properties]
    assert names == ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                     "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    assert all(vertex.data.dtype[name] == np.dtype("<f4") for name in names)
    column = lambda *keys: torch.from_numpy(np.stack([vertex[k] for k in keys], axis=1).copy())  # noqa: E731
    assert torch.equal(column("x", "y", "z"), gs.means)
    assert torch.equal(column("nx", "ny", "nz"), torch.zeros(n, 3))
    assert torch.equal(column("f_dc_0", "f_dc_1", "f_dc_2"), gs.sh0.float())
    assert torch.equal(column("opacity")[:, 0], gs.opacity_logits)
    assert torch.equal(column("scale_0", "scale_1", "scale_2"), gs.log_scales)
    assert torch.equal(column("rot_0", "rot_1", "rot_2", "rot_3"), gs.quats)
    empty = plyfile.PlyData.read(io.BytesIO(ply.ply_bytes(gs.map(lambda t: t[:0]))))
    assert empty["vertex"].count == 0


def test_model_activation_and_start():
    rgb = torch.tensor([[0.0, 0.5, 1.0]])
    assert torch.allclose(model.rgb_from_sh0(model.sh0_from_rgb(rgb)), rgb)
    g = model.in_ball(500, 0.5, torch.Generator().manual_seed(0))
    means, quats, scales, opac, colors = g.activated()
    assert len(g) == 500 and float(means.norm(dim=-1).max()) <= 0.5 + 1e-6
    assert float(means.norm(dim=-1).max()) > 0.45  # filling the ball, not its middle
    assert torch.allclose(quats.norm(dim=-1), torch.ones(500))
    spacing = 0.5 * (4 * math.pi / 3 / 500) ** (1 / 3)
    assert torch.allclose(scales, torch.full((500, 3), model.START_SIZE * spacing))
    assert torch.allclose(opac, torch.full((500,), model.START_OPACITY))
    assert torch.allclose(colors, torch.full((500, 3), 0.5))


# ----------------------------------------------------------------------------------------------- densification

def test_densify_clones_splits_and_prunes_with_the_adam_moments():
    torch.set_num_threads(2)
    targets, az, el = matrix(3, 1, 32)
    config = fit.FitConfig(gaussians=12, grad_threshold=1e-3)
    poses = cameras.orbit_poses(az, el)
    Ks = cameras.orbit_intrinsics(3, 32, 32)
    f = fit.Fit(targets, poses, Ks, config, "torch", torch.ones(3), "cpu")
    f.run(2)  # real Adam moments
    N = len(f.gaussians)
    assert N == 12
    small, large, faint = 2, 7, 4
    g = f.gaussians
    with torch.no_grad():
        g.log_scales[small] = math.log(0.5 * config.clone_scale * config.scene_scale)
        g.log_scales[large] = torch.tensor([0.2, 0.1, 0.05]).log()
        g.opacity_logits[faint] = math.log(0.5 * config.prune_opacity / (1 - 0.5 * config.prune_opacity))
    assert float(torch.exp(g.log_scales[large].detach()).max()) > config.clone_scale * config.scene_scale
    before = {k: t.detach().clone() for k, t in g.tensors().items()}
    m_before = {k: t.clone() for k, t in f.adam.m.items()}
    v_before = {k: t.clone() for k, t in f.adam.v.items()}
    assert any(float(t.abs().sum()) > 0 for t in m_before.values())
    f.grad_sum = torch.zeros(N)
    f.grad_count = torch.ones(N)
    f.grad_sum[small] = f.grad_sum[large] = 2 * config.grad_threshold
    f.grad_sum[0] = 0.5 * config.grad_threshold  # below the threshold: left alone
    f.densify()
    after = f.gaussians
    assert len(after) == N + 1 + 1 - 1
    kept = [i for i in range(N) if i not in (large, faint)]
    # the rows: the unsplit ones in order (the faint one pruned), the clone, the two children
    for k, t in after.tensors().items():
        assert t.requires_grad and t.is_leaf
        assert torch.equal(t[:len(kept)].detach(), before[k][kept])
        if k != "means" and k != "log_scales":
            assert torch.equal(t[-2:].detach(), before[k][[large, large]])
        assert torch.equal(t[len(kept)].detach(), before[k][small])  # the clone equals its parent
        assert torch.equal(f.adam.m[k], m_before[k][kept + [small, large, large]])
        assert torch.equal(f.adam.v[k], v_before[k][kept + [small, large, large]])
    children = torch.exp(after.log_scales[-2:].detach())
    assert torch.allclose(children, torch.exp(before["log_scales"][large]).expand(2, 3) / fit.SPLIT_SHRINK)
    # the children are drawn about their parent, within a few of its standard deviations, not on it
    offsets = after.means[-2:].detach() - before["means"][large]
    assert (offsets.norm(dim=-1) > 1e-4).all() and (offsets.norm(dim=-1) < 4 * 0.2 * math.sqrt(3)).all()
    assert not torch.equal(after.means[-2], after.means[-1])
    assert torch.equal(f.grad_sum, torch.zeros(N + 1)) and torch.equal(f.grad_count, torch.zeros(N + 1))
    f.run(1)  # the optimiser carries on with the new rows
    assert len(f.gaussians) == N + 1


def test_densify_keeps_to_max_gaussians():
    targets, az, el = matrix(3, 1, 32)
    config = fit.FitConfig(gaussians=12, max_gaussians=14, grad_threshold=1e-3)
    f = fit.Fit(targets, cameras.orbit_poses(az, el), cameras.orbit_intrinsics(3, 32, 32), config, "torch",
                torch.ones(3), "cpu")
    with torch.no_grad():
        f.gaussians.log_scales[:] = math.log(0.01)  # all clone
    f.grad_sum = torch.linspace(0.0, 1.0, 12) * 10 * config.grad_threshold
    f.grad_count = torch.ones(12)
    f.densify()
    assert len(f.gaussians) == 14  # only the two strongest cloned
    assert all(t.shape[0] == 14 for t in f.adam.m.values())
    assert torch.equal(f.gaussians.log_scales[-2:].detach(), torch.full((2, 3), math.log(0.01)))


# ----------------------------------------------------------------------------------------------- fits

def test_a_static_fit_recovers_the_object_from_new_views():
    torch.set_num_threads(2)
    targets, az, el = matrix(9, 1, 32)
    config = fit.FitConfig(iterations=300, warmup=300, gaussians=300, max_gaussians=1500, densify_from=100,
                           densify_until=250, densify_every=50, grad_threshold=1e-3, field_depth=2, field_width=32)
    calls = []
    result = fit.fit_matrix(targets, az, el, config, direction="right", callback=lambda i, l: calls.append(i))
    assert calls == list(range(1, 301)) and len(result.losses) == 300
    assert result.direction == "right" and result.frames == 1 and len(result.gaussians) > 300  # densified
    held = az + 20.0
    truth, _, _ = matrix(9, 1, 32, azimuth=held)
    images, alpha = fit.render_fitted(result, held, el, torch.zeros(9), 32, 32)
    assert images.shape == (9, 32, 32, 3) and alpha.shape == (9, 32, 32)
    p = float(losses.psnr(images.clamp(0, 1), truth[:, 0]).mean())
    white = float(losses.psnr(torch.ones_like(truth[:, 0]), truth[:, 0]).mean())
    print(f"static fit: held-out PSNR {p:.2f} dB, white background {white:.2f} dB")
    assert white < 12.0 and p > 27.0
    # the field was never trained: every frame is the canonical set
    g = fit.deformed_at(result, 0.0)
    assert torch.equal(g.means, result.gaussians.means)
    # a PLY of the fit
    assert ply.ply_bytes(result.gaussians).startswith(b"ply\nformat binary_little_endian 1.0\n")


@pytest.mark.parametrize("truth", ["left", "right"])
def test_direction_auto_finds_which_way_the_orbit_turns(truth):
    torch.set_num_threads(2)
    targets, az, el = matrix(6, 1, 32, direction=truth)
    config = fit.FitConfig(iterations=150, warmup=150, gaussians=300, max_gaussians=1000, densify_from=100,
                           densify_until=140, densify_every=50, grad_threshold=1e-3, field_depth=2, field_width=16)
    calls = []
    result = fit.fit_matrix(targets, az, el, config, direction="auto", callback=lambda i, l: calls.append(i))
    assert result.direction == truth
    assert len(calls) == config.iterations + fit.probe_iterations(config) == 180  # two 30-step trials


def test_the_field_learns_the_motion_and_leaves_the_still_part_alone():
    """From the true canonical Gaussians, 400 dynamic iterations: the field carries the arm most of the way to where
    it is at the last frame and keeps the ball still. (A thick arm swinging 20° over 5 frames: at 32 px an arm that
    jumps more than its width between frames gives the photometric loss no gradient to follow.)"""
    torch.set_num_threads(2)
    V, F, size, arm, swing = 5, 5, 32, 0.05, 20.0
    targets, az, el = matrix(V, F, size, arm_scale=arm, swing_deg=swing)
    config = fit.FitConfig(iterations=400, warmup=0, densify_from=10 ** 9, field_depth=4, field_width=64)
    run = fit.Fit(targets, cameras.orbit_poses(az, el), cameras.orbit_intrinsics(V, size, size), config, "torch",
                  torch.ones(3), "cpu")
    truth = scene.canonical(arm_scale=arm)
    run.gaussians = truth.map(lambda t: t.clone().requires_grad_())
    run.adam = fit._Adam(run.gaussians.tensors())
    run._reset_statistics()
    run.run(config.iterations)
    result = fit.Fitted(run.gaussians.map(lambda t: t.detach()), run.field.eval(), F, size, size, az, el,
                        cameras.SV3D_RADIUS, cameras.SV3D_FOV_DEG, "right", torch.ones(3))
    last = torch.full((V,), float(F - 1))
    moving, _ = fit.render_fitted(result, az, el, last, size, size)
    still, _ = fit.render_fitted(result, az, el, torch.zeros(V), size, size)
    p_moving = float(losses.psnr(moving.clamp(0, 1), targets[:, -1]).mean())
    p_still = float(losses.psnr(still.clamp(0, 1), targets[:, -1]).mean())
    assert p_moving > p_still + 2.5  # measured 31.5 vs 27.3 dB
    moved = fit.deformed_at(result, F - 1)
    goal = scene.at_time(truth, 1.0, swing).means
    arm_rows, ball_rows = slice(scene.BALL, None), slice(0, scene.BALL)
    before = (result.gaussians.means[arm_rows] - goal[arm_rows]).norm(dim=-1).mean()
    after = (moved.means[arm_rows] - goal[arm_rows]).norm(dim=-1).mean()
    assert after < 0.6 * before  # measured 0.061 from 0.140
    assert (moved.means[ball_rows] - goal[ball_rows]).norm(dim=-1).median() < 0.01  # measured 0.002
    assert torch.equal(moved.opacity_logits, result.gaussians.opacity_logits)
    assert torch.equal(moved.sh0, result.gaussians.sh0)


def test_recomputing_tiles_in_the_backward_pass_gives_the_same_gradients(monkeypatch):
    """Under autograd the compositor recomputes each chunk of tiles in the backward pass (torch's checkpoint); the
    gradients are those of keeping every intermediate, on an image cut into several chunks."""
    g = torch.Generator().manual_seed(3)
    n, h, w = 60, 29, 37
    leaves = [(torch.rand(n, 3, generator=g) - 0.5) * 0.8, torch.randn(n, 4, generator=g),
              0.02 + 0.05 * torch.rand(n, 3, generator=g), 0.2 + 0.7 * torch.rand(n, generator=g),
              torch.rand(n, 3, generator=g)]
    poses = cameras.orbit_poses(torch.tensor([0.0, 120.0]), torch.tensor([10.0, -20.0])).float()
    Ks = cameras.orbit_intrinsics(2, h, w).float()
    weights = torch.rand(2, h, w, 3, generator=g)
    monkeypatch.setattr(render, "DENSE_BUDGET", 4000)  # several chunks

    def grads():
        inputs = [t.clone().requires_grad_() for t in leaves]
        image, alpha = render.render_torch(*inputs, poses, Ks, h, w, torch.ones(3))
        ((image * weights).sum() + alpha.sum()).backward()
        return [t.grad for t in inputs]

    calls = []
    real = render.checkpoint
    monkeypatch.setattr(render, "checkpoint", lambda fn, *a, **k: calls.append(1) or real(fn, *a, **k))
    recomputed = grads()
    assert len(calls) > 2
    monkeypatch.setattr(render, "checkpoint", lambda fn, *a, **k: fn(*a))
    kept = grads()
    for a, b in zip(recomputed, kept):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-7)
