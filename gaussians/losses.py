"""The photometric loss of a rendered image against its target: (1 - λ)·L1 + λ·(1 - SSIM).

SSIM is Wang et al.'s, with an 11-tap Gaussian window of σ = 1.5 over each channel, C1 = 0.01², C2 = 0.03² for
images in [0, 1], averaged over the positions where the window fits (what scikit-image's
``structural_similarity(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1)`` reports).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_SIGMA = 1.5
SSIM_WINDOW = 11
SSIM_C1 = 0.01 ** 2
SSIM_C2 = 0.03 ** 2
SSIM_WEIGHT = 0.2  # λ, as 3D Gaussian splatting weighs it


def gaussian_window(size: int, sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """A normalised 1-D Gaussian window [size] centred on its middle tap."""
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2.0
    w = torch.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM [B] of images a, b [B, H, W, K] in [0, 1] (H, W ≥ 11; 1 = identical)."""
    B, H, W, K = a.shape
    w = gaussian_window(SSIM_WINDOW, SSIM_SIGMA, a.dtype, a.device)
    kernel = (w[:, None] * w[None, :]).expand(K, 1, SSIM_WINDOW, SSIM_WINDOW)
    x, y = a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2)
    blur = lambda t: F.conv2d(t, kernel, groups=K)  # noqa: E731 - 'valid': only where the window fits
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    s = ((2 * mx * my + SSIM_C1) * (2 * cxy + SSIM_C2)) / ((mx ** 2 + my ** 2 + SSIM_C1) * (vx + vy + SSIM_C2))
    return s.mean(dim=(1, 2, 3))


def photometric_loss(render: torch.Tensor, target: torch.Tensor, ssim_weight: float = SSIM_WEIGHT) -> torch.Tensor:
    """Per-image loss [B] of renders against targets [B, H, W, K] in [0, 1]."""
    l1 = (render - target).abs().mean(dim=(1, 2, 3))
    return (1 - ssim_weight) * l1 + ssim_weight * (1 - ssim(render, target))


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB [B] of images [B, H, W, K] in [0, 1]."""
    mse = ((a - b) ** 2).mean(dim=(1, 2, 3)).clamp_min(1e-12)
    return -10.0 * torch.log10(mse)
