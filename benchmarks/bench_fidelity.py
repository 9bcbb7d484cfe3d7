"""Fidelity against ground truth: held-out procedural scenes re-filmed along camera presets with the pack's small
model, each output compared with the scene rendered from the target cameras (the start of the fidelity benchmark).

    python benchmarks/bench_fidelity.py                        # GPU if present: 4 seeds x 3 presets, 17 frames
    python benchmarks/bench_fidelity.py --reduced              # CPU smoke run: 1 seed, 1 preset, 9 frames, 6 steps

Seeds are below the training seed offset (never trained on). The source clip is rendered from the scene's own
camera with exact depth; Forward Warp moves it along the preset; the ground truth is the same scene at the same
moments rendered from the target cameras (target pose = anchor-to-frame transform x source pose). Rows, each
against the same ground truth: the forward warp itself (no model: checks the ground truth on seen pixels), plain image-to-video from fresh noise (strength 1), inversion with k = 0,
K-RNR k = 1, 2, 6 (paper mode, SLM on), k = 6 with the image condition taken from the whole clip's first latent
frame instead of the first frame encoded alone; the same rows on the still path (identity camera) measure
reconstruction. Metrics: PSNR on pixels seen from the source, on disoccluded pixels, on the whole frame; SSIM
of the whole frame; temporal error (mean |frame difference of output − of ground truth|).
Results: benchmarks/results/fidelity[_reduced].json with the command.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

C.load_pack()
from inversedvs.nodes import _host  # noqa: E402
from inversedvs.nodes.camera import CameraTrajectory  # noqa: E402
from inversedvs.nodes.diffusion import KRNRInvert, Sample, StochasticLatentModulate  # noqa: E402
from inversedvs.nodes.model import EncodeText, LoadVideoModel, VAEDecode, VAEEncode  # noqa: E402
from inversedvs.nodes.warp import DEPTH_KIND_CHOICES, ForwardWarp  # noqa: E402
from inversedvs.warp import synthetic as S  # noqa: E402
from inversedvs.warp.trajectory import STILL  # noqa: E402

MINI = os.path.join(C.REPO_ROOT, "weights", "inversedvs-mini-cogvideox-i2v")
HEIGHT, WIDTH, SUPERSAMPLE = 128, 192, 2
STRENGTH, GUIDANCE, SEED = 0.98, 6.0, 42
KRNR_ORDERS = (0, 1, 2, 6)
DEFAULT_K = 6
# The image condition's other form, measured against the default (the first frame encoded alone).
OTHER_IMAGE_CONDITION = "clip_first_frame"
METRIC = DEPTH_KIND_CHOICES[1]
SSIM_WINDOW, SSIM_C1, SSIM_C2 = 7, 0.01**2, 0.03**2


def psnr(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor | None = None) -> float | None:
    """PSNR in dB of IMAGEs [F, H, W, 3] in 0..1 over the pixels ``where`` [F, H, W] (all when None)."""
    err = (a - b).pow(2).mean(-1)
    if where is not None:
        if not bool(where.any()):
            return None
        err = err[where]
    return round(float(-10 * torch.log10(err.mean().clamp_min(1e-10))), 3)


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM of IMAGEs [F, H, W, 3] (uniform SSIM_WINDOW window, per channel)."""
    x, y = a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2)
    pool = torch.nn.AvgPool2d(SSIM_WINDOW, 1)
    mx, my = pool(x), pool(y)
    vx, vy, cxy = pool(x * x) - mx**2, pool(y * y) - my**2, pool(x * y) - mx * my
    s = ((2 * mx * my + SSIM_C1) * (2 * cxy + SSIM_C2)) / ((mx**2 + my**2 + SSIM_C1) * (vx + vy + SSIM_C2))
    return round(float(s.mean()), 4)


