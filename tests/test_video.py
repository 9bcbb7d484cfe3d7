"""Load Video: real clips through PyAV, sizing modes, frame selection, and clear errors."""

import glob
import os
import shutil

import pytest
import torch

from conftest import SHARED_DATA
from inversedvs.errors import InverseDVSError
from inversedvs.nodes.output import write_mp4
from inversedvs.nodes.video import LoadVideo, list_videos, resize_frames

VIDEOS = sorted(glob.glob(os.path.join(SHARED_DATA, "videos", "*.mp4")))


@pytest.fixture
def input_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("INVERSEDVS_INPUT_DIR", str(tmp_path))
    return tmp_path


def _load(name, cap=49, skip=0, nth=1, width=720, height=480, resize="crop to fill", trim=True):
    return LoadVideo().load(name, cap, skip, nth, width, height, resize, trim)


def _gradient_clip(path, frames=12, height=48, width=64):
    """A clip whose frame i has brightness i/frames in red and a horizontal ramp in green."""
    t = torch.arange(frames).view(-1, 1, 1).float() / frames
    images = torch.zeros(frames, height, width, 3)
    images[..., 0] = t
    images[..., 1] = torch.linspace(0, 1, width).view(1, 1, -1)
    write_mp4(str(path), images, 8.0)
    return images


@pytest.mark.skipif(not VIDEOS, reason="the shared test clips live beside the clone")
@pytest.mark.parametrize("video", VIDEOS, ids=os.path.basename)
def test_real_clips_load_at_the_requested_size_and_frame_count(input_dir, video):
    shutil.copy(video, input_dir)
    name = os.path.basename(video)
    images, fps, count = _load(name)
    assert images.shape == (49, 480, 720, 3) and count == 49 and fps == pytest.approx(30.0)
    assert images.dtype == torch.float32 and 0.0 <= float(images.min()) and float(images.max()) <= 1.0
    assert float(images.std()) > 0.05  # real picture content, not a blank frame
    if video == VIDEOS[0]:
        small, _, count = _load(name, cap=17, nth=2, width=96, height=64)
        assert small.shape == (17, 64, 96, 3) and count == 17


def test_the_input_folder_is_listed_with_video_extensions_only(input_dir):
    (input_dir / "sub").mkdir()
    for name in ("a.mp4", "sub/b.mov", "notes.txt", "c.png"):
        (input_dir / name).write_bytes(b"x")
    assert list_videos() == ["a.mp4", "sub/b.mov"]
    spec = LoadVideo.INPUT_TYPES()["required"]["video"]
    assert spec[0] == ["a.mp4", "sub/b.mov"] and spec[1]["video_upload"] is True


def test_frame_selection_and_4k_plus_1_trim(input_dir):
    _gradient_clip(input_dir / "ramp.mp4", frames=12)
    images, fps, count = _load("ramp.mp4", cap=0, width=0, height=0, trim=False)
    assert count == 12 and images.shape[1:3] == (48, 64) and fps == pytest.approx(8.0)
    trimmed, _, count = _load("ramp.mp4", cap=0, width=0, height=0)
    assert count == 9 and torch.equal(trimmed, images[:9])
    picked, fps, count = _load("ramp.mp4", cap=3, skip=2, nth=3, width=0, height=0, trim=False)
    assert count == 3 and fps == pytest.approx(8.0 / 3)
    assert torch.allclose(picked, images[[2, 5, 8]])


def test_resize_modes():
    frames = torch.zeros(1, 40, 80, 3, dtype=torch.uint8)
    frames[..., 0] = 255
    stretch = resize_frames(frames, 40, 40, "stretch")
    assert stretch.shape == (1, 40, 40, 3) and float(stretch[..., 0].min()) == 1.0
    letter = resize_frames(frames, 40, 40, "letterbox")  # 80x40 fits as 40x20: black bars above and below
    assert float(letter[0, :9, :, 0].max()) == 0.0 and float(letter[0, 11:29, :, 0].min()) > 0.99
    assert float(letter[0, 31:, :, 0].max()) == 0.0
    ramp = torch.arange(80, dtype=torch.uint8).mul(3).view(1, 1, 80, 1).expand(1, 40, 80, 3).contiguous()
    crop = resize_frames(ramp, 40, 40, "crop to fill")  # centre 40 columns kept at scale 1
    assert torch.allclose(crop[0, 0, :, 0] * 255, ramp[0, 0, 20:60, 0].float())


def test_is_changed_follows_the_file_content(input_dir):
    _gradient_clip(input_dir / "a.mp4")
    first = LoadVideo.IS_CHANGED("a.mp4")
    assert first == LoadVideo.IS_CHANGED("a.mp4") and len(first) == 64
    _gradient_clip(input_dir / "a.mp4", frames=5)
    assert LoadVideo.IS_CHANGED("a.mp4") != first
    assert LoadVideo.VALIDATE_INPUTS("a.mp4") is True
    assert "was not found" in LoadVideo.VALIDATE_INPUTS("missing.mp4")


def test_missing_file_names_the_input_folder(input_dir):
    with pytest.raises(InverseDVSError, match=r"'missing.mp4' was not found in ComfyUI's input folder"):
        _load("missing.mp4")


