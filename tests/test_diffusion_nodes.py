"""The model and method nodes on the tiny model: contracts, validation, one pass per step, progress, interrupt."""

import os

import pytest
import torch

from inversedvs.backend.tiny import cached_tiny_video_model
from inversedvs.errors import InverseDVSError
from inversedvs.nodes import _host
from inversedvs.nodes import diffusion as dn
from inversedvs.nodes.diffusion import KRNRInvert, Sample, StochasticLatentModulate
from inversedvs.nodes.model import EncodeText, LoadVideoModel, VAEDecode, VAEEncode

FRAMES, HEIGHT, WIDTH = 9, 64, 96
NAME = "tiny"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    os.makedirs(root / "inversedvs_video")
    os.symlink(cached_tiny_video_model(), root / "inversedvs_video" / NAME)
    os.makedirs(root / "inversedvs_lora")
    return root


@pytest.fixture(autouse=True)
def _env(models_dir, monkeypatch):
    monkeypatch.setenv("INVERSEDVS_MODELS_DIR", str(models_dir))


@pytest.fixture(scope="module")
def model(models_dir):
    old = os.environ.get("INVERSEDVS_MODELS_DIR")
    os.environ["INVERSEDVS_MODELS_DIR"] = str(models_dir)
    try:
        return LoadVideoModel().load(NAME, "fp32", "model_offload")[0]
    finally:
        if old is None:
            os.environ.pop("INVERSEDVS_MODELS_DIR")
        else:
            os.environ["INVERSEDVS_MODELS_DIR"] = old


@pytest.fixture(scope="module")
def clip():
    gen = torch.Generator().manual_seed(0)
    frames = torch.rand(FRAMES, HEIGHT, WIDTH, 3, generator=gen)
    mask = torch.zeros(FRAMES, HEIGHT, WIDTH)
    mask[:, :, 64:] = 1.0
    return frames, mask


@pytest.fixture(scope="module")
def encoded(model, clip):
    return VAEEncode().encode(model, clip[0], False)[0]


@pytest.fixture(scope="module")
def conditioning(model):
    return EncodeText().encode(model, "a dog on the beach", "blur")


