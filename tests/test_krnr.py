"""Schedule, DDIM and K-RNR maths, pinned against diffusers' CogVideoX scheduler and independent formulas."""

import math

import pytest
import torch

from inversedvs.errors import InverseDVSError
from inversedvs.krnr import ddim, levels
from inversedvs.krnr.krnr import krnr_closed_form, krnr_coefficients, krnr_recursive, krnr_reference
from inversedvs.krnr.noise_init import initial_latent
from inversedvs.krnr.schedule import COGVIDEOX_5B_I2V_SCHEDULER, NoiseSchedule


@pytest.fixture(scope="module")
def schedule():
    return NoiseSchedule()


@pytest.fixture(scope="module")
def diffusers_scheduler():
    from diffusers import CogVideoXDDIMScheduler

    cfg = {k: v for k, v in COGVIDEOX_5B_I2V_SCHEDULER.items() if not k.startswith("_")}
    return CogVideoXDDIMScheduler(**cfg)


def test_alpha_bar_matches_diffusers_and_is_zero_at_999(schedule, diffusers_scheduler):
    assert torch.allclose(schedule.alphas_cumprod, diffusers_scheduler.alphas_cumprod.double(), atol=1e-12)
    assert schedule.alpha_bar(999) == 0.0
    assert schedule.alpha_bar(966) == pytest.approx(2.5e-4, rel=0.05)
    assert schedule.alpha_bar(-1) == 1.0
    # monotone: noise grows with t
    assert bool((schedule.alphas_cumprod[1:] < schedule.alphas_cumprod[:-1]).all())


def test_grid_trailing_30_steps(schedule, diffusers_scheduler):
    full = schedule.grid(30, 1.0)
    diffusers_scheduler.set_timesteps(30)
    assert full == diffusers_scheduler.timesteps.tolist()
    assert full[:3] == [999, 966, 932] and full[-1] == 32 and len(full) == 30
    grid = schedule.grid(30, 0.98)
    assert grid[0] == 966 and grid[-1] == full[-1] and len(grid) == 29
    # the last step lands on the clean end
    assert schedule.prev(grid[-1], 30) < 0


@pytest.mark.parametrize("steps,strength", [(0, 0.5), (30, 0.0), (30, 1.5), (30, float("nan")), (3, 0.2)])
def test_grid_rejects_bad_steps_and_strength(schedule, steps, strength):
    with pytest.raises(InverseDVSError):
        schedule.grid(steps, strength)


def test_ddim_step_matches_diffusers(schedule, diffusers_scheduler):
    diffusers_scheduler.set_timesteps(30)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 3, 6, 8, generator=gen)
    v = torch.randn(1, 4, 3, 6, 8, generator=gen)
    for t in (999, 966, 500, 32):
        ours = ddim.ddim_step(schedule, x, v, t, 30)
        ref = diffusers_scheduler.step(v, t, x, return_dict=False)[0]
        assert torch.allclose(ours, ref.float(), atol=1e-6), t


def test_v_conversions_round_trip():
    gen = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(2, 50, generator=gen), torch.randn(2, 50, generator=gen)
    for a in (0.0, 2.5e-4, 0.3, 0.99):
        x = a**0.5 * x0 + (1 - a) ** 0.5 * eps
        v = ddim.v_from_x0_eps(x0, eps, a)
        assert torch.allclose(ddim.x0_from_v(x, v, a), x0, atol=1e-5)
        assert torch.allclose(ddim.eps_from_v(x, v, a), eps, atol=1e-5)


def test_sampling_with_a_model_that_knows_x0_returns_x0(schedule):
    """A model whose v always points at the true x0 makes DDIM sampling land exactly on x0."""
    gen = torch.Generator().manual_seed(2)
    x0 = torch.randn(1, 4, 3, 6, 8, generator=gen)
    start = torch.randn(1, 4, 3, 6, 8, generator=gen)

    def knows_x0(x, t):
        a = schedule.alpha_bar(t)
        eps = (x - a**0.5 * x0) / (1 - a) ** 0.5
        return ddim.v_from_x0_eps(x0, eps, a)

    out = ddim.sample(schedule, start, schedule.grid(30, 0.98), 30, knows_x0)
    assert torch.allclose(out, x0, atol=1e-5)


