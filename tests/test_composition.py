"""Diffusion² score composition (krnr/composition.py): matrix order, equation 5's weights, the Euler step, VRS."""

from __future__ import annotations

import pytest
import torch

from inversedvs.krnr import composition as comp

V, F, C, H, W = 3, 4, 2, 2, 3
SIGMAS = torch.tensor([8.0, 3.0, 1.0, 0.25, 0.0])


def _matrix(seed=0):
    return torch.randn(V, F, C, H, W, generator=torch.Generator().manual_seed(seed))


class RowModel:
    """A stand-in video model: each row's x̂0 mixes that row's frames (a temporal blur), shrunk with σ.
    Records every call's (σ, rows it was given)."""

    def __init__(self):
        self.calls = []

    def one_row(self, row, sigma):  # row [F, C, H, W]: what core's guider is given for one view
        blurred = 0.5 * row + 0.25 * (row.roll(1, 0) + row.roll(-1, 0))
        return torch.tanh(blurred) / (1.0 + sigma**2) ** 0.5

    def __call__(self, x, sigma):
        self.calls.append((float(sigma), x.clone()))
        return torch.stack([self.one_row(x[v], sigma) for v in range(x.shape[0])])


class ColumnModel(RowModel):
    """A stand-in multi-view model: each column's x̂0 mixes that time's views (a different nonlinearity)."""

    def one_column(self, column, sigma):  # column [V, C, H, W]
        return torch.sin(column.mean(0, keepdim=True) + 0.3 * column) / (1.0 + sigma)

    def __call__(self, x, sigma):
        self.calls.append((float(sigma), x.clone()))
        return torch.stack([self.one_column(x[:, f], sigma) for f in range(x.shape[1])], dim=1)


def _noise(seed=5):
    gen = torch.Generator().manual_seed(seed)
    return lambda shape: torch.randn(shape, generator=gen)


def _core_euler(x, sigmas, model):
    """Core's sample_euler (s_churn = 0) on one row / column, written out from k-diffusion."""
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in)
        d = (x - denoised) / sigmas[i].reshape([1] * x.ndim)
        x = x + d * (sigmas[i + 1] - sigmas[i])
    return x


def test_the_matrix_is_view_major_in_a_batch():
    x = _matrix()
    batch = comp.to_batch(x)
    assert batch.shape == (V * F, C, H, W)
    for v in range(V):
        for f in range(F):
            assert torch.equal(batch[v * F + f], x[v, f])
    assert torch.equal(comp.from_batch(batch, V), x)
    with pytest.raises(ValueError, match="5 views"):
        comp.from_batch(batch, 5)
    # a view's video and a time's orbit out of the batch
    assert torch.equal(comp.pick(batch, V, "view", 1), x[1]) and torch.equal(comp.pick(batch, V, "time", 2), x[:, 2])


def test_composition_is_linear_in_s_with_exact_endpoints():
    row, column = _matrix(1), _matrix(2)
    assert comp.compose(row, column, 1.0) is row and comp.compose(row, column, 0.0) is column
    assert comp.compose(row, None, 1.0) is row  # the weight-0 model's estimate is not needed
    for s in (0.25, 0.5, 0.8):
        assert torch.allclose(comp.compose(row, column, s), s * row + (1 - s) * column, atol=1e-7)
    a, b = comp.compose(row, column, 0.2), comp.compose(row, column, 0.6)
    assert torch.allclose(comp.compose(row, column, 0.4), (a + b) / 2, atol=1e-6)
    assert comp.weights_used(1.0) == (True, False) and comp.weights_used(0.0) == (False, True)
    assert comp.weights_used(0.5) == (True, True)


def test_s_1_is_the_video_models_sampling_of_each_row_bit_for_bit():
    x = _matrix() * SIGMAS[0]
    rows, columns = RowModel(), ColumnModel()
    out = comp.sample(x, SIGMAS, rows, columns, 1.0, 0, _noise())
    assert columns.calls == []
    for v in range(V):
        assert torch.equal(out[v], _core_euler(x[v], SIGMAS, lambda r, s: rows.one_row(r, s[0])))


