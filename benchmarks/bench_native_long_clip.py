"""Clips longer than Wan's 81-frame window on the native path: time and device memory against length, and the seams.

    python benchmarks/bench_native_long_clip.py --comfyui DIR       # GPU: 14B fp8, 480x832, 81 and 157 frames
    python benchmarks/bench_native_long_clip.py --comfyui DIR --size tiny --lengths 81,85 --steps 2   # CPU smoke

The models are bench_native_wan.py's (core's WanModel at Wan 2.1 I2V 14B's sizes, fp8, random weights: cost, not
quality; core's Wan 2.1 VAE at seeded random weights). Per length, the method as the native long-clip workflow
wires it: procedural scene (orbit) → Forward Warp → Pad Frames → core VAE Encode → WanImageToVideo at length 81
(empty prompt; the prompt) → Invert (native) (``--overlap``) → Sample (native) with its defaults → core VAE Decode →
the padding dropped. Recorded per length: the windows, the seconds and the device peak of Invert and of Sample,
and the most latent frames one model pass was given. On the longest length a second run with k = 0, uniform
guidance and the inversion ending at the sampling start (where sampling marches the inversion back) measures the
seams: the frame-to-frame error |Δout − Δin| of the latent over the pairs where one window hands over to the next,
against the same measure over the pairs inside windows (the host test's measure, tests/test_native_windows.py).
``--one-window`` repeats that run with the backend's window widened to the whole clip (one pass over every frame,
off Wan's training length): the same measures, seconds and peak, windowed against one window.
Results: benchmarks/results/native_long_clip[_tiny].json with the command.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import bench_native_wan as NW  # noqa: E402

sys.path.insert(0, os.path.join(C.REPO_ROOT, "tests"))

WINDOW_LENGTH = 81  # WanImageToVideo's length: one window's image condition (each window gets its own)


class LargestPass:
    """A core model wrapper: the most latent frames one model pass was given."""

    def __init__(self):
        self.frames = 0

    def __call__(self, apply_model, args):
        self.frames = max(self.frames, int(args["input"].shape[2]))
        return apply_model(args["input"], args["timestep"], **args["c"])


def seam_pairs(spans) -> list[int]:
    """Latent frame pairs (t, t+1), by t, where a window hands over: from the pair entering the shared frames to the
    pair leaving them."""
    return sorted({t for i in range(1, len(spans)) for t in range(spans[i][0] - 1, spans[i - 1][1])})


def seam_metrics(out: torch.Tensor, truth: torch.Tensor, spans) -> dict:
    errors = (out.diff(dim=2) - truth.diff(dim=2)).abs().mean(dim=(0, 1, 3, 4))
    seams = seam_pairs(spans)
    inside = [t for t in range(errors.shape[0]) if t not in set(seams)]
    mean = lambda idx: round(float(errors[idx].mean()), 6) if idx else None  # noqa: E731
    seam, within = mean(seams), mean(inside)
    return {"seam_error": seam, "inside_error": within, "ratio": round(seam / within, 4) if seam and within else None,
            "relative_error": round(float((out - truth).norm() / truth.norm()), 5), "seam_pairs": len(seams)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--comfyui", default=os.environ.get("COMFYUI_DIR", os.path.join(C.REPO_ROOT, ".host", "ComfyUI")),
                   help="ComfyUI's source folder (default: $COMFYUI_DIR or .host/ComfyUI)")
    p.add_argument("--size", choices=sorted(NW.SIZES), default="14b")
    p.add_argument("--lengths", default="81,157", help="clip lengths in frames (81: one window; 157: two at overlap 8)")
    p.add_argument("--steps", type=int, default=10, help="steps of Invert and Sample (core's template: 20; time per "
                                                         "window is linear in them)")
    p.add_argument("--overlap", type=int, default=8, help="window_overlap of Invert (native)")
    p.add_argument("--no-seams", action="store_true", help="skip the k = 0 seam run on the longest length")
    p.add_argument("--one-window", action="store_true",
                   help="also run the k = 0 reconstruction of the longest length in one window over the whole clip")
    p.add_argument("--out", default=None, help="results folder (default benchmarks/results)")
    args = p.parse_args(argv)

    cuda = torch.cuda.is_available()
    NW.import_core(args.comfyui, cpu=not cuda, core_args=[])
    C.load_pack()
    import comfy.sd
    from comfy_extras.nodes_wan import WanImageToVideo
    from nodes import VAEDecode, VAEEncode

    from inversedvs.backend import comfy_native
    from inversedvs.nodes.camera import CameraTrajectory
    from inversedvs.nodes.native import DEFAULT_EXPERT_BOUNDARY, NativeInvert, NativePadFrames, NativeSample
    from inversedvs.nodes.warp import DEPTH_KIND_CHOICES, ForwardWarp
    from inversedvs.warp import synthetic as S

    config, _, height, width = NW.SIZES[args.size]
    device = "cuda" if cuda else "cpu"
    lengths = [int(v) for v in args.lengths.split(",")]
    results = {"size": args.size, "height": height, "width": width, "steps": args.steps, "overlap": args.overlap,
               "lengths": {}}
    setup = NW.Stages("setup", results)
    state = setup.run("random fp8 state dict", NW.random_wan_state, config, device)
    model = setup.run("core load_diffusion_model_state_dict", comfy.sd.load_diffusion_model_state_dict, state)
    del state
    from _comfy_host import wan21_vae

    vae = setup.run("core Wan 2.1 VAE", wan21_vae)
    largest = LargestPass()
    patched = model.clone()
    patched.set_model_unet_function_wrapper(largest)
    text, negative, empty = NW.conditioning(1), NW.conditioning(2), NW.conditioning(3)
    vision = NW.VisionOutput(4)
    defaults = {name: spec[1]["default"] for name, spec in NativeSample.INPUT_TYPES()["required"].items()
                if isinstance(spec[1], dict) and "default" in spec[1]}
    clip = S.random_scene(NW.SCENE_SEED)

    def i2v(prompt, start):
        return WanImageToVideo.execute(prompt, negative, vae, width, height, WINDOW_LENGTH, 1, start_image=start,
                                       clip_vision_output=vision).result

    with torch.inference_mode():  # as ComfyUI's executor runs every node (Stages too)
        for frames in lengths:
            stages = NW.Stages(f"{frames} f", results.setdefault("stages", {}))
            scene = stages.run("render procedural scene", S.render_clip, clip, frames, height, width, device)
            images, depth = scene["image"].float().cpu(), scene["depth"].float().cpu()
            path = CameraTrajectory().build(NW.PRESET, "", frames, 1.0, 0, clip.fov_x_deg)[0]
            warped, mask = stages.run("Forward Warp", ForwardWarp().warp, images, depth.unsqueeze(-1), path,
                                      DEPTH_KIND_CHOICES[1], 0)[:2]
            padded, padded_mask, count = NativePadFrames().pad(warped, mask, vae)
            (latent,) = stages.run("VAE Encode (padded warp)", VAEEncode().encode, vae, padded)
            positive, negative_m, _ = stages.run("WanImageToVideo", i2v, text, warped[:1])
            pos_inv = [[empty[0][0], positive[0][1]]]  # the same image condition with the empty prompt
            largest.frames = 0
            (inverted,) = stages.run("Invert (native)", NativeInvert().invert, patched, pos_inv, latent, args.steps,
                                     defaults["strength"], "sampling_start", None, DEFAULT_EXPERT_BOUNDARY,
                                     args.overlap)
            (out,) = stages.run("Sample (native)", NativeSample().sample, patched, vae, positive, negative_m, latent,
                                inverted, padded_mask, args.steps, defaults["strength"], defaults["k"],
                                defaults["guidance"], defaults["preservation"], defaults["dynamic_guidance"],
                                defaults["seed"])
            decoded = stages.run("VAE Decode", VAEDecode().decode, vae, out)[0][:count]
            invert_row, sample_row = stages.table["Invert (native)"], stages.table["Sample (native)"]
            results["lengths"][str(frames)] = {
                "windows": [list(s) for s in inverted["inversion"]["windows"]],
                "latent_frames": int(latent["samples"].shape[2]), "largest_pass_latent_frames": largest.frames,
                "invert_seconds": invert_row["seconds"], "sample_seconds": sample_row["seconds"],
                "invert_peak_gib": invert_row["peak_gib"], "sample_peak_gib": sample_row["peak_gib"],
                "decoded_frames": int(decoded.shape[0]), "finite": bool(torch.isfinite(out["samples"]).all()),
            }
            print(frames, results["lengths"][str(frames)], flush=True)
            if frames == max(lengths) and not args.no_seams:
                def reconstruct():
                    noise = NativeInvert().invert(model, pos_inv, latent, args.steps, 1.0, "sampling_start", None,
                                                  DEFAULT_EXPERT_BOUNDARY, args.overlap)[0]
                    back = NativeSample().sample(model, vae, positive, negative_m, latent, noise,
                                                 torch.zeros_like(padded_mask), args.steps, 1.0, 0, 1.0, 1.0, False,
                                                 defaults["seed"])[0]
                    return back["samples"], noise["inversion"]["windows"]

                back, spans = stages.run("k = 0 reconstruction, windowed", reconstruct)
                results["seams"] = dict(frames=frames, **seam_metrics(back, latent["samples"], spans),
                                        **stages.table["k = 0 reconstruction, windowed"])
                print("seams", results["seams"], flush=True)
                if args.one_window:
                    saved = comfy_native.WINDOW_FRAMES
                    comfy_native.WINDOW_FRAMES = max(saved, int(padded.shape[0]))
                    try:
                        whole, whole_spans = stages.run("k = 0 reconstruction, one window", reconstruct)
                    finally:
                        comfy_native.WINDOW_FRAMES = saved
                    assert len(whole_spans) == 1
                    # the windowed run's hand-over pairs, measured on the one-window result
                    results["one_window"] = dict(frames=frames, **seam_metrics(whole, latent["samples"], spans),
                                                 **stages.table["k = 0 reconstruction, one window"])
                    print("one window", results["one_window"], flush=True)
    rows = [results["lengths"][str(f)] for f in lengths]
    per_window = [(r["invert_seconds"] + r["sample_seconds"]) / len(r["windows"]) for r in rows]
    results["summary"] = {"seconds_per_window": [round(s, 3) for s in per_window],
                          "peak_gib": max(max(r["invert_peak_gib"], r["sample_peak_gib"]) for r in rows)}
    print(results["summary"], flush=True)
    print("saved", C.save_results("native_long_clip" + ("" if args.size == "14b" else "_tiny"), results, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
