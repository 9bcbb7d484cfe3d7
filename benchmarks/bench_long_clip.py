"""Clips longer than one model window, against ground truth: seams, fidelity windowed vs one window, time vs length.

    python benchmarks/bench_long_clip.py              # GPU: the shipped small model at 128x192, 17..97 frames, 30 steps
    python benchmarks/bench_long_clip.py --reduced    # CPU: 64x96 (no supersampling), 17 and 25 frames, 3 steps

The shipped small model's window is 17 frames (5 latent frames). Each procedural scene (held-out seeds, as in
bench_fidelity.py, whose scene_views and metrics are reused: the scene's motion spans the clip whatever its
length) is re-filmed along a preset at several lengths, every length through the nodes (VAE Encode Video →
K-RNR Invert → SLM → Sample → VAE Decode Video) in these rows:

* ``one window``: the whole clip in one denoiser window (the small model has rotary positions only, so it runs any
  length; it was trained on 17 frames, so beyond that this row is off its training length);
* ``windowed, overlap N``: windows of 17 frames sharing N frames (K-RNR Invert's window_overlap);
* ``windowed, overlap 4, hard cut``: the same windows with the overlap blend switched off (the previous window's
  weight set to 0; conditions still from the previous result) — what the seam measure reads without blending.

Per row: the fidelity metrics of bench_fidelity.py, the seam error (mean temporal error |Δout − Δtruth| over the
frame pairs where one window hands over to the next: from the first shared frame to the first frame only the later
window made) against the same measure over every other pair (inside windows), the seconds of Invert + Sample, the
largest latent (frames) handed to the denoiser, and the peak GPU memory of Invert + Sample.
Results: benchmarks/results/long_clip[_reduced].json with the command.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import bench_fidelity as BF  # noqa: E402  (loads the pack)

from inversedvs.krnr import windows as W  # noqa: E402
from inversedvs.nodes import _host  # noqa: E402
from inversedvs.nodes.diffusion import KRNRInvert, Sample, StochasticLatentModulate  # noqa: E402
from inversedvs.nodes.model import EncodeText, LoadVideoModel, VAEDecode, VAEEncode  # noqa: E402

HARD_CUT_OVERLAP = 4
K, MODE = BF.DEFAULT_K, "paper"


@contextlib.contextmanager
def one_window(model, latent_frames: int):
    """The model's window widened to the whole clip for the block."""
    saved = model.window_latent_frames
    model.window_latent_frames = max(saved, latent_frames)
    try:
        yield
    finally:
        model.window_latent_frames = saved


@contextlib.contextmanager
def hard_cut():
    """The previous window's blend weight 0 on every shared frame (the anchor switched off) for the block."""
    saved = W.previous_weights
    W.previous_weights = lambda shared: torch.zeros(shared)
    try:
        yield
    finally:
        W.previous_weights = saved


class Largest:
    """Wraps ``model.transformer_session``: the most latent frames one denoiser input had."""

    def __init__(self, model):
        self.model, self.inner, self.frames = model, model.transformer_session, 0

    @contextlib.contextmanager
    def __call__(self, condition, embeds):
        with self.inner(condition, embeds) as predict_v:
            def recorded(x, t):
                self.frames = max(self.frames, int(x.shape[2]))
                return predict_v(x, t)

            yield recorded


def handover_pairs(spans, frames: int, stride: int) -> list[int]:
    """Frame pairs (t, t+1), by t, where window i hands over to window i+1: from the first frame of the first shared
    latent frame to the first frame only window i+1 made (latent frame j holds frames stride·j−stride+1 … stride·j)."""
    pairs = set()
    for i in range(1, len(spans)):
        start, prev_end = spans[i][0], spans[i - 1][1]
        first = max(stride * start - stride + 1, 1)  # first frame of the first shared latent frame
        last = min(stride * prev_end - stride + 1, frames - 1)  # first frame of the first latent frame not shared
        pairs.update(range(first - 1, last))
    return sorted(p for p in pairs if p < frames - 1)


