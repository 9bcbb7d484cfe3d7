"""Depth Estimate: a tiny random-weight Depth Anything built from a config, loaded like a real one."""

import os

import pytest
import torch

from inversedvs.errors import InverseDVSError
from inversedvs.nodes import depth as depth_node
from inversedvs.nodes.depth import DepthEstimate, network_size
from inversedvs.warp import depth as dep
from inversedvs.warp.tiny_depth import TINY_DEPTH_FOLDER, save_tiny_depth_model

FRAMES, HEIGHT, WIDTH = 5, 40, 60
INPUT_SIZE = 56


@pytest.fixture(scope="module")
def models_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    save_tiny_depth_model(str(root / "inversedvs_depth"))
    return root


@pytest.fixture
def models(models_root, monkeypatch):
    monkeypatch.setenv("INVERSEDVS_MODELS_DIR", str(models_root))
    return models_root


def _frames():
    g = torch.Generator().manual_seed(1)
    base = torch.rand(1, HEIGHT, WIDTH, 3, generator=g)
    return (base + 0.05 * torch.arange(FRAMES).view(-1, 1, 1, 1) / FRAMES).clamp(0, 1)


def test_tiny_model_folder_is_listed_and_runs_batched(models):
    assert DepthEstimate.INPUT_TYPES()["required"]["model"][0] == [TINY_DEPTH_FOLDER]
    (out,) = DepthEstimate().estimate(_frames(), TINY_DEPTH_FOLDER, dep.ALIGN_OFF, INPUT_SIZE, 2)
    assert out.shape == (FRAMES, HEIGHT, WIDTH, 3)
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0  # normalised over the clip
    assert torch.equal(out[..., 0], out[..., 2])  # grey
    (again,) = DepthEstimate().estimate(_frames(), TINY_DEPTH_FOLDER, dep.ALIGN_OFF, INPUT_SIZE, 5)
    assert torch.allclose(out, again, atol=1e-5)  # batch size does not change the result


def test_network_input_is_a_multiple_of_the_patch():
    assert network_size(480, 720, 518) == (518, 784)
    assert network_size(40, 60, 56) == (56, 84)


def test_alignment_in_the_node_removes_per_frame_scale_jitter(models, monkeypatch):
    """The node's alignment step on a disparity video whose frames were scaled and shifted at random."""
    truth = torch.linspace(0.2, 1.0, WIDTH).view(1, 1, WIDTH).expand(FRAMES, HEIGHT, WIDTH)
    g = torch.Generator().manual_seed(0)
    jitter = (0.5 + torch.rand(FRAMES, 1, 1, generator=g)) * truth + 0.3 * torch.rand(FRAMES, 1, 1, generator=g)
    monkeypatch.setattr(depth_node, "estimate_disparity", lambda *a, **k: jitter.clone())
    flicker = {}
    for mode in dep.ALIGN_MODES:
        (out,) = DepthEstimate().estimate(_frames(), TINY_DEPTH_FOLDER, mode, INPUT_SIZE, 2)
        flicker[mode] = dep.temporal_flicker(out[..., 0])
    print("\nflicker by alignment mode:", flicker)
    assert flicker[dep.ALIGN_OFF] > 0.05
    assert flicker[dep.ALIGN_FIRST] < 1e-5 and flicker[dep.ALIGN_RUNNING] < 1e-5


def test_a_missing_folder_says_what_it_looked_for_and_where(models):
    with pytest.raises(InverseDVSError, match=r"'Depth-Anything-V2-Small-hf' was not found; looked in .*inversedvs_depth"):
        DepthEstimate().estimate(_frames(), "Depth-Anything-V2-Small-hf", dep.ALIGN_OFF, INPUT_SIZE, 2)


def test_a_folder_without_safetensors_is_refused(models_root, monkeypatch, tmp_path):
    folder = tmp_path / "inversedvs_depth" / "pickled"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    monkeypatch.setenv("INVERSEDVS_MODELS_DIR", str(tmp_path))
    with pytest.raises(InverseDVSError, match="lacks model.safetensors"):
        DepthEstimate().estimate(_frames(), "pickled", dep.ALIGN_OFF, INPUT_SIZE, 2)
    os.rename(folder / "pytorch_model.bin", folder / "model.safetensors")
    with pytest.raises(InverseDVSError, match="not in safetensors format"):
        DepthEstimate().estimate(_frames(), "pickled", dep.ALIGN_OFF, INPUT_SIZE, 2)