def test_inversion_step_moves_to_the_noisier_level(schedule):
    """One inversion step with a v consistent at the current level gives √ᾱ_t·x0 + √(1−ᾱ_t)·ε exactly."""
    gen = torch.Generator().manual_seed(3)
    x0, eps = torch.randn(2, 30, generator=gen), torch.randn(2, 30, generator=gen)
    for t in (32, 500, 966, 999):
        a_from = schedule.alpha_bar(schedule.prev(t, 30))
        x = a_from**0.5 * x0 + (1 - a_from) ** 0.5 * eps
        v = ddim.v_from_x0_eps(x0, eps, a_from)
        a_to = schedule.alpha_bar(t)
        out = ddim.ddim_inversion_step(schedule, x, v, t, 30)
        assert torch.allclose(out, a_to**0.5 * x0 + (1 - a_to) ** 0.5 * eps, atol=1e-5), t
    # at ᾱ = 0 the inverted latent is the model's noise prediction
    assert torch.allclose(ddim.ddim_move(x, v, a_from, 0.0), ddim.eps_from_v(x, v, a_from), atol=1e-6)


def test_inversion_timesteps(schedule):
    up = ddim.inversion_timesteps(schedule, 30, 0.98, to_terminal=False)
    assert up[0] == 32 and up[-1] == 966 and len(up) == 29 and up == sorted(up)
    terminal = ddim.inversion_timesteps(schedule, 30, 0.98, to_terminal=True)
    assert terminal[-1] == 999 and len(terminal) == 30


def test_loops_call_the_model_once_per_step_and_report(schedule):
    calls, seen = [], []
    x = torch.zeros(1, 2, 1, 2, 2)
    ddim.sample(schedule, x, schedule.grid(10, 1.0), 10, lambda x, t: calls.append(t) or torch.zeros_like(x),
                lambda i, t, x: seen.append(i))
    assert calls == schedule.grid(10, 1.0) and seen == list(range(10))


def test_dynamic_guidance_is_the_reference_formula():
    for t in (999, 966, 500, 32):
        cosine = 1 + 10.0 * (1 - math.cos(math.pi * ((30 - t) / 30) ** 5.0)) / 2
        assert ddim.dynamic_guidance(10.0, t, 30) == pytest.approx(10.0 + 2 - cosine, rel=1e-12)
        assert 1.0 <= ddim.dynamic_guidance(10.0, t, 30) <= 11.0


@pytest.mark.parametrize("alpha_bar", [2.5e-4, 0.05, 0.5])
def test_closed_form_equals_recursion(alpha_bar):
    gen = torch.Generator().manual_seed(3)
    x0 = torch.randn(1, 4, 3, 6, 8, generator=gen, dtype=torch.float64)
    eps = torch.randn(1, 4, 3, 6, 8, generator=gen, dtype=torch.float64)
    for k in range(1, 21):
        closed = krnr_closed_form(x0, eps, alpha_bar, k)
        assert torch.allclose(closed, krnr_recursive(x0, eps, alpha_bar, k), atol=1e-6), k
    assert torch.equal(krnr_closed_form(x0, eps, alpha_bar, 0), eps)


def test_krnr_coefficients_at_the_start_timestep(schedule):
    a = schedule.alpha_bar(966)
    # share of x0 kept: 1.6% by plain noising, 9.4% at order 6, 15.7% at order 10 (DESIGN §6)
    assert krnr_coefficients(a, 1)[0] == pytest.approx(0.0157, abs=5e-4)
    assert krnr_coefficients(a, 6)[0] == pytest.approx(0.094, abs=2e-3)
    assert krnr_coefficients(a, 10)[0] == pytest.approx(0.157, abs=3e-3)
    assert krnr_coefficients(0.0, 5) == (0.0, 1.0)


def _reference_formula(x0, eps, mean, std, alpha_bar, k):
    """The released code's adaptive K-RNR, written out independently (loop sums, explicit statistics)."""
    a = torch.tensor(alpha_bar, dtype=x0.dtype) ** 0.5
    b = (1 - torch.tensor(alpha_bar, dtype=x0.dtype)) ** 0.5

    def coef(order):
        m = torch.zeros_like(a)
        for i in range(order):
            m = m + a * b**i
        return m, b**order

    ck, nk = coef(k)
    c2, n2 = coef(2)
    y = ck * x0 + nk * eps
    normalised = (y - (ck * mean + nk * eps)) / (ck * std + 1e-9)
    return normalised * (c2 * std) + (c2 * mean + n2 * eps)


