"""What the diffusion nodes need from a video model, whatever library implements it.

Latents are ``[B, C, T, h, w]`` float32, scaled by the VAE's scaling factor; images are ComfyUI
IMAGE batches ``[F, H, W, 3]`` in 0..1; text embeddings ``[B, L, D]``.
"""

from __future__ import annotations

from typing import Protocol

import torch

from ..krnr.schedule import NoiseSchedule


class VideoModel(Protocol):
    """An image-to-video latent diffusion model (v-prediction)."""

    model_id: str  # e.g. "cogvideox-5b-i2v"; LATENTs carry it so latents of another model are refused
    latent_channels: int
    spatial_compression: int  # 8: H = 8·h
    temporal_compression: int  # 4: F = 4·(T−1) + 1
    schedule: NoiseSchedule
    device: torch.device

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """Prompts → embeddings [len(prompts), L, D] (the text encoder is loaded for this and released after)."""

    def encode_video(self, frames: torch.Tensor, tiled: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """IMAGE [F, H, W, 3] 0..1 → posterior (mean, std), each [1, C, T, h, w], scaled."""

    def decode(self, latents: torch.Tensor, tiled: bool = False) -> torch.Tensor:
        """Latents [B, C, T, h, w] (scaled) → IMAGE [B·F, H, W, 3] in 0..1 on the CPU."""

    def transformer_session(self):
        """Context manager: the denoiser ready on the device; yields ``predict_v``."""

    def check_latent_size(self, height: int, width: int, node: str) -> None:
        """Refuse a latent grid the denoiser cannot run at (InverseDVSError naming the size to use)."""

    def release(self) -> None:
        """Give the device memory back (weights stay in host memory)."""
