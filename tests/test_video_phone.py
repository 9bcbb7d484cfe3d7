"""Load Video on video as phones and editors make it: real container files written here with PyAV —
rotation and mirroring metadata, non-square pixels, an edit list from a stream-copy cut, variable
frame rate, a size change mid-stream — plus the memory guard that runs before decoding."""

import json
import os
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch

from conftest import PACK_ROOT
from inversedvs.errors import InverseDVSError
from inversedvs.nodes import _host, _validate
from inversedvs.nodes import video as video_node
from inversedvs.nodes.video import LoadVideo

av = pytest.importorskip("av")
H, W = 48, 64  # stored frame size of the test clips
RATE = 8


@pytest.fixture
def input_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("INVERSEDVS_INPUT_DIR", str(tmp_path))
    return tmp_path


def load(name, cap=0, skip=0, nth=1, width=0, height=0, resize="crop to fill", trim=False):
    return LoadVideo().load(name, cap, skip, nth, width, height, resize, trim)


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


STREAMING_SCRIPT = """
import json, resource, sys
sys.path.insert(0, {scripts!r})
from pack import load_pack
load_pack("inversedvs")
from inversedvs.nodes.video import LoadVideo
def peak(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
LoadVideo().load("small.mp4", 0, 0, 1, 96, 64, "crop to fill", False)  # warm up every library
before = peak()
images = LoadVideo().load("big.mp4", 0, 0, 1, 96, 64, "crop to fill", False)[0]
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
