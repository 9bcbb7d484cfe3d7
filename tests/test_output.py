"""Save Video: an mp4 that decodes back to the frames, inside the output folder, never overwriting."""

import os

import pytest
import torch

from inversedvs.nodes import output as output_nodes
from inversedvs.nodes.output import SaveVideo

# H.264 at crf 0 with 4:2:0 chroma: colour is subsampled, so compare brightness-smooth frames loosely.
MAX_MEAN_ABS_ERROR = 0.03


@pytest.fixture
def out_dir(tmp_path, monkeypatch):
    out = tmp_path / "output"
    out.mkdir()
    monkeypatch.setenv("INVERSEDVS_OUTPUT_DIR", str(out))
    return out


def smooth_frames(n=9, height=48, width=64):
    """Frames of moving colour gradients (codec-friendly), [n, height, width, 3] in 0..1."""
    y = torch.linspace(0, 1, height)[:, None]
    x = torch.linspace(0, 1, width)[None, :]
    t = torch.arange(n, dtype=torch.float32)[:, None, None] / n
    r = (x + t).remainder(1.0)[..., None].expand(n, height, width, 1)
    g = y.expand(height, width)[None, ..., None].expand(n, height, width, 1)
    b = (0.5 + 0.4 * torch.sin(6.0 * (x + y) + t))[..., None].expand(n, height, width, 1)
    return torch.cat([r, g, b], dim=-1).contiguous()


def decode(path):
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate)
        arrays = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    return torch.from_numpy(__import__("numpy").stack(arrays)).float() / 255.0, rate


def test_saved_video_decodes_to_the_frames(out_dir):
    images = smooth_frames()
    result = SaveVideo().save(images, 8.0, "InverseDVS/video", crf=0)
    entry = result["ui"]["images"][0]
    assert result["ui"]["animated"] == (True,)
    assert entry == {"filename": "video_00001_.mp4", "subfolder": "InverseDVS", "type": "output"}
    assert result["result"] == ("InverseDVS/video_00001_.mp4",)
    decoded, rate = decode(out_dir / "InverseDVS" / "video_00001_.mp4")
    assert decoded.shape == images.shape
    assert rate == pytest.approx(8.0)
    assert (decoded - images).abs().mean().item() < MAX_MEAN_ABS_ERROR


def test_odd_sizes_are_padded_to_even_and_fractional_fps_kept(out_dir):
    images = smooth_frames(n=3, height=33, width=47)
    result = SaveVideo().save(images, 23.976, "odd")
    decoded, rate = decode(out_dir / result["result"][0])
    assert decoded.shape == (3, 34, 48, 3)
    assert rate == pytest.approx(23.976, abs=1e-3)
    # the padded row and column repeat the edge
    assert (decoded[:, -1] - decoded[:, -2]).abs().mean() < MAX_MEAN_ABS_ERROR


def test_never_overwrites_and_counts_on(out_dir):
    sub = out_dir / "clips"
    sub.mkdir()
    sentinel = b"an artist's earlier render"
    (sub / "shot_00001_.mp4").write_bytes(sentinel)
    (sub / "shot_00007_.png").write_bytes(sentinel)
    names = [SaveVideo().save(smooth_frames(n=2), 8.0, "clips/shot")["ui"]["images"][0]["filename"] for _ in range(2)]
    assert names == ["shot_00008_.mp4", "shot_00009_.mp4"]
    assert (sub / "shot_00001_.mp4").read_bytes() == sentinel
    assert sorted(os.listdir(sub)) == ["shot_00001_.mp4", "shot_00007_.png", "shot_00008_.mp4", "shot_00009_.mp4"]


def test_claim_skips_a_name_taken_meanwhile(out_dir):
    """A file that appears between choosing the counter and renaming is not replaced."""
    temporary = out_dir / ".tmp.partial"
    temporary.write_bytes(b"new")
    taken = out_dir / "race_00001_.mp4"
    real_next = output_nodes._next_counter
    calls = []

    def next_counter_then_race(folder, name):
        calls.append(1)
        n = real_next(folder, name)
        if len(calls) == 1:
            taken.write_bytes(b"other")  # another queue item wins the race for counter 1
        return n

    output_nodes._next_counter, saved = next_counter_then_race, output_nodes._next_counter
    try:
        final = output_nodes._claim(str(temporary), str(out_dir), "race")
    finally:
        output_nodes._next_counter = saved
    assert os.path.basename(final) == "race_00002_.mp4"
    assert taken.read_bytes() == b"other"
    assert not temporary.exists()


def test_index_comes_first_so_previews_stream(out_dir):
    result = SaveVideo().save(smooth_frames(n=3), 8.0, "stream")
    data = (out_dir / result["result"][0]).read_bytes()
    assert 0 < data.index(b"moov") < data.index(b"mdat")
