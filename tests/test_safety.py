"""Safety on a shared ComfyUI server.

- nothing is unpickled and no code is evaluated: the pack's source is scanned for ``pickle``-family
  imports, ``eval``/``exec``, ``torch.load`` without ``weights_only=True``, ``numpy.load`` with
  ``allow_pickle=True``, ``trust_remote_code=True`` and ``use_safetensors=False``;
- files are written only inside the output folder;
- no network connection is opened at run time.
"""

from __future__ import annotations

import ast
import contextlib
import os
import socket

import pytest
import torch

from inversedvs.errors import InverseDVSError
from inversedvs.nodes.output import SaveVideo

PACK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SKIPPED_DIRS = {".git", ".venv", "venv", "__pycache__", "node_modules", ".pytest_cache"}
UNPICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "marshal", "shelve"}
EVALUATING_BUILTINS = {"eval", "exec"}


def pack_sources() -> list[str]:
    """Every .py file of the project (pack, scripts, benchmarks, tests), virtual environments excluded."""
    found = []
    for dirpath, dirnames, filenames in os.walk(PACK_ROOT):
        dirnames[:] = [d for d in dirnames if d not in SKIPPED_DIRS and not d.startswith(".")]
        found += [os.path.join(dirpath, f) for f in filenames if f.endswith(".py")]
    return sorted(found)


