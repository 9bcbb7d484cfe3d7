"""CogVideoX-5B-I2V through diffusers: load a diffusers-layout folder, encode, decode, predict v.

Folder layout (as published): ``transformer/``, ``vae/``, ``scheduler/``, ``text_encoder/``,
``tokenizer/`` (``model_index.json`` optional). Weights are read from safetensors only.
"""

from __future__ import annotations

import contextlib
import glob
import os

import torch

from ..errors import InverseDVSError
from ..krnr.schedule import NoiseSchedule
from .files import check_weight_folder, read_json, weights_fingerprint
from .lora import merge_lora, read_safetensors
from .offload import POLICIES, Placement, return_pinned_memory

MODEL_ID = "cogvideox-5b-i2v"
# The causal 3-D VAE: a latent frame per 4 frames after the first (F = 4·(T−1) + 1), a cell per 8×8 pixels.
TEMPORAL_COMPRESSION, SPATIAL_COMPRESSION = 4, 8
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
# Offset embedding CogVideoX 1.5 checkpoints expect (none for 5B-I2V 1.0, whose ofs_embed_dim is null).
OFS_VALUE = 2.0
# Where T5 lives between prompts, per the model's memory policy: in host memory, never resident on
# the device (it runs for milliseconds per prompt and would hold 9 GiB there); streamed block by
# block under sequential_offload.
TEXT_POLICY = {"resident": "model_offload", "model_offload": "model_offload",
               "sequential_offload": "sequential_offload"}
# Files each component folder must hold ("*" = any name with that ending).
REQUIRED = {
    "transformer": ("config.json", "*.safetensors"),
    "vae": ("config.json", "*.safetensors"),
    "scheduler": ("scheduler_config.json",),
    "text_encoder": ("config.json", "*.safetensors"),
    "tokenizer": ("tokenizer_config.json",),
}
TOKENIZER_VOCAB = ("spiece.model", "tokenizer.json")
# Parts with a config.json and safetensors weights.
WEIGHT_PARTS = ("transformer", "vae", "text_encoder")


def missing_parts(folder: str) -> list[str]:
    """What a diffusers-layout CogVideoX folder lacks, as relative paths ('transformer/*.safetensors', …)."""
    missing = []
    for part, files in REQUIRED.items():
        for f in files:
            pattern = os.path.join(folder, part, f)
            if not glob.glob(pattern):
                missing.append(f"{part}/{f}")
    if os.path.isdir(os.path.join(folder, "tokenizer")) and not any(
        os.path.exists(os.path.join(folder, "tokenizer", v)) for v in TOKENIZER_VOCAB
    ):
        missing.append("tokenizer/spiece.model (or tokenizer.json)")
    return missing


def check_model_folder(folder: str | None, name: str, searched: list[str]) -> str:
    """``folder`` if it is a complete model folder, else InverseDVSError listing what is missing and where it looked."""
    if folder is None or not os.path.isdir(folder):
        where = "; ".join(searched) or "(no folder registered)"
        raise InverseDVSError(
            f"Video model folder '{name}' was not found. Looked in: {where}. Put CogVideoX-5B-I2V in diffusers "
            "layout (transformer/, vae/, scheduler/, text_encoder/, tokenizer/) into models/inversedvs_video/<name>/."
        )
    missing = missing_parts(folder)
    if missing:
        raise InverseDVSError(
            f"Video model folder '{folder}' is incomplete; missing: {', '.join(missing)}. Copy the whole "
            "CogVideoX-5B-I2V repository (diffusers layout, safetensors weights) into that folder."
        )
    return folder


def resize_crop_region(grid: tuple[int, int], base_width: int, base_height: int):
    """Where a (rows, cols) token grid sits after fitting it, aspect kept, centred, into base_height×base_width.

    Returns ((top, left), (bottom, right)) in base-grid units — the crop CogVideoX's rotary embedding uses.
    """
    rows, cols = grid
    if rows / cols > base_height / base_width:
        fit_h, fit_w = base_height, int(round(base_height / rows * cols))
    else:
        fit_h, fit_w = int(round(base_width / cols * rows)), base_width
    top = int(round((base_height - fit_h) / 2.0))
    left = int(round((base_width - fit_w) / 2.0))
    return (top, left), (top + fit_h, left + fit_w)


