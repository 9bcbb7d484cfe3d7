"""InverseDVS demo: re-film a clip along a new camera path, through the pack's own nodes.

    python scripts/demo.py --out demo_output
    python scripts/demo.py --out out --video clip.mp4 --depth-model models/Depth-Anything-V2-Small-hf \
        --trajectory "orbit left"
    python scripts/demo.py --out out --video clip.mp4 --depth-video clip_depth.mp4 --trajectory loop2.txt

Without --video it uses the pack's embedded sample: a synthetic dynamic clip generated in code,
with exact depth. Geometry stages: Load Video (or the sample) → depth (exact, Depth Estimate with
--depth-model, or a white = near depth video) → Camera Trajectory → Forward Warp. Writes
warped.mp4, mask.mp4, path_preview.png and contact_sheet.png into --out (existing files are
never overwritten: a numbered name is used instead).

Model stages: VAE Encode → K-RNR Invert → Stochastic Latent Modulation → Sample → VAE Decode, with
CogVideoX-5B-I2V from --model. Without --model they run the pack's own small CogVideoX-I2V
(weights/inversedvs-mini-cogvideox-i2v, trained on procedural scenes, 17 frames at 192x128); with
--model tiny, a tiny random-weight stand-in (noise-like result; it only shows that the chain runs).
Writes result.mp4, side_by_side.mp4 (input | warped | result) and result_sheet.png (the middle
frame: input | warped | holes | result).
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import tempfile
import zlib

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pack import load_pack  # noqa: E402

load_pack("inversedvs")  # the nodes below are imported from the loaded pack
from inversedvs.errors import InverseDVSError  # noqa: E402
from inversedvs.nodes.camera import CameraTrajectory  # noqa: E402
from inversedvs.nodes.depth import DepthEstimate  # noqa: E402
from inversedvs.nodes.output import write_mp4  # noqa: E402
from inversedvs.nodes.video import LoadVideo  # noqa: E402
from inversedvs.nodes.warp import DEPTH_KIND_CHOICES, ForwardWarp  # noqa: E402
from inversedvs.warp import sample  # noqa: E402
from inversedvs.warp import trajectory as traj  # noqa: E402
from inversedvs.warp.camera import DEFAULT_FOV_X_DEG  # noqa: E402

RELATIVE, METRIC = DEPTH_KIND_CHOICES
DEFAULT_TRAJECTORY = "reference loop2"


def add_geometry_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (created if needed)")
    parser.add_argument("--video", help="input video (default: the embedded synthetic sample)")
    parser.add_argument("--depth-model", help="Depth Anything V2 folder (transformers layout) for --video")
    parser.add_argument("--depth-video", help="a depth video of --video (white = near) instead of --depth-model")
    parser.add_argument("--trajectory", default=DEFAULT_TRAJECTORY,
                        help=f"a preset ({', '.join(traj.PRESETS)}) or a 3-line keyframe file (θ, φ, r)")
    parser.add_argument("--frames", type=int, help=f"frames to use (default: {MINI_MODEL_FRAMES} for the pack's "
                                                   f"small model, else {sample.SAMPLE_FRAMES})")
    parser.add_argument("--width", type=int, default=sample.SAMPLE_WIDTH)
    parser.add_argument("--height", type=int, default=sample.SAMPLE_HEIGHT)
    parser.add_argument("--radius-scale", type=float, default=1.0)
    parser.add_argument("--dilate-holes", type=int, default=0)


def _load_video(path: str, args) -> tuple[torch.Tensor, float]:
    """Load ``path`` through the Load Video node (its folder serves as the input folder)."""
    if not os.path.isfile(path):
        raise InverseDVSError(f"demo: video '{path}' does not exist.")
    os.environ["INVERSEDVS_INPUT_DIR"] = os.path.dirname(os.path.abspath(path))
    images, fps, _ = LoadVideo().load(os.path.basename(path), args.frames, 0, 1, args.width, args.height,
                                      "crop to fill")
    return images, fps


def _estimate_depth(images: torch.Tensor, model_dir: str) -> torch.Tensor:
    """Depth Estimate node on ``images`` with the model folder ``model_dir`` (given by path)."""
    if not os.path.isdir(model_dir):
        raise InverseDVSError(f"demo: depth model folder '{model_dir}' does not exist.")
    root = tempfile.mkdtemp(prefix="inversedvs-models-")
    os.makedirs(os.path.join(root, "inversedvs_depth"))
    name = os.path.basename(os.path.normpath(model_dir))
    os.symlink(os.path.abspath(model_dir), os.path.join(root, "inversedvs_depth", name))
    os.environ["INVERSEDVS_MODELS_DIR"] = root
    return DepthEstimate().estimate(images, name, "running", 518, 8)[0]


def _camera_path(args, frames: int):
    node = CameraTrajectory()
    if os.path.isfile(args.trajectory):
        with open(args.trajectory) as f:
            text = f.read()
        return node.build(traj.CUSTOM, text, frames, args.radius_scale, 0, DEFAULT_FOV_X_DEG)
    preset = args.trajectory if args.trajectory in traj.PRESETS else "reference " + args.trajectory
    if preset not in traj.PRESETS:
        raise InverseDVSError(f"demo: --trajectory '{args.trajectory}' is neither a file nor a preset "
                              f"({', '.join(traj.PRESETS)}).")
    return node.build(preset, "", frames, args.radius_scale, 0, DEFAULT_FOV_X_DEG)


def run_geometry(args) -> dict:
    """Frames → depth → camera path → forward warp. Returns the tensors of every stage:
    images, depth, depth_kind, fps, camera_path, preview, warped, mask, source (a description)."""
    if args.video:
        images, fps = _load_video(args.video, args)
        if args.depth_model:
            depth, kind = _estimate_depth(images, args.depth_model), RELATIVE
        elif args.depth_video:
            depth, _ = _load_video(args.depth_video, args)
            kind = RELATIVE
        else:
            raise InverseDVSError("demo: --video needs depth: give --depth-model (a Depth Anything V2 folder) "
                                  "or --depth-video (white = near).")
        source = f"video {args.video}"
    else:
        images, exact = sample.sample_clip(args.frames, args.height, args.width)
        depth, kind, fps = exact.unsqueeze(-1), METRIC, sample.SAMPLE_FPS
        source = "embedded synthetic sample (exact depth)"
    path, preview = _camera_path(args, images.shape[0])
    warped, mask = ForwardWarp().warp(images, depth, path, kind, args.dilate_holes)
    return {"images": images, "depth": depth, "depth_kind": kind, "fps": fps, "camera_path": path,
            "preview": preview, "warped": warped, "mask": mask, "source": source}


# ----------------------------------------------------------------------------- files


def unique_path(folder: str, name: str) -> str:
    """``folder/name``, or ``folder/stem_N.ext`` with the first free N when that exists."""
    stem, ext = os.path.splitext(name)
    path, n = os.path.join(folder, name), 1
    while os.path.exists(path):
        path, n = os.path.join(folder, f"{stem}_{n}{ext}"), n + 1
    return path


def write_png(path: str, image: torch.Tensor) -> None:
    """IMAGE [H, W, 3] in 0..1 as an 8-bit RGB PNG (standard library only)."""
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    h, w, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[row].tobytes() for row in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "xb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def contact_sheet(outputs: dict) -> torch.Tensor:
    """One picture of the geometry stages at the middle frame: input | warped (top), mask | path
    preview (bottom), each panel the frame's size. IMAGE [H2, W2, 3]."""
    images, warped, mask = outputs["images"], outputs["warped"], outputs["mask"]
    i = images.shape[0] // 2
    h, w = images.shape[1:3]
    preview = torch.nn.functional.interpolate(outputs["preview"].permute(0, 3, 1, 2), size=(h, w), mode="bilinear",
                                              align_corners=False)[0].permute(1, 2, 0)
    top = torch.cat([images[i], warped[i]], dim=1)
    bottom = torch.cat([mask[i].unsqueeze(-1).expand(h, w, 3), preview], dim=1)
    return torch.cat([top, bottom], dim=0).clamp(0, 1)


