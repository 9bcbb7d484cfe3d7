"""The diffusion half end to end on the tiny CogVideoX: reconstruction, inversion-end choice, the whole chain."""

import pytest
import torch

from inversedvs.backend.cogvideox import CogVideoXModel
from inversedvs.backend.tiny import cached_tiny_video_model
from inversedvs.krnr import ddim
from inversedvs.krnr.krnr import krnr_closed_form
from inversedvs.nodes import diffusion as dn

RECONSTRUCTION_STEPS = (5, 10, 20, 40)
# Relative error ‖x̂ − x‖/‖x‖ allowed at 40 steps (measured 0.14–0.15 on the tiny model).
RECONSTRUCTION_TOLERANCE = 0.2


@pytest.fixture(scope="module")
def model():
    return CogVideoXModel(cached_tiny_video_model(), dtype="fp32")


@pytest.fixture(scope="module")
def latent(model):
    frames = torch.rand(9, 64, 96, 3, generator=torch.Generator().manual_seed(0))
    return model.encode_video(frames)[0], model.encode_image(frames[:1])[0]


def _relative_error(a, b):
    return float((a - b).norm() / b.norm())


def _invert_then_sample(model, encoded, steps, strength, to_terminal, k=0):
    latent, image = encoded
    schedule = model.schedule
    grid = schedule.grid(steps, strength)
    with model.transformer_session(image, model.empty_text_embeds()) as predict_v:
        noise = ddim.invert(schedule, latent, ddim.inversion_timesteps(schedule, steps, strength, to_terminal),
                            steps, predict_v)
        start = krnr_closed_form(latent, noise, schedule.alpha_bar(grid[0]), k)
        return ddim.sample(schedule, start, grid, steps, predict_v)


def test_inversion_then_sampling_reconstructs_and_improves_with_steps(model, latent):
    rows = []
    for steps in RECONSTRUCTION_STEPS:
        rows.append([_relative_error(_invert_then_sample(model, latent, steps, 0.98, end), latent[0])
                     for end in (False, True)])
    print("\nreconstruction error ‖x̂−x‖/‖x‖, strength 0.98, no guidance / K-RNR / SLM")
    print(f"{'steps':>6} {'sampling_start':>15} {'terminal':>10}")
    for steps, (start, terminal) in zip(RECONSTRUCTION_STEPS, rows):
        print(f"{steps:>6} {start:>15.4f} {terminal:>10.4f}")
    for column in (0, 1):
        errors = [r[column] for r in rows]
        assert all(b < a for a, b in zip(errors, errors[1:])), errors
        assert errors[-1] < RECONSTRUCTION_TOLERANCE


def test_default_inversion_end_is_the_one_that_measures_better(model, latent):
    """With K-RNR at the node's default order, at the reference 30 steps / 0.98."""
    errors = {end: _relative_error(_invert_then_sample(model, latent, 30, 0.98, end == dn.INVERSION_ENDS[1],
                                                       k=dn.DEFAULT_K), latent[0])
              for end in dn.INVERSION_ENDS}
    print("\nreconstruction error at 30 steps, 0.98, k = %d: %s" % (dn.DEFAULT_K, errors))
    assert errors[dn.DEFAULT_INVERSION_END] == min(errors.values())