@pytest.mark.parametrize("batch_size, input_size, message", [
    (0, INPUT_SIZE, r"batch_size = 0 is not allowed; it must be a whole number from 1 to 256"),
    (-3, INPUT_SIZE, r"batch_size = -3 is not allowed"),
    (2.5, INPUT_SIZE, r"batch_size = 2.5 is not allowed"),
    (10**6, INPUT_SIZE, r"batch_size = 1000000 is not allowed"),
    (2, 0, r"input_size = 0 is not allowed; it must be a whole number from 14 to 2044"),
    (2, float("nan"), r"input_size = nan is not allowed"),
])
def test_out_of_range_numbers_are_refused_before_the_model_loads(models, monkeypatch, batch_size, input_size,
                                                                  message):
    monkeypatch.setattr(depth_node, "load_depth_network", lambda *a: pytest.fail("the model was loaded"))
    with pytest.raises(InverseDVSError, match=message):
        DepthEstimate().estimate(_frames(), TINY_DEPTH_FOLDER, dep.ALIGN_OFF, input_size, batch_size)


def _copy_of_tiny(models_root, tmp_path, monkeypatch, name="other"):
    import shutil

    folder = tmp_path / "inversedvs_depth" / name
    shutil.copytree(models_root / "inversedvs_depth" / TINY_DEPTH_FOLDER, folder)
    monkeypatch.setenv("INVERSEDVS_MODELS_DIR", str(tmp_path))
    return folder


@pytest.mark.parametrize("config, message", [
    ({"model_type": "cogvideox"}, r"holds a 'cogvideox' model, not Depth Anything"),
    ({"model_type": "zoedepth"}, r"holds a 'zoedepth' model, not Depth Anything"),
    ({"architectures": ["T5EncoderModel"]}, r"holds a 'T5EncoderModel' model, not Depth Anything"),
    ({"model_type": "depth_anything", "depth_estimation_type": "metric"}, r"is a metric Depth Anything"),
])
def test_a_folder_of_another_model_type_is_refused(models_root, monkeypatch, tmp_path, config, message):
    import json

    folder = _copy_of_tiny(models_root, tmp_path, monkeypatch)
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(InverseDVSError, match=message):
        DepthEstimate().estimate(_frames(), "other", dep.ALIGN_OFF, INPUT_SIZE, 2)


@pytest.mark.parametrize("file, content, message", [
    ("config.json", "", r"config.json is not valid JSON"),
    ("config.json", "[1, 2]", r"config.json holds no JSON object"),
    ("preprocessor_config.json", '{"image_mean": [0.5, 0.5], "image_std": [1, 1, 1]}',
     r"image_mean and image_std as 3 numbers"),
    ("preprocessor_config.json", '{"image_std": [0, 1, 1]}', r"image_mean and image_std as 3 numbers"),
])
def test_damaged_json_files_name_the_file(models_root, monkeypatch, tmp_path, file, content, message):
    folder = _copy_of_tiny(models_root, tmp_path, monkeypatch)
    (folder / file).write_text(content)
    with pytest.raises(InverseDVSError, match=message):
        DepthEstimate().estimate(_frames(), "other", dep.ALIGN_OFF, INPUT_SIZE, 2)


def test_weights_that_do_not_fit_the_config_are_a_clear_error(models_root, monkeypatch, tmp_path):
    import json

    folder = _copy_of_tiny(models_root, tmp_path, monkeypatch)
    config = json.loads((folder / "config.json").read_text())
    config["backbone_config"]["hidden_size"] = 64  # the saved weights are 32 wide
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(InverseDVSError, match=r"could not be loaded: its weights do not fit its config.json"):
        DepthEstimate().estimate(_frames(), "other", dep.ALIGN_OFF, INPUT_SIZE, 2)
