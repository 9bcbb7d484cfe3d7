"""What the diffusion side of the pack needs from a video model, and the two places that provide it.

Both families write a noise level as x = a·x0 + b·ε (``krnr.levels``); a backend only turns its
model's raw prediction into (x̂0, ε̂) at a level and says how its VAE compresses a video.

| need | CogVideoX (``cogvideox.py``, diffusers; ``VideoModel`` below) | ComfyUI-native flow models (``comfy_native.py``, core's MODEL / VAE) |
| --- | --- | --- |
| noise levels | DDPM: (√ᾱ_t, √(1−ᾱ_t)) from ``schedule`` | flow: (1−σ, σ) from the MODEL's ``model_sampling`` (``full_grid``) |
| prediction at a level | ``transformer_session`` → v; ``levels.from_v`` | core's guider → denoised D(x, σ); u = (x − D)/σ; ``levels.from_velocity`` |
| text | ``encode_text`` (T5 in the model folder) | core's CLIP + CLIPTextEncode (outside the pack) |
| image condition | the first frame encoded alone (``encode_image``), zero-padded | core's WanImageToVideo (concat_latent_image, concat_mask); Wan 2.2 TI2V-5B: the clean first latent frame, kept by a noise mask (``first_frame_noise_mask``) |
| encode / decode | ``encode_video`` (posterior mean, std) / ``decode`` | core's VAE Encode / VAE Decode (mean only: no reference K-RNR) |
| compression factors | ``compression()`` (module constants for nodes without a model input) | ``compression(vae)`` from the VAE (Wan 2.1: 4, 8; Wan 2.2: 4, 16) |
| latent size | ``latent_channels``, ``check_latent_size`` | ``latent_channels(model)`` (the MODEL's ``latent_format``) |
| memory estimate, release | ``nodes._validate.denoiser_memory``, ``release`` | core's own: ``prepare_sampling`` estimates and ``load_models_gpu`` loads; core evicts |

Latents are ``[B, C, T, h, w]`` float32 — CogVideoX's scaled by the VAE's scaling factor, native
LATENTs in ComfyUI's latent space with the maths done after the MODEL's ``process_latent_in``;
images are ComfyUI IMAGE batches ``[F, H, W, 3]`` in 0..1; text embeddings ``[B, L, D]``.

``tests/test_backend_interface.py`` holds both to the rows that the method's shared code relies on:
a video of F = temporal·(T−1) + 1 frames of H×W encodes to [1, channels, T, H/spatial, W/spatial] and
the hole mask's latent grid is that grid; every prediction at a level satisfies x = a·x̂0 + b·ε̂; the
grid at strength 1 starts from pure noise (a = 0, b = 1) and ends clean; inversion then sampling with
k = 0 gives the input back.
"""

from __future__ import annotations

from typing import Protocol

import torch

from ..krnr.schedule import NoiseSchedule


class VideoModel(Protocol):
    """An image-to-video latent diffusion model (v-prediction) that the pack loads and runs itself (CogVideoX)."""

    model_id: str  # e.g. "cogvideox-5b-i2v"; LATENTs carry it so latents of another model are refused
    latent_channels: int
    spatial_compression: int  # 8: H = 8·h
    temporal_compression: int  # 4: F = 4·(T−1) + 1
    window_latent_frames: int  # latent frames of one denoiser window (13 for 49 frames); longer clips are windowed
    schedule: NoiseSchedule
    device: torch.device

    def compression(self) -> tuple[int, int]:
        """(temporal, spatial) compression of the VAE."""

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """Prompts → embeddings [len(prompts), L, D] (the text encoder is loaded for this and released after)."""

    def encode_video(self, frames: torch.Tensor, tiled: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """IMAGE [F, H, W, 3] 0..1 → posterior (mean, std), each [1, C, T, h, w], scaled."""

    def decode(self, latents: torch.Tensor, tiled: bool = False) -> torch.Tensor:
        """Latents [B, C, T, h, w] (scaled) → IMAGE [B·F, H, W, 3] in 0..1 on the CPU."""

    def transformer_session(self):
        """Context manager: the denoiser ready on the device; yields ``predict_v``."""

    def denoiser_held(self):
        """Context manager: the denoiser stays on the device across the sessions inside (one clip's windows)."""

    def check_latent_size(self, height: int, width: int, node: str) -> None:
        """Refuse a latent grid the denoiser cannot run at (InverseDVSError naming the size to use)."""

    def release(self) -> None:
        """Give the device memory back (weights stay in host memory)."""
