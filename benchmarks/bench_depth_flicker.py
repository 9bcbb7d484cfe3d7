"""Depth flicker before and after Depth Estimate's temporal alignment.

    python benchmarks/bench_depth_flicker.py --out benchmarks/results/depth_flicker.json

Flicker = mean |d[t] - d[t-1]| of the clip-normalised disparity (0 = steady). Two measurements:
  synthetic: the embedded sample clip's exact disparity with a random scale and shift per frame and
    1% pixel noise (what a per-frame depth network does to a video); also the error against the
    exact disparity after one best scale and shift for the whole clip.
  real clip: a real video through Depth Estimate's network code with a tiny Depth Anything of
    RANDOM weights (no real weights can be downloaded here) — its depth is meaningless, so this
    only shows what the alignment step does to a real clip's per-frame output, nothing about quality.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import REPO_ROOT, environment, load_pack  # noqa: E402

DEFAULT_CLIP = os.path.join(os.path.dirname(REPO_ROOT), "shared", "data", "videos", "cooker.mp4")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default=DEFAULT_CLIP)
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--out", default=os.path.join(REPO_ROOT, "benchmarks", "results", "depth_flicker.json"))
    args = parser.parse_args()
    pack = load_pack()
    from importlib import import_module

    dep = import_module(pack.__name__ + ".warp.depth")
    sample = import_module(pack.__name__ + ".warp.sample")
    result = {"metric": "mean |d[t]-d[t-1]| of clip-normalised disparity", "synthetic": {}, "real_clip": {}}

    _, depth = sample.sample_clip(args.frames, 120, 180)
    truth = 1.0 / depth
    g = torch.Generator().manual_seed(0)
    noisy = ((0.6 + 0.8 * torch.rand(args.frames, 1, 1, generator=g)) * truth
             + 0.3 * torch.rand(args.frames, 1, 1, generator=g)
             + 0.01 * float(truth.std()) * torch.randn(truth.shape, generator=g))

    def error(d):
        s, b = dep.fit_scale_shift(d.reshape(1, -1), truth.reshape(1, -1))
        return round(float((s * d + b - truth).abs().mean() / (truth.max() - truth.min())), 5)

    result["synthetic"]["exact_flicker"] = round(dep.temporal_flicker(truth), 5)
    for mode in dep.ALIGN_MODES:
        aligned = dep.align_temporal(noisy, mode)
        result["synthetic"][mode] = {"flicker": round(dep.temporal_flicker(aligned), 5), "error_vs_exact": error(aligned)}
        print("synthetic", mode, result["synthetic"][mode], flush=True)

    if os.path.isfile(args.clip):
        tiny = import_module(pack.__name__ + ".warp.tiny_depth")
        node = import_module(pack.__name__ + ".nodes.depth")
        video = import_module(pack.__name__ + ".nodes.video")
        root = tempfile.mkdtemp(prefix="inversedvs-flicker-")
        tiny.save_tiny_depth_model(os.path.join(root, "inversedvs_depth"))
        os.environ["INVERSEDVS_MODELS_DIR"] = root
        os.environ["INVERSEDVS_INPUT_DIR"] = os.path.dirname(os.path.abspath(args.clip))
        images = video.LoadVideo().load(os.path.basename(args.clip), args.frames, 0, 1, 360, 240, "crop to fill")[0]
        for mode in dep.ALIGN_MODES:
            out = node.DepthEstimate().estimate(images, tiny.TINY_DEPTH_FOLDER, mode, 252, 8)[0][..., 0]
            result["real_clip"][mode] = {"flicker": round(dep.temporal_flicker(out), 5)}
            print("real clip (random-weight model)", mode, result["real_clip"][mode], flush=True)
        result["real_clip"]["clip"] = os.path.basename(args.clip)
        result["real_clip"]["model"] = "tiny Depth Anything, RANDOM weights: the depth is meaningless"
    result["command"] = " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], REPO_ROOT)] + sys.argv[1:])
    result["environment"] = environment()
    result["date_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print("saved", args.out)


if __name__ == "__main__":
    main()
