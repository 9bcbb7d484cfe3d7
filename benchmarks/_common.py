"""Timing, memory and result-file helpers shared by the GPU benchmarks."""

from __future__ import annotations

import json
import os
import platform
import shlex
import statistics
import sys
import time

import torch

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(BENCH_DIR)
RESULTS_DIR = os.path.join(BENCH_DIR, "results")
GIB = 1024**3


def load_pack():
    """Import the pack as package ``inversedvs`` exactly as the tests and ComfyUI do."""
    sys.path.insert(0, os.path.join(REPO_ROOT, "scripts"))
    from pack import load_pack as _load

    return _load("inversedvs")


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, *args, **kwargs):
    """(result, seconds) of one call, device work included."""
    sync()
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    sync()
    return out, time.perf_counter() - t0


def median_time(fn, repeat: int = 3, warmup: int = 1) -> float:
    """Median seconds of ``repeat`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    return statistics.median(timed(fn)[1] for _ in range(repeat))


def reset_peak() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def peak_gib() -> float:
    return torch.cuda.max_memory_allocated() / GIB if torch.cuda.is_available() else 0.0


def allocated_gib() -> float:
    return torch.cuda.memory_allocated() / GIB if torch.cuda.is_available() else 0.0


def environment() -> dict:
    env = {"python": platform.python_version(), "torch": torch.__version__}
    try:
        import diffusers

        env["diffusers"] = diffusers.__version__
    except ImportError:
        pass
    try:
        from importlib.metadata import version

        env["flash_attn_4"] = version("flash-attn-4")
    except Exception:  # not installed (the optional FlashAttention-4 kernel)
        pass
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / GIB, 1)
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
    return env


def compare(out: torch.Tensor, ref: torch.Tensor) -> dict:
    """How far ``out`` is from ``ref``: max and mean absolute difference, relative L2, ref's mean |x|."""
    d = (out.float() - ref.float())
    return {
        "max_abs": d.abs().max().item(),
        "mean_abs": d.abs().mean().item(),
        "rel_l2": (d.norm() / ref.float().norm().clamp_min(1e-12)).item(),
        "ref_abs_mean": ref.float().abs().mean().item(),
        "finite": bool(torch.isfinite(out).all().item()),
    }


def save_results(name: str, results: dict, out_dir: str | None = None) -> str:
    """Write ``results`` (plus the command line and environment) to ``<out_dir>/<name>.json``."""
    results = dict(results)
    results["command"] = " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0], REPO_ROOT)] + sys.argv[1:])
    results["environment"] = environment()
    results["date_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out_dir = out_dir or RESULTS_DIR
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    return path


def random_core_unet_state(device: str, seed: int = 0, **config) -> dict:
    """A state dict of core ComfyUI's UNetModel at ``config`` (core must be importable): matrices N(0, 1/fan_in),
    norm weights 1, other vectors 0, stored fp16 on the CPU like the released checkpoints; drawn on ``device``."""
    import comfy.ops
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    with torch.device("meta"):
        shapes = {n: t.shape for n, t in UNetModel(operations=comfy.ops.disable_weight_init, **config).state_dict().items()}
    gen = torch.Generator(device).manual_seed(seed)
    state = {}
    for name, shape in shapes.items():
        if len(shape) < 2:
            value = torch.ones(shape) if name.endswith("weight") else torch.zeros(shape)
        else:
            value = torch.randn(shape, generator=gen, device=device) / torch.Size(shape[1:]).numel() ** 0.5
        state[name] = value.half().cpu()
    return state
