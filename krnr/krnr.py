"""K-order Recursive Noise Representation (K-RNR), for any noise level x = a·x0 + b·ε.

At the sampling start level (a, b) — DDPM (√ᾱ_t, √(1−ᾱ_t)) or flow (1−σ, σ) — the recursion
ε⁽⁰⁾ = ε_inv, ε⁽ᵏ⁾ = a·x0 + b·ε⁽ᵏ⁻¹⁾ has the closed form ε⁽ᵏ⁾ = A_k·x0 + B_k·ε⁽⁰⁾ with
A_k = a·(1−bᵏ)/(1−b) = a·Σ_{i<k} bⁱ and B_k = bᵏ; for flow A_k = 1−σᵏ, B_k = σᵏ.
A level given as a bare float is ᾱ of a DDPM schedule.

``reference`` mode reproduces the released code: order k is re-normalised with the VAE posterior
mean μ and std σ to the statistics of order 2, which cancels to order 2 for any k; it runs after
each of three SLM passes.
"""

from __future__ import annotations

import torch

from .levels import Level, as_level, noisy

# Order the released code normalises every order to.
REFERENCE_TARGET_ORDER = 2
# Guard the released code adds to the divisor of its normalisation.
REFERENCE_NORM_EPS = 1e-9


def krnr_coefficients(level: Level | float, k: int) -> tuple[float, float]:
    """(A_k, B_k) for order k ≥ 0: A_k = a·Σ_{i<k} bⁱ, B_k = bᵏ (floats, A_k ≥ 0, 0 ≤ B_k ≤ 1).

    At b = 1 (ᾱ = 0 or σ = 1, zero-terminal SNR) nothing of x0 survives: (0, 1).
    """
    a, b = as_level(level)
    if b == 1.0:
        return 0.0, 1.0
    return a * (1.0 - b**k) / (1.0 - b), b**k


def krnr_closed_form(x0: torch.Tensor, eps: torch.Tensor, level: Level | float, k: int) -> torch.Tensor:
    """ε⁽ᵏ⁾ = A_k·x0 + B_k·ε (x0, eps: same shape, e.g. [B, C, T, h, w]; returns that shape)."""
    coef_x0, coef_eps = krnr_coefficients(level, k)
    return coef_x0 * x0 + coef_eps * eps


def krnr_recursive(x0: torch.Tensor, eps: torch.Tensor, level: Level | float, k: int) -> torch.Tensor:
    """ε⁽ᵏ⁾ by putting x0 and the previous order at the level k times, ε ← a·x0 + b·ε (shapes as above)."""
    level = as_level(level)
    for _ in range(k):
        eps = noisy(x0, eps, level)
    return eps


def krnr_reference(x0: torch.Tensor, eps: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                   level: Level | float, k: int) -> torch.Tensor:
    """The released code's adaptive K-RNR: order k re-normalised to order 2's statistics.

    y = A_k·x0 + B_k·ε; current mean m_k = A_k·μ + B_k·ε, std s_k = A_k·σ; target m_2, s_2 likewise;
    out = (y − m_k)/(s_k + 1e-9)·s_2 + m_2, which equals order 2 up to the 1e-9 guard.
    ``mean``/``std``: VAE posterior statistics, scaled like x0 (broadcastable to x0's shape).
    """
    coef_x0, coef_eps = krnr_coefficients(level, k)
    tgt_x0, tgt_eps = krnr_coefficients(level, REFERENCE_TARGET_ORDER)
    y = coef_x0 * x0 + coef_eps * eps
    current_mean = coef_x0 * mean + coef_eps * eps
    current_std = coef_x0 * std
    target_mean = tgt_x0 * mean + tgt_eps * eps
    target_std = tgt_x0 * std
    return (y - current_mean) / (current_std + REFERENCE_NORM_EPS) * target_std + target_mean
