"""The pack inside a real ComfyUI (scripts/comfy_host_check.py), when a checkout is given.

    COMFYUI_DIR=/path/to/ComfyUI [COMFYUI_PYTHON=/path/to/its/python] python -m pytest -m host

Skipped unless COMFYUI_DIR names a ComfyUI checkout (``make test`` runs it with ``.host/``). The
check starts ComfyUI in a temporary base directory with the pack installed as the README says and an
empty input folder, queues every example workflow through POST /prompt and checks in /history that
each of its output nodes ran; it also runs the full workflow with the choice values the first version
saved, the Wan workflow on core's loaders with a tiny WanModel, the SD 1.5 novel-view workflow on core's Load
Checkpoint with a tiny SD 1.5 checkpoint, and checks the error dialog's title.
When Chromium is installed it loads every workflow in ComfyUI's frontend (screenshots go to a temporary folder here; run the script itself to refresh docs/).
"""

import os
import subprocess
import sys

import pytest

from conftest import PACK_ROOT

COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
SCRIPT = os.path.join(PACK_ROOT, "scripts", "comfy_host_check.py")
HOST_TIMEOUT_S = 1800

pytestmark = [
    pytest.mark.host,
    pytest.mark.skipif(not COMFYUI_DIR or not os.path.isfile(os.path.join(COMFYUI_DIR, "main.py")),
                       reason="set COMFYUI_DIR to a ComfyUI checkout to run the host check"),
]


def test_pack_runs_in_comfyui(tmp_path):
    python = os.environ.get("COMFYUI_PYTHON", sys.executable)
    result = subprocess.run(
        [python, SCRIPT, "--comfyui", COMFYUI_DIR, "--screenshots", str(tmp_path)],
        capture_output=True, text=True, timeout=HOST_TIMEOUT_S,
    )
    print(result.stdout[-20000:])
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    for check in ("pack imported", "sample clips", "/object_info", "templates", "run inversedvs_geometry_preview",
                  "unknown choice", "error dialog", "run inversedvs_full_pipeline (tiny models)",
                  "run inversedvs_full_pipeline as first saved", "run inversedvs_sweep_k_guidance",
                  "run inversedvs_wan21_i2v_native (tiny Wan)", "run inversedvs_sd15_novel_view_fusion (tiny SD 1.5)",
                  "run inversedvs_wan21_long_clip_native (tiny Wan)"):
        assert any(line.startswith("[ok] " + check) for line in lines), check
    assert not any(line.startswith("[FAIL]") for line in lines)
    if any(line.startswith("[ok] frontend") for line in lines):
        assert len(list(tmp_path.glob("*.png"))) >= 4
