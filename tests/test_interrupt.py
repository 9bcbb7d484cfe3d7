"""ComfyUI's cancel: every loop stops within one step, leaves no partial file and frees its memory.

The host's interrupt is simulated by patching ``_host.throw_if_interrupted`` to raise on its n-th
call, as ComfyUI's ``throw_exception_if_processing_interrupted`` does once the user pressed cancel.
"""

from __future__ import annotations

import contextlib
import gc
import os

import pytest
import torch

from inversedvs.nodes import _host
from inversedvs.nodes.output import SaveVideo


class Interrupted(Exception):
    """Stands in for ComfyUI's InterruptProcessingException."""


class InterruptOnCall:
    """Patch for ``_host.throw_if_interrupted`` that raises on call ``n`` (1-based) and counts calls."""

    def __init__(self, n: int):
        self.n, self.calls = n, 0

    def __call__(self):
        self.calls += 1
        if self.calls >= self.n:
            raise Interrupted(f"cancelled at check {self.calls}")


@contextlib.contextmanager
def interrupt_on_call(n: int):
    saved = _host.throw_if_interrupted
    patch = InterruptOnCall(n)
    _host.throw_if_interrupted = patch
    try:
        yield patch
    finally:
        _host.throw_if_interrupted = saved


def files_under(folder) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


@pytest.mark.parametrize("cancel_at", [1, 4, 9])
def test_save_video_cancel_leaves_no_file(tmp_path, monkeypatch, cancel_at):
    monkeypatch.setenv("INVERSEDVS_OUTPUT_DIR", str(tmp_path))
    images = torch.rand(9, 32, 48, 3)
    with interrupt_on_call(cancel_at) as patch, pytest.raises(Interrupted):
        SaveVideo().save(images, 8.0, "InverseDVS/video")
    assert patch.calls == cancel_at  # stopped at the check that raised, not later
    assert files_under(tmp_path) == []


def test_save_video_checks_once_per_frame(tmp_path, monkeypatch):
    monkeypatch.setenv("INVERSEDVS_OUTPUT_DIR", str(tmp_path))
    with interrupt_on_call(10**9) as patch:
        SaveVideo().save(torch.rand(7, 16, 16, 3), 8.0, "v")
    assert patch.calls == 7
    assert files_under(tmp_path) == ["v_00001_.mp4"]