def temporal_error(out: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean |(out[t+1] − out[t]) − (truth[t+1] − truth[t])| of IMAGEs [F, H, W, 3]."""
    return round(float(((out[1:] - out[:-1]) - (truth[1:] - truth[:-1])).abs().mean()), 5)


def scene_views(seed: int, preset: str, frames: int) -> dict:
    """Source clip, exact depth, warp and ground truth for ``seed`` filmed along ``preset``."""
    clip = S.random_scene(seed)
    source = S.render_clip(clip, frames, HEIGHT, WIDTH, dtype=torch.float64, supersample=SUPERSAMPLE)
    path = CameraTrajectory().build(preset, "", frames, 1.0, 0, clip.fov_x_deg)[0]
    depth = source["depth"].float()
    images = source["image"].float()
    warped, mask = ForwardWarp().warp(images, depth.unsqueeze(-1), path, METRIC, 0)
    radius = path.orbit_radius(depth.double())
    target = path.anchor_to_frame(float(radius)) @ source["world_to_camera"]
    truth = S.render_clip(clip, frames, HEIGHT, WIDTH, dtype=torch.float64, supersample=SUPERSAMPLE, poses=target,
                          K=path.target_intrinsics(HEIGHT, WIDTH))["image"].float()
    return {"caption": clip.caption, "images": images, "warped": warped, "mask": mask, "truth": truth}


def run_rows(model, views: dict, steps: int, still: bool) -> dict:
    """Each row's output IMAGE [F, H, W, 3] for one scene and path."""
    latent = VAEEncode().encode(model, views["warped"], False)[0]
    positive, negative = EncodeText().encode(model, views["caption"], "")
    mask = views["mask"]
    inverted = KRNRInvert().invert(model, latent, steps, STRENGTH, "terminal")[0]
    clean, noise, _ = StochasticLatentModulate().modulate(latent, inverted, mask, SEED)
    fresh = {"samples": torch.randn(latent["samples"].shape, generator=torch.Generator().manual_seed(SEED)),
             "model": latent["model"]}
    decode = lambda out: VAEDecode().decode(model, out, False)[0]  # noqa: E731
    prefix = "still: " if still else ""
    rows = {prefix + "forward warp alone (no model)": views["warped"]}
    rows[prefix + "plain I2V from noise"] = decode(Sample().sample(
        model, positive, negative, clean, fresh, mask, steps, 1.0, 0, "paper", GUIDANCE, 1.0, True, SEED)[0])
    for k in KRNR_ORDERS:
        name = "inversion k = 0" if k == 0 else f"K-RNR k = {k}"
        rows[prefix + name] = decode(Sample().sample(model, positive, negative, clean, noise, mask, steps, STRENGTH, k,
                                                     "paper", GUIDANCE, 1.0, True, SEED)[0])
    other = VAEEncode().encode(model, views["warped"], False, OTHER_IMAGE_CONDITION, SEED)[0]
    other_clean, other_noise, _ = StochasticLatentModulate().modulate(
        other, KRNRInvert().invert(model, other, steps, STRENGTH, "terminal")[0], mask, SEED)
    rows[prefix + f"K-RNR k = {DEFAULT_K}, image = clip's first latent frame"] = decode(Sample().sample(
        model, positive, negative, other_clean, other_noise, mask, steps, STRENGTH, DEFAULT_K, "paper", GUIDANCE, 1.0,
        True, SEED)[0])
    return rows


def metrics(out: torch.Tensor, views: dict) -> dict:
    truth, holes = views["truth"], views["mask"] > 0.5
    return {"psnr_all": psnr(out, truth), "psnr_seen": psnr(out, truth, ~holes), "psnr_holes": psnr(out, truth, holes),
            "ssim_all": ssim(out, truth), "temporal_error": temporal_error(out, truth)}


METRICS = ("psnr_all", "psnr_seen", "psnr_holes", "ssim_all", "temporal_error")


def mean_of(values: list) -> float | None:
    """Mean of the values that are not None (None when none are)."""
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 4) if known else None


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2,3")
    p.add_argument("--presets", default="orbit left,truck right,arc up")
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--reduced", action="store_true", help="CPU smoke run: seed 0, orbit left, 9 frames, 6 steps")
    args = p.parse_args(argv)
    if args.reduced:
        args.seeds, args.presets, args.frames, args.steps = "0", "orbit left", 9, 6
    os.environ["INVERSEDVS_MODELS_DIR"] = tempfile.mkdtemp(prefix="inversedvs-models-")
    os.makedirs(os.path.join(os.environ["INVERSEDVS_MODELS_DIR"], "inversedvs_video"))
    os.symlink(MINI, os.path.join(os.environ["INVERSEDVS_MODELS_DIR"], "inversedvs_video", "mini"))
    dtype = "bf16" if _host.torch_device().type == "cuda" else "fp32"
    model = LoadVideoModel().load("mini", dtype, "resident", compile_transformer=False)[0]
    table = {}
    for seed in [int(s) for s in args.seeds.split(",")]:
        for preset in [STILL] + args.presets.split(","):
            views = scene_views(seed, preset, args.frames)
            for row, out in run_rows(model, views, args.steps, preset == STILL).items():
                table.setdefault(row, []).append({"seed": seed, "preset": preset, **metrics(out, views)})
                print(seed, preset, row, table[row][-1], flush=True)
    summary = {row: {m: mean_of([r[m] for r in rs]) for m in METRICS} for row, rs in table.items()}
    for row, s in summary.items():
        print(f"{row:32s} " + " ".join(f"{m} {v}" for m, v in s.items()))
    name = "fidelity_reduced" if args.reduced else "fidelity"
    print(C.save_results(name, {"settings": vars(args) | {"strength": STRENGTH, "guidance": GUIDANCE},
                                "summary": summary, "rows": table}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