def test_s_0_is_the_multiview_models_sampling_of_each_column_bit_for_bit():
    x = _matrix() * SIGMAS[0]
    rows, columns = RowModel(), ColumnModel()
    out = comp.sample(x, SIGMAS, rows, columns, 0.0, 0, _noise())
    assert rows.calls == []
    for f in range(F):
        assert torch.equal(out[:, f], _core_euler(x[:, f], SIGMAS, lambda c, s: columns.one_column(c, s[0])))


def test_one_step_is_affine_in_s_and_mixes_rows_with_columns():
    x = _matrix() * SIGMAS[1]
    one = SIGMAS[1:3]
    outs = {s: comp.sample(x, one, RowModel(), ColumnModel(), s, 0, _noise()) for s in (0.0, 0.3, 0.5, 1.0)}
    for s in (0.3, 0.5):
        assert torch.allclose(outs[s], s * outs[1.0] + (1 - s) * outs[0.0], atol=1e-5)
    assert not torch.allclose(outs[0.0], outs[1.0])
    # the step: x + (σ1 − σ0)·(x − D)/σ0 with D = s·D_row + (1 − s)·D_col
    denoised = 0.5 * RowModel()(x, one[0]) + 0.5 * ColumnModel()(x, one[0])
    assert torch.allclose(outs[0.5], x + (one[1] - one[0]) * (x - denoised) / one[0], atol=1e-5)


def test_vrs_repeats_only_the_first_steps_from_a_renoised_latent():
    assert comp.evaluation_plan(4, 2) == [0, 0, 1, 1, 2, 3]
    assert comp.evaluation_plan(3, 0) == [0, 1, 2] and comp.evaluation_plan(2, 5) == [0, 0, 1, 1]
    x = _matrix() * SIGMAS[0]
    rows, columns = RowModel(), ColumnModel()
    draws = []

    def noise(shape):
        draws.append(torch.randn(shape, generator=torch.Generator().manual_seed(len(draws))))
        return draws[-1]

    out = comp.sample(x, SIGMAS, rows, columns, 0.5, 2, noise)
    assert [s for s, _ in rows.calls] == [8.0, 8.0, 3.0, 3.0, 1.0, 0.25]
    assert [s for s, _ in columns.calls] == [s for s, _ in rows.calls] and len(draws) == 2
    # the repeated evaluation at σ_0 sees the first step's result plus (σ_0 − σ_1)·ε
    first = comp.euler_step(x, comp.compose(RowModel()(x, SIGMAS[0]), ColumnModel()(x, SIGMAS[0]), 0.5), SIGMAS[0],
                            SIGMAS[1])
    assert torch.allclose(rows.calls[1][1], first + (SIGMAS[0] - SIGMAS[1]) * draws[0], atol=1e-6)
    # after the VRS steps the sampler is the plain one: continuing without VRS from the state after step 2 agrees
    replay = iter(draws)
    head = comp.sample(x, SIGMAS[:3], RowModel(), ColumnModel(), 0.5, 2, lambda shape: next(replay))
    tail = comp.sample(head, SIGMAS[2:], RowModel(), ColumnModel(), 0.5, 0, _noise())
    assert torch.equal(out, tail)
    # and VRS changes the result (it is not a no-op)
    plain = comp.sample(x, SIGMAS, RowModel(), ColumnModel(), 0.5, 0, _noise())
    assert not torch.allclose(out, plain)


def test_bad_matrix_or_weight_is_refused():
    with pytest.raises(ValueError, match="V, F, C"):
        comp.sample(torch.zeros(2, 3, 4), SIGMAS, RowModel(), ColumnModel(), 0.5, 0, _noise())
    with pytest.raises(ValueError, match="s must be"):
        comp.sample(_matrix(), SIGMAS, RowModel(), ColumnModel(), 1.5, 0, _noise())


def test_grid_puts_views_in_rows_and_frames_in_columns_and_shrinks():
    images = torch.zeros(V * F, 4, 6, 3)
    for b in range(V * F):
        images[b] = b / (V * F)
    sheet = comp.grid(images, V)
    assert sheet.shape == (1, V * 4, F * 6, 3)
    for v in range(V):
        for f in range(F):
            assert torch.all(sheet[0, v * 4:(v + 1) * 4, f * 6:(f + 1) * 6] == images[v * F + f, 0, 0, 0])
    small = comp.grid(images, V, max_side=12)
    assert small.shape == (1, V * 2, F * 3, 3)
    assert torch.allclose(small[0, 2:4, 3:6], images[F + 1, :2, :3])
