"""Peak memory of Forward Warp on the CPU, in units of one float32 RGB video of the clip's size: what
``nodes/warp.py``'s WARP_MEMORY_COPIES must cover before the node refuses a clip for lack of memory.

    python benchmarks/bench_warp_memory.py            # writes benchmarks/results/warp_cpu_memory.json

Each size runs in a fresh process: the inputs (the video, its depth and an orbit path) are made first, then the
node warps once; the peak resident memory (the kernel's high-water mark, ru_maxrss) above what the process held with
its inputs is the warp's. The inputs themselves (the video and the depth the node is given) are not counted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

SIZES = ((49, 480, 720), (81, 480, 832), (25, 576, 1024))


def one(frames: int, height: int, width: int) -> dict:
    import gc

    import torch

    C.load_pack()
    from inversedvs.nodes.camera import CameraTrajectory
    from inversedvs.nodes.warp import ForwardWarp

    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", "2")))
    g = torch.Generator().manual_seed(0)
    images = torch.rand(frames, height, width, 3, generator=g)
    depth = torch.rand(frames, height, width, 3, generator=g).mul_(0.5).add_(0.25)
    path = CameraTrajectory().build("orbit_right", "", frames, 1.0, 0, 60.0)[0]
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    warped, mask = ForwardWarp().warp(images, depth, path, "relative", 0, "cpu")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    video = frames * height * width * 3 * 4
    return {"frames": frames, "height": height, "width": width, "video_mib": round(video / 2 ** 20, 1),
            "warp_peak_mib": round((peak - before) / 2 ** 20, 1), "videos": round((peak - before) / video, 2),
            "finite": bool(torch.isfinite(warped).all())}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--one", nargs=3, type=int, metavar=("FRAMES", "HEIGHT", "WIDTH"), help=argparse.SUPPRESS)
    p.add_argument("--out", default=C.RESULTS_DIR)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(*args.one)))
        return 0
    rows = []
    for size in SIZES:
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--one", *map(str, size)],
                              capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    result = {"rows": rows, "most_videos": max(r["videos"] for r in rows)}
    print(C.save_results("warp_cpu_memory", result, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
