"""Forward Warp speed: 49 frames at 720x480 and 1024x576, the mesh warp beside the point warp it replaced.

    python benchmarks/bench_warp.py --device cpu --threads 2 --out benchmarks/results/warp_cpu.json
    python benchmarks/bench_warp.py --device cuda --out benchmarks/results/warp_cuda.json

Times (median of --repeat runs after --warmup, the two warps interleaved in one run so that a
shared machine's load affects both alike) on data already on the device:
  warp:   the library call ``forward_warp`` (reproject, mesh rasterisation with z-test, interpolation);
  points: the replaced bilinear point splatting with gap filling (benchmarks/_points_warp.py);
  node:   the Forward Warp node end to end (input checks, relative depth → depth, orbit radius, warp).
Frames are random colours, depth a smooth disparity field; the path is the reference's loop2 shape.
The reference's per-frame warp loop takes 0.93 s for 49 frames at 576x1024 on one H100
(shared/data/anchors.json).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import REPO_ROOT, environment, load_pack, median_time, peak_gib, reset_peak, timed  # noqa: E402

REFERENCE_WARP_S = 0.933  # anchors.json: reference_warp_49_frames_576x1024_s
GPU_TARGET_S = 0.09
CPU_TARGET_S = 10.0
PATH_PRESET = "reference loop2"
MAX_RATIO = 2.0  # the mesh warp may take at most this multiple of the point warp's time


def parse_size(text: str) -> tuple[int, int]:
    w, h = text.lower().split("x")
    return int(w), int(h)


def make_inputs(frames: int, height: int, width: int, device: torch.device):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(frames, height, width, 3, generator=g)
    y = torch.linspace(0, 1, height).view(1, height, 1)
    x = torch.linspace(0, 1, width).view(1, 1, width)
    t = torch.linspace(0, 1, frames).view(frames, 1, 1)
    disparity = 0.3 + 0.4 * y + 0.2 * torch.sin(2 * math.pi * (2 * x + t)) * torch.cos(3 * math.pi * y)
    return images.to(device), disparity.unsqueeze(-1).expand(-1, -1, -1, 3).contiguous().to(device)


def interleaved_medians(fns, repeat: int, warmup: int) -> list[float]:
    """Median seconds of each of ``fns``, called in turn ``repeat`` times after ``warmup`` rounds."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(repeat):
        for fn, t in zip(fns, times):
            t.append(timed(fn)[1])
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto")
    parser.add_argument("--sizes", default="720x480,1024x576", help="comma-separated WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=49)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch's default)")
    parser.add_argument("--out", default=None, help="JSON file (default benchmarks/results/warp_<device>.json)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    pack = load_pack()
    from importlib import import_module

    splat = import_module(pack.__name__ + ".warp.splat")
    dep = import_module(pack.__name__ + ".warp.depth")
    traj = import_module(pack.__name__ + ".warp.trajectory")
    warp_node = import_module(pack.__name__ + ".nodes.warp")
    points = import_module("_points_warp")  # after the pack: it shares the reprojection with the current warp

    rows = []
    for size in args.sizes.split(","):
        width, height = parse_size(size)
        images, depth_image = make_inputs(args.frames, height, width, device)
        path = traj.camera_path(traj.preset_keyframes(PATH_PRESET), args.frames)
        z = dep.depth_for_warp(dep.image_to_map(depth_image), dep.RELATIVE)
        transforms = path.anchor_to_frame(path.orbit_radius(z))
        K_s, K_t = path.source_intrinsics(height, width), path.target_intrinsics(height, width)
        node = warp_node.ForwardWarp()
        relative = warp_node.DEPTH_KIND_CHOICES[0]
        node_device = "cpu" if device.type == "cpu" else "auto"  # auto = the GPU
        reset_peak()
        mesh_s, points_s = interleaved_medians(
            [lambda: splat.forward_warp(images, z, transforms, K_s, K_t),
             lambda: points.forward_warp(images, z, transforms, K_s, K_t)], args.repeat, args.warmup)
        mesh_peak = peak_gib()
        node_s = median_time(lambda: node.warp(images, depth_image, path, relative, 0, node_device), args.repeat,
                             args.warmup)
        warped, mask = node.warp(images, depth_image, path, relative, 0, node_device)
        row = {"size": f"{width}x{height}", "frames": args.frames, "warp_s": round(mesh_s, 4),
               "points_s": round(points_s, 4), "ratio": round(mesh_s / points_s, 3), "node_s": round(node_s, 4),
               "per_frame_ms": round(1000 * mesh_s / args.frames, 2), "hole_share": round(float(mask.float().mean()), 4)}
        if device.type == "cuda":
            row["warp_peak_gib"] = round(mesh_peak, 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
        del images, depth_image, z, warped, mask

    target = GPU_TARGET_S if device.type == "cuda" else CPU_TARGET_S
    big = next((r for r in rows if r["size"] == "1024x576"), None)
    result = {
        "benchmark": "forward warp: mesh rasterisation (warp_s) beside the replaced point splatting (points_s)",
        "device": str(device), "threads": torch.get_num_threads(), "path": PATH_PRESET,
        "cpu_count": os.cpu_count(), "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        "rows": rows,
        "target_s_49x576x1024": target,
        "reference_per_frame_loop_s_h100": REFERENCE_WARP_S,
        "command": " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], REPO_ROOT)] + sys.argv[1:]),
        "environment": environment(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    result["max_ratio"] = MAX_RATIO
    result["meets_ratio"] = all(r["ratio"] <= MAX_RATIO for r in rows)
    if big is not None:
        result["meets_target"] = big["warp_s"] <= target
        if device.type == "cuda":
            result["speedup_vs_reference"] = round(REFERENCE_WARP_S / big["warp_s"], 1)
    out = args.out or os.path.join(REPO_ROOT, "benchmarks", "results", f"warp_{device.type}.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    print("saved", out)


if __name__ == "__main__":
    main()