def write_geometry(outputs: dict, folder: str) -> dict:
    """Write warped.mp4, mask.mp4, path_preview.png and contact_sheet.png (middle frame: input,
    warped, mask, path) into ``folder``; returns name → path."""
    os.makedirs(folder, exist_ok=True)
    written = {}
    for name, video in (("warped.mp4", outputs["warped"]),
                        ("mask.mp4", outputs["mask"].unsqueeze(-1).expand(*outputs["mask"].shape, 3))):
        written[name] = unique_path(folder, name)
        write_mp4(written[name], video, outputs["fps"])
    written["path_preview.png"] = unique_path(folder, "path_preview.png")
    write_png(written["path_preview.png"], outputs["preview"][0])
    written["contact_sheet.png"] = unique_path(folder, "contact_sheet.png")
    write_png(written["contact_sheet.png"], contact_sheet(outputs))
    return written


# ----------------------------------------------------------------------------- model stages

# The small models run at this size (height, width) — the pack's mini model was trained at it, and it
# keeps the demo quick on a CPU; CogVideoX-5B-I2V itself runs at 720x480.
SMALL_MODEL_SIZE = (128, 192)
MINI_MODEL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights",
                          "inversedvs-mini-cogvideox-i2v")
MINI_MODEL_FRAMES = 17
# Guidance for the small model: at the 5B model's 10 it over-saturates the filled holes (blue and green blocks
# on the sample clip); 3 fills them with the scene's own colours.
MINI_MODEL_GUIDANCE = 3.0
DEFAULT_GUIDANCE = 10.0
TINY = "tiny"
# The sample clip described in the words of the mini model's training captions.
MINI_MODEL_PROMPT = ("a red waves ball resting and a green waves ball rolling left and a yellow waves ball resting "
                     "on a brown waves floor by a blue waves wall, camera static")
