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


def _files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def frontend_metadata(data: bytes) -> dict:
    """The graph ComfyUI's frontend reads from a dropped mp4, the way its ISOBMFF parser walks the file:
    moov/udta/meta, the 'keys' box naming each tag, the 'ilst' item holding its JSON in a 'data' box."""
    import json

    def u32(pos):
        return int.from_bytes(data[pos:pos + 4], "big")

    def boxes(start, end):
        while start + 8 <= end and u32(start) >= 8:
            yield data[start + 4:start + 8], start + 8, start + u32(start)
            start += u32(start)

    def child(kind, start, end):
        return next((s, e) for k, s, e in boxes(start, end) if k == kind)

    meta = child(b"meta", *child(b"udta", *child(b"moov", 0, len(data))))
    keys, ilst = child(b"keys", meta[0] + 4, meta[1]), child(b"ilst", meta[0] + 4, meta[1])
    names, pos = {}, keys[0] + 8  # version/flags, entry count
    for index in range(1, u32(keys[0] + 4) + 1):
        names[index] = data[pos + 8:pos + u32(pos)].decode()  # size, namespace 'mdta', name
        pos += u32(pos)
    tags = {}
    for kind, start, end in boxes(*ilst):
        name = names[int.from_bytes(kind, "big")].lower()
        if name in ("prompt", "workflow"):  # the only tags the frontend reads
            value_start, value_end = child(b"data", start, end)
            tags[name] = json.loads(data[value_start + 8:value_end])  # after type and locale
    return tags


def test_the_workflow_and_prompt_are_stored_in_the_mp4(out_dir):
    """As core's Save Video does: ComfyUI reads 'workflow' (and 'prompt') back from a dropped mp4."""
    import json

    import av

    prompt = {"3": {"class_type": "InverseDVSSaveVideo", "inputs": {"fps": 8.0, "filename_prefix": "x"}}}
    workflow = {"last_node_id": 3, "nodes": [{"id": 3, "type": "InverseDVSSaveVideo", "widgets_values": ["ü", 8]}]}
    result = SaveVideo().save(smooth_frames(n=3), 8.0, "meta", prompt=prompt, extra_pnginfo={"workflow": workflow})
    path = out_dir / result["result"][0]
    with av.open(str(path)) as container:
        tags = dict(container.metadata)
    assert json.loads(tags["workflow"]) == workflow and json.loads(tags["prompt"]) == prompt
    data = path.read_bytes()
    assert frontend_metadata(data) == {"workflow": workflow, "prompt": prompt}
    assert 0 < data.index(b"moov") < data.index(b"mdat")  # still streamable with the tags


def test_no_workflow_is_stored_when_comfyui_disables_metadata(out_dir, monkeypatch):
    import av

    monkeypatch.setattr(output_nodes._host, "metadata_disabled", lambda: True)
    result = SaveVideo().save(smooth_frames(n=2), 8.0, "plain", prompt={"1": {}}, extra_pnginfo={"workflow": {}})
    with av.open(str(out_dir / result["result"][0])) as container:
        assert "workflow" not in container.metadata and "prompt" not in container.metadata


def test_a_prefix_ending_in_a_slash_saves_inside_that_folder(out_dir):
    for prefix in ("renders/", "renders\\", "renders//"):
        SaveVideo().save(smooth_frames(n=2), 8.0, prefix)
    assert _files(out_dir) == ["renders/video_00001_.mp4", "renders/video_00002_.mp4", "renders/video_00003_.mp4"]


@pytest.mark.skipif(os.name == "nt", reason="':' is not allowed in Windows file names")
def test_a_colon_in_the_prefix_is_a_plain_character_on_this_system(out_dir):
    assert SaveVideo().save(smooth_frames(n=2), 8.0, "shots/12:30")["result"] == ("shots/12:30_00001_.mp4",)


@pytest.mark.parametrize("prefix, message", [
    ("x" * 300, r"filename_prefix part 'x{40}…' is 300 bytes long, but a file name can hold at most 244 here "
                r"\(the counter and \.mp4 take the rest\)"),
    ("é" * 130, r"is 260 bytes long, but a file name"),
    ("y" * 256 + "/video", r"is 256 bytes long, but a folder name can hold at most 255"),
    ("taken.mp4/video", r"puts the video inside 'taken.mp4', which is an existing file in the output folder"),
    ("clips/taken.mp4/more/video", r"inside 'clips/taken.mp4', which is an existing file"),
    ("a/../../escaped", r"contains '\.\.'"),
    ("renders/..", r"contains '\.\.'"),
    ("/tmp/escaped", r"is an absolute path"),
    ("\\\\server\\share\\escaped", r"is an absolute path"),
    ("~/escaped/..", r"contains '\.\.'"),
])
def test_bad_prefixes_are_clear_errors_and_nothing_is_written(out_dir, prefix, message):
    from inversedvs.errors import InverseDVSError

    (out_dir / "taken.mp4").write_bytes(b"an earlier render")
    (out_dir / "clips").mkdir()
    (out_dir / "clips" / "taken.mp4").write_bytes(b"another")
    around = _files(out_dir.parent)
    with pytest.raises(InverseDVSError, match=message):
        SaveVideo().save(smooth_frames(n=2), 8.0, prefix)
    assert _files(out_dir.parent) == around
    assert (out_dir / "taken.mp4").read_bytes() == b"an earlier render"


def test_the_longest_allowed_name_saves(out_dir):
    prefix = "z" * (output_nodes.NAME_MAX_BYTES - len(output_nodes.COUNTER_SUFFIX))
    result = SaveVideo().save(smooth_frames(n=2), 8.0, prefix)
    assert len(result["ui"]["images"][0]["filename"]) == output_nodes.NAME_MAX_BYTES
