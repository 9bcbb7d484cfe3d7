"""Clips of any length: pad and drop to the VAE's 4k+1 frames, and windowed inversion and sampling for
clips longer than the model's window (krnr/windows.py and the CogVideoX nodes on the tiny model)."""

from __future__ import annotations

import contextlib

import pytest
import torch

from _pipeline import STRENGTH, comfy_folders, load_tiny_model
from test_interrupt import Interrupted, interrupt_on_call

from inversedvs.errors import InverseDVSError
from inversedvs.krnr import ddim, windows
from inversedvs.krnr.noise_init import initial_latent, seeded_generator
from inversedvs.krnr.schedule import COGVIDEOX_5B_I2V_SCHEDULER, NoiseSchedule
from inversedvs.nodes import _host
from inversedvs.nodes.diffusion import KRNRInvert, Sample, StochasticLatentModulate, latent_masks, recorded_windows
from inversedvs.nodes.model import EncodeText, VAEDecode, VAEEncode

STEPS = 4
H, W = 64, 96
# The tiny model's window is 9 frames (3 latent frames); 19 frames pad to 21 = 6 latent frames.
LONG_FRAMES = 19
OVERLAP = 4  # frames: one latent frame


# ----------------------------------------------------------------------------- pure maths


@pytest.mark.parametrize("frames, padded", [(1, 1), (2, 5), (5, 5), (8, 9), (49, 49), (50, 53), (100, 101)])
def test_padded_count_is_the_next_4k_plus_1(frames, padded):
    assert windows.padded_count(frames, 4) == padded
    assert windows.latent_frames(frames, 4) == (padded - 1) // 4 + 1


def test_pad_frames_repeats_the_last_frame_and_keeps_the_rest():
    clip = torch.rand(7, 4, 5, 3)
    padded = windows.pad_frames(clip, 9)
    assert padded.shape == (9, 4, 5, 3) and torch.equal(padded[:7], clip)
    assert torch.equal(padded[7], clip[6]) and torch.equal(padded[8], clip[6])
    assert windows.pad_frames(clip, 7) is clip


@pytest.mark.parametrize("length, window, overlap", [(13, 13, 3), (5, 13, 3), (14, 13, 3), (25, 13, 3), (37, 13, 4),
                                                     (100, 13, 3), (6, 3, 1), (21, 5, 3), (9, 5, 1)])