def padded_image_condition(image_latent: torch.Tensor, frames: int) -> torch.Tensor:
    """Image condition of CogVideoX I2V: the image latent [B, C, 1, h, w] as latent frame 0, zeros after ([B, C, frames, h, w])."""
    pad = image_latent.new_zeros(image_latent.shape[0], image_latent.shape[1], frames - 1, *image_latent.shape[3:])
    return torch.cat([image_latent, pad], dim=2)


def repair_hint(part: str) -> str:
    """What to do about a damaged file in ``part`` of the folder."""
    return f"Copy {part}/ again from the CogVideoX-5B-I2V repository (diffusers layout, safetensors weights)."


def read_part_config(folder: str, part: str, name: str = "config.json") -> dict:
    """The JSON settings file ``part/name`` of the model folder, checked (``files.read_json``)."""
    return read_json(os.path.join(folder, part, name), f"The {part} settings file", repair_hint(part))


def check_folder_files(folder: str) -> list[str]:
    """Read every settings file and check every weight file's header before anything is loaded.

    A damaged folder (an empty or invalid JSON, a truncated or renamed weight file) is refused at
    load time, naming the file, instead of failing later inside a library (T5 only at Encode Text).
    Returns the transformer's and the VAE's weight files.
    """
    denoiser = []
    for part in WEIGHT_PARTS:
        read_part_config(folder, part)
        paths = check_weight_folder(os.path.join(folder, part), f"The {part} weight file", repair_hint(part))
        if part != "text_encoder":
            denoiser += paths
    read_part_config(folder, "tokenizer", "tokenizer_config.json")
    return denoiser


def device_bytes(folder: str, policy: str) -> int:
    """Device memory the transformer and VAE weights take under ``policy`` (from their files' sizes):
    both for ``resident``, the larger of the two when each comes to the device in turn, the VAE and a
    transformer block or so when blocks stream. What the loader asks ComfyUI to make room for."""
    parts = {part: sum(os.path.getsize(p) for p in glob.glob(os.path.join(folder, part, "*.safetensors")))
             for part in ("transformer", "vae")}
    if policy == "resident":
        return parts["transformer"] + parts["vae"]
    if policy == "model_offload":
        return max(parts.values())
    return parts["vae"]


def check_image_to_video(folder: str) -> None:
    """Refuse a transformer config that is not image-to-video (input channels = 2 × latent channels)."""
    cfg = read_part_config(folder, "transformer")
    try:
        latent, given = int(cfg.get("out_channels", 16)), int(cfg.get("in_channels", 16))
    except (TypeError, ValueError):
        raise InverseDVSError(f"The transformer settings in '{folder}' give non-numeric channel counts. "
                              + repair_hint("transformer")) from None
    if given != 2 * latent:
        raise InverseDVSError(
            f"The transformer in '{folder}' takes {given} input channels; an image-to-video CogVideoX needs twice its "
            f"{latent} latent channels. This looks like the text-to-video model: use the CogVideoX-5B-I2V folder."
        )


@contextlib.contextmanager
def loading_part(folder: str, part: str):
    """Turn a library's failure while reading ``part/`` of the folder into an error naming the part."""
    try:
        yield
    except InverseDVSError:
        raise
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, AttributeError) as err:
        first = (str(err).splitlines() or [err.__class__.__name__])[0][:300]
        raise InverseDVSError(
            f"Could not load {part}/ of '{folder}': {first}. The files are damaged or belong to another model. "
            + repair_hint(part)
        ) from None


def _load_part(cls, folder: str, part: str, load: dict):
    """``cls.from_pretrained(folder/part)``, its failures turned into an error naming the part."""
    with loading_part(folder, part):
        return cls.from_pretrained(folder, subfolder=part, **load)


