"""Diffusion²'s second stage on the GPU: does gsplat render what the pack's torch rasteriser renders, and how
well and how fast does the dynamic-Gaussian fit recover a known moving object at the paper's size?

    python benchmarks/bench_gaussians4d.py                       # writes benchmarks/results/gaussians4d.json
    python benchmarks/bench_gaussians4d.py --views 5 --frames 4 --size 64 --iterations 300 --warmup 150   # quick

1. Agreement: random Gaussians seen by orbit cameras, rendered by gsplat and by ``render_torch`` on the GPU:
   image and alpha differences, and the gradients of a random linear loss with respect to every input.
2. The fit: the fixture object of tests/_gaussian_scene.py (a ball and a swinging arm) rendered by gsplat as a
   V x F matrix on core's SV3D orbit (21 x 25 at 576² by default: the paper's), fitted with the paper's schedule
   (5000 iterations, 3000 of warm-up) and direction "auto"; PSNR on the training images, on views halfway between
   the training azimuths, and at times halfway between frames; a static baseline (frame 0's fit shown at every
   time) says how much of the motion the field explains; seconds and peak memory.
3. The torch rasteriser's cost at the same size, for machines without gsplat (a few iterations, extrapolated).
4. ``--nodes``: the nodes a user wires, on the same matrix as an IMAGE batch with the conditioning core's
   SV3D_Conditioning gives (renderer auto): Fit (including its renders of every matrix image), Render (a 48-frame
   orbit) and Save (PLY, one file per frame), each timed (``--skip-fit`` leaves out 2).

Random or synthetic content only: what a fit of a real SVD x SV3D matrix looks like needs their weights.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

C.load_pack()
sys.path.insert(0, os.path.join(C.REPO_ROOT, "tests"))
import _gaussian_scene as scene  # noqa: E402
from inversedvs.gaussians import cameras, fit, losses, model, render  # noqa: E402


def agreement(device: torch.device, count: int = 3000, size: int = 128, views: int = 4) -> dict:
    g = torch.Generator().manual_seed(0)
    ball = model.in_ball(count, 0.5, g)
    means = ball.means.to(device).requires_grad_()
    quats = torch.nn.functional.normalize(torch.randn(count, 4, generator=g), dim=-1).to(device).requires_grad_()
    scales = (0.005 + 0.045 * torch.rand(count, 3, generator=g)).to(device).requires_grad_()
    opacities = (0.1 + 0.8 * torch.rand(count, generator=g)).to(device).requires_grad_()
    colors = torch.rand(count, 3, generator=g).to(device).requires_grad_()
    azimuth = torch.linspace(0, 270, views, dtype=torch.float64)
    poses = cameras.orbit_poses(azimuth, torch.full((views,), 15.0, dtype=torch.float64)).float().to(device)
    Ks = cameras.orbit_intrinsics(views, size, size).float().to(device)
    weights = torch.rand(views, size, size, 3, generator=g).to(device)
    background = torch.ones(3, device=device)
    out = {}
    for engine in render.ENGINES:
        image, alpha = render.render(engine, means, quats, scales, opacities, colors, poses, Ks, size, size,
                                     background)
        grads = torch.autograd.grad((image * weights).sum() + alpha.sum(), (means, quats, scales, opacities, colors))
        out[engine] = (image.detach(), alpha.detach(), grads)
    names = ("means", "quats", "scales", "opacities", "colors")
    result = {"gaussians": count, "size": size, "views": views,
              "image": C.compare(out["torch"][0], out["gsplat"][0]),
              "alpha": C.compare(out["torch"][1], out["gsplat"][1]), "gradients": {}}
    for name, a, b in zip(names, out["torch"][2], out["gsplat"][2]):
        cosine = torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()
        result["gradients"][name] = {"cosine": cosine, **C.compare(a, b)}
    return result


def held_out(views: int, frames: int, size: int, direction: str, engine: str, device) -> dict:
    step = 360.0 / max(views - 1, 1)
    azimuth = torch.arange(views - 1, dtype=torch.float64) * step + step / 2
    between, _, _ = scene.matrix(views, frames, size, direction, azimuth=azimuth, engine=engine, device=device)
    return {"azimuth": azimuth, "targets": between}


def fitted_psnr(result: fit.Fitted, azimuth, elevation, frames, targets, engine, device) -> float:
    values = []
    for f in frames:
        image, _ = fit.render_fitted(result, azimuth, elevation, torch.full((len(azimuth),), float(f)),
                                     targets.shape[2], targets.shape[3], engine, device)
        values.append(losses.psnr(image.clamp(0, 1), targets[:, f]).mean().item())
    return sum(values) / len(values)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--views", type=int, default=21)
    p.add_argument("--frames", type=int, default=25)
    p.add_argument("--size", type=int, default=576)
    p.add_argument("--iterations", type=int, default=5000)
    p.add_argument("--warmup", type=int, default=3000)
    p.add_argument("--direction", default="right", choices=sorted(cameras.DIRECTIONS))
    p.add_argument("--torch-iterations", type=int, default=3)
    p.add_argument("--out", default=C.RESULTS_DIR)
    p.add_argument("--name", default="gaussians4d")
    p.add_argument("--cpu", action="store_true", help="a dry run of the fit on the CPU with the torch rasteriser")
    p.add_argument("--nodes", action="store_true", help="also time the three nodes end to end")
    p.add_argument("--skip-fit", action="store_true", help="leave out the fit section (2)")
    args = p.parse_args()
    device = torch.device("cpu" if args.cpu else "cuda")
    engine = "torch" if args.cpu else "gsplat"
    results = {"args": vars(args)}
    if not args.cpu:
        t0 = time.perf_counter()
        problem = render.gsplat_problem(device)
        results["gsplat_first_use_seconds"] = round(time.perf_counter() - t0, 1)
        if problem:
            results["gsplat_problem"] = problem
            print(C.save_results(args.name, results, args.out))
            return 1
        results["agreement"] = agreement(device)
        print("agreement", results["agreement"]["image"], flush=True)
        C.save_results(args.name, results, args.out)

    V, F, S = args.views, args.frames, args.size
    targets, azimuth, elevation = scene.matrix(V, F, S, args.direction, engine=engine, device=device)
    if not args.skip_fit:
        fit_sections(args, results, targets, azimuth, elevation, engine, device)
    if args.torch_iterations and not args.cpu:
        results["torch_rasteriser"] = time_torch(args, targets, azimuth, elevation, device)
        print("torch", results["torch_rasteriser"], flush=True)
    if args.nodes:
        results["nodes"] = time_nodes(args, targets, azimuth, elevation)
        print("nodes", results["nodes"], flush=True)
    print(C.save_results(args.name, results, args.out))
    return 0


def time_torch(args, targets, azimuth, elevation, device) -> dict:
    """Seconds an iteration and peak memory of the fit with the pack's torch rasteriser, from the same start."""
    V, _, S = targets.shape[:3]
    config = fit.FitConfig(iterations=args.iterations, warmup=args.warmup)
    poses = cameras.orbit_poses(azimuth, elevation, cameras.SV3D_RADIUS, cameras.DIRECTIONS[args.direction])
    trial = fit.Fit(targets, poses, cameras.orbit_intrinsics(V, S, S), config, "torch", torch.ones(3), device)
    trial.run(1)
    C.reset_peak()
    _, t = C.timed(trial.run, args.torch_iterations)
    return {"seconds_per_iteration": round(t / args.torch_iterations, 3), "gaussians": len(trial.gaussians),
            "peak_gib": round(C.peak_gib(), 2),
            "extrapolated_fit_minutes": round(t / args.torch_iterations * args.iterations / 60, 1)}


