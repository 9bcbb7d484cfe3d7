"""Single-image novel views by signal/noise fusion on a full-size SD 1.5 UNet under ComfyUI's own memory management:
seconds and peak device memory of Invert Image, Novel View Fusion (both strategies) and Novel View Sample, beside
core's own sampling of the same latent size over the same number of steps.

    python benchmarks/bench_fusion.py --comfyui DIR                 # GPU: SD 1.5 at 512², 30 steps to t = 600
    python benchmarks/bench_fusion.py --comfyui DIR --size tiny     # CPU smoke run (the host tests' UNet, 64²)

Weights are random (no trained image model reaches this workplace): the figures are cost, not quality. The UNet is
core's UNetModel at SD 1.5's config (860 M parameters), stored fp16 like the released checkpoints and loaded by
``comfy.sd.load_diffusion_model_state_dict`` (what Load Diffusion Model does); the prompt embeddings are random CLIP-L
shaped tensors [1, 77, 768] and the source latent random (the text encoder and VAE are outside the measured part).
The path is an orbit of four cameras; ``views = all`` gives one view per camera. Results:
benchmarks/results/fusion[_tiny].json with the command.
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

# SD 1.5's UNet as core detects it (supported_models.SD15): 320·(1, 2, 4, 4) channels, 2 blocks per level
FULL_SD15 = dict(num_res_blocks=[2, 2, 2, 2], channel_mult=(1, 2, 4, 4), transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
                 transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], image_size=64)
PIXELS = {"full": 512, "tiny": 64}
TOKENS = 77
STEPS, TIMESTEP, CFG, SEED = 30, 600, 7.5, 42
CAMERAS = 4


def unet_state(full: bool, device: str, seed: int = 0) -> dict:
    """A random state dict of core's UNetModel at SD 1.5's config (``full``) or the host tests' tiny one
    (``C.random_core_unet_state``)."""
    from _comfy_host import SD15_UNET

    return C.random_core_unet_state(device, seed, **dict(SD15_UNET, **(FULL_SD15 if full else {})))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--comfyui", default=os.environ.get("COMFYUI_DIR", os.path.join(C.REPO_ROOT, ".host", "ComfyUI")),
                   help="ComfyUI's source folder (default: $COMFYUI_DIR or .host/ComfyUI)")
    p.add_argument("--size", choices=sorted(PIXELS), default="full")
    p.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = p.parse_args(argv)
    cuda = torch.cuda.is_available()
    import_core(args.comfyui, cpu=not cuda, core_args=[])
    C.load_pack()
    import comfy.model_management as mm
    import comfy.sample
    import comfy.samplers
    import comfy.sd
    from inversedvs.nodes import fusion
    from inversedvs.nodes.camera import CameraTrajectory

    device = "cuda" if cuda else "cpu"
    pixels = PIXELS[args.size]
    state, state_seconds = C.timed(unet_state, args.size == "full", device)
    model, load_seconds = C.timed(comfy.sd.load_diffusion_model_state_dict, state)
    del state
    results = {"size": args.size, "pixels": pixels, "steps": STEPS, "timestep": TIMESTEP, "cfg": CFG,
               "cameras": CAMERAS, "vram_state": mm.vram_state.name,
               "model": {"class": type(model.model).__name__,
                         "parameters": sum(t.numel() for t in model.model.parameters()),
                         "state_seconds": round(state_seconds, 2), "load_seconds": round(load_seconds, 2)}}
    print(results["model"], flush=True)
    gen = torch.Generator().manual_seed(SEED)
    empty = [[torch.randn(1, TOKENS, 768, generator=gen), {}]]
    prompt = [[torch.randn(1, TOKENS, 768, generator=gen), {}]]
    negative = [[torch.randn(1, TOKENS, 768, generator=gen), {}]]
    latent = {"samples": torch.randn(1, 4, pixels // 8, pixels // 8, generator=gen) * 4.0}
    rows = torch.linspace(1.25, 1.0, pixels).view(1, pixels, 1, 1)
    depth = rows.expand(1, pixels, pixels, 3).contiguous()
    path = CameraTrajectory().build("orbit left", "", CAMERAS, 1.0, 0, 60.0, 1.0)[0]

    stages = {}

    def stage(name, fn, *a):
        C.reset_peak()
        out, seconds = C.timed(fn, *a)
        stages[name] = {"seconds": round(seconds, 3), "peak_gib": round(C.peak_gib(), 3)}
        print(f"{name:40s} {seconds:8.2f} s  peak {stages[name]['peak_gib']:7.2f} GiB", flush=True)
        return out

    with torch.inference_mode():
        inversion = stage("Invert Image (30 steps to t = 600)", fusion.ImageInvert().invert, model, empty, latent,
                          STEPS, TIMESTEP)[0]
        for strategy in fusion.STRATEGIES:
            for views in fusion.VIEWS:
                start = stage(f"Fusion {strategy}, views = {views}", fusion.NovelViewFusion().fuse, model, empty,
                              inversion, depth, path, "metric", views, strategy, SEED)[0]
                stage(f"Sample {strategy}, views = {views}", fusion.NovelViewSample().sample, model, prompt, negative,
                      start, CFG)
        # core's own sampling of the same latent over the same number of steps (txt2img, KSampler's path)
        noise = torch.randn(latent["samples"].shape, generator=torch.Generator().manual_seed(SEED))
        sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "normal", STEPS)
        stage("core txt2img, ddim, 30 steps (the same size)",
              lambda: comfy.sample.sample_custom(model, noise, CFG, comfy.samplers.sampler_object("ddim"), sigmas,
                                                 prompt, negative, torch.zeros_like(noise), seed=SEED))
    results["stages"] = stages
    last = f"{fusion.STRATEGIES[0]}, views = {fusion.VIEWS[0]}"
    method = stages["Invert Image (30 steps to t = 600)"]["seconds"] + stages[f"Fusion {last}"]["seconds"] + \
        stages[f"Sample {last}"]["seconds"]
    plain = stages["core txt2img, ddim, 30 steps (the same size)"]["seconds"]
    results["summary"] = {"method_seconds_one_view": round(method, 3), "core_txt2img_seconds": round(plain, 3),
                          "ratio": round(method / plain, 3), "peak_gib": max(s["peak_gib"] for s in stages.values())}
    print(results["summary"], flush=True)
    print("saved", C.save_results("fusion" if args.size == "full" else "fusion_tiny", results, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