class CogVideoXModel:
    """A loaded CogVideoX-5B-I2V (transformer + VAE resident per the memory policy; T5 loaded per use)."""

    model_id = MODEL_ID
    spatial_compression = SPATIAL_COMPRESSION
    temporal_compression = TEMPORAL_COMPRESSION

    def __init__(self, folder: str, dtype: str = "bf16", policy: str = "model_offload",
                 device: torch.device | None = None, lora_path: str | None = None, lora_strength: float = 1.0,
                 speed_up=None, keep_text_encoder: bool = True):
        from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel

        if dtype not in DTYPES:
            raise InverseDVSError(f"Unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}.")
        if policy not in POLICIES:
            raise InverseDVSError(f"Unknown memory policy {policy!r}; choose one of {', '.join(POLICIES)}.")
        self.folder = folder
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.dtype = DTYPES[dtype]
        if self.device.type == "cpu" and self.dtype == torch.float16:
            self.dtype = torch.float32  # half precision matmuls are not available on every CPU
        self.policy = policy
        weight_files = check_folder_files(folder)
        with loading_part(folder, "scheduler"):
            self.schedule = NoiseSchedule(read_part_config(folder, "scheduler", "scheduler_config.json"))
        check_image_to_video(folder)
        load = dict(torch_dtype=self.dtype, use_safetensors=True, local_files_only=True)
        self.transformer = _load_part(CogVideoXTransformer3DModel, folder, "transformer", load).eval()
        self.vae = _load_part(AutoencoderKLCogVideoX, folder, "vae", load).eval()
        self.transformer.requires_grad_(False)
        self.vae.requires_grad_(False)
        # which weights made a latent or a noise: LATENTs carry it, so noise of other weights is refused
        self.weights_id = weights_fingerprint(weight_files + ([lora_path] if lora_path else []),
                                              float(lora_strength) if lora_path else None)
        self.lora_layers = 0
        if lora_path:
            state = read_safetensors(lora_path, "LoRA")
            self.lora_layers = merge_lora(self.transformer, state, lora_strength, "CogVideoX-5B-I2V's transformer")
        if speed_up is not None:
            self.transformer = speed_up(self.transformer)
        cfg = self.transformer.config
        self.latent_channels = int(cfg.out_channels)
        self.scaling_factor = float(self.vae.config.scaling_factor)
        # CogVideoX 1.5 was trained with image latents divided by the factor instead of multiplied
        self.image_scaling_factor = (1.0 / self.scaling_factor if getattr(self.vae.config, "invert_scale_latents", False)
                                     else self.scaling_factor)
        self.text_width = int(cfg.text_embed_dim)
        self.text_length = int(cfg.max_text_seq_length)  # prompts are padded to this many T5 tokens
        # Learned positional embeddings (CogVideoX-5B-I2V) exist only for the training size (latent h, w).
        self.fixed_latent_size = ((int(cfg.sample_height), int(cfg.sample_width))
                                  if getattr(cfg, "use_learned_positional_embeddings", False) else None)
        # Latent frames of one denoiser window: the clip length the transformer was trained on (49 frames
        # = 13 for 5B-I2V); longer clips are sampled in overlapping windows of this many (krnr.windows).
        self.window_latent_frames = (int(cfg.sample_frames) - 1) // self.temporal_compression + 1
        self._empty_embeds = None
        self.placement = Placement(policy, self.device)
        self.placement.register("transformer", self.transformer)
        self.placement.register("vae", self.vae)
        # T5 is loaded on the first prompt; kept, it waits in (pinned) host memory for the next one
        self.keep_text_encoder = bool(keep_text_encoder)
        self._text_placement = Placement(TEXT_POLICY[policy], self.device)
        self._tokenizer = None

    # -------------------------------------------------------------------------------- text
    def _load_text_encoder(self) -> None:
        """Read the tokenizer and T5 from the folder and give T5 to the text placement."""
        from transformers import AutoTokenizer, T5EncoderModel

        with loading_part(self.folder, "tokenizer"):
            self._tokenizer = AutoTokenizer.from_pretrained(os.path.join(self.folder, "tokenizer"),
                                                            local_files_only=True)
        with loading_part(self.folder, "text_encoder"):
            encoder = T5EncoderModel.from_pretrained(
                os.path.join(self.folder, "text_encoder"), torch_dtype=self.dtype, use_safetensors=True,
                local_files_only=True,
            ).eval().requires_grad_(False)
        self._text_placement.register("text_encoder", encoder, reused=self.keep_text_encoder)

    def release_text_encoder(self) -> None:
        """Forget T5 (its host memory is given back); the next prompt loads it again."""
        if "text_encoder" in self._text_placement:
            self._text_placement.release_all()
            self._text_placement.unregister("text_encoder")  # the last reference to T5
            return_pinned_memory()
        self._tokenizer = None

    def encode_text(self, prompts: list[str]) -> torch.Tensor:
        """Prompts → T5 embeddings [len(prompts), L, D] float32 on the CPU.

        T5 comes to the device for this call only. With ``keep_text_encoder`` it stays loaded in
        host memory afterwards (packed and pinned, so the next call copies it in one go);
        otherwise it is read from the folder for each call and released after.
        """
        if "text_encoder" not in self._text_placement:
            self._load_text_encoder()
        ids = self._tokenizer(prompts, padding="max_length", max_length=self.text_length, truncation=True,
                              add_special_tokens=True, return_tensors="pt").input_ids
        try:
            with torch.no_grad(), self._text_placement.use("text_encoder") as enc:
                embeds = enc(ids.to(self.device))[0].float().cpu()
        finally:
            if not self.keep_text_encoder:
                self.release_text_encoder()
        return embeds

    def empty_text_embeds(self) -> torch.Tensor:
        """Embedding [1, L, D] of the empty prompt (computed once per loaded model)."""
        if self._empty_embeds is None:
            self._empty_embeds = self.encode_text([""])
        return self._empty_embeds

    def remember_empty_text_embeds(self, embeds: torch.Tensor) -> None:
        """Keep the empty prompt's embedding [1, L, D] computed alongside other prompts."""
        if self._empty_embeds is None:
            self._empty_embeds = embeds.float().cpu()

    # -------------------------------------------------------------------------------- VAE
    def _vae_options(self, vae, tiled: bool) -> None:
        if tiled:
            vae.enable_tiling()
        else:
            vae.disable_tiling()

    def encode_video(self, frames: torch.Tensor, tiled: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """IMAGE [F, H, W, 3] 0..1 → posterior (mean, std) [1, C, T, h, w] float32 on the CPU, times the scaling factor."""
        # scaled and reordered on the device: a 49-frame clip is 50 M values, slow on the CPU
        video = frames.to(self.device, torch.float32).permute(3, 0, 1, 2).unsqueeze(0) * 2.0 - 1.0
        video = video.to(self.dtype).contiguous()  # [1, 3, F, H, W] in -1..1
        with torch.no_grad(), self.placement.use("vae") as vae:
            self._vae_options(vae, tiled)
            dist = vae.encode(video).latent_dist
            mean = dist.mean.float().cpu() * self.scaling_factor
            std = dist.std.float().cpu() * self.scaling_factor
        return mean, std

    def encode_image(self, frame: torch.Tensor, tiled: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """One IMAGE frame [1, H, W, 3] 0..1, encoded alone as a one-frame video → posterior (mean, std) [1, C, 1, h, w].

        This is the image condition as CogVideoX I2V was trained: the VAE's group norms run over
        time, so the first latent frame of a whole clip's encoding is a different latent. Scaled
        the way the model expects image latents (``image_scaling_factor``).
        """
        mean, std = self.encode_video(frame[:1], tiled=tiled)
        rescale = self.image_scaling_factor / self.scaling_factor
        return mean * rescale, std * rescale

    def decode(self, latents: torch.Tensor, tiled: bool = False) -> torch.Tensor:
        """Latents [B, C, T, h, w] (scaled) → IMAGE [B·F, H, W, 3] in 0..1 float32 on the CPU."""
        with torch.no_grad(), self.placement.use("vae") as vae:
            self._vae_options(vae, tiled)
            video = vae.decode((latents / self.scaling_factor).to(self.device, self.dtype)).sample
        video = ((video.float() + 1.0) / 2.0).clamp(0.0, 1.0)  # [B, 3, F, H, W], still on the device
        return video.permute(0, 2, 3, 4, 1).reshape(-1, *video.shape[3:], 3).cpu()

    # -------------------------------------------------------------------------------- denoiser
    def compression(self) -> tuple[int, int]:
        """(temporal, spatial) compression of the VAE: (4, 8)."""
        return self.temporal_compression, self.spatial_compression

    def check_latent_size(self, height: int, width: int, node: str) -> None:
        """Refuse a latent grid other than the training size when positional embeddings are learned."""
        if self.fixed_latent_size is not None and (height, width) != self.fixed_latent_size:
            s = self.spatial_compression
            h, w = self.fixed_latent_size
            raise InverseDVSError(
                f"{node}: this model only generates at {w * s}x{h * s} (its positional embeddings are learned "
                f"for that size), but the video is {width * s}x{height * s}. Load or resize the video to {w * s}x{h * s}."
            )

    def rotary_embedding(self, frames: int, height: int, width: int):
        """(cos, sin) rotary tables for a latent grid of T×h×w, or None when the model has none."""
        from diffusers.models.embeddings import get_3d_rotary_pos_embed

        cfg = self.transformer.config
        if not cfg.use_rotary_positional_embeddings:
            return None
        p = cfg.patch_size
        grid = (height // p, width // p)
        if cfg.patch_size_t is None:
            crops = resize_crop_region(grid, cfg.sample_width // p, cfg.sample_height // p)
            return get_3d_rotary_pos_embed(embed_dim=cfg.attention_head_dim, crops_coords=crops, grid_size=grid,
                                           temporal_size=frames, device=self.device)
        return get_3d_rotary_pos_embed(embed_dim=cfg.attention_head_dim, crops_coords=None, grid_size=grid,
                                       temporal_size=(frames + cfg.patch_size_t - 1) // cfg.patch_size_t,
                                       grid_type="slice", max_size=(cfg.sample_height // p, cfg.sample_width // p),
                                       device=self.device)

    @contextlib.contextmanager
    def transformer_session(self, image_latent: torch.Tensor, text_embeds: torch.Tensor):
        """The denoiser on the device for a whole loop; yields ``predict_v(x, t) -> v``.

        ``image_latent``: the image condition [1, C, 1, h, w] (``encode_image``'s latent), zero-padded
        over the other latent frames; ``text_embeds``: [B, L, D] — B = 1 (one pass per call) or 2
        (negative, positive batched in one pass).
        ``predict_v(x, t)`` takes x [1, C, T, h, w] and returns v [B, C, T, h, w] float32 on x's device.
        """
        if image_latent.ndim != 5 or image_latent.shape[2] != 1:
            raise InverseDVSError(f"The image condition must be one latent frame [1, C, 1, h, w], got "
                                  f"{tuple(image_latent.shape)}.")
        _, _, _, height, width = image_latent.shape
        batch = text_embeds.shape[0]
        image = image_latent.to(self.device, self.dtype).expand(batch, -1, -1, -1, -1)
        conditions = {}  # latent frames → (padded condition, rotary tables)

        def condition_for(frames: int):
            if frames not in conditions:
                conditions[frames] = (padded_image_condition(image, frames),
                                      self.rotary_embedding(frames, height, width))
            return conditions[frames]
        embeds = text_embeds.to(self.device, self.dtype)
        ofs = None
        if getattr(self.transformer.config, "ofs_embed_dim", None) is not None:
            ofs = torch.full((batch,), OFS_VALUE, device=self.device, dtype=self.dtype)

        with torch.no_grad(), self.placement.use("transformer") as transformer:
            def predict_v(x: torch.Tensor, t: int) -> torch.Tensor:
                x_in = x.to(self.device, self.dtype).expand(batch, -1, -1, -1, -1)
                cond, rotary = condition_for(x.shape[2])
                hidden = torch.cat([x_in, cond], dim=1).transpose(1, 2)  # [B, T, 2C, h, w]
                timestep = torch.full((batch,), int(t), device=self.device, dtype=torch.long)
                out = transformer(hidden_states=hidden, encoder_hidden_states=embeds, timestep=timestep, ofs=ofs,
                                  image_rotary_emb=rotary, return_dict=False)[0]
                return out.transpose(1, 2).float().to(x.device)

            yield predict_v

    @contextlib.contextmanager
    def denoiser_held(self):
        """Keep the denoiser on the device across several ``transformer_session`` blocks (the windows of one
        clip), so offloading moves its weights once per clip, not once per window."""
        with self.placement.use("transformer"):
            yield

    def release(self) -> None:
        """Take the weights off the device (kept in host memory) and empty the device cache."""
        self._text_placement.release_all()
        self.placement.release_all()


def load_cogvideox(folder: str, **kwargs) -> CogVideoXModel:
    """Load a checked diffusers-layout folder (see ``check_model_folder``) as a ``CogVideoXModel``."""
    return CogVideoXModel(folder, **kwargs)
