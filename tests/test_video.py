"""Load Video: real clips through PyAV, sizing modes, frame selection, video as phones make it,
memory guards, names, and clear errors."""

import glob
import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from conftest import PACK_ROOT, SHARED_DATA
from inversedvs.errors import InverseDVSError
from inversedvs.nodes import _host, _validate
from inversedvs.nodes import video as video_node
from inversedvs.nodes.output import write_mp4
from inversedvs.nodes.video import LoadVideo, list_videos, resize_frames

VIDEOS = sorted(glob.glob(os.path.join(SHARED_DATA, "videos", "*.mp4")))


@pytest.fixture
def input_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("INVERSEDVS_INPUT_DIR", str(tmp_path))
    return tmp_path


def _load(name, cap=49, skip=0, nth=1, width=720, height=480, resize="crop to fill"):
    return LoadVideo().load(name, cap, skip, nth, width, height, resize)


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


def test_frame_selection_keeps_every_selected_frame(input_dir):
    _gradient_clip(input_dir / "ramp.mp4", frames=12)
    images, fps, count = _load("ramp.mp4", cap=0, width=0, height=0)
    assert count == 12 and images.shape[1:3] == (48, 64) and fps == pytest.approx(8.0)  # not 4k+1: no frame lost
    capped, _, count = _load("ramp.mp4", cap=10, width=0, height=0)
    assert count == 10 and torch.equal(capped, images[:10])
    picked, fps, count = _load("ramp.mp4", cap=3, skip=2, nth=3, width=0, height=0)
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
    crop = resize_frames(ramp, 40, 40, "crop_to_fill")  # centre 40 columns kept at scale 1
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
        images, _, count = _load(name, cap=0, width=0, height=0)
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
    assert LoadVideo.VALIDATE_INPUTS() is True  # video wired from another node: ComfyUI passes no value yet


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
              height=99999, resize="sideways")
prompt = {{"1": {{"class_type": "InverseDVSLoadVideo", "inputs": inputs}}}}
ok, errors, _ = asyncio.run(execution.validate_inputs("p", prompt, "1", {{}}))
print(json.dumps([(e["type"], e["extra_info"].get("input_name")) for e in errors]))
"""


@pytest.mark.host
@pytest.mark.skipif(not COMFYUI_DIR, reason="set COMFYUI_DIR to a ComfyUI checkout (and run with its Python)")
def test_comfyui_reports_each_bad_load_video_input_once_with_its_own_checks(input_dir):
    script = VALIDATE_SCRIPT.format(comfyui=COMFYUI_DIR, scripts=os.path.join(PACK_ROOT, "scripts"))
    result = subprocess.run([os.environ.get("COMFYUI_PYTHON", sys.executable), "-c", script], cwd=COMFYUI_DIR,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    errors = sorted(map(tuple, json.loads(result.stdout.strip().splitlines()[-1])))
    assert errors == [("custom_validation_failed", "video"), ("value_bigger_than_max", "height"),
                      ("value_not_in_list", "resize"), ("value_smaller_than_min", "frame_load_cap")]


# ----------------------------------------------------------------------------- video as phones make it
# Real container files written here with PyAV: rotation and mirroring metadata, non-square pixels, an
# edit list from a stream-copy cut, variable frame rate, a size change mid-stream; then the memory
# guard that runs before decoding.

H, W = 48, 64  # stored frame size of the test clips
RATE = 8


def load(name, **changes):
    """Load Video at the clip's own size, every frame (``changes`` override)."""
    return _load(name, **{"cap": 0, "width": 0, "height": 0, **changes})


def marked_frame(i, height=H, width=W):
    """uint8 [height, width, 3]: grey level 15·i mod 180 + 30, a red block in the top-left quarter, a blue bar on the right."""
    a = np.full((height, width, 3), 15 * i % 180 + 30, np.uint8)
    a[: height // 2, : width // 4] = (255, 0, 0)
    a[:, -width // 8:] = (0, 0, 255)
    return a


def write_clip(path, frames=5, rotation=None, hflip=False, sar=None, gop=None, pts=None, time_base=None,
               height=H, width=W, crf=0):
    """An H.264 mp4 of ``frames`` marked frames; display matrix, sample aspect, GOP and timestamps as given."""
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=RATE)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.options = {"preset": "ultrafast", "crf": str(crf), **({"g": str(gop)} if gop else {})}
        if sar is not None:
            s.codec_context.sample_aspect_ratio = sar
        if time_base is not None:
            s.codec_context.time_base = time_base
        if rotation is not None or hflip:
            s.set_display_rotation(rotation or 0, hflip=hflip)
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(marked_frame(i, height, width), format="rgb24")
            if pts is not None:
                f.pts, f.time_base = pts[i], time_base
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)