def time_nodes(args, targets, azimuth, elevation) -> dict:
    """The three nodes as ComfyUI calls them, on the matrix as an IMAGE batch (view-major)."""
    import tempfile

    os.environ.setdefault("INVERSEDVS_OUTPUT_DIR", tempfile.mkdtemp())
    from inversedvs.nodes import gaussians4d as nodes

    V, F, S = targets.shape[:3]
    images = targets.reshape(V * F, S, S, 3)
    # what core's SV3D_Conditioning puts into its positive: one CLIP-vision embedding and latent per init image
    conditioning = [[torch.zeros(1, F, 1024), {"concat_latent_image": torch.zeros(F, 4, S // 8, S // 8),
                                               "elevation": elevation.tolist(), "azimuth": azimuth.tolist()}]]
    defaults = fit.FitConfig()
    (fitted, renders), fit_s = C.timed(nodes.FitDynamicGaussians().fit, images, conditioning, args.iterations,
                                       args.warmup, defaults.gaussians, "auto", cameras.SV3D_FOV_DEG, "white",
                                       "auto", 0)
    (video, mask), render_s = C.timed(nodes.RenderDynamicGaussians().render, fitted, nodes.DEFAULT_RENDER_FRAMES,
                                      0.0, 360.0, 10.0, 0.0, 1.0, 0, 0, "auto")
    saved, save_s = C.timed(nodes.SaveDynamicGaussians().save, fitted, "bench/gaussians")
    files = saved["result"][0].splitlines()
    folder = os.environ["INVERSEDVS_OUTPUT_DIR"]
    return {"fit_node_seconds": round(fit_s, 1), "renders_psnr": losses.psnr(renders, images).mean().item(),
            "direction_found": fitted.direction,
            "render_node_seconds": round(render_s, 2), "render_frames": video.shape[0],
            "render_shape": list(video.shape), "mask_mean": mask.mean().item(),
            "save_node_seconds": round(save_s, 2), "ply_files": len(files),
            "ply_bytes_each": os.path.getsize(os.path.join(folder, files[0]))}


def fit_sections(args, results, targets, azimuth, elevation, engine, device) -> None:
    V, F, S = targets.shape[:3]
    config = fit.FitConfig(iterations=args.iterations, warmup=args.warmup)
    C.reset_peak()
    losses_seen = []
    result, seconds = C.timed(fit.fit_matrix, targets, azimuth, elevation, config, "auto", engine=engine,
                              device=device, callback=lambda i, loss: losses_seen.append(loss))
    peak = C.peak_gib()
    everything = list(range(F))
    between = held_out(V, F, S, args.direction, engine, device)
    mid_times = torch.arange(F - 1, dtype=torch.float64) + 0.5
    poses = cameras.orbit_poses(azimuth, elevation, cameras.SV3D_RADIUS,
                                cameras.DIRECTIONS[args.direction]).float().to(device)
    Ks = cameras.orbit_intrinsics(V, S, S).float().to(device)
    psnr_mid = []
    for t in mid_times.tolist():
        g = scene.at_time(scene.canonical(), t / (F - 1)).map(lambda x: x.to(device))
        truth, _ = render.render(engine, *g.activated(), poses, Ks, S, S, torch.ones(3, device=device))
        image, _ = fit.render_fitted(result, azimuth, elevation, torch.full((V,), t), S, S, engine, device)
        psnr_mid.append(losses.psnr(image.clamp(0, 1), truth.cpu().clamp(0, 1)).mean().item())
    static = []
    frame0, _ = fit.render_fitted(result, azimuth, elevation, torch.zeros(V), S, S, engine, device)
    for f in everything:
        static.append(losses.psnr(frame0.clamp(0, 1), targets[:, f]).mean().item())
    results["fit"] = {
        "matrix": {"views": V, "frames": F, "size": S, "direction_true": args.direction},
        "config": {k: getattr(config, k) for k in ("iterations", "warmup", "gaussians", "views_per_step",
                                                   "densify_until", "grad_threshold", "far_weight")},
        "direction_found": result.direction,
        "seconds": round(seconds, 1),
        "seconds_per_iteration": round(seconds / (args.iterations + fit.probe_iterations(config)), 4),
        "peak_gib": round(peak, 2),
        "gaussians_final": len(result.gaussians),
        "loss_first_last": [losses_seen[0], sum(losses_seen[-50:]) / len(losses_seen[-50:])],
        "psnr_training_images": fitted_psnr(result, azimuth, elevation, everything, targets, engine, device),
        "psnr_training_frame0": fitted_psnr(result, azimuth, elevation, [0], targets, engine, device),
        "psnr_training_last_frame": fitted_psnr(result, azimuth, elevation, [F - 1], targets, engine, device),
        "psnr_held_out_views": fitted_psnr(result, between["azimuth"], elevation[:V - 1], everything,
                                           between["targets"], engine, device),
        "psnr_held_out_times": sum(psnr_mid) / len(psnr_mid),
        "psnr_static_baseline": sum(static) / len(static),
        "psnr_white_image": losses.psnr(torch.ones_like(targets[:, 0]), targets[:, 0]).mean().item(),
    }
    print("fit", results["fit"], flush=True)
    C.save_results(args.name, results, args.out)



if __name__ == "__main__":
    sys.exit(main())