def test_names_leaving_the_input_folder_are_refused(input_dir):
    with pytest.raises(InverseDVSError, match=r"contains '\.\.'"):
        _load("../secret.mp4")


def test_a_file_that_is_not_a_video_is_refused(input_dir):
    (input_dir / "fake.mp4").write_bytes(b"this is not a video at all" * 100)
    with pytest.raises(InverseDVSError, match="could not be opened as a video"):
        _load("fake.mp4")


def test_a_truncated_file_is_refused(input_dir):
    _gradient_clip(input_dir / "whole.mp4", frames=30, height=64, width=96)
    data = (input_dir / "whole.mp4").read_bytes()
    (input_dir / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(InverseDVSError, match="corrupt|truncated"):
        _load("cut.mp4", cap=0)


def test_zero_frames_after_selection_is_refused(input_dir):
    _gradient_clip(input_dir / "short.mp4", frames=6)
    with pytest.raises(InverseDVSError, match="no frames left .* skip_first_frames = 10"):
        _load("short.mp4", skip=10)


@pytest.mark.skipif(os.sep != "/", reason="':' and '\\' cannot be in a Windows file name")
def test_names_with_colons_and_backslashes_are_listed_and_load(input_dir):
    (input_dir / "shots").mkdir()
    names = ["take 1: beach.mp4", "cut\\final.mp4", "shots/12:30:05.mov", "C:clip.mp4"]
    for i, name in enumerate(names):
        _gradient_clip(input_dir / name, frames=5 + i)
    assert list_videos() == sorted(names)
    for i, name in enumerate(names):
        assert LoadVideo.VALIDATE_INPUTS(name) is True
        images, _, count = _load(name, cap=0, width=0, height=0, trim=False)
        assert count == 5 + i and images.shape[1:3] == (48, 64)


def test_what_is_not_listed_is_refused_for_the_right_reason(input_dir, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere") / "private.mp4"
    _gradient_clip(outside)
    (input_dir / "link.mp4").symlink_to(outside)
    _gradient_clip(input_dir / "fine.mp4")
    (input_dir / os.fsdecode(b"caf\xe9.mp4")).write_bytes(outside.read_bytes())  # Latin-1 name, not UTF-8
    (input_dir / "notes.txt").write_text("not a video")
    assert list_videos() == ["fine.mp4"]
    with pytest.raises(InverseDVSError, match="leads outside ComfyUI's input folder"):
        _load("link.mp4")
    with pytest.raises(InverseDVSError, match="'notes.txt' is not a video file"):
        _load("notes.txt")


def test_validate_inputs_leaves_comfyuis_own_checks_to_every_other_input():
    """ComfyUI (execution.validate_inputs) skips its range and choice checks for exactly the inputs
    that VALIDATE_INPUTS names (all of them when it takes **kwargs), and reports a failure once per
    named input: it must name `video` alone."""
    import inspect

    spec = inspect.getfullargspec(LoadVideo.VALIDATE_INPUTS)
    assert spec.varkw is None and spec.args == ["cls", "video"]
    inputs = LoadVideo.INPUT_TYPES()["required"]
    assert set(spec.args[1:]) < set(inputs)


COMFYUI_DIR = os.environ.get("COMFYUI_DIR")
VALIDATE_SCRIPT = """
import asyncio, json, os, sys
sys.argv = [sys.argv[0], "--cpu"]
sys.path[:0] = [{comfyui!r}, {scripts!r}]
import comfy.options
comfy.options.enable_args_parsing()
import execution, nodes
from pack import load_pack
pack = load_pack("inversedvs")
from inversedvs.nodes.video import LoadVideo
nodes.NODE_CLASS_MAPPINGS["InverseDVSLoadVideo"] = LoadVideo
inputs = dict(video="missing.mp4", frame_load_cap=-5, skip_first_frames=0, select_every_nth=1, width=720,
              height=99999, resize="sideways", trim_to_4k_plus_1=True)
prompt = {{"1": {{"class_type": "InverseDVSLoadVideo", "inputs": inputs}}}}
ok, errors, _ = asyncio.run(execution.validate_inputs("p", prompt, "1", {{}}))
print(json.dumps([(e["type"], e["extra_info"].get("input_name")) for e in errors]))
"""


@pytest.mark.host
@pytest.mark.skipif(not COMFYUI_DIR, reason="set COMFYUI_DIR to a ComfyUI checkout (and run with its Python)")
def test_comfyui_reports_each_bad_load_video_input_once_with_its_own_checks(input_dir):
    import json
    import subprocess
    import sys

    from conftest import PACK_ROOT

    script = VALIDATE_SCRIPT.format(comfyui=COMFYUI_DIR, scripts=os.path.join(PACK_ROOT, "scripts"))
    result = subprocess.run([os.environ.get("COMFYUI_PYTHON", sys.executable), "-c", script], cwd=COMFYUI_DIR,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    errors = sorted(map(tuple, json.loads(result.stdout.strip().splitlines()[-1])))
    assert errors == [("custom_validation_failed", "video"), ("value_bigger_than_max", "height"),
                      ("value_not_in_list", "resize"), ("value_smaller_than_min", "frame_load_cap")]