MINI_MODEL_NOTE = (
    "video model: the pack's small CogVideoX-I2V ({folder}), trained on procedural scenes of balls, floors, walls "
    "and skies, at {w}x{h}. It shows what the method does on a model that has learned something; pass --model "
    "/path/to/CogVideoX-5b-I2V for real footage."
)
TINY_MODEL_NOTE = (
    "NOTE: --model tiny, so the diffusion stages run a TINY RANDOM-WEIGHT stand-in for CogVideoX-5B-I2V "
    "(the same classes and folder layout, untrained weights) at {w}x{h}. result.mp4 is therefore noise-like: it "
    "shows that the whole pipeline runs, not what the method produces. Pass --model /path/to/CogVideoX-5b-I2V "
    "for real results."
)


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", help="CogVideoX-5B-I2V folder in diffusers layout (default: the pack's small "
                                        "model trained on procedural scenes; 'tiny': a random-weight stand-in, "
                                        "which only shows that the pipeline runs)")
    parser.add_argument("--prompt", help="what the video shows (guides the revealed regions; default: a "
                                         "description of the sample clip for the pack's small model, else empty)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--k", type=int, default=6, help="K-RNR order (paper mode)")
    parser.add_argument("--mode", default="paper", choices=("paper", "reference"))
    parser.add_argument("--guidance", type=float, help=f"classifier-free guidance on the revealed regions (default: "
                                                       f"{MINI_MODEL_GUIDANCE} for the pack's small model, else "
                                                       f"{DEFAULT_GUIDANCE})")
    parser.add_argument("--seed", type=int, default=42)


def _resized(video: torch.Tensor, height: int, width: int, mode: str = "bilinear") -> torch.Tensor:
    """IMAGE-like [F, H, W, C] → [F, height, width, C]."""
    x = video.permute(0, 3, 1, 2)
    extra = {"align_corners": False} if mode == "bilinear" else {}
    return torch.nn.functional.interpolate(x, size=(height, width), mode=mode, **extra).permute(0, 2, 3, 1)