def _latent_with_posterior(seed: int, mean_spread: float):
    """x0, ε [1, 4, 3, 6, 8] and a VAE posterior around x0: mean = x0 + spread·N(0, 1), std in 0.05..0.15."""
    gen = torch.Generator().manual_seed(seed)
    shape = (1, 4, 3, 6, 8)
    x0, eps = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    mean = x0 + mean_spread * torch.randn(shape, generator=gen)
    std = 0.05 + 0.1 * torch.rand(shape, generator=gen)
    return x0, eps, mean, std


def test_reference_krnr_matches_independent_formula_and_is_order_2(schedule):
    x0, eps, mean, std = _latent_with_posterior(seed=4, mean_spread=0.1)
    a = schedule.alpha_bar(966)
    for k in (1, 2, 5, 10, 20):
        ours = krnr_reference(x0, eps, mean, std, a, k)
        assert torch.allclose(ours, _reference_formula(x0, eps, mean, std, a, k), atol=1e-5), k
        assert torch.allclose(ours, krnr_closed_form(x0, eps, a, 2), atol=1e-5), k


def test_reference_mode_with_nothing_unseen_is_order_6(schedule):
    gen = torch.Generator().manual_seed(5)
    shape = (1, 4, 3, 6, 8)
    x0, eps = torch.randn(shape, generator=gen), torch.randn(shape, generator=gen)
    mean, std = x0.clone(), torch.full(shape, 0.1)
    none = torch.zeros(3, 6, 8, dtype=torch.bool)
    a = schedule.alpha_bar(966)
    for k in (5, 10, 20):
        x_out, start = initial_latent(x0, eps, none, none, a, k, "reference", torch.Generator().manual_seed(0),
                                      mean=mean, std=std)
        assert torch.equal(x_out, x0)
        assert torch.allclose(start, krnr_closed_form(x0, eps, a, 6), atol=1e-5), k
    _, paper = initial_latent(x0, eps, none, none, a, 10, "paper", torch.Generator().manual_seed(0))
    assert torch.allclose(paper, krnr_closed_form(x0, eps, a, 10), atol=1e-6)
    with pytest.raises(InverseDVSError):
        initial_latent(x0, eps, none, none, a, 10, "reference", torch.Generator())


def _released_noise_init(x, eps, unseen, fully, mean, std, alpha_bar, k, generator):
    """The released pipeline's noise initialisation, re-written from its description: three rounds of
    (SLM via nonzero indices and randint over the visible list — ε first, then x — then adaptive K-RNR)."""
    x, eps = x.clone(), eps.clone()
    unseen = unseen.expand_as(x)
    fully = fully.expand_as(x)
    for _ in range(3):
        for target, holes in ((eps, fully), (x, unseen)):
            donors = torch.nonzero(~holes, as_tuple=True)
            filled = torch.nonzero(holes, as_tuple=True)
            pick = torch.randint(0, len(donors[0]), (int(holes.sum()),), generator=generator)
            target[filled] = target[tuple(d[pick] for d in donors)]
        eps = _reference_formula(x, eps, mean, std, alpha_bar, k)
    return x, eps


def test_reference_mode_reproduces_the_released_noise_initialisation(schedule):
    x0, eps, mean, std = _latent_with_posterior(seed=6, mean_spread=0.05)
    unseen = torch.zeros(3, 6, 8, dtype=torch.bool)
    unseen[:, :, 5:] = True
    fully = torch.zeros_like(unseen)
    fully[:, :, 7:] = True
    a = schedule.alpha_bar(966)
    for k in (5, 20):
        ours = initial_latent(x0, eps, unseen, fully, a, k, "reference", torch.Generator().manual_seed(42),
                              mean=mean, std=std)
        released = _released_noise_init(x0, eps, unseen, fully, mean, std, a, k, torch.Generator().manual_seed(42))
        assert torch.equal(ours[0], released[0])
        assert torch.allclose(ours[1], released[1], atol=1e-5)


# ---- one math for both families: levels x = a·x0 + b·ε (DDPM (√ᾱ, √(1−ᾱ)), flow (1−σ, σ))

FLOW_SIGMAS = (0.05, 0.3, 0.9, 0.9863, 1.0)


def _pair(seed, shape=(1, 4, 3, 6, 8), dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=gen, dtype=dtype), torch.randn(shape, generator=gen, dtype=dtype)


