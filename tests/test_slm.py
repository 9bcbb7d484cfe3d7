"""Latent-grid masks and Stochastic Latent Modulation."""

import pytest
import torch

from inversedvs.errors import InverseDVSError
from inversedvs.slm.masks import fully_unseen_cells, latent_visibility, unseen_cells
from inversedvs.slm.modulate import fill_unseen, stochastic_latent_modulation


def test_full_size_mask_gives_13x60x90():
    mask = torch.zeros(49, 480, 720)
    mask[:, :, :100] = 1
    v = latent_visibility(mask)
    assert v.shape == (13, 60, 90)
    assert float(v.min()) == 0.0 and float(v.max()) == 1.0


def test_small_case_by_hand():
    """5 frames of 8×8 → 2 latent frames of 1×1, worked out by hand.

    Frames 1 and 2 are holes, 0, 3, 4 are seen. Time: [f0, (f1+f2)/2, (f3+f4)/2] = [1, 0, 1] → [1, 0.5].
    Space, on the constant 0.5 (padding counts as seen, 1):
      8×8 → 4×4: inside 0.5; last row/column (6·0.5 + 3·1)/9 = 2/3; corner (4·0.5 + 5·1)/9 = 7/9
      4×4 → 2×2: [[1/2, 6.5/9], [6.5/9, 68.5/81]]
      2×2 → 1×1: (1/2 + 2·6.5/9 + 68.5/81 + 5)/9 = 631/729
    """
    mask = torch.zeros(5, 8, 8)
    mask[1:3] = 1.0
    v = latent_visibility(mask)
    assert v.shape == (2, 1, 1)
    assert float(v[0, 0, 0]) == pytest.approx(1.0, abs=1e-7)
    assert float(v[1, 0, 0]) == pytest.approx(631 / 729, abs=1e-6)


def test_no_holes_means_no_unseen_cell():
    v = latent_visibility(torch.zeros(49, 480, 720))
    assert v.shape == (13, 60, 90)
    assert bool((v == 1).all()) and not unseen_cells(v).any() and not fully_unseen_cells(v).any()


def test_unseen_and_fully_unseen():
    v = torch.tensor([[[1.0, 0.75, 0.5], [0.0, 0.0, 1.0]]])
    assert unseen_cells(v).tolist() == [[[False, True, True], [True, True, False]]]
    # distinct values 0, 0.5, 0.75, 1 → v_(2) = 0.5
    assert fully_unseen_cells(v).tolist() == [[[False, False, True], [True, True, False]]]
    assert not fully_unseen_cells(torch.ones(1, 2, 2)).any()


def test_bad_mask_shapes():
    with pytest.raises(InverseDVSError, match="4k\\+1"):
        latent_visibility(torch.zeros(48, 64, 64))
    with pytest.raises(InverseDVSError, match="multiples"):
        latent_visibility(torch.zeros(49, 60, 64))


@pytest.fixture
def latents():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 3, 6, 8, generator=gen)
    eps = torch.randn(1, 4, 3, 6, 8, generator=gen)
    unseen = torch.zeros(3, 6, 8, dtype=torch.bool)
    unseen[:, :, 5:] = True
    fully = torch.zeros_like(unseen)
    fully[:, :, 7:] = True
    return x, eps, unseen, fully


@pytest.mark.parametrize("scope", ["tensor", "channel", "frame"])
def test_slm_properties(latents, scope):
    x, eps, unseen, fully = latents
    x_out, e_out = stochastic_latent_modulation(x, eps, unseen, fully, torch.Generator().manual_seed(1), scope)
    vis = ~unseen.expand_as(x)
    assert torch.equal(x_out[vis], x[vis])  # visible cells bit-identical
    assert torch.equal(e_out[~fully.expand_as(eps)], eps[~fully.expand_as(eps)])
    assert set(x_out[~vis].tolist()) <= set(x[vis].tolist())  # every fill is a visible value
    assert set(e_out[fully.expand_as(eps)].tolist()) <= set(eps[~fully.expand_as(eps)].tolist())
    assert not torch.equal(x_out, x)
    if scope != "tensor":  # fills come from the same channel
        for c in range(4):
            assert set(x_out[0, c][unseen].tolist()) <= set(x[0, c][~unseen].tolist())
    if scope == "frame":
        for t in range(3):
            assert set(x_out[0, 0, t][unseen[t]].tolist()) <= set(x[0, 0, t][~unseen[t]].tolist())
    again = stochastic_latent_modulation(x, eps, unseen, fully, torch.Generator().manual_seed(1), scope)
    other = stochastic_latent_modulation(x, eps, unseen, fully, torch.Generator().manual_seed(2), scope)
    assert torch.equal(again[0], x_out) and torch.equal(again[1], e_out)
    assert not torch.equal(other[0], x_out)


def test_slm_draws_uniformly(latents):
    """Fills of a 2-value donor pool come out near 50/50 (with replacement, uniform)."""
    x = torch.zeros(1, 1, 1, 40, 50)
    x[..., 0, 0] = 1.0
    fill = torch.ones(1, 40, 50, dtype=torch.bool)
    fill[0, 0, :2] = False  # donors: one 1.0 and one 0.0
    out = fill_unseen(x, fill, torch.Generator().manual_seed(3))
    share = float(out[0, 0][fill].mean())
    assert 0.45 < share < 0.55


@pytest.mark.parametrize("scope", ["tensor", "channel", "frame"])
def test_all_unseen_is_a_clear_error(latents, scope):
    x, eps, _, _ = latents
    everything = torch.ones(3, 6, 8, dtype=torch.bool)
    with pytest.raises(InverseDVSError, match="no visible values"):
        stochastic_latent_modulation(x, eps, everything, everything, torch.Generator(), scope)


@pytest.mark.parametrize("frames,height,width,temporal,spatial,grid", [
    (81, 480, 832, 4, 8, (21, 60, 104)),     # Wan 2.1 I2V 480p
    (121, 704, 1280, 4, 16, (31, 44, 80)),   # Wan 2.2 TI2V-5B 720p
])
def test_latent_grid_follows_the_vae_factors(frames, height, width, temporal, spatial, grid):
    v = latent_visibility(torch.zeros(frames, height, width), temporal, spatial)
    assert v.shape == grid and bool((v == 1).all())


def test_16x_grid_by_hand():
    """Holes in the right half of 64×64 frames: after four (pad, 3×3, stride 2) halvings only latent column 0
    sees no hole (column j of a halving covers columns 2j..2j+2 below it: visible j ≤ 14, 6, 2, 0)."""
    mask = torch.zeros(5, 64, 64)
    mask[:, :, 32:] = 1.0
    v = latent_visibility(mask, 4, 16)
    assert v.shape == (2, 4, 4)
    assert bool((v[:, :, 0] == 1).all()) and bool((v[:, :, 1:] < 1).all())
    at_8 = latent_visibility(mask, 4, 8)  # the same mask on an 8× grid: columns 0..2 untouched
    assert bool((at_8[:, :, :3] == 1).all()) and bool((at_8[:, :, 3:] < 1).all())


def test_factors_are_checked():
    with pytest.raises(InverseDVSError, match="powers of two"):
        latent_visibility(torch.zeros(5, 48, 48), 4, 12)
    with pytest.raises(InverseDVSError, match="multiples of 16"):
        latent_visibility(torch.zeros(5, 40, 48), 4, 16)
    with pytest.raises(InverseDVSError, match="8k\\+1"):
        latent_visibility(torch.zeros(5, 32, 32), 8, 8)
