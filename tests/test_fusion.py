"""Signal/noise fusion maths (krnr/fusion.py) and the warp of a latent grid (warp/splat.py), pinned by hand."""

from __future__ import annotations

import math

import pytest
import torch

from inversedvs.krnr import fusion, levels
from inversedvs.warp import camera as cam
from inversedvs.warp.splat import cell_depth, warp_latent

# ᾱ = 0.64: a = 0.8, b = 0.6 (exact in binary to a few ulps)
LEVEL = levels.ddpm_level(0.64)


def test_equation_1_splits_the_inversion_step_into_mean_and_noise_terms():
    x0_hat = torch.tensor([1.0, -2.0, 0.25])
    eps_hat = torch.tensor([0.5, 1.0, -4.0])
    mean, noise = fusion.split_inversion(x0_hat, eps_hat, LEVEL)
    assert torch.allclose(mean, torch.tensor([0.8, -1.6, 0.2]))
    assert torch.allclose(noise, torch.tensor([0.3, 0.6, -2.4]))
    # their sum is the DDIM inversion step's landing point a·x̂0 + b·ε̂
    assert torch.allclose(mean + noise, levels.noisy(x0_hat, eps_hat, LEVEL))


def test_strategy_a_fuses_the_target_mean_with_the_source_noise_then_adds_the_weighted_prediction():
    mean_target = torch.tensor([2.0, 0.0, -1.0])
    noise_source = torch.tensor([0.3, 0.6, -2.4])
    assert torch.allclose(fusion.fused_input(mean_target, noise_source), torch.tensor([2.3, 0.6, -3.4]))
    eps = torch.tensor([1.0, -1.0, 0.5])  # the model's prediction for the fused latent
    # 2 + 0.6·1, 0 − 0.6, −1 + 0.6·0.5
    assert torch.allclose(fusion.start_from_prediction(mean_target, eps, LEVEL), torch.tensor([2.6, -0.6, -0.7]))


def test_strategy_b_adds_the_whole_inverted_source_latent_weighted_as_noise():
    mean_target = torch.tensor([2.0, 0.0, -1.0])
    inverted = torch.tensor([1.1, -1.0, -2.2])
    # 2 + 0.6·1.1, 0 − 0.6·1.0, −1 − 0.6·2.2
    assert torch.allclose(fusion.start_from_inversion(mean_target, inverted, LEVEL), torch.tensor([2.66, -0.6, -2.32]))


def test_the_grid_is_evenly_spaced_from_the_clean_level():
    assert fusion.inversion_timesteps(30, 600) == list(range(0, 601, 20))
    assert fusion.inversion_timesteps(4, 10) == [0, 2, 5, 8, 10]  # rounded, still distinct
    with pytest.raises(ValueError):
        fusion.inversion_timesteps(11, 10)
    assert fusion.STRATEGIES == ("a_noise_term", "b_inverted_latent")  # saved in workflows: never rename


def _truck(tx: float) -> torch.Tensor:
    T = torch.eye(4, dtype=torch.float64).unsqueeze(0)
    T[0, 0, 3] = tx  # source point X lands at X + tx in the target camera (the camera moved by −tx)
    return T


def test_the_latent_warp_keeps_a_latent_under_the_identity_and_shifts_it_whole_cells_on_a_plane():
    gen = torch.Generator().manual_seed(0)
    latent = torch.randn(4, 6, 8, generator=gen) * 3.0  # any values, far outside 0..1
    h, w = latent.shape[1:]
    depth = torch.full((h, w), 2.0)
    K = cam.intrinsics(h, w, 60.0)[0]
    same, holes = warp_latent(latent, depth, torch.eye(4).unsqueeze(0), K, K)
    assert same.shape == (1, 4, h, w) and not bool(holes.any())
    assert torch.allclose(same[0], latent, atol=1e-5)
    # a fronto-parallel plane at depth d moves by f·tx/d cells: choose tx for exactly one cell
    f = float(K[0, 0])
    moved, holes = warp_latent(latent, depth, _truck(2.0 / f), K, K)
    assert torch.allclose(moved[0, :, :, 1:], latent[:, :, :-1], atol=1e-4)
    assert bool(holes[0, :, 0].all()) and not bool(holes[0, :, 1:].any())
    assert moved.abs().max() > 1.0  # values are not clipped to an image's 0..1


def test_cell_depth_averages_blocks_and_the_latent_grid_cameras_match_the_pixel_cameras():
    depth = torch.arange(16.0).view(1, 4, 4)
    assert torch.equal(cell_depth(depth, 2), torch.tensor([[[2.5, 4.5], [10.5, 12.5]]]))
    # K of the latent grid: the pixel camera's focal length / 8 and the centre of the cell grid, so a ray
    # through a cell centre is the ray through the centre of its 8×8 pixels
    H, W, s = 48, 64, 8
    K_pix, K_lat = cam.intrinsics(H, W, 70.0)[0], cam.intrinsics(H // s, W // s, 70.0)[0]
    for j in range(W // s):
        u = s * j + (s - 1) / 2
        assert math.isclose((u - K_pix[0, 2]) / K_pix[0, 0], (j - K_lat[0, 2]) / K_lat[0, 0], abs_tol=1e-12)