@pytest.mark.parametrize("sigma", FLOW_SIGMAS)
def test_flow_krnr_closed_form_is_one_minus_sigma_power_k_and_equals_recursion(sigma):
    x0, eps = _pair(7)
    level = levels.flow_level(sigma)
    for k in range(0, 21):
        coef_x0, coef_eps = krnr_coefficients(level, k)
        assert coef_x0 == pytest.approx(1.0 - sigma**k, abs=1e-12) and coef_eps == pytest.approx(sigma**k, abs=1e-15)
        closed = krnr_closed_form(x0, eps, level, k)
        assert torch.allclose(closed, krnr_recursive(x0, eps, level, k), atol=1e-12), (sigma, k)
        assert torch.allclose(closed, (1 - sigma**k) * x0 + sigma**k * eps, atol=1e-12)
    # order 1 is plain noising with the inverted noise: ComfyUI's noise_scaling(σ, ε, x0) = σ·ε + (1−σ)·x0
    assert torch.allclose(krnr_closed_form(x0, eps, level, 1), sigma * eps + (1 - sigma) * x0, atol=1e-12)


def test_zero_terminal_snr_forgets_x0_in_both_families():
    x0, eps = _pair(8)
    for level in (levels.flow_level(1.0), levels.ddpm_level(0.0)):
        assert level == (0.0, 1.0)
        assert torch.equal(levels.noisy(x0, eps, level), eps)
        assert krnr_coefficients(level, 7) == (0.0, 1.0)


@pytest.mark.parametrize("sigma", (0.02, 0.4, 0.97, 1.0))
def test_flow_velocity_round_trip(sigma):
    x0, eps = _pair(9)
    level = levels.flow_level(sigma)
    x = levels.noisy(x0, eps, level)
    got_x0, got_eps = levels.from_velocity(x, eps - x0, level)
    assert torch.allclose(got_x0, x0, atol=1e-12) and torch.allclose(got_eps, eps, atol=1e-12)


@pytest.mark.parametrize("sigma_from,sigma_to", [(0.9, 0.6), (0.6, 0.0), (0.0, 0.3), (0.3, 1.0), (0.98, 0.97)])
def test_the_move_between_flow_levels_is_the_euler_step(sigma_from, sigma_to):
    """a_to·x̂0 + b_to·ε̂ with (x̂0, ε̂) from a velocity u equals x + (σ_to − σ_from)·u, whatever u is."""
    x, u = _pair(10)
    x0, eps = levels.from_velocity(x, u, levels.flow_level(sigma_from))
    moved = levels.noisy(x0, eps, levels.flow_level(sigma_to))
    assert torch.allclose(moved, x + (sigma_to - sigma_from) * u, atol=1e-12)


@pytest.mark.parametrize("alpha_from,alpha_to", [(0.0, 2.5e-4), (2.5e-4, 0.3), (0.3, 0.9), (0.9, 1.0), (0.5, 0.1)])
def test_ddim_step_is_the_euler_flow_step_after_the_change_of_variables(alpha_from, alpha_to):
    """DDIM (η = 0) on x = a·x0 + b·ε equals Euler on x/(a+b) at σ = b/(a+b), with u = ε̂ − x̂0, for any v."""
    x, v = _pair(11)
    ddim_x = ddim.ddim_move(x, v, alpha_from, alpha_to)
    start, end = levels.ddpm_level(alpha_from), levels.ddpm_level(alpha_to)
    x0, eps = levels.from_v(x, v, start)
    sigma_from, sigma_to = start.b / (start.a + start.b), end.b / (end.a + end.b)
    x_flow = x / (start.a + start.b)
    # the same prediction read as a flow velocity at the flow level x_flow sits at
    assert torch.allclose(levels.noisy(x0, eps, levels.flow_level(sigma_from)), x_flow, atol=1e-12)
    euler = x_flow + (sigma_to - sigma_from) * (eps - x0)
    assert torch.allclose(ddim_x / (end.a + end.b), euler, atol=1e-12)


def test_flow_march_with_a_model_that_knows_x0_inverts_and_samples_exactly():
    """Inversion is the same march backwards: with the true (x0, ε) both directions are exact."""
    x0, eps = _pair(12)
    sigmas = [0.0, 0.2, 0.5, 0.8, 0.95, 1.0]
    up = [levels.flow_level(s) for s in sigmas]

    def knows(x, i, path):
        level = path[i]
        return x0, (x - level.a * x0) / level.b if level.b > 0 else eps

    noise = levels.march(x0, up[1:], lambda x, i: (x0, eps))
    assert torch.allclose(noise, eps, atol=1e-12)
    down = up[::-1]
    seen = []
    back = levels.march(noise, down[1:], lambda x, i: knows(x, i, down), lambda i, x: seen.append(i))
    assert torch.allclose(back, x0, atol=1e-12) and seen == list(range(len(sigmas) - 1))
