"""Model nodes: load CogVideoX-5B-I2V, encode text, VAE encode / decode.

The loaded model travels between nodes as the pack type INVDVS_VIDEO_MODEL. Latents are ComfyUI
LATENT dicts ``{"samples": [1, C, T, h, w], "mean", "std", "image", "model", "weights", "source"}``:
``samples`` is the VAE posterior mean (the mode), ``mean``/``std`` the posterior statistics,
``image`` the image condition [1, C, 1, h, w] (the first frame encoded alone), ``model`` the model
id so a latent of another model is refused, ``weights`` the loaded weights' id and ``source`` a
fingerprint of the encoded video, so noise inverted from another clip or with other weights is
refused (checked in nodes/diffusion.py). ``frame_count`` is how many real frames the latent holds:
VAE Encode Video pads a clip to the VAE's 4k+1 frames by repeating its last frame, and VAE Decode
Video drops the padding again, so any frame count goes through unchanged.
"""

from __future__ import annotations

import os

import torch

from ..errors import InverseDVSError
from . import _host, _validate
from ._choices import Choices

MODEL_TYPE = "INVDVS_VIDEO_MODEL"
VIDEO_KIND = "inversedvs_video"
LORA_KIND = "inversedvs_lora"
DEFAULT_FOLDER = "CogVideoX-5b-I2V"
NO_LORA = "none"
DTYPE_CHOICES = ("bf16", "fp16", "fp32")
POLICY_CHOICES = ("resident", "model_offload", "sequential_offload")
DEFAULT_POLICY = "model_offload"
LOW_VRAM_OPTION = "memory = sequential_offload on Load Video Model"
DEFAULT_SEED = 42
MAX_SEED = 0xFFFFFFFFFFFFFFFF
# How the image condition is made from the first frame. The model was trained on the first frame
# encoded alone (a one-frame video) with a posterior sample; ``clip_first_frame`` takes latent frame 0
# of the whole clip's encoding instead (a different latent: the VAE normalises over time).
IMAGE_CONDITIONS = Choices(("first_frame_sample", "first_frame_mean", "clip_first_frame"))
DEFAULT_IMAGE_CONDITION = IMAGE_CONDITIONS[0]
DEFAULT_NEGATIVE = (
    "cluttered, messy composition, blurry, out of focus, smeared details, black empty regions, dark holes, "
    "missing areas, distorted, warped shapes, low quality, flickering, artifacts"
)

# The model loaded last; loading another one first gives its device memory back.
_CURRENT = {"model": None}


def _folders() -> list[str]:
    return _host.model_dirs(VIDEO_KIND) or [DEFAULT_FOLDER]


def _loras() -> list[str]:
    return [NO_LORA] + _host.model_files(LORA_KIND)


def check_model(model, node: str):
    """The INVDVS_VIDEO_MODEL input, or a clear error when something else is connected."""
    if not hasattr(model, "transformer_session") or not hasattr(model, "model_id"):
        raise InverseDVSError(f"{node}: 'model' must come from Load Video Model (InverseDVS).")
    return model


def check_model_latent(latent, model, node: str, name: str = "latent") -> torch.Tensor:
    """``latent['samples']`` [B, C, T, h, w] made by ``model``'s VAE (channels and model id checked)."""
    samples = _validate.check_latent(latent, node, channels=model.latent_channels, name=name)
    made_by = latent.get("model")
    if made_by is not None and made_by != model.model_id:
        raise InverseDVSError(
            f"{node}: {name} was made by '{made_by}' but the loaded model is '{model.model_id}'. "
            "Encode the video again with this model's VAE Encode."
        )
    return samples


