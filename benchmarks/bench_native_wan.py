"""The method on Wan 2.1 I2V 14B under ComfyUI's own memory management, beside plain core image-to-video
generation of the same clip, in one run: per-stage time and peak device memory.

    python benchmarks/bench_native_wan.py --comfyui DIR                 # GPU: full-size 14B, fp8, 81x480x832
    python benchmarks/bench_native_wan.py --comfyui DIR --size tiny     # CPU smoke run (3 M-parameter Wan)

Weights are random (no trained Wan reaches this workplace): the figures are cost, not quality. The
transformer is core's own WanModel at Wan 2.1 I2V 14B's sizes, its matrices stored as float8_e4m3fn like
core's ``wan2.1_i2v_480p_14B_fp8_e4m3fn.safetensors``, loaded by ``comfy.sd.load_diffusion_model_state_dict``
(what UNETLoader does with weight_dtype "default"); the VAE is core's Wan 2.1 VAE at seeded random
weights (``tests/_comfy_host.wan21_vae``). The text encoder is left out of both sides (a random
512-token umt5 embedding); the CLIP vision output is a random ViT-H penultimate state, as
CLIPVisionEncode hands WanImageToVideo. ``--card-gib 24`` starts ComfyUI as on a 24 GiB card
(``--reserve-vram`` for the rest): native_wan_24gib.json.

Plain: core's WanImageToVideo (source's first frame) → KSampler (``--steps`` 20, cfg 6, uni_pc / simple,
core's Wan 2.1 I2V example) → VAE Decode. Method: Forward Warp (exact depth of a procedural scene, orbit)
→ VAE Encode of the warped clip → WanImageToVideo (first warped frame) for the inversion and the sampling →
Invert (native) → Sample (native) → VAE Decode, with the native nodes' defaults. Peaks are
``torch.cuda.max_memory_allocated`` inside each stage, models core keeps loaded included.
Results: benchmarks/results/native_wan[_tiny].json with the command.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

sys.path.insert(0, os.path.join(C.REPO_ROOT, "tests"))

# Wan 2.1 I2V 14B (the sizes core's model_detection reads from the 14B checkpoint; heads = dim // 128).
WAN21_I2V_14B = dict(model_type="i2v", in_dim=36, dim=5120, ffn_dim=13824, freq_dim=256, num_heads=40, num_layers=40,
                     out_dim=16, text_dim=4096)
# A tiny stand-in of the same family for the CPU smoke run.
WAN21_I2V_TINY = dict(WAN21_I2V_14B, dim=128, ffn_dim=256, num_heads=1, num_layers=2)
SIZES = {"14b": (WAN21_I2V_14B, 81, 480, 832), "tiny": (WAN21_I2V_TINY, 9, 64, 96)}
WEIGHT_SCALE = 0.02
TEXT_TOKENS, TEXT_WIDTH = 512, 4096  # umt5-xxl, as core's CLIPTextEncode gives Wan
CLIP_VISION_TOKENS, CLIP_VISION_WIDTH = 257, 1280  # ViT-H penultimate hidden states
# Core's Wan 2.1 image-to-video example: KSampler 20 steps, cfg 6, uni_pc, simple.
PLAIN_STEPS, PLAIN_CFG, PLAIN_SAMPLER, PLAIN_SCHEDULER = 20, 6.0, "uni_pc", "simple"
PRESET, SCENE_SEED, SEED = "orbit left", 0, 42
TARGET_RATIO, TARGET_PEAK_GIB = 1.6, 24.0


def import_core(comfyui: str, cpu: bool, core_args: list[str]):
    """Core's modules in this process (arguments parsed as ComfyUI's own start with ``core_args``, ``--cpu`` when
    asked), with a fresh temporary input folder: the pack puts its sample clips into ComfyUI's input folder when it
    loads, and a benchmark must not write into the checkout it is given."""
    sys.path.insert(0, comfyui)
    saved = sys.argv
    sys.argv = [saved[0]] + (["--cpu"] if cpu else []) + core_args
    try:
        import comfy.options

        comfy.options.enable_args_parsing()
        import comfy.cli_args  # noqa: F401
        import comfy.model_management  # noqa: F401
        import comfy.sd  # noqa: F401
        import folder_paths
    finally:
        sys.argv = saved
    folder_paths.set_input_directory(tempfile.mkdtemp(prefix="inversedvs-input-"))


def random_wan_state(config: dict, device: str, seed: int = 0) -> dict:
    """A state dict of core's WanModel at ``config``: matrices N(0, 0.02²) stored as float8_e4m3fn on the CPU
    (core's fp8 checkpoints), norm weights 1 and other vectors N(0, 0.02²) in bfloat16."""
    import comfy.ops
    from comfy.ldm.wan.model import WanModel

    with torch.device("meta"):
        model = WanModel(operations=comfy.ops.disable_weight_init, **config)
        shapes = {n: t.shape for n, t in model.state_dict().items()}
    gen = torch.Generator(device).manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        if "norm" in name and name.endswith("weight"):
            state[name] = torch.ones(shape, dtype=torch.bfloat16)
            continue
        value = torch.randn(shape, generator=gen, device=device, dtype=torch.bfloat16) * WEIGHT_SCALE
        state[name] = (value.to(torch.float8_e4m3fn) if len(shape) >= 2 else value).cpu()
    return state


class VisionOutput:
    """What core's CLIPVisionEncode hands WanImageToVideo (the attribute the Wan model reads)."""

    def __init__(self, seed: int):
        gen = torch.Generator().manual_seed(seed)
        self.penultimate_hidden_states = torch.randn(1, CLIP_VISION_TOKENS, CLIP_VISION_WIDTH, generator=gen)


def conditioning(seed: int):
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, TEXT_TOKENS, TEXT_WIDTH, generator=gen), {}]]


