"""Fidelity against ground truth: held-out procedural scenes re-filmed along camera presets with the pack's small
model, each output compared with the scene rendered from the target cameras — the method's ablation table.

    python benchmarks/bench_fidelity.py                        # GPU if present: 4 seeds x 3 presets, 17 frames
    python benchmarks/bench_fidelity.py --reduced              # CPU smoke run: 1 seed, 1 preset, 9 frames, 6 steps
    python benchmarks/bench_fidelity.py --rows k6,k10,slm_off  # only these rows (ids of ROWS)

Seeds are below the training seed offset (never trained on). The source clip is rendered from the scene's own
camera with exact depth; Forward Warp moves it along the preset; the ground truth is the same scene at the same
moments rendered from the target cameras (target pose = anchor-to-frame transform x source pose). Every row is
one line of ROWS (its settings of the pack's nodes, recorded in the JSON) and is measured against the same ground
truth and the same seen / disoccluded regions (the hole mask of the mesh warp with exact depth), on every moving
preset and on the still path (identity camera: reconstruction). Rows that change the model's speed-ups run on a
CUDA GPU only and also record their output's difference from the eager fp32 model's. Metrics: PSNR on pixels
seen from the source, on disoccluded pixels, on the whole frame; SSIM of the whole frame; temporal error (mean
|frame difference of output − of ground truth|).
Results: benchmarks/results/<name>.json (fidelity, or fidelity_reduced) with the command, rewritten after each
model pass; contact sheets (ground truth over output, a few frames of one clip) per row in --sheets, and all rows
in one small sheet (docs/fidelity_sheet.png for the full run).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import sys
import tempfile
import textwrap
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402

C.load_pack()
import _points_warp as points  # noqa: E402  (after the pack: it shares the reprojection with the mesh warp)
from inversedvs.backend import attention, feedforward  # noqa: E402
from inversedvs.nodes import _host  # noqa: E402
from inversedvs.nodes.camera import CameraTrajectory  # noqa: E402
from inversedvs.nodes.diffusion import (  # noqa: E402
    DEFAULT_INVERSION_END, INVERSION_ENDS, MODES, SLM_SCOPES, KRNRInvert, Sample, StochasticLatentModulate)
from inversedvs.nodes.model import (  # noqa: E402
    DEFAULT_IMAGE_CONDITION, IMAGE_CONDITIONS, EncodeText, LoadVideoModel, VAEDecode, VAEEncode)
from inversedvs.nodes.warp import DEPTH_KIND_CHOICES, ForwardWarp  # noqa: E402
from inversedvs.warp import synthetic as S  # noqa: E402
from inversedvs.warp.trajectory import STILL  # noqa: E402

MINI = os.path.join(C.REPO_ROOT, "weights", "inversedvs-mini-cogvideox-i2v")
HEIGHT, WIDTH, SUPERSAMPLE = 128, 192, 2
STRENGTH, GUIDANCE, SEED = 0.98, 6.0, 42
DEFAULT_K = 6
METRIC = DEPTH_KIND_CHOICES[1]
SSIM_WINDOW, SSIM_C1, SSIM_C2 = 7, 0.01**2, 0.03**2

# The degraded depth: what a monocular depth node typically hands to Forward Warp instead of exact depth — its
# disparity smoothed across occlusion edges (a Gaussian of DEPTH_BLUR_SIGMA_PX pixels at 192x128: the edge blur
# of a network that sees the frame at a fraction of its size, and the error that matters most to a warp, since
# it decides where the surface tears) and quantised to DEPTH_LEVELS levels (the 8-bit IMAGE or video a depth map
# travels in). Sky (no depth) stays sky and the scale stays metric, and the path's radius scale is set so that the
# orbit pivot stays where the exact depth puts it: an error at the centre pixel (the pivot is its depth) would
# move the camera itself, away from the ground truth's, instead of degrading the warp.
DEPTH_BLUR_SIGMA_PX = 2.0
DEPTH_LEVELS = 256

# Sample's (guidance, preservation, dynamic_guidance) for each guidance form of a row.
GUIDANCE_FORMS = {
    "per_position": (GUIDANCE, 1.0, True),          # the pack's: dynamic guidance in unseen cells, 1 in seen ones
    "per_position_static": (GUIDANCE, 1.0, False),  # the same without the dynamic schedule
    "uniform": (GUIDANCE, GUIDANCE, False),         # one static scale in every cell (ordinary CFG)
    "none": (1.0, 1.0, False),                      # no guidance (one pass per step)
}
SLM_OFF = "off"  # SLM Node given an all-visible mask: it draws the posterior sample and changes nothing
SOURCES = ("warp", "noise", "inversion")  # no model / plain I2V from fresh noise (strength 1) / the method

# Loader settings of each model pass: dtype (None: bf16 on a GPU, fp32 on a CPU), then whether FlashAttention-4,
# the fused feed-forward and compiled blocks may be used (each still only where its own self-check passes).
# "eager" serves every row that does not name another; the others need a CUDA GPU.
MODEL_CONFIGS = {
    "eager": (None, False, False, False),
    "eager_fp32": ("fp32", False, False, False),
    "fused_ff": ("bf16", False, True, False),
    "flash4": ("bf16", True, False, False),
    "compiled": ("bf16", False, False, True),
    "loader_default": ("bf16", True, True, True),  # Load Video Model's defaults on a GPU
}
FP32 = "eager_fp32"
# What each speed-up config must have applied (the model's inversedvs_accel record) for its row to mean anything.
REQUIRED_ACCEL = {"fused_ff": ("ff_epilogue", True), "flash4": ("attention", "flash4"),
                  "compiled": ("compiled_blocks", True), "loader_default": ("compiled_blocks", True)}


@dataclasses.dataclass(frozen=True)
class Row:
    """One ablation row: the node settings that differ from the default row (K-RNR k = 6, paper mode)."""

    title: str
    source: str = "inversion"
    k: int = DEFAULT_K
    mode: str = MODES[0]
    slm: str = SLM_SCOPES[0]
    guidance: str = "per_position"
    inversion_end: str = DEFAULT_INVERSION_END
    image_condition: str = DEFAULT_IMAGE_CONDITION
    warp: str = "mesh"
    depth: str = "exact"
    model: str = "eager"

    def settings(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "title"}


ROWS = {
    "warp": Row("forward warp alone (no model)", source="warp"),
    "warp_points": Row("point warp alone (no model)", source="warp", warp="points"),
    "warp_degraded_depth": Row("forward warp alone, degraded depth (no model)", source="warp", depth="degraded"),
    "plain_i2v": Row("plain I2V from noise", source="noise"),
    "k0": Row("inversion k = 0", k=0),
    "k1": Row("K-RNR k = 1", k=1),
    "k2": Row("K-RNR k = 2", k=2),
    "k6": Row("K-RNR k = 6 (default: SLM tensor, per-position guidance, inversion to 999)"),
    "k10": Row("K-RNR k = 10", k=10),
    "k20": Row("K-RNR k = 20", k=20),
    "reference": Row("reference mode (released code's adaptive K-RNR, 3 SLM rounds)", mode=MODES[1]),
    "slm_off": Row("K-RNR k = 6, SLM off", slm=SLM_OFF),
    "slm_channel": Row("K-RNR k = 6, SLM within the channel", slm=SLM_SCOPES[1]),
    "slm_frame": Row("K-RNR k = 6, SLM within the channel and frame", slm=SLM_SCOPES[2]),
    "guidance_static": Row("K-RNR k = 6, per-position guidance without the dynamic schedule",
                           guidance="per_position_static"),
    "guidance_uniform": Row("K-RNR k = 6, uniform guidance 6 (static)", guidance="uniform"),
    "guidance_none": Row("K-RNR k = 6, no guidance", guidance="none"),
    "inversion_sampling_start": Row("K-RNR k = 6, inversion to the sampling start", inversion_end=INVERSION_ENDS[0]),
    "image_clip_first_frame": Row("K-RNR k = 6, image = clip's first latent frame",
                                  image_condition=IMAGE_CONDITIONS[2]),
    "points_warp": Row("K-RNR k = 6, point warp", warp="points"),
    "degraded_depth": Row("K-RNR k = 6, degraded depth", depth="degraded"),
    "speedups_eager_fp32": Row("speed-ups: none, fp32 (the comparison)", model=FP32),
    "speedups_eager_bf16": Row("speed-ups: none, bf16 (= k6 on a GPU)"),
    "speedups_fused_ff": Row("speed-ups: fused feed-forward, bf16", model="fused_ff"),
    "speedups_flash4": Row("speed-ups: FlashAttention-4, bf16", model="flash4"),
    "speedups_compiled": Row("speed-ups: compiled blocks, bf16", model="compiled"),
    "speedups_loader_default": Row("speed-ups: all (Load Video Model's defaults), bf16", model="loader_default"),
}


def check_row(row_id: str, row: Row) -> None:
    """Every setting of ``row`` must be one the runner knows (a typo in ROWS fails here, not mid-run)."""
    allowed = {"source": SOURCES, "mode": MODES, "slm": tuple(SLM_SCOPES) + (SLM_OFF,), "guidance": GUIDANCE_FORMS,
               "inversion_end": INVERSION_ENDS, "image_condition": IMAGE_CONDITIONS, "warp": ("mesh", "points"),
               "depth": ("exact", "degraded"), "model": MODEL_CONFIGS}
    for name, choices in allowed.items():
        if getattr(row, name) not in choices:
            raise ValueError(f"row {row_id}: {name} = {getattr(row, name)!r}; choose one of {', '.join(choices)}")


for _id, _row in ROWS.items():
    check_row(_id, _row)


def psnr(a: torch.Tensor, b: torch.Tensor, where: torch.Tensor | None = None) -> float | None:
    """PSNR in dB of IMAGEs [F, H, W, 3] in 0..1 over the pixels ``where`` [F, H, W] (all when None)."""
    err = (a - b).pow(2).mean(-1)
    if where is not None:
        if not bool(where.any()):
            return None
        err = err[where]
    return round(float(-10 * torch.log10(err.mean().clamp_min(1e-10))), 3)


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM of IMAGEs [F, H, W, 3] (uniform SSIM_WINDOW window, per channel)."""
    x, y = a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2)
    pool = torch.nn.AvgPool2d(SSIM_WINDOW, 1)
    mx, my = pool(x), pool(y)
    vx, vy, cxy = pool(x * x) - mx**2, pool(y * y) - my**2, pool(x * y) - mx * my
    s = ((2 * mx * my + SSIM_C1) * (2 * cxy + SSIM_C2)) / ((mx**2 + my**2 + SSIM_C1) * (vx + vy + SSIM_C2))
    return round(float(s.mean()), 4)