def pair_errors(out: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Temporal error per frame pair [F−1]: mean |(out[t+1] − out[t]) − (truth[t+1] − truth[t])|."""
    return ((out[1:] - out[:-1]) - (truth[1:] - truth[:-1])).abs().flatten(1).mean(1)


def run_row(model, views: dict, steps: int, overlap: int) -> tuple[torch.Tensor, dict]:
    """Output IMAGE of one row and what it cost."""
    latent = VAEEncode().encode(model, views["warped"], False)[0]
    positive, negative = EncodeText().encode(model, views["caption"], "")
    largest = Largest(model)
    model.transformer_session = largest
    C.reset_peak()
    try:
        def diffuse():
            noise = KRNRInvert().invert(model, latent, steps, BF.STRENGTH, "terminal", overlap)[0]
            clean, modulated, _ = StochasticLatentModulate().modulate(latent, noise, views["mask"], BF.SEED)
            result = Sample().sample(model, positive, negative, clean, modulated, views["mask"], steps, BF.STRENGTH, K,
                                     MODE, BF.GUIDANCE, 1.0, True, BF.SEED)[0]
            return noise["inversion"]["windows"], result

        (spans, result), seconds = C.timed(diffuse)
    finally:
        del model.transformer_session  # the class's method again
    out = VAEDecode().decode(model, result, False)[0]
    return out, {"windows": [list(s) for s in spans], "seconds": round(seconds, 3), "largest_latent_frames": largest.frames,
                 "peak_gib": round(C.peak_gib(), 3)}


def seam_metrics(out: torch.Tensor, truth: torch.Tensor, spans, stride: int) -> dict:
    errors = pair_errors(out, truth)
    seams = handover_pairs(spans, out.shape[0], stride)
    inside = [t for t in range(errors.shape[0]) if t not in set(seams)]
    mean = lambda idx: round(float(errors[idx].mean()), 5) if idx else None  # noqa: E731
    return {"seam_error": mean(seams), "inside_error": mean(inside), "seam_pairs": len(seams)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--presets", default="orbit left")
    p.add_argument("--lengths", default="17,33,65,97")
    p.add_argument("--overlaps", default="4,8,12")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--size", default=f"{BF.HEIGHT}x{BF.WIDTH}", help="height x width of the scenes (the model's 128x192)")
    p.add_argument("--supersample", type=int, default=BF.SUPERSAMPLE)
    p.add_argument("--reduced", action="store_true",
                   help="CPU run: seed 0, orbit left, 17 and 25 frames at 64x96 without supersampling, 3 steps, overlap 4")
    args = p.parse_args(argv)
    if args.reduced:
        args.seeds, args.presets, args.lengths, args.overlaps, args.steps = "0", "orbit left", "17,25", "4", 3
        args.size, args.supersample = "64x96", 1
    # bench_fidelity's scene size, read when its scene_views renders
    BF.HEIGHT, BF.WIDTH = (int(v) for v in args.size.split("x"))
    BF.SUPERSAMPLE = args.supersample
    os.environ["INVERSEDVS_MODELS_DIR"] = tempfile.mkdtemp(prefix="inversedvs-models-")
    os.makedirs(os.path.join(os.environ["INVERSEDVS_MODELS_DIR"], "inversedvs_video"))
    os.symlink(BF.MINI, os.path.join(os.environ["INVERSEDVS_MODELS_DIR"], "inversedvs_video", "mini"))
    dtype = "bf16" if _host.torch_device().type == "cuda" else "fp32"
    model = LoadVideoModel().load("mini", dtype, "resident", compile_transformer=False)[0]
    stride, window = model.temporal_compression, model.window_latent_frames
    overlaps = [int(o) for o in args.overlaps.split(",")]
    table = {}
    device = _host.torch_device()

    def views_of(seed: int, preset: str, frames: int) -> dict:
        """The fidelity benchmark's scene, exact depth and ground truth, with the mesh warp's output."""
        views = BF.scene_views(seed, preset, frames, device)
        views["warped"] = BF.warp_of(views, "mesh", "exact")[0]
        return views

    warm = views_of(0, BF.STILL, (window - 1) * stride + 1)
    run_row(model, warm, 2, overlaps[0])  # warm-up: kernels, caches
    for seed in [int(s) for s in args.seeds.split(",")]:
        for preset in args.presets.split(","):
            for frames in [int(n) for n in args.lengths.split(",")]:
                views = views_of(seed, preset, frames)
                latent_frames = W.latent_frames(frames, stride)
                rows = {}
                with one_window(model, latent_frames):
                    rows["one window"] = run_row(model, views, args.steps, overlaps[0])
                for overlap in overlaps:
                    rows[f"windowed, overlap {overlap}"] = run_row(model, views, args.steps, overlap)
                with hard_cut():
                    rows[f"windowed, overlap {HARD_CUT_OVERLAP}, hard cut"] = run_row(model, views, args.steps,
                                                                                     HARD_CUT_OVERLAP)
                # seams are read at the default windows' hand-overs for the one-window row (no seams of its own)
                for name, (out, cost) in rows.items():
                    spans = cost["windows"] if len(cost["windows"]) > 1 else \
                        W.window_spans(latent_frames, window, HARD_CUT_OVERLAP // stride)
                    entry = {"seed": seed, "preset": preset, "frames": frames, "output_frames": int(out.shape[0]),
                             **BF.metrics(out, views), **seam_metrics(out, views["truth"], spans, stride), **cost}
                    table.setdefault(name, []).append(entry)
                    print(name, {k: v for k, v in entry.items() if k != "windows"}, flush=True)
    keys = BF.METRICS + ("seam_error", "inside_error", "seconds", "largest_latent_frames", "peak_gib")
    summary = {}
    for name, entries in table.items():
        for frames in sorted({e["frames"] for e in entries}):
            at = [e for e in entries if e["frames"] == frames]
            summary.setdefault(name, {})[str(frames)] = {k: BF.mean_of([e[k] for e in at]) for k in keys if k in at[0]} | {
                "windows": len(at[0]["windows"])}
    for name, by_length in summary.items():
        for frames, s in by_length.items():
            print(f"{name:34s} {frames:>4s} frames " + " ".join(f"{k} {v}" for k, v in s.items()))
    result = {"settings": vars(args) | {"strength": BF.STRENGTH, "guidance": BF.GUIDANCE, "k": K, "window_frames":
                                        (window - 1) * stride + 1},
              "summary": summary, "rows": table}
    print(C.save_results("long_clip_reduced" if args.reduced else "long_clip", result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
