"""Loss curves of a training run as one PNG (pure torch; no plotting library needed).

    python training/plot.py training/runs/mini-v1
writes loss_curves.png there: one panel per stage, VAE on top, transformer below (loss against step, log
scale, light grid lines at powers of ten).
"""

from __future__ import annotations

import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
from demo import write_png  # noqa: E402

PANEL_H, PANEL_W, MARGIN = 240, 480, 12
CURVE, GRID = torch.tensor([0.1, 0.3, 0.8]), torch.tensor([0.85, 0.85, 0.85])


def draw_curve(steps: list[float], values: list[float]) -> torch.Tensor:
    """IMAGE [PANEL_H, PANEL_W, 3]: ``values`` (log scale) against ``steps`` on white, grid lines at powers of ten."""
    img = torch.ones(PANEL_H, PANEL_W, 3)
    logs = [math.log10(v) for v in values]
    lo, hi = math.floor(min(logs)), math.ceil(max(logs))
    hi = hi if hi > lo else lo + 1
    inner_h, inner_w = PANEL_H - 2 * MARGIN, PANEL_W - 2 * MARGIN

    def row(lv: float) -> int:
        return MARGIN + int(round((hi - lv) / (hi - lo) * (inner_h - 1)))

    for decade in range(lo, hi + 1):
        img[row(decade), MARGIN:PANEL_W - MARGIN] = GRID
    s0, s1 = steps[0], max(steps[-1], steps[0] + 1)
    xs = torch.tensor([MARGIN + (s - s0) / (s1 - s0) * (inner_w - 1) for s in steps])
    ys = torch.tensor([float(row(lv)) for lv in logs])
    for i in range(len(steps) - 1):  # dense samples along each segment
        n = int(max(abs(xs[i + 1] - xs[i]), abs(ys[i + 1] - ys[i]))) + 2
        a = torch.linspace(0, 1, n)
        x = (xs[i] + a * (xs[i + 1] - xs[i])).round().long()
        y = (ys[i] + a * (ys[i + 1] - ys[i])).round().long()
        img[y, x] = CURVE
    return img


def main(folder: str) -> str:
    panels = []
    for stage in ("vae", "transformer"):
        path = os.path.join(folder, f"{stage}_losses.json")
        if os.path.exists(path):
            with open(path) as f:
                log = json.load(f)["log"]
            panels.append(draw_curve([r[0] for r in log], [r[2] for r in log]))
    out = os.path.join(folder, "loss_curves.png")
    write_png(out, torch.cat(panels, dim=0))
    return out


if __name__ == "__main__":
    print(main(sys.argv[1]))
