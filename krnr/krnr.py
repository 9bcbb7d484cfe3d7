"""K-order Recursive Noise Representation (K-RNR).

With a = √ᾱ_t and b = √(1−ᾱ_t) at the sampling start timestep t, the recursion
ε⁽⁰⁾ = ε_inv, ε⁽ᵏ⁾ = a·x0 + b·ε⁽ᵏ⁻¹⁾ has the closed form
ε⁽ᵏ⁾ = A_k·x0 + B_k·ε⁽⁰⁾ with A_k = a·(1−bᵏ)/(1−b) = a·Σ_{i<k} bⁱ and B_k = bᵏ.

``reference`` mode reproduces the released code: order k is re-normalised with the VAE posterior
mean μ and std σ to the statistics of order 2, which cancels to order 2 for any k; it runs after
each of three SLM passes.
"""

from __future__ import annotations

import torch

# Order the released code normalises every order to.
REFERENCE_TARGET_ORDER = 2
# Guard the released code adds to the divisor of its normalisation.
REFERENCE_NORM_EPS = 1e-9


def krnr_coefficients(alpha_bar: float, k: int) -> tuple[float, float]:
    """(A_k, B_k) for order k ≥ 0: A_k = a·Σ_{i<k} bⁱ, B_k = bᵏ, a = √ᾱ, b = √(1−ᾱ) (floats, A_k ≥ 0, 0 ≤ B_k ≤ 1)."""
    a, b = alpha_bar**0.5, (1.0 - alpha_bar) ** 0.5
    if b == 1.0:  # ᾱ = 0: nothing of x0 survives at this timestep
        return 0.0, 1.0
    return a * (1.0 - b**k) / (1.0 - b), b**k


def krnr_closed_form(x0: torch.Tensor, eps: torch.Tensor, alpha_bar: float, k: int) -> torch.Tensor:
    """ε⁽ᵏ⁾ = A_k·x0 + B_k·ε (x0, eps: same shape, e.g. [B, C, T, h, w]; returns that shape)."""
    coef_x0, coef_eps = krnr_coefficients(alpha_bar, k)
    return coef_x0 * x0 + coef_eps * eps


def krnr_recursive(x0: torch.Tensor, eps: torch.Tensor, alpha_bar: float, k: int) -> torch.Tensor:
    """ε⁽ᵏ⁾ by applying ε ← √ᾱ·x0 + √(1−ᾱ)·ε k times (same shapes as ``krnr_closed_form``)."""
    a, b = alpha_bar**0.5, (1.0 - alpha_bar) ** 0.5
    for _ in range(k):
        eps = a * x0 + b * eps
    return eps


def krnr_reference(x0: torch.Tensor, eps: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                   alpha_bar: float, k: int) -> torch.Tensor:
    """The released code's adaptive K-RNR: order k re-normalised to order 2's statistics.

    y = A_k·x0 + B_k·ε; current mean m_k = A_k·μ + B_k·ε, std s_k = A_k·σ; target m_2, s_2 likewise;
    out = (y − m_k)/(s_k + 1e-9)·s_2 + m_2, which equals order 2 up to the 1e-9 guard.
    ``mean``/``std``: VAE posterior statistics, scaled like x0 (broadcastable to x0's shape).
    """
    coef_x0, coef_eps = krnr_coefficients(alpha_bar, k)
    tgt_x0, tgt_eps = krnr_coefficients(alpha_bar, REFERENCE_TARGET_ORDER)
    y = coef_x0 * x0 + coef_eps * eps
    current_mean = coef_x0 * mean + coef_eps * eps
    current_std = coef_x0 * std
    target_mean = tgt_x0 * mean + tgt_eps * eps
    target_std = tgt_x0 * std
    return (y - current_mean) / (current_std + REFERENCE_NORM_EPS) * target_std + target_mean