def text_embeds(conditioning, model, node: str, name: str) -> torch.Tensor:
    """Embeddings [1, L, D] from a CONDITIONING ``[[embeds, {...}]]``: one prompt, L and D the model's, finite."""
    try:
        embeds = conditioning[0][0]
    except (TypeError, IndexError, KeyError):
        embeds = None
    if not isinstance(embeds, torch.Tensor) or embeds.ndim != 3:
        raise InverseDVSError(f"{node}: {name} is not a CONDITIONING; connect Encode Text (InverseDVS).")
    if len(conditioning) != 1 or embeds.shape[0] != 1:
        raise InverseDVSError(
            f"{node}: {name} holds {max(len(conditioning), embeds.shape[0])} prompts (combined or batched "
            "conditionings); this model takes one prompt. Connect Encode Text (InverseDVS) directly."
        )
    width, length = model.text_width, model.text_length
    if embeds.shape[-1] != width:
        raise InverseDVSError(
            f"{node}: {name} has embeddings of width {embeds.shape[-1]} but this model reads T5 embeddings of width "
            f"{width}; it comes from another text encoder. Use Encode Text (InverseDVS) with this model."
        )
    if embeds.shape[1] != length:
        raise InverseDVSError(
            f"{node}: {name} has {embeds.shape[1]} tokens but this model reads prompts padded to {length} T5 tokens; "
            "it was encoded elsewhere. Use Encode Text (InverseDVS) with this model for both prompts."
        )
    if not torch.isfinite(embeds).all():
        raise InverseDVSError(
            f"{node}: {name} contains NaN or infinite values; the text encoder is damaged (copy text_encoder/ "
            "again) or the node that made it went wrong."
        )
    return embeds.float()


def video_latent(mean: torch.Tensor, std: torch.Tensor, image: torch.Tensor, model, frame_count: int) -> dict:
    """LATENT dict of an encoded video: samples = posterior mean, plus mean/std, the image condition, the model
    id, the weights' id, the latent's fingerprint (``source``: which video later LATENTs came from) and the
    number of real (not padded) frames."""
    return {"samples": mean, "mean": mean, "std": std, "image": image, "model": model.model_id,
            "weights": model.weights_id, "source": _validate.tensor_fingerprint(mean), "frame_count": int(frame_count)}


def real_frame_count(latent: dict, samples: torch.Tensor, temporal: int, node: str) -> int:
    """Frames the video of ``latent`` had before padding: its ``frame_count``, else all (T−1)·temporal + 1."""
    padded = (samples.shape[2] - 1) * temporal + 1
    count = latent.get("frame_count")
    if isinstance(count, int) and not isinstance(count, bool) and padded - temporal < count <= padded:
        return count
    if count is not None:
        raise InverseDVSError(
            f"{node}: the LATENT's frame_count = {count!r} does not fit its {samples.shape[2]} latent frames ({padded - temporal + 1} "
            f"to {padded} video frames). Connect a LATENT made by VAE Encode Video (InverseDVS) or Sample."
        )
    return padded


def make_image_condition(model, frames: torch.Tensor, mean: torch.Tensor, form: str, seed: int,
                    tiled: bool) -> torch.Tensor:
    """The image condition [1, C, 1, h, w] in one of IMAGE_CONDITIONS (the clip's posterior ``mean`` for the last)."""
    from ..krnr.noise_init import posterior_sample, seeded_generator

    if form == "clip_first_frame":
        return mean[:, :, :1].clone()
    image_mean, image_std = model.encode_image(frames[:1], tiled=tiled)
    if form == "first_frame_mean":
        return image_mean
    return posterior_sample(image_mean, image_std, seeded_generator(seed))


