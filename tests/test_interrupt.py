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


# ----------------------------------------------------------------------------- the diffusion loops

from _pipeline import (CLIP_NAME, DEPTH_INPUT_SIZE, FRAMES, HEIGHT, STRENGTH, WIDTH, comfy_folders,  # noqa: E402
                       load_tiny_model, source_clip)
from inversedvs.nodes.depth import DepthEstimate  # noqa: E402
from inversedvs.nodes.video import LoadVideo  # noqa: E402
from inversedvs.warp.tiny_depth import TINY_DEPTH_FOLDER  # noqa: E402
from inversedvs.nodes.diffusion import KRNRInvert, Sample, StochasticLatentModulate  # noqa: E402
from inversedvs.nodes.model import EncodeText, VAEEncode  # noqa: E402
from test_memory import live_tensors  # noqa: E402

LOOP_STEPS = 6


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny model and everything Sample needs, computed once."""
    root = tmp_path_factory.mktemp("comfy")
    with comfy_folders(str(root)):
        model = load_tiny_model()
        frames, mask = source_clip()
        latent = VAEEncode().encode(model, frames, False)[0]
        noise = KRNRInvert().invert(model, latent, LOOP_STEPS, STRENGTH, "terminal (reference)")[0]
        positive, negative = EncodeText().encode(model, "a dog", "blur")
        clean, modulated, _ = StochasticLatentModulate().modulate(latent, noise, mask, 42)
    return dict(model=model, mask=mask, latent=latent, noise=noise, positive=positive, negative=negative,
                clean=clean, modulated=modulated)


class CountingSession:
    """Wraps ``model.transformer_session`` to count transformer passes and sessions left open."""

    def __init__(self, model):
        self.model, self.inner = model, model.transformer_session
        self.passes = self.open = 0

    @contextlib.contextmanager
    def __call__(self, condition, embeds):
        with self.inner(condition, embeds) as predict_v:
            self.open += 1

            def counted(x, t):
                self.passes += 1
                return predict_v(x, t)

            try:
                yield counted
            finally:
                self.open -= 1


def _run_loop(tiny, which):
    if which == "invert":
        return KRNRInvert().invert(tiny["model"], tiny["latent"], LOOP_STEPS, STRENGTH, "terminal (reference)")
    return Sample().sample(tiny["model"], tiny["positive"], tiny["negative"], tiny["clean"], tiny["modulated"],
                           tiny["mask"], LOOP_STEPS, STRENGTH, 6, "paper", 6.0, 1.0, True, 42)


@pytest.mark.parametrize("which", ["invert", "sample"])
@pytest.mark.parametrize("cancel_at", [1, 3])
def test_cancel_stops_the_loop_within_one_step_and_frees_it(tiny, monkeypatch, which, cancel_at):
    model = tiny["model"]
    session = CountingSession(model)
    monkeypatch.setattr(model, "transformer_session", session, raising=False)
    releases = []
    real_release = model.release
    monkeypatch.setattr(model, "release", lambda: (releases.append(1), real_release())[1], raising=False)
    _run_loop(tiny, which)  # warm-up: caches (empty prompt, rotary tables) are not leaks
    full = session.passes
    session.passes = 0
    before = live_tensors()
    cuda_before = torch.cuda.memory_allocated() if torch.cuda.is_available() else 0
    with interrupt_on_call(cancel_at) as patch, pytest.raises(Interrupted):
        _run_loop(tiny, which)
    assert patch.calls == cancel_at
    assert session.passes == cancel_at < full  # one transformer pass per step, none after the cancel
    assert session.open == 0 and releases, "the model must leave the device after a cancel"
    assert live_tensors() == before, "tensors of the cancelled run are still alive"
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        print(f"\n{which}, cancelled at step {cancel_at}: CUDA allocated {cuda_before} B before, "
              f"{torch.cuda.memory_allocated()} B after")
        assert torch.cuda.memory_allocated() <= cuda_before


def test_cancel_stops_video_decoding_and_depth_within_one_frame(tmp_path):
    with comfy_folders(str(tmp_path)):
        with interrupt_on_call(2) as patch, pytest.raises(Interrupted):
            LoadVideo().load(CLIP_NAME, FRAMES, 0, 1, WIDTH, HEIGHT, "crop to fill")
        assert patch.calls == 2
        frames = source_clip()[0]
        with interrupt_on_call(3) as patch, pytest.raises(Interrupted):
            DepthEstimate().estimate(frames, TINY_DEPTH_FOLDER, "running", DEPTH_INPUT_SIZE, 1)
        assert patch.calls == 3  # one check per batch of one frame