class Stages:
    """Per-stage seconds and device peak (GiB), printed as they finish."""

    def __init__(self, side: str, results: dict):
        self.side, self.table = side, results.setdefault(side, {})

    def run(self, name: str, fn, *args, **kwargs):
        C.reset_peak()
        before = C.allocated_gib()
        with torch.inference_mode():  # as ComfyUI's executor runs every node
            out, seconds = C.timed(fn, *args, **kwargs)
        self.table[name] = {"seconds": round(seconds, 3), "peak_gib": round(C.peak_gib(), 3),
                            "allocated_before_gib": round(before, 3)}
        print(f"{self.side:>6} | {name:<34} {seconds:8.2f} s  peak {C.peak_gib():7.2f} GiB "
              f"(from {before:6.2f})", flush=True)
        return out

    def total(self) -> float:
        return round(sum(row["seconds"] for row in self.table.values()), 3)

    def peak(self) -> float:
        return round(max(row["peak_gib"] for row in self.table.values()), 3)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--comfyui", default=os.environ.get("COMFYUI_DIR", os.path.join(C.REPO_ROOT, ".host", "ComfyUI")),
                   help="ComfyUI's source folder (default: $COMFYUI_DIR or .host/ComfyUI)")
    p.add_argument("--size", choices=sorted(SIZES), default="14b")
    p.add_argument("--steps", type=int, default=PLAIN_STEPS, help="steps of both sides (core's template: 20)")
    p.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    p.add_argument("--card-gib", type=float, default=None,
                   help="behave as on a card of this size: ComfyUI started with --reserve-vram for the rest")
    p.add_argument("--name", default=None, help="results file name (default native_wan[_tiny])")
    args = p.parse_args(argv)

    cuda = torch.cuda.is_available()
    core_args = []
    if args.card_gib and cuda:
        total = torch.cuda.get_device_properties(0).total_memory / C.GIB
        core_args = ["--reserve-vram", f"{max(total - args.card_gib, 0.0):.2f}"]
    import_core(args.comfyui, cpu=not cuda, core_args=core_args)
    C.load_pack()
    import comfy.model_management as mm
    import comfy.sample
    import comfy.sd
    from comfy_extras.nodes_wan import WanImageToVideo
    from nodes import VAEDecode, VAEEncode

    from inversedvs.nodes.camera import CameraTrajectory
    from inversedvs.nodes.native import NativeInvert, NativeSample
    from inversedvs.nodes.warp import DEPTH_KIND_CHOICES, ForwardWarp
    from inversedvs.warp import synthetic as S

    config, frames, height, width = SIZES[args.size]
    device = "cuda" if cuda else "cpu"
    results = {"size": args.size, "frames": frames, "height": height, "width": width, "steps": args.steps,
               "plain_sampler": {"cfg": PLAIN_CFG, "sampler": PLAIN_SAMPLER, "scheduler": PLAIN_SCHEDULER},
               "method_defaults": {name: spec[1].get("default") for name, spec in
                                   NativeSample.INPUT_TYPES()["required"].items() if isinstance(spec[1], dict)
                                   and "default" in spec[1] and name != "steps"},
               "vram_state": mm.vram_state.name, "card_gib": args.card_gib, "core_args": core_args}
    name = args.name or ("native_wan" if args.size == "14b" else "native_wan_tiny")
    setup = Stages("setup", results)

    state = setup.run("random fp8 state dict", random_wan_state, config, device)
    model = setup.run("core load_diffusion_model_state_dict", comfy.sd.load_diffusion_model_state_dict, state)
    del state
    from _comfy_host import wan21_vae  # core's Wan 2.1 VAE at seeded random weights, as the host tests build it

    vae = setup.run("core Wan 2.1 VAE", wan21_vae)
    results["model"] = {"class": type(model.model).__name__, "parameters": sum(p.numel() for p in
                                                                               model.model.parameters()),
                        "weight_dtype": str(model.model.diffusion_model.blocks[0].ffn[0].weight.dtype),
                        "compute_dtype": str(model.model.manual_cast_dtype)}
    print(results["model"], flush=True)

    clip = S.random_scene(SCENE_SEED)
    scene = setup.run("render procedural scene", S.render_clip, clip, frames, height, width, device)
    images, depth = scene["image"].float().cpu(), scene["depth"].float().cpu()
    text, negative, empty = conditioning(1), conditioning(2), conditioning(3)
    vision = VisionOutput(4)

    def i2v_conditioning(prompt, start):
        return WanImageToVideo.execute(prompt, negative, vae, width, height, frames, 1, start_image=start,
                                       clip_vision_output=vision).result

    # plain core image-to-video of the source clip's first frame
    plain = Stages("plain", results)
    positive_p, negative_p, latent_p = plain.run("WanImageToVideo", i2v_conditioning, text, images[:1])
    noise = torch.randn(latent_p["samples"].shape, generator=torch.Generator().manual_seed(SEED))
    out_p = plain.run("KSampler", comfy.sample.sample, model, noise, args.steps, PLAIN_CFG, PLAIN_SAMPLER,
                      PLAIN_SCHEDULER, positive_p, negative_p, latent_p["samples"], seed=SEED)
    plain.run("VAE Decode", VAEDecode().decode, vae, {"samples": out_p})

    # the method
    method = Stages("method", results)
    path = CameraTrajectory().build(PRESET, "", frames, 1.0, 0, clip.fov_x_deg)[0]
    warped, mask = method.run("Forward Warp", ForwardWarp().warp, images, depth.unsqueeze(-1), path,
                              DEPTH_KIND_CHOICES[1], 0)
    (latent,) = method.run("VAE Encode (warped clip)", VAEEncode().encode, vae, warped)
    first = warped[:1]
    pos_inv, _, _ = method.run("WanImageToVideo (inversion)", i2v_conditioning, empty, first)
    positive, negative_m, _ = method.run("WanImageToVideo (sampling)", i2v_conditioning, text, first)
    defaults = results["method_defaults"]
    (inverted,) = method.run("Invert (native)", NativeInvert().invert, model, pos_inv, latent, args.steps,
                             defaults["strength"], "sampling_start")
    (out_m,) = method.run("Sample (native)", NativeSample().sample, model, vae, positive, negative_m, latent, inverted,
                          mask, args.steps, defaults["strength"], defaults["k"], defaults["guidance"],
                          defaults["preservation"], defaults["dynamic_guidance"], defaults["seed"])
    method.run("VAE Decode", VAEDecode().decode, vae, out_m)

    results["summary"] = {
        "plain_seconds": plain.total(), "method_seconds": method.total(),
        "ratio": round(method.total() / plain.total(), 3), "target_ratio": TARGET_RATIO,
        "plain_peak_gib": plain.peak(), "method_peak_gib": method.peak(), "target_peak_gib": TARGET_PEAK_GIB,
        "finite": bool(torch.isfinite(out_m["samples"]).all()),
    }
    print(results["summary"], flush=True)
    print("saved", C.save_results(name, results, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
