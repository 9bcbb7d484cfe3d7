"""benchmarks/bench_fidelity.py: its row table, --rows, and the geometry rows against ground truth (no model)."""

import json

import pytest
import torch
from _scripts import load_script

# Clips of a quarter of the benchmark's size, rendered without supersampling, to keep the test short.
SMALL = {"HEIGHT": 64, "WIDTH": 96, "SUPERSAMPLE": 1}
# Measured 25.0 dB (seed 0, orbit left, 9 frames at 192x128; 20.8 dB at SMALL, 5 frames); a misplaced frame or a
# wrong target camera in the ground truth falls far below (the warp alone checks the ground truth on seen pixels).
WARP_SEEN_PSNR_MIN = 18.0


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/bench_fidelity.py", "inversedvs_bench_fidelity")


def test_every_row_is_one_known_setting_and_typos_are_refused(bench):
    assert {"k10", "k20", "reference", "slm_off", "slm_channel", "slm_frame", "guidance_uniform",
            "inversion_sampling_start", "degraded_depth", "points_warp", "speedups_eager_fp32",
            "speedups_loader_default"} <= set(bench.ROWS)
    with pytest.raises(ValueError, match="slm"):
        bench.check_row("typo", bench.Row("x", slm="tensors"))
    with pytest.raises(SystemExit, match="unknown row"):
        bench.parse_rows("k6,k7")
    # A speed-up row brings the eager fp32 row it is measured against.
    assert bench.parse_rows("speedups_compiled") == ["speedups_compiled", "speedups_eager_fp32"]


def test_degraded_depth_keeps_sky_and_scale_and_blurs_edges(bench):
    depth = torch.full((1, 16, 24), 4.0)
    depth[:, :, 12:] = 2.0
    depth[:, :2] = 0.0  # sky
    out = bench.degraded_depth(depth)
    assert bool((out[:, :2] == 0).all()) and bool((out[:, 2:] > 0).all())
    assert out[0, 8, 2].item() == pytest.approx(4.0, rel=0.01) and out[0, 8, 21].item() == pytest.approx(2.0, rel=0.01)
    assert 2.05 < out[0, 8, 12].item() < 3.95  # the occlusion edge is smoothed


def test_geometry_rows_on_cpu(bench, tmp_path, monkeypatch):
    monkeypatch.setenv("INVERSEDVS_MODELS_DIR", str(tmp_path))  # main() sets its own; restored after the test
    for name, value in SMALL.items():
        monkeypatch.setattr(bench, name, value)
    bench.main(["--seeds", "0", "--presets", "orbit left", "--frames", "5", "--out", str(tmp_path),
                "--rows", "warp,warp_degraded_depth,speedups_compiled"])
    result = json.loads((tmp_path / "fidelity.json").read_text())
    assert result["rows"]["warp_degraded_depth"]["settings"]["depth"] == "degraded"
    if not torch.cuda.is_available():
        assert set(result["skipped"]) == {"speedups_compiled", "speedups_eager_fp32"}
    moving, still = result["summary"]["warp"]["moving"], result["summary"]["warp"]["still"]
    assert still["psnr_seen"] == 100.0  # the identity warp is exact
    assert moving["psnr_seen"] > WARP_SEEN_PSNR_MIN
    assert result["summary"]["warp_degraded_depth"]["moving"]["psnr_seen"] < moving["psnr_seen"]
    sheets = sorted(p.name for p in (tmp_path / "fidelity_sheets").iterdir())
    assert sheets == ["all_rows.png", "warp.png", "warp_degraded_depth.png"]
