"""Full-size CogVideoX-5B-I2V parts at random weights, built straight on the GPU, for benchmarks.

The configurations are the released model's (transformer 5.57 B parameters, the real causal 3-D
VAE, T5-XXL's 4.76 B-parameter encoder), so every kernel does the same work as with the real
weights. Nothing is downloaded: modules are constructed under the target device with bf16 as
the default dtype, so parameters are allocated and randomly initialised on the GPU in place
(no host copy, a few seconds for all three).
"""

from __future__ import annotations

import contextlib

import torch

# CogVideoX-5B-I2V transformer (diffusers layout, transformer/config.json of the release).
TRANSFORMER_CONFIG = dict(
    activation_fn="gelu-approximate",
    attention_bias=True,
    attention_head_dim=64,
    dropout=0.0,
    flip_sin_to_cos=True,
    freq_shift=0,
    in_channels=32,  # 16 noisy latent channels + 16 image-condition channels
    max_text_seq_length=226,
    norm_elementwise_affine=True,
    norm_eps=1e-5,
    num_attention_heads=48,
    num_layers=42,
    out_channels=16,
    patch_size=2,
    sample_frames=49,
    sample_height=60,
    sample_width=90,
    spatial_interpolation_scale=1.875,
    temporal_compression_ratio=4,
    temporal_interpolation_scale=1.0,
    text_embed_dim=4096,
    time_embed_dim=512,
    timestep_activation_fn="silu",
    use_learned_positional_embeddings=True,
    use_rotary_positional_embeddings=True,
)

# CogVideoX's causal 3-D VAE (vae/config.json of the release).
VAE_CONFIG = dict(
    act_fn="silu",
    block_out_channels=(128, 256, 256, 512),
    down_block_types=("CogVideoXDownBlock3D",) * 4,
    up_block_types=("CogVideoXUpBlock3D",) * 4,
    force_upcast=True,
    in_channels=3,
    out_channels=3,
    latent_channels=16,
    layers_per_block=3,
    norm_eps=1e-6,
    norm_num_groups=32,
    sample_height=480,
    sample_width=720,
    scaling_factor=0.7,
    temporal_compression_ratio=4,
    use_post_quant_conv=False,
    use_quant_conv=False,
)

# T5 v1.1 XXL encoder (text_encoder/config.json of the release).
T5_CONFIG = dict(
    d_ff=10240,
    d_kv=64,
    d_model=4096,
    dense_act_fn="gelu_new",
    feed_forward_proj="gated-gelu",
    is_gated_act=True,
    layer_norm_epsilon=1e-6,
    num_heads=64,
    num_layers=24,
    relative_attention_max_distance=128,
    relative_attention_num_buckets=32,
    tie_word_embeddings=False,
    vocab_size=32128,
    dropout_rate=0.0,
)

SCHEDULER_CONFIG = dict(
    beta_end=0.012,
    beta_schedule="scaled_linear",
    beta_start=0.00085,
    clip_sample=False,
    num_train_timesteps=1000,
    prediction_type="v_prediction",
    rescale_betas_zero_snr=True,
    set_alpha_to_one=True,
    snr_shift_scale=1.0,
    steps_offset=0,
    timestep_spacing="trailing",
)


@contextlib.contextmanager
def _built_on(device: torch.device, dtype: torch.dtype):
    """Construct modules with parameters allocated and initialised directly on ``device`` in ``dtype``."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device), torch.no_grad():
            yield
    finally:
        torch.set_default_dtype(old)


def build_transformer(device, dtype=torch.bfloat16, height: int = 480, width: int = 720):
    """The 5B I2V transformer at random weights; ``height``/``width`` size its learned position table."""
    from diffusers import CogVideoXTransformer3DModel

    config = dict(TRANSFORMER_CONFIG, sample_height=height // 8, sample_width=width // 8)
    with _built_on(device, dtype):
        model = CogVideoXTransformer3DModel(**config)
    return model.eval().requires_grad_(False)


def build_vae(device, dtype=torch.bfloat16):
    from diffusers import AutoencoderKLCogVideoX

    with _built_on(device, dtype):
        vae = AutoencoderKLCogVideoX(**VAE_CONFIG)
    return vae.eval().requires_grad_(False)


def build_text_encoder(device, dtype=torch.bfloat16):
    from transformers import T5Config, T5EncoderModel

    with _built_on(device, dtype):
        model = T5EncoderModel(T5Config(**T5_CONFIG))
    return model.eval().requires_grad_(False)


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
