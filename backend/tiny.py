"""Tiny random-weight instances of the real CogVideoX-5B-I2V classes, saved in the real diffusers layout.

Same classes, same folder layout and the real scheduler config as the published model; only the
widths and depths are small, so the whole pipeline runs on a CPU in seconds. The weights are
random: the output is noise-like, which is what tests and the no-weights demo need.
"""

from __future__ import annotations

import json
import os

import torch

from ..krnr.schedule import COGVIDEOX_5B_I2V_SCHEDULER

TINY_LATENT_CHANNELS = 4
TINY_TEXT_DIM = 32
TINY_TEXT_LENGTH = 16
TINY_SEED = 0
# Sample size (latent cells) recorded in the tiny transformer's config; the tiny model uses no
# learned positional embedding, so it runs at any size that is a multiple of 16 pixels.
TINY_SAMPLE_HW = (8, 12)
TINY_WORDS = (
    "a the of and in on with camera video scene view person dog cat beach room street tree sky water light "
    "moving walking running sitting standing left right up down orbit close far bright dark blur clutter "
    "black region empty noise sharp clean detailed"
).split()
TINY_CHARACTERS = "\u2581abcdefghijklmnopqrstuvwxyz0123456789"
# Token count of the tiny tokenizer: 3 specials, the words, the single characters.
TINY_VOCAB_SIZE = 3 + len(TINY_WORDS) + len(TINY_CHARACTERS)
# model_index.json of a CogVideoX image-to-video folder: which class reads each part.
MODEL_INDEX = {
    "_class_name": "CogVideoXImageToVideoPipeline",
    "scheduler": ["diffusers", "CogVideoXDDIMScheduler"],
    "text_encoder": ["transformers", "T5EncoderModel"],
    "tokenizer": ["transformers", "T5Tokenizer"],
    "transformer": ["diffusers", "CogVideoXTransformer3DModel"],
    "vae": ["diffusers", "AutoencoderKLCogVideoX"],
}


def tiny_transformer_config() -> dict:
    """CogVideoXTransformer3DModel settings: 2 layers, 2 heads of 16 (rotary needs head dim divisible by 16)."""
    return dict(
        num_attention_heads=2, attention_head_dim=16, in_channels=2 * TINY_LATENT_CHANNELS,
        out_channels=TINY_LATENT_CHANNELS, flip_sin_to_cos=True, freq_shift=0, time_embed_dim=32,
        text_embed_dim=TINY_TEXT_DIM, num_layers=2, dropout=0.0, attention_bias=True,
        sample_width=TINY_SAMPLE_HW[1], sample_height=TINY_SAMPLE_HW[0], sample_frames=9, patch_size=2,
        temporal_compression_ratio=4, max_text_seq_length=TINY_TEXT_LENGTH, activation_fn="gelu-approximate",
        timestep_activation_fn="silu", norm_elementwise_affine=True, norm_eps=1e-5,
        spatial_interpolation_scale=1.875, temporal_interpolation_scale=1.0,
        use_rotary_positional_embeddings=True, use_learned_positional_embeddings=False,
    )


def tiny_vae_config() -> dict:
    """AutoencoderKLCogVideoX with four small blocks: keeps the real 8× spatial and 4× temporal compression.

    The sample size is the real one (480×720), so tiling starts at the same frame sizes as the real VAE.
    """
    return dict(
        in_channels=3, out_channels=3,
        down_block_types=("CogVideoXDownBlock3D",) * 4, up_block_types=("CogVideoXUpBlock3D",) * 4,
        block_out_channels=(8, 8, 16, 16), latent_channels=TINY_LATENT_CHANNELS, layers_per_block=1,
        act_fn="silu", norm_eps=1e-6, norm_num_groups=4, temporal_compression_ratio=4,
        sample_height=480, sample_width=720, scaling_factor=0.7,
        use_quant_conv=False, use_post_quant_conv=False,
    )


def tiny_text_encoder_config():
    """A two-layer T5 encoder of width 32."""
    from transformers import T5Config

    return T5Config(vocab_size=TINY_VOCAB_SIZE, d_model=TINY_TEXT_DIM, d_kv=8, d_ff=64, num_layers=2,
                    num_heads=4, relative_attention_num_buckets=8, dropout_rate=0.0, pad_token_id=0,
                    eos_token_id=1, decoder_start_token_id=0, feed_forward_proj="relu")


def word_tokenizer(words, characters: str, max_length: int):
    """A unigram tokenizer built locally with ``tokenizers`` and wrapped as T5TokenizerFast (pad 0, eos 1, unk 2).

    Pieces are the T5 way: "▁word" for every one of ``words``, plus the single ``characters`` so any
    text encodes.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [("\u2581" + w, -1.0) for w in words]
    pieces += [(c, -5.0) for c in characters]
    core = Tokenizer(models.Unigram(pieces, unk_id=2))
    core.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    core.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    core.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                           extra_ids=0, model_max_length=max_length)


def tiny_tokenizer():
    """The tiny model's tokenizer: the words of TINY_WORDS and single letters and digits."""
    return word_tokenizer(TINY_WORDS, TINY_CHARACTERS, TINY_TEXT_LENGTH)


def save_tiny_video_model(folder: str, seed: int = TINY_SEED) -> str:
    """Write a complete tiny CogVideoX-I2V folder (diffusers layout, safetensors, model_index.json); returns it."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXTransformer3DModel
    from transformers import T5EncoderModel

    torch.manual_seed(seed)
    os.makedirs(folder, exist_ok=True)
    CogVideoXTransformer3DModel(**tiny_transformer_config()).save_pretrained(
        os.path.join(folder, "transformer"), safe_serialization=True)
    AutoencoderKLCogVideoX(**tiny_vae_config()).save_pretrained(os.path.join(folder, "vae"), safe_serialization=True)
    scheduler = {k: v for k, v in COGVIDEOX_5B_I2V_SCHEDULER.items() if not k.startswith("_")}
    CogVideoXDDIMScheduler(**scheduler).save_pretrained(os.path.join(folder, "scheduler"))
    T5EncoderModel(tiny_text_encoder_config()).save_pretrained(os.path.join(folder, "text_encoder"),
                                                               safe_serialization=True)
    tiny_tokenizer().save_pretrained(os.path.join(folder, "tokenizer"))
    with open(os.path.join(folder, "model_index.json"), "w") as f:
        json.dump(MODEL_INDEX, f, indent=2)
    return folder


def cached_tiny_video_model(root: str | None = None) -> str:
    """The tiny model folder under ``root`` (default: the system temp dir), written once and reused.

    Written to a scratch folder and renamed into place, so concurrent callers never see half a folder.
    """
    import shutil
    import tempfile

    root = root or tempfile.gettempdir()
    folder = os.path.join(root, f"inversedvs-tiny-cogvideox-s{TINY_SEED}-v2")
    if os.path.exists(os.path.join(folder, "model_index.json")):
        return folder
    scratch = tempfile.mkdtemp(prefix="inversedvs-tiny-", dir=root)
    save_tiny_video_model(os.path.join(scratch, "model"))
    try:
        os.rename(os.path.join(scratch, "model"), folder)
    except OSError:  # another process won the race; its folder is complete
        pass
    shutil.rmtree(scratch, ignore_errors=True)
    return folder
