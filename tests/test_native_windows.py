"""Clips longer than one model window on the native Wan path, in-process in the real host.

Wan's window is the backend's 81 frames (21 latent frames; Wan 2.2 TI2V-5B: 121 = 31), the real one: the
clips here are long in time and tiny in space (4×4 latent cells, 32×32 pixels at Wan 2.1's 8×), so 177 frames
cost little on the tiny models of tests/_comfy_host.py. The VAE is asked only for its compression (a stand-in
answers what core's Wan VAEs answer).

    COMFYUI_DIR=/path/to/ComfyUI <its python> -m pytest -m host tests/test_native_windows.py
"""

from __future__ import annotations

import pytest
import torch

from _comfy_host import HOST_MARKS, image_conditioning, save_tiny_wan, text_conditioning
from _comfy_host import comfy, inference  # noqa: F401  (fixtures)
from test_native_wan import ModelCalls
from inversedvs.errors import InverseDVSError

pytestmark = HOST_MARKS

LATENT_FRAMES = 45  # 177 frames
GRID = (4, 4)
OVERLAP = 8  # video frames = 2 latent frames
SPANS = [(0, 21), (19, 40), (24, 45)]  # windows of 21 latent frames sharing at least 2
STEPS = 6


class Compression:
    """What core's Wan VAEs report about their compression (comfy.sd.VAE: latent_dim 3)."""

    latent_dim = 3

    def __init__(self, spatial: int):
        self.spatial = spatial

    def temporal_compression_decode(self):
        return 4

    def spacial_compression_encode(self):
        return self.spatial


def nodes():
    from inversedvs.nodes import native

    return native


@pytest.fixture(scope="module")
def model(comfy, tmp_path_factory):
    import comfy.sd

    return comfy.sd.load_diffusion_model(save_tiny_wan(str(tmp_path_factory.mktemp("wan") / "tiny_wan21.safetensors")))


def smooth_latent(frames: int, channels: int = 16, grid=GRID, seed: int = 1) -> dict:
    """A latent that drifts smoothly over time (a video's latents change little from frame to frame)."""
    gen = torch.Generator().manual_seed(seed)
    a, b = (torch.randn(1, channels, 1, *grid, generator=gen) * 0.5 for _ in range(2))
    phase = torch.linspace(0, 3.0, frames).view(1, 1, frames, 1, 1)
    return {"samples": torch.cos(phase) * a + torch.sin(phase) * b}


def conditionings(samples: torch.Tensor) -> dict:
    return {name: image_conditioning(text_conditioning(seed), samples)
            for seed, name in enumerate(("empty", "positive", "negative"))}


def pixels(samples: torch.Tensor, spatial: int = 8) -> tuple[int, int, int]:
    t, h, w = samples.shape[2:]
    return ((t - 1) * 4 + 1, h * spatial, w * spatial)


def _invert(model, conds, latent, steps=STEPS, strength=1.0, overlap=OVERLAP, end="sampling_start"):
    return nodes().NativeInvert().invert(model, conds["empty"], latent, steps, strength, end, None, 0.9, overlap)[0]


def _sample(model, conds, latent, noise, mask, steps=STEPS, strength=1.0, k=0, guidance=1.0, dynamic=False,
            vae=Compression(8)):
    return nodes().NativeSample().sample(model, vae, conds["positive"], conds["negative"], latent, noise, mask, steps,
                                         strength, k, guidance, 1.0, dynamic, 42)[0]


class Passes(ModelCalls):
    """ModelCalls that also keeps the latent frames and the concat condition of every pass."""

    def __init__(self, comfy, cancel_at=None):
        super().__init__(comfy, cancel_at)
        self.frames, self.concat = [], []

    def __call__(self, apply_model, args):
        self.frames.append(int(args["input"].shape[2]))
        self.concat.append(args["c"].get("c_concat"))
        return super().__call__(apply_model, args)


@pytest.fixture(scope="module")
def long_clip():
    latent = smooth_latent(LATENT_FRAMES)
    return latent, conditionings(latent["samples"])