def test_window_spans_cover_every_frame_with_the_stated_overlap(length, window, overlap):
    spans = windows.window_spans(length, window, overlap)
    covered = torch.zeros(length, dtype=torch.int64)
    for start, end in spans:
        covered[start:end] += 1
    assert covered.min() >= 1, "a latent frame no window holds"
    assert spans[0][0] == 0 and spans[-1][1] == length
    if length <= window:
        assert spans == [(0, length)]
        return
    assert all(end - start == window for start, end in spans)  # every window is the model's full window
    for i in range(1, len(spans)):
        shared = windows.shared_frames(spans, i)
        assert overlap <= shared < window
        if i < len(spans) - 1:
            assert shared == overlap  # only the last window is moved back and may share more
    # no more windows than needed: one fewer would leave frames out or break the overlap
    assert len(spans) == 1 + -(-(length - window) // (window - overlap))


def test_window_spans_refuse_an_overlap_that_cannot_advance():
    for overlap in (0, 13, 20):
        with pytest.raises(ValueError, match="overlap"):
            windows.window_spans(30, 13, overlap)


def test_sampling_takes_the_recorded_windows_and_refuses_ones_that_do_not_fit():
    """Both Sample nodes (CogVideoX and native) run the windows the inversion recorded; windows of another clip
    or of a model with a longer window are refused, and without a record the model's default windows are used."""
    recorded = {"inversion": {"windows": [(0, 13), (11, 24)]}}
    assert recorded_windows(recorded, 24, 4, 13, "Sample") == [(0, 13), (11, 24)]
    assert recorded_windows({"inversion": {}}, 24, 4, 13, "Sample") == windows.window_spans(24, 13, 2)
    for frames, window in ((30, 13), (24, 12)):
        with pytest.raises(InverseDVSError, match="Sample: the noise records windows .* do not fit this clip's"):
            recorded_windows(recorded, frames, 4, window, "Sample")


def test_previous_weights_fall_linearly_from_one():
    assert torch.allclose(windows.previous_weights(4), torch.tensor([1.0, 0.75, 0.5, 0.25]))
    assert torch.equal(windows.previous_weights(1), torch.tensor([1.0]))


def _constant_x0_model(schedule, values):
    """predict_v of a model whose clean estimate is the constant ``values[window]`` everywhere."""
    window = {"i": 0}

    def predict_v(x, t):
        a, b = schedule.alpha_bar(t) ** 0.5, (1 - schedule.alpha_bar(t)) ** 0.5
        return (a * x - values[window["i"]]) / b  # x̂0 = a·x − b·v = values[i]

    return window, predict_v


def test_seams_ramp_across_the_overlap_instead_of_jumping():
    """Windows that disagree (x̂0 = 0 in one, 1 in the next) meet in a linear ramp over the shared
    frames: the largest frame-to-frame step is 1/shared, not the full jump of 1."""
    schedule = NoiseSchedule(COGVIDEOX_5B_I2V_SCHEDULER)
    timesteps = schedule.grid(STEPS, STRENGTH)
    spans = windows.window_spans(9, 5, 3)  # [(0, 5), (2, 7), (4, 9)]: three windows sharing 3 frames
    assert spans == [(0, 5), (2, 7), (4, 9)]
    values = [0.0, 1.0, 2.0]
    current, predict_v = _constant_x0_model(schedule, values)
    conditions = []

    def run(i, span, x, condition, anchor):
        current["i"] = i
        conditions.append(condition)
        return ddim.sample(schedule, x, timesteps, STEPS, predict_v, anchor=anchor)

    x = torch.randn(1, 2, 9, 3, 4, generator=torch.Generator().manual_seed(0))
    first = torch.full((1, 2, 1, 3, 4), -1.0)
    out = windows.sample_windows(x, spans, first, run)
    per_frame = out[0, 0, :, 0, 0]
    expected = torch.tensor([0.0, 0.0, 0.0, 1 / 3, 2 / 3, 1 + 1 / 3, 1 + 2 / 3, 2.0, 2.0])
    # frame 2: window 1 starts on window 0's result (weight 1); frame 4: window 2 starts on window 1's
    # blended result there (2/3·0 + 1/3·1 = 1/3 pulled fully), etc.
    assert torch.allclose(out, expected.view(1, 1, 9, 1, 1).expand_as(out), atol=1e-5), per_frame
    steps = per_frame.diff().abs()
    assert steps.max() <= 2 / 3 + 1e-5  # a hard cut would step by the full 1 between windows
    assert torch.equal(conditions[0], first)
    assert torch.allclose(conditions[1], out[:, :, 2:3], atol=1e-6)
    assert torch.allclose(conditions[2], out[:, :, 4:5], atol=1e-6)


def test_without_the_anchor_the_same_windows_show_a_full_seam():
    """The seam test above can fail: the same windows with the anchor dropped step by the full 1."""
    schedule = NoiseSchedule(COGVIDEOX_5B_I2V_SCHEDULER)
    timesteps = schedule.grid(STEPS, STRENGTH)
    spans = windows.window_spans(9, 5, 3)
    current, predict_v = _constant_x0_model(schedule, [0.0, 1.0, 2.0])

    def run(i, span, x, condition, anchor):
        current["i"] = i
        return ddim.sample(schedule, x, timesteps, STEPS, predict_v)

    out = windows.sample_windows(torch.zeros(1, 1, 9, 1, 1), spans, torch.zeros(1, 1, 1, 1, 1), run)
    assert out[0, 0, :, 0, 0].diff().abs().max() == pytest.approx(1.0, abs=1e-5)


def test_invert_windows_take_each_frame_from_the_first_window_holding_it():
    spans = [(0, 3), (2, 5), (3, 6)]
    seen = []

    def run(i, span, x0, condition, anchor):
        seen.append((span, condition.flatten().tolist()))
        return torch.full_like(x0, float(i))

    x0 = torch.arange(6.0).view(1, 1, 6, 1, 1)
    noise = windows.invert_windows(x0, spans, torch.tensor([-1.0]).view(1, 1, 1, 1, 1), run)
    assert noise.flatten().tolist() == [0, 0, 0, 1, 1, 2]
    assert seen == [((0, 3), [-1.0]), ((2, 5), [2.0]), ((3, 6), [3.0])]  # later windows: x0's frame at their start


# ----------------------------------------------------------------------------- the nodes on the tiny model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    with comfy_folders(str(tmp_path_factory.mktemp("comfy"))):
        model = load_tiny_model()
        positive, negative = EncodeText().encode(model, "a dog", "blur")
        yield {"model": model, "positive": positive, "negative": negative}


def _clip(frames, seed=0):
    """A clip IMAGE [frames, H, W, 3] that changes over time, and a MASK with the right third unseen."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, H, W, 3, generator=g)
    drift = torch.linspace(0, 1, frames).view(frames, 1, 1, 1)
    images = (0.7 * base + 0.3 * drift * torch.rand(1, H, W, 3, generator=g)).clamp(0, 1)
    mask = torch.zeros(frames, H, W)
    mask[:, :, 2 * W // 3:] = 1.0
    return images, mask


class Recorder:
    """Wraps ``transformer_session``: records the latent frames of every denoiser input and each condition."""

    def __init__(self, model):
        self.inner = model.transformer_session
        self.frames, self.conditions = [], []

    @contextlib.contextmanager
    def __call__(self, condition, embeds):
        self.conditions.append(condition.clone())
        with self.inner(condition, embeds) as predict_v:
            def recorded(x, t):
                self.frames.append(x.shape[2])
                return predict_v(x, t)

            yield recorded


def _run(tiny, images, mask, overlap=OVERLAP, seed=42):
    model = tiny["model"]
    latent = VAEEncode().encode(model, images, False)[0]
    noise = KRNRInvert().invert(model, latent, STEPS, STRENGTH, "terminal", overlap)[0]
    clean, modulated, _ = StochasticLatentModulate().modulate(latent, noise, mask, seed)
    result = Sample().sample(model, tiny["positive"], tiny["negative"], clean, modulated, mask, STEPS, STRENGTH, 6,
                             "paper", 6.0, 1.0, True, seed)[0]
    return latent, noise, result


def test_pad_and_drop_keep_every_frame_and_the_count(tiny):
    model = tiny["model"]
    images, mask = _clip(7)
    latent = VAEEncode().encode(model, images, False)[0]
    assert latent["frame_count"] == 7 and latent["samples"].shape[2] == 3  # padded to 9 frames
    explicit = VAEEncode().encode(model, torch.cat([images, images[-1:], images[-1:]]), False)[0]
    assert torch.equal(latent["samples"], explicit["samples"])  # padding = the last frame repeated
    decoded = VAEDecode().decode(model, latent, False)[0]
    assert decoded.shape == (7, H, W, 3)
    assert torch.equal(decoded, VAEDecode().decode(model, explicit, False)[0][:7])  # the padded frames dropped
    _, _, result = _run(tiny, images, mask)
    assert result["frame_count"] == 7 and VAEDecode().decode(model, result, False)[0].shape[0] == 7
    with pytest.raises(InverseDVSError, match="mask is 9 frames"):
        latent_masks(torch.zeros(9, H, W), latent["samples"], "Sample", 4, 8, frame_count=7)


def test_a_clip_that_fits_one_window_gives_the_unwindowed_bits(tiny):
    """The library's plain loops (what the nodes ran before windowing) against the windowed nodes, on a clip
    of exactly one window: equal to the last bit."""
    model = tiny["model"]
    images, mask = _clip(9)
    latent, noise, result = _run(tiny, images, mask)
    assert noise["inversion"]["windows"] == [(0, 3)]
    schedule = model.schedule
    inv_steps = ddim.inversion_timesteps(schedule, STEPS, STRENGTH, True)
    with model.transformer_session(latent["image"], model.empty_text_embeds()) as predict_v:
        plain_noise = ddim.invert(schedule, latent["samples"], inv_steps, STEPS, predict_v)
    assert torch.equal(noise["samples"], plain_noise)
    _, unseen, fully = latent_masks(mask, latent["samples"], "test", 4, 8)
    generator = seeded_generator(42)
    from inversedvs.nodes.diffusion import _clean_x0
    from inversedvs.slm.modulate import stochastic_latent_modulation

    x0 = _clean_x0(latent, generator)
    x0, eps = stochastic_latent_modulation(x0, plain_noise, unseen, fully, generator, "tensor")
    timesteps = schedule.grid(STEPS, STRENGTH)
    _, x_start = initial_latent(x0, eps, unseen, fully, schedule.alpha_bar(timesteps[0]), 6, "paper", generator,
                                slm=False)
    embeds = torch.cat([tiny["negative"][0][0], tiny["positive"][0][0]])
    with model.transformer_session(latent["image"], embeds) as predict_v:
        def guided_v(x, t):
            v = predict_v(x, t)
            return ddim.guided_velocity(v[:1], v[1:], unseen, ddim.dynamic_guidance(6.0, t, STEPS), 1.0)

        plain = ddim.sample(schedule, x_start, timesteps, STEPS, guided_v)
    assert torch.equal(result["samples"], plain)


def test_a_long_clip_runs_window_by_window_with_one_window_on_the_device(tiny, monkeypatch):
    model = tiny["model"]
    images, mask = _clip(LONG_FRAMES)
    recorder = Recorder(model)
    monkeypatch.setattr(model, "transformer_session", recorder, raising=False)
    totals = []
    real_progress = _host.Progress
    monkeypatch.setattr(_host, "Progress", lambda total: (totals.append(total), real_progress(total))[1])
    latent, noise, result = _run(tiny, images, mask)
    assert latent["samples"].shape[2] == 6 and model.window_latent_frames == 3
    spans = noise["inversion"]["windows"]
    assert spans == [(0, 3), (2, 5), (3, 6)]
    # the largest latent the denoiser was handed is one window (3 latent frames), never the clip's 6
    assert set(recorder.frames) == {3}
    # inversion to the terminal step (STEPS passes) and sampling (STEPS − 1 from strength 0.98), per window
    assert len(recorder.frames) == len(spans) * (2 * STEPS - 1)
    assert totals == [len(spans) * STEPS, len(spans) * (STEPS - 1)]  # one bar over the whole clip per node
    # sampling conditions: window 0 on the first frame, each later window on the result at its start, which
    # (weight 1 on the first shared frame) the final result keeps to the last bit
    sampled = recorder.conditions[len(spans):]
    assert torch.equal(sampled[0], latent["image"].float())
    for (start, _), condition in zip(spans[1:], sampled[1:]):
        assert torch.equal(result["samples"][:, :, start:start + 1], condition)
    assert VAEDecode().decode(model, result, False)[0].shape == (LONG_FRAMES, H, W, 3)


def test_cancel_stops_a_windowed_run_within_one_step(tiny, monkeypatch):
    model = tiny["model"]
    images, mask = _clip(LONG_FRAMES)
    latent = VAEEncode().encode(model, images, False)[0]
    recorder = Recorder(model)
    monkeypatch.setattr(model, "transformer_session", recorder, raising=False)
    cancel_at = STEPS + 2  # inside the second window
    with interrupt_on_call(cancel_at) as patch, pytest.raises(Interrupted):
        KRNRInvert().invert(model, latent, STEPS, STRENGTH, "terminal", OVERLAP)
    assert patch.calls == cancel_at and len(recorder.frames) == cancel_at


def test_window_overlap_must_fit_the_window(tiny):
    images, _ = _clip(LONG_FRAMES)
    latent = VAEEncode().encode(tiny["model"], images, False)[0]
    for overlap in (6, 12):  # not a multiple of 4; not shorter than the 9-frame window
        with pytest.raises(InverseDVSError, match="window_overlap"):
            KRNRInvert().invert(tiny["model"], latent, STEPS, STRENGTH, "terminal", overlap)
