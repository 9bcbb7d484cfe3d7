"""The whole pack on the tiny CogVideoX, node by node, as a ComfyUI graph runs it (shared by the
interrupt, memory, safety and determinism tests; not collected as a test module)."""

from __future__ import annotations

import contextlib
import os
import tempfile

import torch

from inversedvs.backend.tiny import cached_tiny_video_model
from inversedvs.nodes.camera import CameraTrajectory
from inversedvs.nodes.depth import DepthEstimate
from inversedvs.nodes.diffusion import KRNRInvert, Sample, StochasticLatentModulate
from inversedvs.nodes.model import EncodeText, LoadVideoModel, VAEDecode, VAEEncode
from inversedvs.nodes.output import SaveVideo, write_mp4
from inversedvs.nodes.video import LoadVideo
from inversedvs.nodes.warp import ForwardWarp
from inversedvs.warp.tiny_depth import TINY_DEPTH_FOLDER, save_tiny_depth_model

FRAMES, HEIGHT, WIDTH = 5, 64, 96
STEPS = 3
STRENGTH = 0.98
TINY_NAME = "tiny"
CLIP_NAME = "clip.mp4"
DEPTH_INPUT_SIZE = 56  # Depth Anything's network input (multiple of 14), small for speed
FOV_X_DEG = 60.0


@contextlib.contextmanager
def comfy_folders(root: str):
    """Point the host bridge at ``root/{input,output,models}`` (models hold the tiny model) for the block."""
    keys = {"INVERSEDVS_INPUT_DIR": "input", "INVERSEDVS_OUTPUT_DIR": "output", "INVERSEDVS_MODELS_DIR": "models"}
    saved = {k: os.environ.get(k) for k in keys}
    for key, sub in keys.items():
        os.makedirs(os.path.join(root, sub), exist_ok=True)
        os.environ[key] = os.path.join(root, sub)
    link = os.path.join(root, "models", "inversedvs_video", TINY_NAME)
    if not os.path.lexists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(cached_tiny_video_model(), link)
    if not os.path.isdir(os.path.join(root, "models", "inversedvs_depth", TINY_DEPTH_FOLDER)):
        save_tiny_depth_model(os.path.join(root, "models", "inversedvs_depth"))
    clip = os.path.join(root, "input", CLIP_NAME)
    if not os.path.exists(clip):
        write_mp4(clip, source_clip()[0], 8.0, crf=0)
    try:
        yield root
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def load_tiny_model(policy: str = "resident"):
    """Load Video Model on the tiny folder (fp32, not compiled); folders must be set (``comfy_folders``)."""
    return LoadVideoModel().load(TINY_NAME, "fp32", policy, compile_transformer=False)[0]


def source_clip(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed clip IMAGE [9, 64, 96, 3] and its hole MASK [9, 64, 96] (right third unseen)."""
    frames = torch.rand(FRAMES, HEIGHT, WIDTH, 3, generator=torch.Generator().manual_seed(seed))
    mask = torch.zeros(FRAMES, HEIGHT, WIDTH)
    mask[:, :, 2 * WIDTH // 3:] = 1.0
    return frames, mask


def run_geometry(preset: str = "orbit right") -> dict:
    """Load Video → Depth Estimate (tiny Depth Anything) → Camera Trajectory → Forward Warp."""
    frames = LoadVideo().load(CLIP_NAME, FRAMES, 0, 1, WIDTH, HEIGHT, "crop to fill")[0]
    depth = DepthEstimate().estimate(frames, TINY_DEPTH_FOLDER, "running", DEPTH_INPUT_SIZE, FRAMES)[0]
    path, preview = CameraTrajectory().build(preset, "", FRAMES, 1.0, 0, FOV_X_DEG, 1.0)
    warped, mask = ForwardWarp().warp(frames, depth, path, "relative (white = near)", 0)
    return {"frames": frames, "depth": depth, "preview": preview, "warped": warped, "mask": mask}


def run_pipeline(model, seed: int = 42, steps: int = STEPS, prefix: str | None = "InverseDVS/tiny",
                 mode: str = "paper") -> dict:
    """The whole graph through the nodes: geometry, encode → invert → SLM → sample → decode (→ save).
    Returns every stage's output."""
    geometry = run_geometry()
    frames, mask = geometry["warped"], geometry["mask"]
    latent = VAEEncode().encode(model, frames, False)[0]
    noise = KRNRInvert().invert(model, latent, steps, STRENGTH, "terminal (reference)")[0]
    positive, negative = EncodeText().encode(model, "a dog on the beach", "blur")
    clean, modulated, _ = StochasticLatentModulate().modulate(latent, noise, mask, seed)
    result = Sample().sample(model, positive, negative, clean, modulated, mask, steps, STRENGTH, 6, mode,
                             6.0, 1.0, True, seed)[0]
    images = VAEDecode().decode(model, result, False)[0]
    out = {**geometry, "latent": latent["samples"], "noise": noise["samples"], "clean": clean["samples"],
           "start_noise": modulated["samples"], "result": result["samples"], "images": images}
    if prefix is not None:
        out["saved"] = SaveVideo().save(images, 8.0, prefix)["result"][0]
    return out


def scratch_root() -> str:
    return tempfile.mkdtemp(prefix="inversedvs-run-")