class LoadVideoModel:
    """Load CogVideoX-5B-I2V (diffusers layout) from ComfyUI's models/inversedvs_video folder."""

    DISPLAY_NAME = "Load Video Model (InverseDVS)"
    CATEGORY = "InverseDVS/model"
    FUNCTION = "load"
    RETURN_TYPES = (MODEL_TYPE,)
    RETURN_NAMES = ("model",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model_folder": (_folders(), {"tooltip": "A CogVideoX-5B-I2V folder in diffusers layout (transformer/, vae/, "
                                                         "scheduler/, text_encoder/, tokenizer/) under models/inversedvs_video/."}),
                "dtype": (list(DTYPE_CHOICES), {"default": "bf16",
                                                "tooltip": "Weight precision: bf16 (the model's own), fp16, or fp32 (CPU / debugging)."}),
                "memory": (list(POLICY_CHOICES), {"default": DEFAULT_POLICY,
                                                  "tooltip": "resident: everything on the GPU (fastest, most VRAM). model_offload: each "
                                                             "part comes to the GPU only while it runs. sequential_offload: the "
                                                             "transformer streams block by block (lowest VRAM, slower)."}),
            },
            "optional": {
                "lora": (_loras(), {"default": NO_LORA,
                                    "tooltip": "Optional LoRA (.safetensors, diffusers/peft format) merged into the transformer, "
                                               "e.g. Go-with-the-Flow's I2V5B LoRA the reference uses. Files from models/inversedvs_lora."}),
                "lora_strength": ("FLOAT", {"default": 1.0, "min": -4.0, "max": 4.0, "step": 0.05,
                                            "tooltip": "How much of the LoRA is merged (1.0 = as trained)."}),
                "compile_transformer": ("BOOLEAN", {"default": True,
                                                    "tooltip": "On a CUDA GPU: compile the transformer's repeated block once "
                                                               "(slower first run, faster after). Ignored on CPU."}),
                "keep_text_encoder": ("BOOLEAN", {"default": True,
                                                  "tooltip": "Keep the T5 text encoder in system RAM (about 9.5 GB at bf16, "
                                                             "pinned for fast copies) after the first prompt, so a new prompt "
                                                             "encodes in well under a second. Off: T5 is read from disk for each "
                                                             "Encode Text and its RAM freed after."}),
            },
        }

    def load(self, model_folder, dtype, memory, lora=NO_LORA, lora_strength=1.0, compile_transformer=True,
             keep_text_encoder=True):
        from ..backend.cogvideox import check_model_folder, device_bytes, load_cogvideox

        node = self.DISPLAY_NAME
        folder = check_model_folder(_host.resolve_model_path(VIDEO_KIND, model_folder), model_folder,
                                    _host.model_search_paths(VIDEO_KIND))
        lora_path = None
        if lora and lora != NO_LORA:
            lora_path = _host.resolve_model_path(LORA_KIND, lora)
            if lora_path is None or not os.path.isfile(lora_path):
                raise InverseDVSError(
                    f"{node}: LoRA '{lora}' was not found in {', '.join(_host.model_search_paths(LORA_KIND))}."
                )
            _validate.check_safetensors_file(lora_path, "LoRA", node)
        previous = _CURRENT["model"]
        if previous is not None:
            previous.release()
            previous.release_text_encoder()  # its 9.5 GB of RAM; read again if that model is used again
            _CURRENT["model"] = None
        _host.free_host_memory(device_bytes(folder, memory))  # room from ComfyUI, its other models kept if they fit
        from ..backend.accel import speed_up_transformer

        def speed_up(transformer):  # a no-op without CUDA
            return speed_up_transformer(transformer, compile_blocks=bool(compile_transformer))

        with _validate.out_of_memory_as_error(node, "loading the model", LOW_VRAM_OPTION):
            model = load_cogvideox(folder, dtype=dtype, policy=memory, device=_host.torch_device(),
                                   lora_path=lora_path, lora_strength=float(lora_strength), speed_up=speed_up,
                                   keep_text_encoder=bool(keep_text_encoder))
        _CURRENT["model"] = model
        return (model,)


class EncodeText:
    """Prompt and negative prompt → CONDITIONING with the model folder's T5 (loaded on first use)."""

    DISPLAY_NAME = "Encode Text (InverseDVS)"
    CATEGORY = "InverseDVS/model"
    FUNCTION = "encode"
    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL_TYPE, {"tooltip": "The loaded video model; its T5 encoder is used."}),
                "prompt": ("STRING", {"multiline": True, "default": "",
                                      "tooltip": "What the video shows, in plain words (guides the newly revealed regions)."}),
                "negative_prompt": ("STRING", {"multiline": True, "default": DEFAULT_NEGATIVE,
                                               "tooltip": "What to steer away from; the default describes clutter, blur and "
                                                          "black unseen regions, like the reference."}),
            }
        }

    def encode(self, model, prompt, negative_prompt):
        node = self.DISPLAY_NAME
        check_model(model, node)
        with _validate.out_of_memory_as_error(node, "encoding the prompt", LOW_VRAM_OPTION):
            embeds = model.encode_text([prompt, negative_prompt, ""])
        model.remember_empty_text_embeds(embeds[2:3])  # K-RNR Invert's empty prompt: no second T5 load
        meta = {"inversedvs_model": model.model_id}
        return ([[embeds[0:1], dict(meta)]], [[embeds[1:2], dict(meta)]])