def run_model(geometry: dict, args) -> dict:
    """Warped video + mask → encode → K-RNR invert → SLM → sample → decode, through the pack's nodes.

    Returns result, and the input / warped / mask at the size the model ran at.
    """
    from inversedvs.backend.cogvideox import check_model_folder, load_cogvideox
    from inversedvs.backend.tiny import cached_tiny_video_model
    from inversedvs.nodes import _host
    from inversedvs.nodes.diffusion import DEFAULT_INVERSION_END, KRNRInvert, Sample, StochasticLatentModulate
    from inversedvs.nodes.model import DEFAULT_NEGATIVE, EncodeText, VAEDecode, VAEEncode

    images, warped, mask = geometry["images"], geometry["warped"], geometry["mask"]
    device = _host.torch_device()
    if args.model in (None, TINY):
        height, width = min(SMALL_MODEL_SIZE, tuple(warped.shape[1:3]))
        if args.model is None:
            folder = check_model_folder(MINI_MODEL if os.path.isdir(MINI_MODEL) else None, MINI_MODEL, [MINI_MODEL])
            print(MINI_MODEL_NOTE.format(folder=folder, w=width, h=height))
        else:
            print(TINY_MODEL_NOTE.format(w=width, h=height))
            folder = cached_tiny_video_model()
        dtype = "fp32"
        images, warped = _resized(images, height, width), _resized(warped, height, width)
        mask = (_resized(mask.unsqueeze(-1), height, width, "nearest")[..., 0] > 0.5).float()
    else:
        folder = check_model_folder(args.model if os.path.isdir(args.model) else None, args.model, [args.model])
        dtype = "bf16" if device.type == "cuda" else "fp32"
        print(f"video model: {folder} ({dtype} on {device.type})")
    model = load_cogvideox(folder, dtype=dtype, policy="model_offload", device=device)
    tiled = device.type == "cuda"
    positive, negative = EncodeText().encode(model, args.prompt, DEFAULT_NEGATIVE)
    latent = VAEEncode().encode(model, warped, tiled)[0]
    noise = KRNRInvert().invert(model, latent, args.steps, 0.98, DEFAULT_INVERSION_END)[0]
    clean, noise = StochasticLatentModulate().modulate(latent, noise, mask, args.seed)[:2]
    sampled = Sample().sample(model, positive, negative, clean, noise, mask, args.steps, 0.98, args.k, args.mode,
                              args.guidance, 1.0, True, args.seed)[0]
    result = VAEDecode().decode(model, sampled, tiled)[0]
    model.release()
    return {"result": result, "images": images, "warped": warped, "mask": mask}


def result_sheet(outputs: dict) -> torch.Tensor:
    """The middle frame at the model's size, side by side: input | warped | holes (white) | result. IMAGE [H, 4W, 3]."""
    i = outputs["result"].shape[0] // 2
    holes = outputs["mask"][i].unsqueeze(-1).expand(*outputs["mask"].shape[1:], 3)
    return torch.cat([outputs["images"][i], outputs["warped"][i], holes, outputs["result"][i]], dim=1).clamp(0, 1)


def write_model_outputs(outputs: dict, folder: str, fps: float) -> dict:
    """Write result.mp4, side_by_side.mp4 (input | warped | result) and result_sheet.png into ``folder``;
    returns name → path."""
    written = {}
    sbs = torch.cat([outputs["images"], outputs["warped"], outputs["result"]], dim=2)
    for name, video in (("result.mp4", outputs["result"]), ("side_by_side.mp4", sbs)):
        written[name] = unique_path(folder, name)
        write_mp4(written[name], video, fps)
    written["result_sheet.png"] = unique_path(folder, "result_sheet.png")
    write_png(written["result_sheet.png"], result_sheet(outputs))
    return written


def resolve_defaults(args):
    """Fill the defaults that depend on the model: frames, prompt and guidance (the small model's, or the others')."""
    if args.frames is None:
        args.frames = MINI_MODEL_FRAMES if args.model is None else sample.SAMPLE_FRAMES
    if args.prompt is None:
        args.prompt = MINI_MODEL_PROMPT if args.model is None else ""
    if args.guidance is None:
        args.guidance = MINI_MODEL_GUIDANCE if args.model is None else DEFAULT_GUIDANCE
    return args


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_geometry_arguments(parser)
    add_model_arguments(parser)
    args = resolve_defaults(parser.parse_args(argv))
    try:
        geometry = run_geometry(args)
        written = write_geometry(geometry, args.out)
        f, h, w = geometry["mask"].shape
        print(f"input: {geometry['source']}, {f} frames at {w}x{h}; path: {geometry['camera_path'].label}; "
              f"holes: {float(geometry['mask'].mean()):.1%} of pixels")
        written.update(write_model_outputs(run_model(geometry, args), args.out, geometry["fps"]))
    except InverseDVSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name, path in written.items():
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
