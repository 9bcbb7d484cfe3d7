"""The pack's Sample against diffusers' own CogVideoXImageToVideoPipeline, on the tiny model.

Set up as plain image-to-video sampling — k = 0 (the start latent is the given noise), no hole,
guidance = preservation (uniform classifier-free guidance), no dynamic guidance, strength 1.0 —
the pack's nodes and the library every CogVideoX user trusts must produce the same latent. That
pins the image condition (the first frame encoded alone, a seeded posterior sample), the rotary
tables, the timestep grid, the DDIM step, the text encoding and the guidance.
"""

import pytest
import torch

from inversedvs.nodes.diffusion import Sample
from inversedvs.nodes.model import EncodeText, VAEEncode

from _pipeline import comfy_folders, load_tiny_model, scratch_root

FRAMES, HEIGHT, WIDTH = 9, 64, 96
STEPS = 6
GUIDANCE = 6.0
SEED = 7
PROMPT, NEGATIVE = "a dog walking on the beach", "blur"
# Relative L2 difference allowed between the two latents (fp32 on the CPU; measured ~1e-7).
ORACLE_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def setup():
    with comfy_folders(scratch_root()):
        model = load_tiny_model()
    gen = torch.Generator().manual_seed(1)
    frames = torch.rand(FRAMES, HEIGHT, WIDTH, 3, generator=gen)
    noise = torch.randn(1, model.latent_channels, (FRAMES - 1) // 4 + 1, HEIGHT // 8, WIDTH // 8, generator=gen)
    return model, frames, noise


@pytest.fixture(scope="module")
def pipe(setup):
    """diffusers' pipeline read by diffusers from the same folder (its own modules, not the pack's)."""
    import os

    from diffusers import CogVideoXImageToVideoPipeline
    from transformers import AutoTokenizer

    folder = setup[0].folder
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(folder, "tokenizer"), local_files_only=True)
    return CogVideoXImageToVideoPipeline.from_pretrained(folder, tokenizer=tokenizer, torch_dtype=torch.float32,
                                                         local_files_only=True)


def _relative(a, b):
    return float((a - b).norm() / b.norm())


def _pack_sample(model, frames, noise, image_condition, seed=SEED):
    latent = VAEEncode().encode(model, frames, False, image_condition, seed)[0]
    positive, negative = EncodeText().encode(model, PROMPT, NEGATIVE)
    mask = torch.zeros(FRAMES, HEIGHT, WIDTH)  # nothing unseen: plain image-to-video
    given = {"samples": noise.clone(), "model": model.model_id}
    result = Sample().sample(model, positive, negative, latent, given, mask, STEPS, 1.0, 0, "paper",
                             GUIDANCE, GUIDANCE, False, 42)[0]
    return result["samples"]


def _diffusers_sample(pipe, frames, noise, seed=SEED):
    out = pipe(image=frames[:1].permute(0, 3, 1, 2), prompt=PROMPT, negative_prompt=NEGATIVE, height=HEIGHT,
               width=WIDTH, num_frames=FRAMES, num_inference_steps=STEPS, guidance_scale=GUIDANCE,
               use_dynamic_cfg=False, generator=torch.Generator().manual_seed(seed),
               latents=noise.transpose(1, 2).clone(), output_type="latent",
               max_sequence_length=pipe.transformer.config.max_text_seq_length)
    return out.frames.transpose(1, 2)  # [B, T, C, h, w] → [B, C, T, h, w]


def test_plain_image_to_video_equals_diffusers_pipeline(setup, pipe):
    model, frames, noise = setup
    ours = _pack_sample(model, frames, noise, "first_frame_sample")
    theirs = _diffusers_sample(pipe, frames, noise)
    error = _relative(ours, theirs)
    print(f"\npack Sample vs CogVideoXImageToVideoPipeline: relative L2 {error:.2e}")
    assert error <= ORACLE_TOLERANCE


def test_the_image_condition_decides_the_agreement(setup, pipe):
    """Another seed or the whole clip's first latent frame move the result well away from the pipeline's."""
    model, frames, noise = setup
    theirs = _diffusers_sample(pipe, frames, noise)
    other_seed = _relative(_pack_sample(model, frames, noise, "first_frame_sample", seed=SEED + 1), theirs)
    clip_frame = _relative(_pack_sample(model, frames, noise, "clip_first_frame"), theirs)
    print(f"\nrelative L2 to the pipeline: other seed {other_seed:.2e}, clip's first latent frame {clip_frame:.2e}")
    assert other_seed > 100 * ORACLE_TOLERANCE
    assert clip_frame > 100 * ORACLE_TOLERANCE


def test_image_condition_is_the_first_frame_encoded_alone(setup):
    model, frames, _ = setup
    latent = VAEEncode().encode(model, frames, False, "first_frame_mean", SEED)[0]
    alone, _ = model.encode_video(frames[:1])
    assert latent["image"].shape == (1, model.latent_channels, 1, HEIGHT // 8, WIDTH // 8)
    assert torch.allclose(latent["image"], alone)
    # the VAE normalises over time: the clip's latent frame 0 is a different latent
    assert _relative(latent["mean"][:, :, :1], alone) > 0.01