class VAEEncode:
    """Frames → LATENT with the model's VAE, keeping the posterior mean and std."""

    DISPLAY_NAME = "VAE Encode Video (InverseDVS)"
    CATEGORY = "InverseDVS/model"
    FUNCTION = "encode"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL_TYPE, {"tooltip": "The loaded video model; its VAE is used."}),
                "images": ("IMAGE", {"tooltip": "Video frames [F, H, W, 3], any number F (padded to the VAE's 4k+1 by "
                                                "repeating the last frame; VAE Decode Video drops the padding), H and W "
                                                "multiples of 16 (720x480 for CogVideoX-5B-I2V) — usually the warped video."}),
                "tiled": ("BOOLEAN", {"default": False,
                                      "tooltip": "Encode in overlapping tiles: less VRAM, slightly slower."}),
            },
            "optional": {
                "image_condition": (IMAGE_CONDITIONS, {
                    "default": DEFAULT_IMAGE_CONDITION,
                    "tooltip": "How the first frame conditions the model. first_frame_sample (default): the first "
                               "frame encoded alone, a seeded sample of its VAE posterior — as the model was trained "
                               "and as diffusers' image-to-video pipeline does. first_frame_mean: the same, its "
                               "posterior mean. clip_first_frame: latent frame 0 of the whole video's encoding "
                               "(0.3 dB better on seen pixels with the pack's small model, docs/fidelity.md)."}),
                "seed": ("INT", {"default": DEFAULT_SEED, "min": 0, "max": MAX_SEED,
                                 "tooltip": "Seed of the image condition's posterior sample (first_frame_sample)."}),
            },
        }

    def encode(self, model, images, tiled, image_condition=DEFAULT_IMAGE_CONDITION, seed=DEFAULT_SEED):
        node = self.DISPLAY_NAME
        check_model(model, node)
        images = _validate.check_image(images, "images", node)
        frames, height, width = images.shape[:3]
        _validate.check_multiple_of_16(height, width, node)
        model.check_latent_size(height // model.spatial_compression, width // model.spatial_compression, node)
        low_vram = "tiled = true on this node or " + LOW_VRAM_OPTION
        if image_condition not in IMAGE_CONDITIONS:
            raise InverseDVSError(f"{node}: image_condition must be one of {', '.join(IMAGE_CONDITIONS)}.")
        from ..krnr.windows import pad_frames, padded_count

        padded = pad_frames(images.float(), padded_count(frames, model.temporal_compression))
        with _validate.out_of_memory_as_error(node, "encoding the video", low_vram):
            mean, std = model.encode_video(padded, tiled=bool(tiled))
            image = make_image_condition(model, padded, mean, image_condition, seed, bool(tiled))
        return (video_latent(mean, std, image, model, frames),)


class VAEDecode:
    """LATENT → frames with the model's VAE."""

    DISPLAY_NAME = "VAE Decode Video (InverseDVS)"
    CATEGORY = "InverseDVS/model"
    FUNCTION = "decode"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "model": (MODEL_TYPE, {"tooltip": "The loaded video model; its VAE is used."}),
                "latent": ("LATENT", {"tooltip": "A video latent of this model (from Sample or VAE Encode); the frames "
                                                 "VAE Encode Video padded are dropped, so you get the clip's own count."}),
                "tiled": ("BOOLEAN", {"default": False,
                                      "tooltip": "Decode in overlapping tiles: much less VRAM at 720x480, slightly slower."}),
            }
        }

    def decode(self, model, latent, tiled):
        node = self.DISPLAY_NAME
        check_model(model, node)
        samples = check_model_latent(latent, model, node)
        low_vram = "tiled = true on this node or " + LOW_VRAM_OPTION
        frames = real_frame_count(latent, samples, model.temporal_compression, node)
        with _validate.out_of_memory_as_error(node, "decoding the video", low_vram):
            images = model.decode(samples.float(), tiled=bool(tiled))
        return (images[:frames],)


NODES = (LoadVideoModel, EncodeText, VAEEncode, VAEDecode)