def test_a_long_clip_runs_window_by_window_each_later_window_conditioned_on_the_result(comfy, model, long_clip):
    import comfy.utils

    latent, conds = long_clip
    reports = []
    saved_hook = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.PROGRESS_BAR_HOOK = lambda value, total, preview, node_id=None: reports.append((value, total))
    passes = Passes(comfy)
    mask = torch.zeros(pixels(latent["samples"]))
    mask[:, :, 16:] = 1.0
    try:
        noise = _invert(passes.patch(model), conds, latent)
        inverted = list(reports)
        reports.clear()
        inversion_passes = passes.calls
        out = _sample(passes.patch(model), conds, latent, noise, mask, k=2, guidance=4.0, dynamic=True)
    finally:
        comfy.utils.PROGRESS_BAR_HOOK = saved_hook
    assert noise["inversion"]["windows"] == SPANS
    # the model saw one window at a time, never the clip's 45 latent frames
    assert set(passes.frames) == {21}
    assert inversion_passes == len(SPANS) * STEPS
    # one bar over the whole clip per node, reaching its end
    assert inverted == [(i, len(SPANS) * STEPS) for i in range(1, len(SPANS) * STEPS + 1)]
    assert reports[-1] == (len(SPANS) * STEPS, len(SPANS) * STEPS)  # strength 1: every step of the grid
    assert len({total for _, total in reports}) == 1
    samples = out["samples"]
    assert samples.shape == latent["samples"].shape and torch.isfinite(samples).all()
    process_in = model.get_model_object("process_latent_in")
    # sampling passes: window 0 on the clip's own start image; windows 1, 2 on the result at their start, known
    # (mask channels 1) on their first latent frame only
    sampled = passes.concat[inversion_passes:]
    per_window = len(sampled) // len(SPANS)
    for i, (start, _) in enumerate(SPANS):
        concat = sampled[i * per_window]
        mask_part, image_part = concat[:, :4], concat[:, 4:]
        assert bool((mask_part[:, :, 0] == 1).all()) and not bool(mask_part[:, :, 1:].any())
        want = latent["samples"][:, :, :1] if i == 0 else samples[:, :, start:start + 1]
        assert torch.allclose(image_part[:, :, :1], process_in(want), atol=1e-4), i
    # inversion: later windows on the input's latent frame at their start
    for i, (start, _) in enumerate(SPANS):
        image_part = passes.concat[i * STEPS][:, 4:]
        assert torch.allclose(image_part[:, :, :1], process_in(latent["samples"][:, :, start:start + 1]), atol=1e-5)