def _keyword(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _is_false(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def _dotted(node) -> str:
    """'torch.load' for an attribute chain, 'eval' for a name, '' otherwise."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def unsafe_uses(source: str, filename: str = "<source>") -> list[str]:
    """'file:line: what' for every unsafe construct in ``source``."""
    found = []
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        where = f"{os.path.relpath(filename, PACK_ROOT) if os.path.isabs(filename) else filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in UNPICKLING_MODULES:
                    found.append(f"{where}: imports {alias.name}")
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in UNPICKLING_MODULES:
                found.append(f"{where}: imports from {node.module}")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            tail = name.rsplit(".", 1)[-1]
            if name == "torch.load" and not _is_true(_keyword(node, "weights_only")):
                found.append(f"{where}: torch.load without weights_only=True")
            if tail == "load" and name.split(".")[0] in {"np", "numpy"} and _is_true(_keyword(node, "allow_pickle")):
                found.append(f"{where}: numpy.load with allow_pickle=True")
            if _is_true(_keyword(node, "trust_remote_code")):
                found.append(f"{where}: trust_remote_code=True")
            if _is_false(_keyword(node, "use_safetensors")):
                found.append(f"{where}: use_safetensors=False")
        elif isinstance(node, ast.Name) and node.id in EVALUATING_BUILTINS and isinstance(node.ctx, ast.Load):
            found.append(f"{where}: uses {node.id}")  # a call, or the builtin passed around
        elif isinstance(node, ast.Attribute) and _dotted(node) in {f"builtins.{b}" for b in EVALUATING_BUILTINS}:
            found.append(f"{where}: uses {_dotted(node)}")
    return sorted(set(found))


def test_scanner_catches_each_unsafe_construct():
    bad = {
        "import pickle": "imports pickle",
        "from dill import loads": "imports from dill",
        "eval('1')": "uses eval",
        "exec('x = 1')": "uses exec",
        "import builtins\nf = builtins.eval": "uses builtins.eval",
        "import torch\ntorch.load('w.pt')": "torch.load without weights_only=True",
        "import torch\ntorch.load('w.pt', weights_only=False)": "torch.load without weights_only=True",
        "import numpy as np\nnp.load('a.npy', allow_pickle=True)": "numpy.load with allow_pickle=True",
        "M.from_pretrained('x', trust_remote_code=True)": "trust_remote_code=True",
        "M.from_pretrained('x', use_safetensors=False)": "use_safetensors=False",
    }
    for source, what in bad.items():
        assert any(what in f for f in unsafe_uses(source)), source
    safe = "import torch\ntorch.load('w.pt', weights_only=True)\nmodel.eval()\nM.from_pretrained('x', use_safetensors=True)"
    assert unsafe_uses(safe) == []


def test_pack_has_no_unpickling_or_eval():
    sources = pack_sources()
    assert len(sources) > 10
    found = []
    for path in sources:
        with open(path, encoding="utf-8") as f:
            found += unsafe_uses(f.read(), path)
    assert found == []


# ----------------------------------------------------------------------------- outputs


@pytest.mark.parametrize("prefix", ["../x", "a/../../x", "..\\x", "/tmp/x", "C:\\x", "C:x", "\\\\server\\share\\x"])
def test_save_video_refuses_every_escape(tmp_path, monkeypatch, prefix):
    out = tmp_path / "deep" / "output"
    out.mkdir(parents=True)
    monkeypatch.setenv("INVERSEDVS_OUTPUT_DIR", str(out))
    before = set(os.listdir(tmp_path))
    with pytest.raises(InverseDVSError):
        SaveVideo().save(torch.rand(2, 8, 8, 3), 8.0, prefix)
    assert set(os.listdir(tmp_path)) == before and os.listdir(out) == []


@pytest.mark.parametrize("prefix,expected", [
    ("plain", "plain_00001_.mp4"),
    ("a/b/c", "a/b/c_00001_.mp4"),
    ("a\\b", "a/b_00001_.mp4"),
    ("./dot/./x", "dot/x_00001_.mp4"),
])
def test_save_video_writes_inside_the_output_folder(tmp_path, monkeypatch, prefix, expected):
    monkeypatch.setenv("INVERSEDVS_OUTPUT_DIR", str(tmp_path))
    result = SaveVideo().save(torch.rand(2, 8, 8, 3), 8.0, prefix)
    assert result["result"] == (expected,)
    written = [os.path.relpath(os.path.join(d, f), tmp_path).replace(os.sep, "/")
               for d, _, fs in os.walk(tmp_path) for f in fs]
    assert written == [expected]


# ----------------------------------------------------------------------------- network


class NetworkUsed(AssertionError):
    pass


@contextlib.contextmanager
def network_blocked():
    """Every socket connection (and DNS lookup) raises NetworkUsed while the block runs; yields the list
    of attempts, so an attempt a library caught and ignored is still seen."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise NetworkUsed(f"network access attempted: {args[:2]}")

    saved = socket.socket.connect, socket.socket.connect_ex, socket.create_connection, socket.getaddrinfo
    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
    socket.create_connection = refuse
    socket.getaddrinfo = refuse
    try:
        yield attempts
    finally:
        socket.socket.connect, socket.socket.connect_ex, socket.create_connection, socket.getaddrinfo = saved


def test_network_block_works():
    with network_blocked() as attempts, pytest.raises(NetworkUsed):
        socket.create_connection(("127.0.0.1", 9))
    assert len(attempts) == 1


def test_save_video_runs_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("INVERSEDVS_OUTPUT_DIR", str(tmp_path))
    with network_blocked() as attempts:
        SaveVideo().save(torch.rand(3, 16, 16, 3), 8.0, "offline")
    assert os.listdir(tmp_path) == ["offline_00001_.mp4"] and attempts == []


# ----------------------------------------------------------------------------- weights


class _Trap:
    """Unpickling this object creates ``marker`` (what a malicious checkpoint would do, harmlessly)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def booby_trapped_checkpoint(path, marker):
    """A pickle checkpoint at ``path`` that creates ``marker`` if anything unpickles it."""
    torch.save({"weight": torch.zeros(2), "payload": _Trap(marker)}, str(path))
    return path


def test_safetensors_check_reads_only_the_header(tmp_path):
    from safetensors.torch import save_file

    from inversedvs.nodes import _validate

    good = tmp_path / "lora.safetensors"
    save_file({"w": torch.ones(3)}, str(good))
    assert _validate.check_safetensors_file(str(good), "LoRA", "Load Model") == str(good)
    marker = tmp_path / "unpickled"
    for name in ("lora.bin", "renamed.safetensors"):
        booby_trapped_checkpoint(tmp_path / name, marker)
        with pytest.raises(InverseDVSError, match="safetensors"):
            _validate.check_safetensors_file(str(tmp_path / name), "LoRA", "Load Model")
    assert not marker.exists()


def test_the_whole_tiny_pipeline_runs_offline(tmp_path):
    """Load the model, encode text and video, invert, modulate, sample, decode, save: no socket opened."""
    from _pipeline import comfy_folders, load_tiny_model, run_pipeline

    with comfy_folders(str(tmp_path)), network_blocked() as attempts:
        model = load_tiny_model()
        out = run_pipeline(model, prefix="offline/run")
    assert (tmp_path / "output" / out["saved"]).is_file()
    assert attempts == []


# ----------------------------------------------------------------------------- inputs and models


def test_loaders_read_only_inside_comfyui_folders(tmp_path):
    """Real, valid files just outside the input and model folders are refused by name tricks."""
    import shutil

    from _pipeline import comfy_folders, source_clip
    from inversedvs.backend.tiny import cached_tiny_video_model
    from inversedvs.nodes.depth import DepthEstimate
    from inversedvs.nodes.model import LoadVideoModel
    from inversedvs.nodes.output import write_mp4
    from inversedvs.nodes.video import LoadVideo
    from inversedvs.warp.tiny_depth import save_tiny_depth_model

    root = tmp_path / "ComfyUI"
    outside = tmp_path / "private"
    outside.mkdir()
    write_mp4(str(outside / "secret.mp4"), source_clip()[0], 8.0)
    shutil.copytree(cached_tiny_video_model(), outside / "model")
    save_tiny_depth_model(str(outside), "depth")
    with comfy_folders(str(root)):
        (root / "input" / "link.mp4").symlink_to(outside / "secret.mp4")
        for name in ("../../private/secret.mp4", str(outside / "secret.mp4"), "link.mp4"):
            with pytest.raises(InverseDVSError, match="input folder"):
                LoadVideo().load(name, 5, 0, 1, 96, 64, "crop to fill")
        for name in ("../../../private/model", str(outside / "model")):
            with pytest.raises(InverseDVSError, match="was not found"):
                LoadVideoModel().load(name, "fp32", "resident", compile_transformer=False)
        with pytest.raises(InverseDVSError, match="was not found"):
            LoadVideoModel().load("tiny", "fp32", "resident", lora="../../../private/model/transformer/"
                                  "diffusion_pytorch_model.safetensors", compile_transformer=False)
        for name in ("../../../private/depth", str(outside / "depth")):
            with pytest.raises(InverseDVSError, match="was not found"):
                DepthEstimate().estimate(source_clip()[0], name, "running", 56, 5)
