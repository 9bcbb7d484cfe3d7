"""Can the GPU machine run gsplat, the CUDA Gaussian rasteriser that Diffusion²'s second stage (fitting
dynamic 3-D Gaussians to the generated V×F matrix) would need? Records what happened, as JSON.

    python benchmarks/probe_gsplat.py --out benchmarks/results   # on the GPU machine, gsplat importable

gsplat ships as a pure-Python wheel that compiles its CUDA kernels on first use (nvcc, the CUDA headers
and ninja must be on the machine), so the probe records the toolchain it finds, the compile time, and one
rasterisation of a few Gaussians checked against where they must land.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
import traceback

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402


def toolchain() -> dict:
    nvcc = shutil.which("nvcc") or (os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin", "nvcc"))
    found = {"torch_cuda": torch.version.cuda, "nvcc": nvcc if os.path.exists(nvcc) else None,
             "ninja": shutil.which("ninja"), "CUDA_HOME": os.environ.get("CUDA_HOME")}
    if found["nvcc"]:
        found["nvcc_version"] = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout.strip()[-80:]
    return found


def rasterise_once() -> dict:
    """Three opaque Gaussians in front of a pinhole camera; each must light the pixel it projects to."""
    from gsplat import rasterization

    dev = torch.device("cuda")
    means = torch.tensor([[0.0, 0.0, 2.0], [0.5, 0.0, 2.0], [0.0, -0.5, 2.0]], device=dev)
    quats = torch.tensor([[1.0, 0, 0, 0]] * 3, device=dev)
    scales = torch.full((3, 3), 0.02, device=dev)
    opacities = torch.ones(3, device=dev)
    colors = torch.eye(3, device=dev)
    K = torch.tensor([[[100.0, 0, 64], [0, 100.0, 64], [0, 0, 1]]], device=dev)
    image, alpha, _ = rasterization(means, quats, scales, opacities, colors, torch.eye(4, device=dev)[None], K, 128, 128)
    # x = fx·X/Z + cx: (64, 64), (89, 64), (64, 39)
    lit = [image[0, 64, 64, 0].item(), image[0, 64, 89, 1].item(), image[0, 39, 64, 2].item()]
    return {"lit_channels_at_projections": [round(v, 3) for v in lit], "alpha_sum": round(alpha.sum().item(), 2),
            "correct": all(v > 0.5 for v in lit)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default=C.RESULTS_DIR)
    args = p.parse_args()
    result = {"toolchain": toolchain(), "cuda_available": torch.cuda.is_available()}
    try:
        import gsplat

        result["gsplat_version"] = gsplat.__version__
        started = time.perf_counter()
        result["first_call"] = rasterise_once()
        result["first_call_seconds"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        rasterise_once()
        torch.cuda.synchronize()
        result["second_call_seconds"] = round(time.perf_counter() - started, 3)
        result["runs"] = bool(result["first_call"]["correct"])
    except Exception as err:  # the probe's job is to record why it does not run
        result["runs"] = False
        result["error"] = f"{type(err).__name__}: {str(err)[:600]}"
        result["traceback_tail"] = traceback.format_exc()[-1500:]
    print(result)
    print(C.save_results("gsplat_probe", result, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