def stored_frames(path):
    """The frames exactly as stored (PyAV's plain decode, no display metadata applied), uint8 [F, h, w, 3]."""
    with av.open(str(path)) as c:
        return torch.from_numpy(np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)]))


def red(image):
    """Where the red block is: mask [h, w] of pixels that are clearly red."""
    return (image[..., 0] > 0.8) & (image[..., 1] < 0.3) & (image[..., 2] < 0.3)


# ----------------------------------------------------------------------------- rotation


@pytest.mark.parametrize("rotation, hflip", [(90, False), (-90, False), (180, False), (0, True), (90, True),
                                             (-90, True)])
def test_display_rotation_and_mirroring_are_applied(input_dir, rotation, hflip):
    """PyAV writes the display matrix as FFmpeg does for phones; ``rotation`` is counter-clockwise
    (FFmpeg's convention), the mirror comes after it."""
    write_clip(input_dir / "turned.mp4", rotation=rotation, hflip=hflip)
    stored = stored_frames(input_dir / "turned.mp4")
    expected = torch.rot90(stored, rotation // 90, dims=(1, 2))
    if hflip:
        expected = expected.flip(2)
    images, _, count = load("turned.mp4")
    assert count == 5 and images.shape == expected.shape
    assert torch.equal(images, expected.float() / 255)


def test_a_portrait_phone_clip_loads_upright(input_dir):
    """A phone held upright stores landscape pixels with 'turn 90° clockwise' (rotate tag 90, display
    matrix -90): the stored top-left red block must show at the top right of a portrait frame."""
    write_clip(input_dir / "portrait.mp4", rotation=-90)
    images, _, _ = load("portrait.mp4")
    assert images.shape[1:3] == (W, H)  # portrait
    mask = red(images[0])
    rows, cols = mask.nonzero(as_tuple=True)
    assert rows.max() < W // 4 + 2 and cols.min() > H // 2 - 2  # top rows, right half
    upside_down = "upside.mp4"
    write_clip(input_dir / upside_down, rotation=180)
    rows, cols = red(load(upside_down)[0][0]).nonzero(as_tuple=True)
    assert rows.min() > H // 2 - 2 and cols.min() > 3 * W // 4 - 2  # bottom right


def test_a_display_matrix_that_is_no_quarter_turn_is_a_clear_error(input_dir):
    import math

    write_clip(input_dir / "tilted.mp4")
    one = 1 << 16
    c, s = round(one * math.cos(math.radians(45))), round(one * math.sin(math.radians(45)))
    with av.open(str(input_dir / "tilted.mp4")) as src, av.open(str(input_dir / "tilted45.mp4"), "w") as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        out.set_display_matrix([c, -s, 0, s, c, 0, 0, 0, 1 << 30])
        for p in src.demux(src.streams.video[0]):
            if p.dts is not None:
                p.stream = out
                dst.mux(p)
    with pytest.raises(InverseDVSError, match=r"'tilted45.mp4' asks to be shown turned 45° counter-clockwise; only quarter"):
        load("tilted45.mp4")


def test_a_rotated_clip_is_resized_after_turning(input_dir):
    write_clip(input_dir / "portrait.mp4", rotation=-90)
    images, _, _ = load("portrait.mp4", width=24, height=32, resize="stretch")
    assert images.shape == (5, 32, 24, 3)
    assert red(images[0])[:8, 12:].float().mean() > 0.9  # the block scaled by 0.5, top right


# ----------------------------------------------------------------------------- non-square pixels


@pytest.mark.parametrize("sar, shown_w", [(Fraction(2, 1), 2 * W), (Fraction(1, 2), W // 2), (Fraction(4, 3), 85)])
def test_non_square_pixels_load_at_the_display_aspect(input_dir, sar, shown_w):
    write_clip(input_dir / "anamorphic.mp4", sar=sar)
    images, _, _ = load("anamorphic.mp4")
    assert images.shape == (5, H, shown_w, 3)
    # the red block covers the left quarter of the picture as shown, whatever the pixel shape
    cols = red(images[0]).any(0).nonzero()[:, 0]
    assert cols.min() == 0 and abs(int(cols.max()) + 1 - shown_w / 4) <= 1.5


def test_non_square_pixels_and_rotation_together(input_dir):
    write_clip(input_dir / "both.mp4", sar=Fraction(2, 1), rotation=-90)
    images, _, _ = load("both.mp4")
    assert images.shape == (5, 2 * W, H, 3)  # stretched 64 → 128 wide, then turned upright
    crop, _, _ = load("both.mp4", width=48, height=64)  # crop to fill: 48x128 shown → scaled 1x, centre cut
    assert crop.shape == (5, 64, 48, 3)
    assert torch.allclose(crop, images[:, 32:96], atol=1 / 255)


# ----------------------------------------------------------------------------- edit lists


def stream_copy_cut(source, target, first_kept, keyframe):
    """``target``: the packets of ``source`` from the keyframe at or before frame ``first_kept``, with
    timestamps shifted so ``first_kept`` is at 0 — what a stream-copy cut does; the mp4 muxer then
    writes an edit list that hides the pre-roll frames."""
    with av.open(str(source)) as src, av.open(str(target), "w", format="mp4") as dst:
        ins = src.streams.video[0]
        out = dst.add_stream_from_template(ins)
        step = int(1 / (RATE * ins.time_base))
        for p in src.demux(ins):
            if p.dts is None or p.pts < keyframe * step:
                continue
            p.pts -= first_kept * step
            p.dts -= first_kept * step
            p.stream = out
            dst.mux(p)


def test_a_stream_copy_cut_with_an_edit_list_is_complete_not_truncated(input_dir):
    write_clip(input_dir / "source.mp4", frames=10, gop=4)
    stream_copy_cut(input_dir / "source.mp4", input_dir / "cut.mp4", first_kept=6, keyframe=4)
    with av.open(str(input_dir / "cut.mp4")) as c:
        assert c.streams.video[0].frames == 6  # the header counts the two hidden pre-roll frames too
    images, fps, count = load("cut.mp4")
    source = stored_frames(input_dir / "source.mp4")
    assert count == 4 and fps == pytest.approx(RATE)
    assert torch.equal(images, source[6:].float() / 255)


# ----------------------------------------------------------------------------- variable frame rate


def test_variable_frame_rate_keeps_every_frame_in_order_at_the_average_rate(input_dir):
    pts = [0, 33, 66, 100, 200, 300, 400, 433, 466, 500, 600, 700]  # ms: 30 fps, then 10 fps, ...
    write_clip(input_dir / "vfr.mp4", frames=len(pts), pts=pts, time_base=Fraction(1, 1000))
    images, fps, count = load("vfr.mp4")
    assert count == len(pts)
    grey = images[:, -1, W // 2, 1]  # a pixel of the grey background
    assert torch.allclose(grey * 255, torch.tensor([15.0 * i + 30 for i in range(len(pts))]), atol=2)
    with av.open(str(input_dir / "vfr.mp4")) as c:
        average = float(c.streams.video[0].average_rate)
    assert fps == pytest.approx(average) and 12 / 0.9 < fps < 12 / 0.7  # 12 frames over 0.7 s + the last one


# ----------------------------------------------------------------------------- size change mid-stream


def write_size_change(path, fmt):
    """3 frames at 64x48 then 3 at 96x80 (left half dark, right half light) in one MJPEG stream."""
    def encode(width, height, frames):
        cc = av.CodecContext.create("mjpeg", "w")
        cc.width, cc.height, cc.pix_fmt, cc.time_base = width, height, "yuvj420p", Fraction(1, RATE)
        packets = []
        for i, a in enumerate(frames):
            f = av.VideoFrame.from_ndarray(a, format="rgb24").reformat(format="yuvj420p")
            f.pts = i
            packets += cc.encode(f)
        return packets + cc.encode(None)

    big = np.full((80, 96, 3), 40, np.uint8)
    big[:, 48:] = 220
    packets = encode(W, H, [np.full((H, W, 3), 120, np.uint8)] * 3) + encode(96, 80, [big] * 3)
    with av.open(str(path), "w", format=fmt) as c:
        s = c.add_stream("mjpeg", rate=RATE)
        s.width, s.height, s.pix_fmt = W, H, "yuvj420p"
        for i, p in enumerate(packets):
            p.pts = p.dts = i
            p.time_base, p.stream = Fraction(1, RATE), s
            c.mux(p)


@pytest.mark.parametrize("name, fmt", [("grow.mp4", "mp4"), ("grow.mkv", "matroska")])
def test_a_size_change_mid_stream_scales_every_frame_to_the_first_frames_size(input_dir, name, fmt):
    write_size_change(input_dir / name, fmt)
    images, _, count = load(name)
    assert count == 6 and images.shape == (6, H, W, 3)
    assert (images[:3] * 255 - 120).abs().max() < 4
    later = images[3:, :, :, 1] * 255  # 96x80 → cover 64x48: scaled to 64x53, centre rows kept
    assert (later[:, :, :30] - 40).abs().max() < 6 and (later[:, :, 34:] - 220).abs().max() < 6
    letterboxed, _, _ = load(name, resize="letterbox")
    assert letterboxed.shape == (6, H, W, 3) and letterboxed[3:, :, :3].max() == 0  # fit 58x48, bars at the sides


# ----------------------------------------------------------------------------- memory before decoding


def test_memory_is_refused_from_the_container_before_any_frame_is_decoded(input_dir, monkeypatch):
    write_clip(input_dir / "long.mp4", frames=40)
    decoded = []
    monkeypatch.setattr(_host, "throw_if_interrupted", lambda: decoded.append(1))  # called once per frame
    per_frame = _validate.tensor_bytes((1, 480, 720, 3))
    monkeypatch.setattr(_validate, "free_memory_bytes", lambda device: int(10.5 * per_frame / _validate.MEMORY_HEADROOM))
    with pytest.raises(InverseDVSError, match=r"13 frames at 720x480 needs about"):
        load("long.mp4", skip=1, nth=3, width=720, height=480)  # frames 1, 4, ..., 37: 13 of the 40
    assert decoded == []
    images, _, count = load("long.mp4", skip=1, nth=3, cap=10, width=720, height=480)  # 10 fit
    assert count == 10 and len(decoded) == 29  # frames 0..28 decoded: it stops at the 10th kept (28)


def test_a_container_without_a_frame_count_is_estimated_from_its_duration(input_dir, monkeypatch):
    write_size_change(input_dir / "grow.mkv", "matroska")  # matroska keeps no frame count
    with av.open(str(input_dir / "grow.mkv")) as c:
        assert c.streams.video[0].frames == 0
        assert video_node.frames_in_container(c.streams.video[0], c) == 6


@pytest.mark.parametrize("claimed", [0, 2, 100])
def test_a_container_that_miscounts_its_frames_still_loads_every_frame_compactly(input_dir, monkeypatch, claimed):
    """0: unknown (a first buffer, doubled as needed), 2: under-counted (grown), 100: over-counted (trimmed)."""
    write_clip(input_dir / "clip.mp4", frames=9)
    expected = load("clip.mp4")[0]
    monkeypatch.setattr(video_node, "frames_in_container", lambda stream, container: claimed)
    monkeypatch.setattr(video_node, "UNKNOWN_COUNT_START", 4)
    images, _, count = load("clip.mp4")
    assert count == 9 and torch.equal(images, expected)
    assert images.untyped_storage().nbytes() <= 2 * images.numel() * images.element_size()


STREAMING_SCRIPT = """
import json, resource, sys
sys.path.insert(0, {scripts!r})
from pack import load_pack
load_pack("inversedvs")
from inversedvs.nodes.video import LoadVideo
def peak(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
LoadVideo().load("small.mp4", 0, 0, 1, 96, 64, "crop to fill")  # warm up every library
before = peak()
images = LoadVideo().load("big.mp4", 0, 0, 1, 96, 64, "crop to fill")[0]
print(json.dumps({{"grew": peak() - before, "shape": list(images.shape)}}))
"""


def test_decoding_streams_so_full_size_frames_are_never_all_held(input_dir):
    """24 frames of 960x540 loaded at 96x64: all of them at full size are 37 MB as uint8 and 149 MB as
    float (decoding them all before resizing grew the peak by about 140 MiB); streaming holds one
    full-size frame and its float copies at a time (about 20 MiB)."""
    write_clip(input_dir / "small.mp4", frames=3, height=72, width=128)
    write_clip(input_dir / "big.mp4", frames=24, height=540, width=960, crf=30)
    env = dict(os.environ, INVERSEDVS_INPUT_DIR=str(input_dir), OMP_NUM_THREADS="1")
    script = STREAMING_SCRIPT.format(scripts=os.path.join(PACK_ROOT, "scripts"))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print("\npeak memory growth while loading 24 x 960x540 at 96x64:", report["grew"] / 2**20, "MiB")
    assert report["shape"] == [24, 64, 96, 3]
    assert report["grew"] < 64 * 2**20
