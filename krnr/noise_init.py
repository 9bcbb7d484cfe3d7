"""The starting latent of sampling: SLM then K-RNR, in the paper's form or the released code's.

``paper``: one SLM pass, then ε⁽ᵏ⁾ = A_k·x0 + B_k·ε with a real order k.
``reference``: three rounds of (SLM pass, adaptive K-RNR), the adaptive step cancelling to order 2.
"""

from __future__ import annotations

import torch

from ..errors import InverseDVSError
from ..slm.modulate import stochastic_latent_modulation
from .krnr import krnr_closed_form, krnr_reference

MODES = ("paper", "reference")
REFERENCE_ROUNDS = 3


def seeded_generator(seed: int) -> torch.Generator:
    """A CPU generator for ``seed`` (any non-negative int; reduced mod 2⁶³ as torch requires)."""
    return torch.Generator(device="cpu").manual_seed(int(seed) % (2**63))


def posterior_sample(mean: torch.Tensor, std: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """x0 = μ + σ·n, n ~ N(0, I) from ``generator`` (mean, std: [B, C, T, h, w]; returns that shape)."""
    noise = torch.randn(mean.shape, generator=generator, device=generator.device, dtype=torch.float32)
    return mean + std * noise.to(mean.device, mean.dtype)


def initial_latent(x0: torch.Tensor, eps: torch.Tensor, unseen: torch.Tensor, fully_unseen: torch.Tensor,
                   alpha_bar: float, k: int, mode: str, generator: torch.Generator, *,
                   mean: torch.Tensor | None = None, std: torch.Tensor | None = None, slm: bool = True,
                   scope: str = "tensor") -> tuple[torch.Tensor, torch.Tensor]:
    """(filled x0, start latent) for sampling at the timestep with ᾱ = ``alpha_bar``.

    ``x0``, ``eps``: [B, C, T, h, w] clean latent and inverted noise; masks [T, h, w] bool;
    ``mean``/``std``: VAE posterior statistics (``reference`` mode only). ``slm`` False skips the
    modulation in ``paper`` mode (inputs already modulated).
    """
    if mode not in MODES:
        raise InverseDVSError(f"Unknown K-RNR mode {mode!r}; choose one of {', '.join(MODES)}.")
    if k < 0:
        raise InverseDVSError(f"K-RNR order k = {k}; it must be 0 or more.")
    if mode == "paper":
        if slm:
            x0, eps = stochastic_latent_modulation(x0, eps, unseen, fully_unseen, generator, scope)
        return x0, krnr_closed_form(x0, eps, alpha_bar, k)
    if mean is None or std is None:
        raise InverseDVSError(
            "Reference K-RNR needs the VAE posterior mean and std; connect the LATENT from this pack's VAE Encode."
        )
    for _ in range(REFERENCE_ROUNDS):
        x0, eps = stochastic_latent_modulation(x0, eps, unseen, fully_unseen, generator, scope)
        eps = krnr_reference(x0, eps, mean, std, alpha_bar, k)
    return x0, eps