def temporal_error(out: torch.Tensor, truth: torch.Tensor) -> float:
    """Mean |(out[t+1] − out[t]) − (truth[t+1] − truth[t])| of IMAGEs [F, H, W, 3]."""
    return round(float(((out[1:] - out[:-1]) - (truth[1:] - truth[:-1])).abs().mean()), 5)


def degraded_depth(depth: torch.Tensor) -> torch.Tensor:
    """Metric depth [F, H, W] (0 = sky) → the degraded depth described at DEPTH_BLUR_SIGMA_PX (same shape, units)."""
    sky = depth <= 0
    disparity = torch.where(sky, torch.zeros_like(depth), 1.0 / depth.clamp_min(1e-6))
    radius = int(3 * DEPTH_BLUR_SIGMA_PX + 0.5)
    offsets = torch.arange(-radius, radius + 1, dtype=depth.dtype, device=depth.device)
    kernel = torch.exp(-0.5 * (offsets / DEPTH_BLUR_SIGMA_PX) ** 2)
    kernel = kernel / kernel.sum()
    x = disparity.unsqueeze(1)  # [F, 1, H, W]
    x = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (radius, radius, 0, 0), mode="replicate"),
                                   kernel.view(1, 1, 1, -1))
    x = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (0, 0, radius, radius), mode="replicate"),
                                   kernel.view(1, 1, -1, 1)).squeeze(1)
    top = x.amax().clamp_min(1e-12)
    quantised = torch.round(x / top * (DEPTH_LEVELS - 1)) / (DEPTH_LEVELS - 1) * top
    far = sky | (quantised <= 0)
    return torch.where(far, torch.zeros_like(depth), 1.0 / quantised.clamp_min(1e-12))


