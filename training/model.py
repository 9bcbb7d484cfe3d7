"""The small CogVideoX image-to-video model: its component configs, its tokenizer, and the diffusers-layout folder.

Same classes and folder layout as CogVideoX-5B-I2V (AutoencoderKLCogVideoX, CogVideoXTransformer3DModel with
in_channels = 2 × latent, a T5 encoder, CogVideoXDDIMScheduler with 5B-I2V's own config); only the sizes are
small. The T5 encoder is random and frozen (seeded); its tokenizer is built locally with one piece per caption
word (``synthetic.caption_vocabulary``) plus single characters, so any prompt encodes.
"""

from __future__ import annotations

import json
import os

import torch

from inversedvs.backend.tiny import MODEL_INDEX, word_tokenizer
from inversedvs.krnr.schedule import COGVIDEOX_5B_I2V_SCHEDULER
from inversedvs.warp.synthetic import caption_vocabulary

CONFIG_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config.json")
# Shards of the shipped folder stay under this size (files come back from the GPU machine in ≤ 16 MB pieces).
MAX_SHARD = "15MB"
SPATIAL, TEMPORAL = 8, 4
CHARACTERS = "\u2581abcdefghijklmnopqrstuvwxyz0123456789,.-'"


def load_config(path: str = CONFIG_PATH) -> dict:
    with open(path) as f:
        return json.load(f)


def latent_shape(cfg: dict) -> tuple[int, int, int]:
    """(T, h, w) of a training clip's latent."""
    c = cfg["clip"]
    return (c["frames"] - 1) // TEMPORAL + 1, c["height"] // SPATIAL, c["width"] // SPATIAL


def vae_config(cfg: dict, scaling_factor: float = 1.0) -> dict:
    v = cfg["vae"]
    n = len(v["block_out_channels"])
    return dict(in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * n,
                up_block_types=("CogVideoXUpBlock3D",) * n, block_out_channels=tuple(v["block_out_channels"]),
                latent_channels=v["latent_channels"], layers_per_block=v["layers_per_block"], act_fn="silu",
                norm_eps=1e-6, norm_num_groups=v["norm_num_groups"], temporal_compression_ratio=TEMPORAL,
                sample_height=480, sample_width=720, scaling_factor=float(scaling_factor),
                use_quant_conv=False, use_post_quant_conv=False)


def transformer_config(cfg: dict) -> dict:
    t, c = cfg["transformer"], cfg["clip"]
    latent = cfg["vae"]["latent_channels"]
    return dict(num_attention_heads=t["num_attention_heads"], attention_head_dim=t["attention_head_dim"],
                in_channels=2 * latent, out_channels=latent, flip_sin_to_cos=True, freq_shift=0,
                time_embed_dim=t["time_embed_dim"], text_embed_dim=cfg["text"]["d_model"], num_layers=t["num_layers"],
                dropout=0.0, attention_bias=True, sample_width=c["width"] // SPATIAL,
                sample_height=c["height"] // SPATIAL, sample_frames=c["frames"], patch_size=2,
                temporal_compression_ratio=TEMPORAL, max_text_seq_length=cfg["text"]["max_length"],
                activation_fn="gelu-approximate", timestep_activation_fn="silu", norm_elementwise_affine=True,
                norm_eps=1e-5, spatial_interpolation_scale=1.875, temporal_interpolation_scale=1.0,
                use_rotary_positional_embeddings=True, use_learned_positional_embeddings=False)


def text_encoder_config(cfg: dict):
    from transformers import T5Config

    t = cfg["text"]
    return T5Config(vocab_size=3 + len(caption_vocabulary()) + len(CHARACTERS), d_model=t["d_model"], d_kv=t["d_kv"],
                    d_ff=t["d_ff"], num_layers=t["num_layers"], num_heads=t["num_heads"],
                    relative_attention_num_buckets=8, dropout_rate=0.0, pad_token_id=0, eos_token_id=1,
                    decoder_start_token_id=0, feed_forward_proj="relu")


def caption_tokenizer(max_length: int):
    """T5TokenizerFast over a unigram model: "▁word" for each caption word, single characters for anything else
    (pad 0, eos 1, unk 2)."""
    return word_tokenizer(caption_vocabulary(), CHARACTERS, max_length)


def save_text_parts(cfg: dict, folder: str) -> None:
    """Write text_encoder/ (the seeded random T5, fp16) and tokenizer/ into ``folder``."""
    from transformers import T5EncoderModel

    torch.manual_seed(cfg["text"]["seed"])
    encoder = T5EncoderModel(text_encoder_config(cfg)).to(torch.float16)
    encoder.save_pretrained(os.path.join(folder, "text_encoder"), safe_serialization=True)
    caption_tokenizer(cfg["text"]["max_length"]).save_pretrained(os.path.join(folder, "tokenizer"))


def load_text_parts(folder: str, device):
    """(tokenizer, T5 encoder in fp32 on ``device``, frozen) from a folder written by ``save_text_parts``."""
    from transformers import AutoTokenizer, T5EncoderModel

    tok = AutoTokenizer.from_pretrained(os.path.join(folder, "tokenizer"), local_files_only=True)
    enc = T5EncoderModel.from_pretrained(os.path.join(folder, "text_encoder"), torch_dtype=torch.float32,
                                         local_files_only=True).to(device).eval().requires_grad_(False)
    return tok, enc


@torch.no_grad()
def encode_prompts(tokenizer, encoder, prompts: list[str], max_length: int) -> torch.Tensor:
    """Prompts → T5 embeddings [N, L, D] (the way the pack's Encode Text does: padded to L, with eos)."""
    device = next(encoder.parameters()).device
    ids = tokenizer(prompts, padding="max_length", max_length=max_length, truncation=True, add_special_tokens=True,
                    return_tensors="pt").input_ids
    return encoder(ids.to(device))[0].float()


def save_model_folder(cfg: dict, folder: str, vae_state: dict, transformer_state: dict, scaling_factor: float,
                      text_folder: str) -> str:
    """Assemble the diffusers-layout folder (fp16 safetensors, shards ≤ MAX_SHARD) from trained weights."""
    import shutil

    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXTransformer3DModel

    os.makedirs(folder, exist_ok=True)
    vae = AutoencoderKLCogVideoX(**vae_config(cfg, scaling_factor))
    vae.load_state_dict(vae_state)
    vae.to(torch.float16).save_pretrained(os.path.join(folder, "vae"), safe_serialization=True, max_shard_size=MAX_SHARD)
    transformer = CogVideoXTransformer3DModel(**transformer_config(cfg))
    transformer.load_state_dict(transformer_state)
    transformer.to(torch.float16).save_pretrained(os.path.join(folder, "transformer"), safe_serialization=True,
                                                  max_shard_size=MAX_SHARD)
    scheduler = {k: v for k, v in COGVIDEOX_5B_I2V_SCHEDULER.items() if not k.startswith("_")}
    CogVideoXDDIMScheduler(**scheduler).save_pretrained(os.path.join(folder, "scheduler"))
    for part in ("text_encoder", "tokenizer"):
        shutil.copytree(os.path.join(text_folder, part), os.path.join(folder, part), dirs_exist_ok=True)
    with open(os.path.join(folder, "model_index.json"), "w") as f:
        json.dump(MODEL_INDEX, f, indent=2)
    return folder