def test_whole_chain_sample_clip_to_new_view(tmp_path, monkeypatch):
    """Sample clip → exact depth → orbit path → forward warp → encode → invert → SLM → sample → decode."""
    import os

    from inversedvs.nodes.camera import CameraTrajectory
    from inversedvs.nodes.diffusion import KRNRInvert, Sample, StochasticLatentModulate
    from inversedvs.nodes.model import EncodeText, LoadVideoModel, VAEDecode, VAEEncode
    from inversedvs.nodes.warp import DEPTH_KIND_CHOICES, ForwardWarp
    from inversedvs.warp.camera import DEFAULT_FOV_X_DEG
    from inversedvs.warp.sample import sample_clip

    frames, height, width, steps = 9, 64, 96, 8
    images, depth = sample_clip(frames, height, width)
    path, _ = CameraTrajectory().build("orbit left", "", frames, 1.0, 0, DEFAULT_FOV_X_DEG)
    warped, mask = ForwardWarp().warp(images, depth.unsqueeze(-1), path, DEPTH_KIND_CHOICES[1], 0)
    assert 0.0 < float(mask.mean()) < 0.5  # the move reveals something, most stays visible

    os.makedirs(tmp_path / "inversedvs_video")
    os.symlink(cached_tiny_video_model(), tmp_path / "inversedvs_video" / "tiny")
    monkeypatch.setenv("INVERSEDVS_MODELS_DIR", str(tmp_path))
    model = LoadVideoModel().load("tiny", "fp32", "model_offload", compile_transformer=False)[0]
    positive, negative = EncodeText().encode(model, "a room with balls", "blur")
    latent = VAEEncode().encode(model, warped, False)[0]
    noise = KRNRInvert().invert(model, latent, steps, 0.98, dn.DEFAULT_INVERSION_END)[0]
    clean, noise_filled, unseen = StochasticLatentModulate().modulate(latent, noise, mask, 42)
    results = {}
    for mode in dn.MODES:
        out = Sample().sample(model, positive, negative, clean, noise_filled, mask, steps, 0.98, dn.DEFAULT_K, mode,
                              dn.DEFAULT_GUIDANCE, dn.DEFAULT_PRESERVATION, True, 42)[0]
        results[mode] = VAEDecode().decode(model, out, False)[0]
    for video in results.values():
        assert video.shape == (frames, height, width, 3)
        assert bool(torch.isfinite(video).all()) and 0.0 <= float(video.min()) and float(video.max()) <= 1.0
    assert 0.0 < float(unseen.mean()) < 1.0
    assert not torch.equal(results["paper"], results["reference"])


def test_demo_runs_the_model_stages_and_says_when_the_model_is_tiny(tmp_path, capsys):
    import importlib.util
    import os

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "demo.py")
    spec = importlib.util.spec_from_file_location("inversedvs_demo", path)
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    out = tmp_path / "out"
    assert demo.main(["--out", str(out), "--frames", "9", "--width", "96", "--height", "64", "--steps", "4",
                      "--trajectory", "orbit left", "--model", "tiny"]) == 0
    printed = capsys.readouterr().out
    assert "TINY RANDOM-WEIGHT" in printed
    for name in ("warped.mp4", "mask.mp4", "result.mp4", "side_by_side.mp4", "result_sheet.png", "contact_sheet.png"):
        assert (out / name).stat().st_size > 0
    import av

    with av.open(str(out / "side_by_side.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (3 * 96, 64)
        assert sum(1 for _ in container.decode(video=0)) == 9


def test_loading_another_model_frees_the_previous_models_text_encoder(tmp_path, monkeypatch):
    import os

    from inversedvs.nodes.model import EncodeText, LoadVideoModel

    os.makedirs(tmp_path / "inversedvs_video")
    os.symlink(cached_tiny_video_model(), tmp_path / "inversedvs_video" / "tiny")
    monkeypatch.setenv("INVERSEDVS_MODELS_DIR", str(tmp_path))
    first = LoadVideoModel().load("tiny", "fp32", "model_offload", compile_transformer=False)[0]
    positive, _ = EncodeText().encode(first, "a room with balls", "blur")
    assert "text_encoder" in first._text_placement  # kept for the next prompt
    LoadVideoModel().load("tiny", "fp32", "model_offload", compile_transformer=False, keep_text_encoder=False)
    assert "text_encoder" not in first._text_placement
    again, _ = EncodeText().encode(first, "a room with balls", "blur")  # read again when used again
    assert torch.equal(again[0][0], positive[0][0])