def _pair_errors(out: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """|Δout − Δtruth| per latent frame pair (t, t+1), mean over the rest: [T − 1]."""
    return ((out.diff(dim=2) - truth.diff(dim=2)).abs().mean(dim=(0, 1, 3, 4)))


def _seam_pairs(spans) -> set[int]:
    """Pairs (t, t+1), by t, where a window hands over: from the pair entering the shared frames to the pair
    leaving them."""
    return {t for i in range(1, len(spans)) for t in range(spans[i][0] - 1, spans[i - 1][1])}


def test_windowed_reconstruction_with_k0_shows_no_seams(comfy, model, long_clip):
    """k = 0, uniform guidance, inversion to the sampling start: sampling marches the inversion back. The temporal
    error across the hand-overs between windows is comparable to the error inside windows."""
    latent, conds = long_clip
    truth = latent["samples"]
    no_holes = torch.zeros(pixels(truth))
    errors = {}
    for steps in (4, 8):
        noise = _invert(model, conds, latent, steps)
        out = _sample(model, conds, latent, noise, no_holes, steps)["samples"]
        errors[steps] = float((out - truth).norm() / truth.norm())
    pairs = _pair_errors(out, truth)
    seams = sorted(_seam_pairs(SPANS))
    inside = [t for t in range(pairs.shape[0]) if t not in seams]
    seam_error, inside_error = float(pairs[seams].mean()), float(pairs[inside].mean())
    print(f"\nwindowed reconstruction, k = 0: ‖x̂−x‖/‖x‖ {errors}; temporal error at seams {seam_error:.5f}, inside "
          f"windows {inside_error:.5f} (ratio {seam_error / inside_error:.3f})")
    assert errors[8] < errors[4] and errors[8] < 0.2
    assert seam_error < 1.5 * inside_error
    # the measure can fail: the same windows with the overlap blend off and the later windows' image condition
    # zeroed instead of the previous result show their seams
    from inversedvs.backend import comfy_native
    from inversedvs.krnr import windows

    real, weights = comfy_native.window_conditioning, windows.previous_weights
    comfy_native.window_conditioning = lambda c, span, frame: real(c, span, None if frame is None else frame * 0)
    windows.previous_weights = lambda shared: torch.zeros(shared)
    try:
        broken = _sample(model, conds, latent, noise, no_holes, 8)["samples"]
    finally:
        comfy_native.window_conditioning, windows.previous_weights = real, weights
    broken_pairs = _pair_errors(broken, truth)
    print(f"without blend and condition: seams {float(broken_pairs[seams].mean()):.5f}, inside "
          f"{float(broken_pairs[inside].mean()):.5f}")
    assert float(broken_pairs[seams].mean()) > 1.5 * float(broken_pairs[inside].mean())


def test_a_clip_of_one_window_is_unchanged_by_the_windowing(comfy, model):
    """81 frames (exactly one window): Invert is the backend's plain inversion and Sample (native) the five-node
    wiring, to the last bit."""
    from comfy_extras.nodes_custom_sampler import KSamplerSelect, SamplerCustomAdvanced

    from inversedvs.backend import comfy_native

    latent = smooth_latent(21, seed=3)
    conds = conditionings(latent["samples"])
    mask = torch.zeros(pixels(latent["samples"]))
    mask[:, :, 16:] = 1.0
    n = nodes()
    noise = _invert(model, conds, latent, 4, 0.8)
    assert noise["inversion"]["windows"] == [(0, 21)]
    sigmas = comfy_native.inversion_sigmas(model, 4, 0.8, False)
    assert torch.equal(noise["samples"], comfy_native.invert(model, conds["empty"], latent["samples"], sigmas))
    vae = Compression(8)
    one = n.NativeSample().sample(model, vae, conds["positive"], conds["negative"], latent, noise, mask, 4, 0.8, 2,
                                  4.0, 1.0, True, 3)[0]
    clean_m, noise_m, unseen = n.NativeModulate().modulate(model, vae, latent, noise, mask, 3)
    (grid,) = n.NativeSigmas().sigmas(model, 4, 0.8)
    (start,) = n.NativeKRNRNoise().noise(model, clean_m, noise_m, grid, 2)
    (guider,) = n.NativeGuider().guider(model, conds["positive"], conds["negative"], unseen, 4.0, 1.0, True)
    wired = SamplerCustomAdvanced().sample(start, guider, KSamplerSelect().get_sampler("euler")[0], grid, latent)[0]
    assert torch.equal(one["samples"], wired["samples"])


def test_the_five_node_wiring_refuses_a_clip_longer_than_one_window(comfy, model, long_clip):
    latent, conds = long_clip
    n = nodes()
    noise = _invert(model, conds, latent, 2)
    mask = torch.zeros(pixels(latent["samples"]))
    clean_m, noise_m, unseen = n.NativeModulate().modulate(model, Compression(8), latent, noise, mask, 1)
    (grid,) = n.NativeSigmas().sigmas(model, 2, 1.0)
    with pytest.raises(InverseDVSError, match="K-RNR Noise.*177 frames.*window of 81 frames.*Sample \\(InverseDVS, "
                                              "native\\)"):
        n.NativeKRNRNoise().noise(model, clean_m, noise_m, grid, 2)
    with pytest.raises(InverseDVSError, match="Guider.*177 frames.*window of 81 frames"):
        n.NativeGuider().guider(model, conds["positive"], conds["negative"], unseen, 4.0, 1.0, True)


def test_window_overlap_must_fit_the_window(comfy, model, long_clip):
    latent, conds = long_clip
    for overlap in (6, 84, 2000):  # not a multiple of 4; not shorter than the 81-frame window; above the widget
        with pytest.raises(InverseDVSError, match="Invert \\(InverseDVS, native\\): window_overlap"):
            _invert(model, conds, latent, 2, overlap=overlap)
    short = smooth_latent(5)
    assert _invert(model, conditionings(short["samples"]), short, 2, overlap=84)["inversion"]["windows"] == [(0, 5)]


def test_cancel_stops_a_windowed_run_within_a_step(comfy, model, long_clip):
    import comfy.model_management as mm

    latent, conds = long_clip
    noise = _invert(model, conds, latent, 3)
    cancel_at = 3 + 2  # inside the second window
    calls = ModelCalls(comfy, cancel_at)
    with pytest.raises(mm.InterruptProcessingException):
        _invert(calls.patch(model), conds, latent, 3)
    assert calls.calls == cancel_at
    calls = ModelCalls(comfy, cancel_at)
    with pytest.raises(mm.InterruptProcessingException):
        _sample(calls.patch(model), conds, latent, noise, torch.zeros(pixels(latent["samples"])), 3)
    assert calls.calls == cancel_at
    assert not mm.processing_interrupted()


def test_ti2v_windows_keep_each_window_s_first_latent_frame_from_the_window_before(comfy, tmp_path):
    """Wan 2.2 TI2V-5B (121-frame window = 31 latent frames) takes its image as a kept first latent frame: inversion
    keeps the input's frame at each window's start clean, sampling keeps the previous window's result there."""
    import comfy.sd

    from inversedvs.backend import comfy_native

    model = comfy.sd.load_diffusion_model(save_tiny_wan(str(tmp_path / "ti2v.safetensors"), seed=2, model_type="t2v",
                                                        in_dim=48, out_dim=48))
    assert comfy_native.keeps_first_frame(model) and comfy_native.window_latent_frames(model) == 31
    latent = smooth_latent(40, channels=48)
    cond = text_conditioning(0)
    conds = {"empty": cond, "positive": cond, "negative": text_conditioning(1)}
    noise = _invert(model, conds, latent, 3)
    spans = noise["inversion"]["windows"]
    assert spans == [(0, 31), (9, 40)]
    x = latent["samples"]
    assert torch.allclose(noise["samples"][:, :, :1], x[:, :, :1], atol=1e-5)
    assert (noise["samples"][:, :, 31:] - x[:, :, 31:]).abs().mean() > 0.1  # window 1's own frames inverted
    mask = torch.zeros(pixels(x, 16))
    mask[:, :, 48:] = 1.0
    passes = Passes(comfy)
    out = _sample(passes.patch(model), conds, latent, noise, mask, 3, k=2, guidance=4.0, dynamic=True,
                  vae=Compression(16))["samples"]
    assert set(passes.frames) == {31}
    assert torch.allclose(out[:, :, :1], x[:, :, :1], atol=1e-5)  # the clip's image kept
    assert torch.isfinite(out).all() and (out[:, :, 1:] - x[:, :, 1:]).abs().mean() > 1e-3


def test_pad_frames_keeps_every_frame_for_core_s_vae_encode(comfy):
    n = nodes()
    images = torch.rand(7, 16, 24, 3)
    mask = (torch.rand(7, 16, 24) > 0.5).float()
    padded, padded_mask, count = n.NativePadFrames().pad(images, mask, Compression(8))
    assert count == 7 and padded.shape[0] == 9 and padded_mask.shape[0] == 9
    assert torch.equal(padded[:7], images) and torch.equal(padded[7], images[6]) and torch.equal(padded[8], images[6])
    assert torch.equal(padded_mask[:7], mask) and torch.equal(padded_mask[8], mask[6])
    same, _, nine = n.NativePadFrames().pad(padded, padded_mask, Compression(8))
    assert nine == 9 and torch.equal(same, padded)
    with pytest.raises(InverseDVSError, match="Pad Frames.*frame counts disagree"):
        n.NativePadFrames().pad(images, mask[:5], Compression(8))


def test_an_image_condition_of_another_length_is_cut_or_extended_to_the_clip(comfy, model):
    """WanImageToVideo's length need not be the clip's: its image condition is cut to the clip (or to each window)
    and extended with its last frame, so a condition made for 81 frames samples a 49-frame clip exactly as one made
    for 49 frames with the same frames, and a 177-frame clip window by window."""
    n = nodes()
    latent = smooth_latent(13, seed=4)
    long_samples = torch.cat([latent["samples"], latent["samples"][:, :, -8:]], dim=2)  # 21 latent frames
    exact, longer = conditionings(latent["samples"]), conditionings(long_samples)
    mask = torch.zeros(pixels(latent["samples"]))
    mask[:, :, 16:] = 1.0
    results = []
    for conds in (exact, longer):
        noise = _invert(model, conds, latent, 3)
        results.append((noise["samples"], _sample(model, conds, latent, noise, mask, 3, k=2, guidance=4.0)["samples"]))
    assert all(torch.equal(a, b) for a, b in zip(*results))
    clip = smooth_latent(LATENT_FRAMES)
    window = conditionings(clip["samples"][:, :, :21])  # WanImageToVideo of 81 frames
    passes = Passes(comfy)
    noise = _invert(passes.patch(model), window, clip, 2)
    out = _sample(model, window, clip, noise, torch.zeros(pixels(clip["samples"])), 2)
    assert noise["inversion"]["windows"] == SPANS and torch.isfinite(out["samples"]).all()
    process_in = model.get_model_object("process_latent_in")
    last_window = passes.concat[-1][:, 4:]  # window (24, 45): its frame 0 from the clip, the rest the condition's last
    assert torch.allclose(last_window[:, :, :1], process_in(clip["samples"][:, :, 24:25]), atol=1e-5)
    assert torch.allclose(last_window[:, :, 1:], process_in(torch.zeros_like(clip["samples"][:, :, 25:])), atol=1e-5)


def test_two_experts_sample_every_window_split_at_the_boundary(comfy, model, long_clip, tmp_path):
    import comfy.sd
    import comfy.utils

    from inversedvs.backend import comfy_native

    latent, conds = long_clip
    high = comfy.sd.load_diffusion_model(save_tiny_wan(str(tmp_path / "high.safetensors"), seed=7))
    low_calls, high_calls = ModelCalls(comfy), ModelCalls(comfy)
    low_m, high_m = low_calls.patch(model), high_calls.patch(high)
    steps, boundary = 6, 0.9
    noise = nodes().NativeInvert().invert(low_m, conds["empty"], latent, steps, 1.0, "sampling_start", high_m,
                                          boundary, OVERLAP)[0]
    evaluated = [float(s) for s in comfy_native.sampling_sigmas(model, steps, 1.0)[:-1]]
    low_calls.calls = high_calls.calls = 0
    reports = []
    saved_hook = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.PROGRESS_BAR_HOOK = lambda value, total, preview, node_id=None: reports.append((value, total))
    try:
        out = nodes().NativeSample().sample(low_m, Compression(8), conds["positive"], conds["negative"], latent, noise,
                                            torch.zeros(pixels(latent["samples"])), steps, 1.0, 2, 4.0, 1.0, True, 42,
                                            "tensor", high_m, boundary)[0]
    finally:
        comfy.utils.PROGRESS_BAR_HOOK = saved_hook
    assert high_calls.calls == len(SPANS) * sum(s >= boundary for s in evaluated) > 0
    assert low_calls.calls == len(SPANS) * sum(s < boundary for s in evaluated) > 0
    assert [v for v, _ in reports] == list(range(1, len(SPANS) * steps + 1))  # one bar through both experts
    assert torch.isfinite(out["samples"]).all()