class ForwardCounter:
    def __init__(self, module):
        self.batches = []
        self.handle = module.register_forward_hook(
            lambda m, a, kw, out: self.batches.append(kw["hidden_states"].shape[0]), with_kwargs=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_loader_lists_the_folder_and_explains_a_missing_one(models_dir):
    assert NAME in LoadVideoModel.INPUT_TYPES()["required"]["model_folder"][0]
    with pytest.raises(InverseDVSError, match="was not found. Looked in: .*inversedvs_video"):
        LoadVideoModel().load("CogVideoX-5b-I2V", "bf16", "model_offload")


def test_loader_refuses_pickled_lora(models_dir):
    bad = models_dir / "inversedvs_lora" / "renamed.safetensors"
    bad.write_bytes(b"\x80\x04\x95" + b"\x00" * 64)
    try:
        with pytest.raises(InverseDVSError, match="not in safetensors format"):
            LoadVideoModel().load(NAME, "fp32", "resident", lora="renamed.safetensors")
    finally:
        bad.unlink()


def test_encode_text_gives_comfy_conditioning(conditioning):
    positive, negative = conditioning
    assert isinstance(positive, list) and positive[0][0].shape == (1, 16, 32) and isinstance(positive[0][1], dict)
    assert not torch.allclose(positive[0][0], negative[0][0])


def test_vae_nodes_round_trip_shapes(model, encoded):
    assert encoded["samples"].shape == (1, 4, 3, 8, 12)
    assert encoded["model"] == "cogvideox-5b-i2v" and encoded["std"].shape == encoded["samples"].shape
    images = VAEDecode().decode(model, encoded, False)[0]
    assert images.shape == (FRAMES, HEIGHT, WIDTH, 3)


@pytest.mark.parametrize("frames,height,width,phrase", [
    (9, 64, 100, "multiples of 16"), (9, 72, 96, "multiples of 16")])
def test_vae_encode_refuses_bad_sizes(model, frames, height, width, phrase):
    with pytest.raises(InverseDVSError, match=phrase):
        VAEEncode().encode(model, torch.rand(frames, height, width, 3), False)


def test_invert_runs_one_empty_prompt_pass_per_step(model, encoded):
    with ForwardCounter(model.transformer) as calls:
        noise = KRNRInvert().invert(model, encoded, 30, 0.98, "terminal (reference)")[0]
    assert calls.batches == [1] * 30
    info = noise["inversion"]
    assert {k: info[k] for k in ("steps", "strength", "start", "end")} == {"steps": 30, "strength": 0.98,
                                                                           "start": 966, "end": 999}
    assert info["source"] == encoded["source"] and noise["weights"] == model.weights_id
    with ForwardCounter(model.transformer) as calls:
        start = KRNRInvert().invert(model, encoded, 30, 0.98, "sampling_start")[0]
    assert calls.batches == [1] * 29 and start["inversion"]["end"] == 966


@pytest.mark.parametrize("steps,strength,phrase", [(0, 0.98, "at least 1 step"), (30, 0.0, "strength"),
                                                   (30, 1.5, "strength")])
def test_invert_refuses_bad_steps_and_strength(model, encoded, steps, strength, phrase):
    with pytest.raises(InverseDVSError, match=phrase):
        KRNRInvert().invert(model, encoded, steps, strength, "sampling_start")


def test_latents_of_another_model_are_refused(model, encoded):
    wrong = {"samples": torch.zeros(1, 16, 3, 8, 12)}
    with pytest.raises(InverseDVSError, match="16 channels but this model's latents have 4"):
        KRNRInvert().invert(model, wrong, 30, 0.98, "sampling_start")
    other = dict(encoded, model="wan-2.1")
    with pytest.raises(InverseDVSError, match="made by 'wan-2.1'"):
        VAEDecode().decode(model, other, False)


@pytest.fixture(scope="module")
def inverted(model, encoded):
    return KRNRInvert().invert(model, encoded, 10, 0.98, "terminal (reference)")[0]


def _sample(model, conditioning, encoded, inverted, mask, **kw):
    args = dict(steps=10, strength=0.98, k=6, mode="paper", guidance=10.0, preservation=1.0,
                dynamic_guidance=True, seed=42)
    args.update(kw)
    return Sample().sample(model, conditioning[0], conditioning[1], encoded, inverted, mask, **args)[0]


def test_sample_is_deterministic_and_seeded(model, conditioning, encoded, inverted, clip):
    a = _sample(model, conditioning, encoded, inverted, clip[1])
    b = _sample(model, conditioning, encoded, inverted, clip[1])
    c = _sample(model, conditioning, encoded, inverted, clip[1], seed=7)
    assert a["samples"].shape == encoded["samples"].shape
    assert torch.equal(a["samples"], b["samples"]) and not torch.equal(a["samples"], c["samples"])
    ref = _sample(model, conditioning, encoded, inverted, clip[1], mode="reference")
    assert not torch.equal(ref["samples"], a["samples"])


def test_sample_batches_guidance_in_one_pass_and_skips_it_when_off(model, conditioning, encoded, inverted, clip):
    with ForwardCounter(model.transformer) as calls:
        _sample(model, conditioning, encoded, inverted, clip[1])
    assert calls.batches == [2] * 9
    with ForwardCounter(model.transformer) as calls:
        _sample(model, conditioning, encoded, inverted, clip[1], guidance=1.0, dynamic_guidance=False)
    assert calls.batches == [1] * 9


def test_sample_reports_progress_and_stops_on_interrupt(model, conditioning, encoded, inverted, clip, monkeypatch):
    updates = []
    monkeypatch.setattr(_host.Progress, "update", lambda self, n=1: updates.append(n))
    _sample(model, conditioning, encoded, inverted, clip[1])
    assert len(updates) == 9

    class Cancelled(Exception):
        pass

    checks = []

    def interrupt():
        checks.append(1)
        if len(checks) == 3:
            raise Cancelled()

    monkeypatch.setattr(_host, "throw_if_interrupted", interrupt)
    released = []
    monkeypatch.setattr(model, "release", lambda: released.append(1))
    with ForwardCounter(model.transformer) as calls, pytest.raises(Cancelled):
        _sample(model, conditioning, encoded, inverted, clip[1])
    assert len(calls.batches) == 3 and released == [1]


def test_sample_refuses_mismatches(model, conditioning, encoded, inverted, clip):
    with pytest.raises(InverseDVSError, match="the mask is 9 frames of 80x64"):
        _sample(model, conditioning, encoded, inverted, clip[1][:, :, :80])
    with pytest.raises(InverseDVSError, match="same steps and strength"):
        _sample(model, conditioning, encoded, inverted, clip[1], steps=30)
    wide = [[torch.zeros(1, 16, 4096), {}]]
    with pytest.raises(InverseDVSError, match="width 4096"):
        Sample().sample(model, wide, conditioning[1], encoded, inverted, clip[1], 10, 0.98, 6, "paper", 10.0, 1.0,
                        True, 42)
    with pytest.raises(InverseDVSError, match="no visible values"):
        _sample(model, conditioning, encoded, inverted, torch.ones_like(clip[1]))
    no_stats = {"samples": encoded["samples"], "model": encoded["model"]}
    with pytest.raises(InverseDVSError, match="posterior mean and std"):
        _sample(model, conditioning, no_stats, inverted, clip[1], mode="reference")


def test_slm_node_keeps_visible_cells_and_marks_its_output(model, encoded, inverted, clip):
    clean, noise, unseen = StochasticLatentModulate().modulate(encoded, inverted, clip[1], 42, "tensor (reference)",
                                                               "posterior mean")
    assert unseen.shape == (3, 8, 12) and clean["slm"] and noise["slm"]
    visible = unseen[None, None].expand_as(clean["samples"]) == 0
    assert torch.equal(clean["samples"][visible], encoded["samples"][visible])
    assert not torch.equal(clean["samples"], encoded["samples"])
    # an SLM'd pair is not modulated again by Sample (paper mode): same result with any seed of Sample's SLM
    conditioning = [[torch.zeros(1, 16, 32), {}]]
    a = Sample().sample(model, conditioning, conditioning, clean, noise, clip[1], 10, 0.98, 6, "paper", 1.0, 1.0,
                        False, 1)[0]
    b = Sample().sample(model, conditioning, conditioning, clean, noise, clip[1], 10, 0.98, 6, "paper", 1.0, 1.0,
                        False, 2)[0]
    assert torch.equal(a["samples"], b["samples"])


def test_per_position_guidance_weights():
    """Unseen cells get the guidance scale, visible cells the preservation scale."""
    from inversedvs.krnr import ddim

    gen = torch.Generator().manual_seed(0)
    v_u, v_c = torch.randn(1, 2, 2, 1, 3, generator=gen), torch.randn(1, 2, 2, 1, 3, generator=gen)
    unseen = torch.tensor([[[True, False, True]], [[False, False, True]]])
    out = ddim.guided_velocity(v_u, v_c, unseen, 11.0, 0.5)
    for t in range(2):
        for x in range(3):
            w = 11.0 if unseen[t, 0, x] else 0.5
            assert torch.allclose(out[0, :, t, 0, x], v_u[0, :, t, 0, x] + w * (v_c[0, :, t, 0, x] - v_u[0, :, t, 0, x]))
    assert torch.allclose(ddim.guided_velocity(v_u, v_c, unseen, 1.0, 1.0), v_c, atol=1e-6)
