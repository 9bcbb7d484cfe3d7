"""Diffusion²'s matrix sampling on full-size SVD img2vid and SV3D_p UNets under ComfyUI's own memory management:
time per evaluation of a step, its split into row and column calls, peak device memory, and the whole matrix's time
extrapolated from the measured evaluations, beside core's own sampling of one SVD clip of the same size.

    python benchmarks/bench_diffusion2.py --comfyui DIR                     # GPU, the paper's 21 x 25 x 576², 50 steps
    python benchmarks/bench_diffusion2.py --comfyui DIR --measure-steps 3   # run the first 3 steps of the 50 (default 2)
    python benchmarks/bench_diffusion2.py --comfyui DIR --reduced           # 5 views x 7 frames at 256², all 50 steps
    python benchmarks/bench_diffusion2.py --comfyui DIR --size tiny         # CPU smoke run (the host tests' UNets)

Weights are random (no trained SVD / SV3D reaches this workplace): the figures are cost, not quality. The UNets are
core's own UNetModel at core's SVD_img2vid / SV3D_p configs (supported_models; 1.5 B parameters each), stored fp16
like the released checkpoints and loaded by ``comfy.sd.load_diffusion_model_state_dict`` (what Load Diffusion Model
does). The conditionings have the shapes core's SVD_img2vid_Conditioning and SV3D_Conditioning give (CLIP-vision
embeddings [1, N, 1024], condition latents [N, 4, H/8, W/8]) at random values: the ViT-H encoder and the VAE are
outside the sampled part. Both models guided (cfg 2.5, core's templates), so every call runs its negative pass.
The run samples the first ``--measure-steps`` steps of the ``--steps`` grid, VRS in as many of them as the whole run
has (the paper's 5 are the first 5 steps): evaluations cost the same at every σ, so
matrix seconds ≈ seconds per evaluation × (steps + vrs_steps). Results: benchmarks/results/diffusion2[_reduced|_tiny].json.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
from bench_native_wan import import_core  # noqa: E402

sys.path.insert(0, os.path.join(C.REPO_ROOT, "tests"))

# (views, frames, pixels) per size; "tiny" uses the host tests' 212 M-parameter UNets.
SIZES = {"paper": (21, 25, 576), "reduced": (5, 7, 256), "tiny": (2, 3, 16)}
CFG = 2.5
SEED = 42
FULL_UNET = dict(channel_mult=(1, 2, 4, 4))  # core's SVD / SV3D UNet: 320·(1, 2, 4, 4) channels


def unet_state(kind: str, full: bool, device: str, seed: int = 0) -> dict:
    """A random state dict of core's UNetModel for ``kind`` ("svd" / "sv3d_p", ``C.random_core_unet_state``).
    ``full``: core's full-size config; else the host tests' tiny one."""
    from _comfy_host import SVD_ADM, SVD_UNET

    return C.random_core_unet_state(device, seed, adm_in_channels=SVD_ADM[kind],
                                    **dict(SVD_UNET, **(FULL_UNET if full else {})))


def conditionings(count: int, views: int, latent: int, sv3d: bool, seed: int):
    """(positive, negative) shaped like core's SVD_img2vid_Conditioning (``sv3d`` False) or SV3D_Conditioning
    output for ``count`` init images, random values."""
    gen = torch.Generator().manual_seed(seed)
    embeds = torch.randn(1, count, 1024, generator=gen)
    image = torch.randn(count, 4, latent, latent, generator=gen)
    if sv3d:
        extra = {"elevation": [10.0] * views, "azimuth": [360.0 / max(views - 1, 1) * i for i in range(views)]}
    else:
        extra = {"motion_bucket_id": 127, "fps": 6, "augmentation_level": 0.0}
    return ([[embeds, dict(extra, concat_latent_image=image)]],
            [[torch.zeros_like(embeds), dict(extra, concat_latent_image=torch.zeros_like(image))]])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--comfyui", default=os.environ.get("COMFYUI_DIR", os.path.join(C.REPO_ROOT, ".host", "ComfyUI")),
                   help="ComfyUI's source folder (default: $COMFYUI_DIR or .host/ComfyUI)")
    p.add_argument("--size", choices=sorted(SIZES), default="paper")
    p.add_argument("--reduced", action="store_true", help="same as --size reduced")
    p.add_argument("--steps", type=int, default=50, help="the grid's steps (the paper's 50)")
    p.add_argument("--vrs-steps", type=int, default=5, help="VRS steps of the whole run (the paper's 5)")
    p.add_argument("--measure-steps", type=int, default=None,
                   help="steps actually run (default: 2 at the paper's size, all otherwise)")
    p.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = p.parse_args(argv)
    size = "reduced" if args.reduced else args.size
    cuda = torch.cuda.is_available()
    import_core(args.comfyui, cpu=not cuda, core_args=[])
    C.load_pack()
    import comfy.model_management as mm
    import comfy.sample
    import comfy.samplers
    import comfy.sd
    from inversedvs.backend import comfy_svd
    from inversedvs.krnr import composition
    from inversedvs.nodes.diffusion2 import matrix_conditions

    views, frames, pixels = SIZES[size]
    latent = pixels // 8
    measure = args.measure_steps or (2 if size == "paper" else args.steps)
    measure = min(measure, args.steps)
    device = "cuda" if cuda else "cpu"
    results = {"size": size, "views": views, "frames": frames, "pixels": pixels, "steps": args.steps,
               "vrs_steps": args.vrs_steps, "measured_steps": measure, "cfg": CFG, "vram_state": mm.vram_state.name}
    name = {"paper": "diffusion2", "reduced": "diffusion2_reduced", "tiny": "diffusion2_tiny"}[size]
    setup = {}
    models = {}
    for kind in ("svd", "sv3d_p"):
        state, seconds = C.timed(unet_state, kind, size != "tiny", device)
        models[kind], load_seconds = C.timed(comfy.sd.load_diffusion_model_state_dict, state)
        del state
        setup[kind] = {"class": type(models[kind].model).__name__,
                       "parameters": sum(t.numel() for t in models[kind].model.parameters()),
                       "state_seconds": round(seconds, 2), "load_seconds": round(load_seconds, 2)}
    results["models"] = setup
    print(setup, flush=True)
    video_pos, video_neg = conditionings(views, views, latent, False, 1)
    mv_pos, mv_neg = conditionings(frames, views, latent, True, 2)
    rows, columns, shape = matrix_conditions(video_pos, video_neg, mv_pos, mv_neg, "benchmark")

    # core's own sampling of one SVD clip of F frames (the unit of the cost table), measured over the same steps
    row = rows[0]
    noise = torch.randn(frames, *shape, generator=torch.Generator().manual_seed(SEED))
    sigmas = comfy_svd.sigmas(models["svd"], args.steps)[:measure + 1]
    with torch.inference_mode():
        C.reset_peak()
        _, clip_seconds = C.timed(comfy.sample.sample_custom, models["svd"], noise, CFG,
                                  comfy.samplers.sampler_object("euler"), sigmas, row["positive"], row["negative"],
                                  torch.zeros_like(noise), seed=SEED)
    results["svd_clip"] = {"seconds": round(clip_seconds, 3), "seconds_per_step": round(clip_seconds / measure, 3),
                           "peak_gib": round(C.peak_gib(), 3)}
    print("core SVD clip", results["svd_clip"], flush=True)

    # the matrix: the first `measure` steps, VRS in as many of them as the whole run has
    vrs_here = min(args.vrs_steps, measure)
    evaluations = len(composition.evaluation_plan(measure, vrs_here))
    with torch.inference_mode():
        C.reset_peak()
        out, seconds = C.timed(comfy_svd.sample_matrix, models["svd"], rows, CFG, models["sv3d_p"], columns, CFG,
                               shape, args.steps, composition.DEFAULT_S, vrs_here, SEED, first_steps=measure)
    per_evaluation = seconds / evaluations
    total_evaluations = len(composition.evaluation_plan(args.steps, args.vrs_steps))
    results["matrix"] = {
        "measured_seconds": round(seconds, 3), "measured_evaluations": evaluations,
        "seconds_per_evaluation": round(per_evaluation, 3), "guider_calls_per_evaluation": views + frames,
        "seconds_per_guider_call": round(per_evaluation / (views + frames), 3),
        "whole_run_evaluations": total_evaluations,
        "whole_run_seconds_estimate": round(per_evaluation * total_evaluations, 1),
        "whole_run_guider_calls": total_evaluations * (views + frames),
        "peak_gib": round(C.peak_gib(), 3), "finite": bool(torch.isfinite(out).all()),
        "vs_one_svd_clip_per_step": round(per_evaluation / (clip_seconds / measure), 2),
    }
    print("matrix", results["matrix"], flush=True)
    print("saved", C.save_results(name, results, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