def same_pivot(path, exact: torch.Tensor, degraded: torch.Tensor):
    """``path`` with its radius scale set so that the ``degraded`` depth [F, H, W] gives the orbit radius the
    ``exact`` one does: the camera stays the ground truth's, only the warp's geometry degrades."""
    h, w = exact.shape[-2:]
    centre = float(degraded[path.anchor, h // 2, w // 2])
    if centre <= 0:  # no depth at the pivot: Forward Warp refuses it with its own message
        return path
    return dataclasses.replace(path, radius_scale=float(path.orbit_radius(exact)) / centre)


def scene_views(seed: int, preset: str, frames: int, device: torch.device) -> dict:
    """Source clip, exact depth, camera path and ground truth for ``seed`` filmed along ``preset`` (CPU tensors)."""
    clip = S.random_scene(seed)
    render = dict(dtype=torch.float64, supersample=SUPERSAMPLE, device=device)
    source = S.render_clip(clip, frames, HEIGHT, WIDTH, **render)
    path = CameraTrajectory().build(preset, "", frames, 1.0, 0, clip.fov_x_deg)[0]
    depth = source["depth"].float().cpu()
    radius = path.orbit_radius(depth.double())
    target = path.anchor_to_frame(float(radius)) @ source["world_to_camera"].cpu()
    truth = S.render_clip(clip, frames, HEIGHT, WIDTH, poses=target, K=path.target_intrinsics(HEIGHT, WIDTH),
                          **render)["image"].float().cpu()
    views = {"seed": seed, "preset": preset, "caption": clip.caption, "images": source["image"].float().cpu(),
             "depth": depth, "path": path, "truth": truth, "warps": {}}
    views["mask"] = warp_of(views, "mesh", "exact")[1]  # the seen / disoccluded regions every row is scored on
    return views


def warp_of(views: dict, warp: str, depth: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(warped IMAGE, hole MASK) of the clip by ``warp`` ("mesh": Forward Warp; "points": the replaced point
    splatting) from ``depth`` ("exact" or "degraded"), computed once per clip."""
    key = (warp, depth)
    if key not in views["warps"]:
        images, path, z = views["images"], views["path"], views["depth"]
        if depth == "degraded":
            z = degraded_depth(z)
            path = same_pivot(path, views["depth"], z)
        if warp == "mesh":
            views["warps"][key] = ForwardWarp().warp(images, z.unsqueeze(-1), path, METRIC, 0)
        else:
            device = _host.torch_device()
            z = z.to(device)
            radius = path.orbit_radius(z)
            warped, mask = points.forward_warp(images.to(device), z, path.anchor_to_frame(radius),
                                               path.source_intrinsics(HEIGHT, WIDTH),
                                               path.target_intrinsics(HEIGHT, WIDTH))
            views["warps"][key] = (warped.cpu(), mask.cpu())
    return views["warps"][key]


class Runner:
    """Each row's output IMAGE [F, H, W, 3] for one clip and one loaded model; shared stages computed once."""

    def __init__(self, model, views: dict, steps: int):
        self.model, self.views, self.steps, self.memo = model, views, steps, {}

    def _once(self, key, make):
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]

    def text(self):
        return self._once("text", lambda: EncodeText().encode(self.model, self.views["caption"], ""))

    def latent(self, row: Row) -> dict:
        warped = warp_of(self.views, row.warp, row.depth)[0]
        return self._once(("latent", row.warp, row.depth, row.image_condition),
                          lambda: VAEEncode().encode(self.model, warped, False, row.image_condition, SEED)[0])

    def inverted(self, row: Row) -> dict:
        return self._once(("inverted", row.warp, row.depth, row.image_condition, row.inversion_end),
                          lambda: KRNRInvert().invert(self.model, self.latent(row), self.steps, STRENGTH,
                                                      row.inversion_end)[0])

    def modulated(self, row: Row) -> tuple[dict, dict]:
        """SLM Node's (clean, noise); with SLM off it gets an all-visible mask (posterior sample, nothing filled)."""
        mask = warp_of(self.views, row.warp, row.depth)[1]

        def make():
            if row.slm == SLM_OFF:
                return StochasticLatentModulate().modulate(self.latent(row), self.inverted(row),
                                                           torch.zeros_like(mask), SEED)[:2]
            return StochasticLatentModulate().modulate(self.latent(row), self.inverted(row), mask, SEED, row.slm)[:2]

        return self._once(("modulated", row.warp, row.depth, row.image_condition, row.inversion_end, row.slm), make)

    def output(self, row: Row) -> torch.Tensor:
        return self._once(("output",) + tuple(row.settings().items()), lambda: self._output(row))

    def _output(self, row: Row) -> torch.Tensor:
        warped, mask = warp_of(self.views, row.warp, row.depth)
        if row.source == "warp":
            return warped
        positive, negative = self.text()
        guidance, preservation, dynamic = GUIDANCE_FORMS[row.guidance]
        if row.source == "noise":
            clean = self.modulated(row)[0]
            fresh = {"samples": torch.randn(clean["samples"].shape, generator=torch.Generator().manual_seed(SEED)),
                     "model": clean["model"]}
            latent = Sample().sample(self.model, positive, negative, clean, fresh, mask, self.steps, 1.0, 0, MODES[0],
                                     guidance, preservation, dynamic, SEED)[0]
        else:
            # Reference mode does its own three SLM rounds inside Sample, from the unmodulated latent and noise.
            clean, noise = (self.latent(row), self.inverted(row)) if row.mode == MODES[1] else self.modulated(row)
            latent = Sample().sample(self.model, positive, negative, clean, noise, mask, self.steps, STRENGTH, row.k,
                                     row.mode, guidance, preservation, dynamic, SEED)[0]
        return VAEDecode().decode(self.model, latent, False)[0]


def without_model(row: Row) -> tuple:
    """A row's settings other than the model pass (rows equal here differ only in the speed-ups)."""
    return tuple((k, v) for k, v in row.settings().items() if k != "model")


def metrics(out: torch.Tensor, views: dict) -> dict:
    truth, holes = views["truth"], views["mask"] > 0.5
    return {"psnr_all": psnr(out, truth), "psnr_seen": psnr(out, truth, ~holes), "psnr_holes": psnr(out, truth, holes),
            "ssim_all": ssim(out, truth), "temporal_error": temporal_error(out, truth)}


def difference(out: torch.Tensor, ref: torch.Tensor) -> dict:
    """How far a speed-up's output IMAGE is from the eager fp32 model's (relative L2, max |.|, PSNR)."""
    d = C.compare(out, ref)
    return {"vs_fp32_rel_l2": round(d["rel_l2"], 6), "vs_fp32_max_abs": round(d["max_abs"], 5),
            "vs_fp32_psnr": psnr(out, ref)}


METRICS = ("psnr_all", "psnr_seen", "psnr_holes", "ssim_all", "temporal_error", "vs_fp32_rel_l2", "vs_fp32_max_abs",
           "vs_fp32_psnr")


def mean_of(values: list) -> float | None:
    """Mean of the values that are not None (None when none are)."""
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 4) if known else None


@contextlib.contextmanager
def speed_ups(flash4: bool, fused_ff: bool):
    """Let Load Video Model use FlashAttention-4 / the fused feed-forward only when allowed (their self-checks
    answer "not available" otherwise), so each speed-up is measured alone."""
    saved = attention.pick_kernel, feedforward.epilogue_gelu_agrees
    if not flash4:
        attention.pick_kernel = lambda device, dtype: "sdpa"
    if not fused_ff:
        feedforward.epilogue_gelu_agrees = lambda device, dtype: False
    try:
        yield
    finally:
        attention.pick_kernel, feedforward.epilogue_gelu_agrees = saved


def load_model(config: str, cuda: bool):
    """The small model loaded by Load Video Model under ``config`` (MODEL_CONFIGS) and what it applied."""
    dtype, flash4, fused_ff, compiled = MODEL_CONFIGS[config]
    dtype = dtype or ("bf16" if cuda else "fp32")
    with speed_ups(flash4, fused_ff):
        model = LoadVideoModel().load("mini", dtype, "resident", compile_transformer=compiled)[0]
    applied = dict(getattr(model.transformer, "inversedvs_accel", {}), dtype=dtype)
    return model, applied


def sheet_picture(truth: torch.Tensor, outputs: list[torch.Tensor], frames: int, scale: float) -> torch.Tensor:
    """Ground truth over each output: ``frames`` evenly spaced frames side by side, resized by ``scale``.
    IMAGEs [F, H, W, 3] → one IMAGE [(1 + len(outputs))·h, frames·w, 3]."""
    pick = torch.linspace(0, truth.shape[0] - 1, frames).round().long()
    strips = []
    for video in [truth] + outputs:
        strip = video[pick].permute(0, 3, 1, 2)
        if scale != 1.0:
            strip = torch.nn.functional.interpolate(strip, scale_factor=scale, mode="area")
        strips.append(torch.cat(list(strip.permute(0, 2, 3, 1)), dim=1))
    return torch.cat(strips, dim=0).clamp(0, 1)


SHEET_FRAMES = 4  # per row's own sheet, full size
DOCS_SHEET = os.path.join(C.REPO_ROOT, "docs", "fidelity_sheet.png")  # the full run's combined sheet
COMBINED_FRAMES, COMBINED_SCALE, COMBINED_LABEL_PX, COMBINED_LABEL_CHARS, COMBINED_COLOURS = 3, 0.5, 200, 32, 128


def write_sheets(folder: str, combined: str, truth: torch.Tensor, outputs: dict, titles: dict) -> list[str]:
    """One PNG per row (ground truth over output) in ``folder`` and every row, labelled, in ``combined``; the
    benchmark's own earlier files there are replaced. Returns the paths written."""
    from PIL import Image, ImageDraw

    os.makedirs(folder, exist_ok=True)

    def save(picture, path: str, colours: int | None = None):
        image = picture if isinstance(picture, Image.Image) else \
            Image.fromarray((picture * 255).round().to(torch.uint8).numpy())
        if colours:  # a palette keeps the combined sheet small
            image = image.quantize(colours, dither=Image.Dither.NONE)
        image.save(path, optimize=True)
        return path

    written = [save(sheet_picture(truth, [out], SHEET_FRAMES, 1.0), os.path.join(folder, f"{row_id}.png"))
               for row_id, out in outputs.items()]
    picture = sheet_picture(truth, list(outputs.values()), COMBINED_FRAMES, COMBINED_SCALE)
    strip_h = picture.shape[0] // (1 + len(outputs))
    canvas = Image.new("RGB", (COMBINED_LABEL_PX + picture.shape[1], picture.shape[0]), "white")
    canvas.paste(Image.fromarray((picture * 255).round().to(torch.uint8).numpy()), (COMBINED_LABEL_PX, 0))
    draw = ImageDraw.Draw(canvas)
    for i, label in enumerate(["ground truth"] + [titles[r] for r in outputs]):
        draw.multiline_text((4, i * strip_h + 4), "\n".join(textwrap.wrap(label, COMBINED_LABEL_CHARS)), fill="black",
                            spacing=1)
    os.makedirs(os.path.dirname(os.path.abspath(combined)), exist_ok=True)
    written.append(save(canvas, combined, colours=COMBINED_COLOURS))
    return written


def summarise(rows: dict) -> dict:
    """Means per row over the moving clips and over the still ones."""
    summary = {}
    for row_id, entry in rows.items():
        for part, clips in (("moving", [c for c in entry["clips"] if c["preset"] != STILL]),
                            ("still", [c for c in entry["clips"] if c["preset"] == STILL])):
            if clips:
                means = {m: mean_of([c.get(m) for c in clips]) for m in METRICS}
                summary.setdefault(row_id, {})[part] = {m: v for m, v in means.items() if v is not None}
    return summary


def parse_rows(text: str) -> list[str]:
    wanted = [r.strip() for r in text.split(",") if r.strip()]
    unknown = [r for r in wanted if r not in ROWS]
    if unknown:
        raise SystemExit(f"bench_fidelity: unknown row(s) {', '.join(unknown)}; rows are: {', '.join(ROWS)}")
    if any(ROWS[r].model != "eager" and ROWS[r].model != FP32 for r in wanted) and "speedups_eager_fp32" not in wanted:
        wanted.append("speedups_eager_fp32")  # the speed-ups are measured against it
    return wanted


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2,3")
    p.add_argument("--presets", default="orbit left,truck right,arc up")
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--rows", default=",".join(ROWS), help="comma-separated row ids (default: all): " + ", ".join(ROWS))
    p.add_argument("--name", default=None, help="results file name (default fidelity, or fidelity_reduced)")
    p.add_argument("--out", default=C.RESULTS_DIR, help="folder of the results file (default benchmarks/results)")
    p.add_argument("--sheets", default=None, help="folder of the per-row contact sheets (default <out>/<name>_sheets)")
    p.add_argument("--sheet", default=None, help="the combined contact sheet (default docs/fidelity_sheet.png for a "
                                                 "full run, <sheets>/all_rows.png otherwise)")
    p.add_argument("--reduced", action="store_true", help="CPU smoke run: seed 0, orbit left, 9 frames, 6 steps")
    args = p.parse_args(argv)
    if args.reduced:
        args.seeds, args.presets, args.frames, args.steps = "0", "orbit left", 9, 6
    name = args.name or ("fidelity_reduced" if args.reduced else "fidelity")
    sheets = args.sheets or os.path.join(args.out, f"{name}_sheets")
    combined = args.sheet or (DOCS_SHEET if name == "fidelity" and args.out == C.RESULTS_DIR
                              else os.path.join(sheets, "all_rows.png"))
    wanted = parse_rows(args.rows)
    started = time.perf_counter()
    os.environ["INVERSEDVS_MODELS_DIR"] = tempfile.mkdtemp(prefix="inversedvs-models-")
    os.makedirs(os.path.join(os.environ["INVERSEDVS_MODELS_DIR"], "inversedvs_video"))
    os.symlink(MINI, os.path.join(os.environ["INVERSEDVS_MODELS_DIR"], "inversedvs_video", "mini"))
    device = _host.torch_device()
    cuda = device.type == "cuda"
    skipped = {r: "the speed-ups need a CUDA GPU (on a CPU the model runs eager fp32 only)"
               for r in wanted if ROWS[r].model != "eager" and not cuda}
    wanted = [r for r in wanted if r not in skipped]

    clips = [scene_views(int(s), preset, args.frames, device)
             for s in args.seeds.split(",") for preset in [STILL] + args.presets.split(",")]
    sheet_clip = next((i for i, v in enumerate(clips) if v["preset"] != STILL), 0)
    seconds = {"render_and_warp": round(time.perf_counter() - started, 1)}
    rows = {r: {"title": ROWS[r].title, "settings": ROWS[r].settings(), "clips": []} for r in wanted}
    sheet_outputs, accel = {}, {}
    # Outputs of rows that have an eager fp32 twin (the same settings, model = eager_fp32), theirs and the twin's.
    fp32_twins = {without_model(ROWS[r]) for r in wanted if ROWS[r].model == FP32}
    compared, fp32_outputs = {}, {}
    configs = [c for c in MODEL_CONFIGS if any(ROWS[r].model == c for r in wanted)]  # eager, then eager_fp32 first
    results = {}

    def save():
        results.update({"settings": vars(args) | {"strength": STRENGTH, "guidance": GUIDANCE,
                                                  "degraded_depth": {"blur_sigma_px": DEPTH_BLUR_SIGMA_PX,
                                                                     "levels": DEPTH_LEVELS},
                                                  "guidance_forms": GUIDANCE_FORMS,
                                                  "model_configs": MODEL_CONFIGS},
                        "speed_ups_applied": accel, "skipped": skipped, "seconds": seconds,
                        "summary": summarise(rows), "rows": rows})
        return C.save_results(name, results, args.out)

    for config in configs:
        pass_start = time.perf_counter()
        here = [r for r in wanted if ROWS[r].model == config]
        model, applied = (None, {}) if all(ROWS[r].source == "warp" for r in here) else load_model(config, cuda)
        accel[config] = applied
        need = REQUIRED_ACCEL.get(config)
        if need and applied.get(need[0]) != need[1]:
            for r in here:
                skipped[r] = f"{need[0]} was not applied here ({applied}): not available on this machine"
                rows.pop(r, None)
            continue
        for i, views in enumerate(clips):
            runner = Runner(model, views, args.steps)
            for r in here:
                out = runner.output(ROWS[r])
                entry = {"seed": views["seed"], "preset": views["preset"], **metrics(out, views)}
                if ROWS[r].source != "warp" and without_model(ROWS[r]) in fp32_twins:
                    (fp32_outputs if config == FP32 else compared)[(without_model(ROWS[r]), i, r)] = out
                rows[r]["clips"].append(entry)
                if i == sheet_clip:
                    sheet_outputs[r] = out
                print(views["seed"], views["preset"], r, entry, flush=True)
        seconds[f"pass {config}"] = round(time.perf_counter() - pass_start, 1)
        print(f"pass {config}: {seconds[f'pass {config}']} s", flush=True)
        save()

    fp32_by_clip = {(twin, i): out for (twin, i, _), out in fp32_outputs.items()}
    for (twin, i, r), out in compared.items():
        if r in rows and (twin, i) in fp32_by_clip:
            rows[r]["clips"][i].update(difference(out, fp32_by_clip[(twin, i)]))
    order = [r for r in ROWS if r in sheet_outputs]
    for path in write_sheets(sheets, combined, clips[sheet_clip]["truth"], {r: sheet_outputs[r] for r in order},
                             {r: ROWS[r].title for r in order}):
        print("sheet:", path)
    seconds["total"] = round(time.perf_counter() - started, 1)
    for row_id, parts in summarise(rows).items():
        for part, s in parts.items():
            print(f"{row_id:26s} {part:6s} " + " ".join(f"{m} {v}" for m, v in s.items()))
    print(save(), f"({seconds['total']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
