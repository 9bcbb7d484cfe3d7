"""Memory: refuse what cannot fit before allocating, turn an out-of-memory into a clear error that
gives the memory back, and do not grow memory over repeated runs."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from inversedvs.errors import InverseDVSError
from inversedvs.nodes import _validate

GIB = 1024**3


def test_out_of_memory_becomes_a_clear_error_and_drops_the_failed_step():
    held = []

    def failing_step():
        activations = torch.zeros(1024, 1024)  # what the step held when it ran out of memory
        held.append(weakref.ref(activations))
        raise torch.cuda.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 2.50 GiB. GPU 0 has a total capacity of 23.65 GiB"
        )

    with pytest.raises(InverseDVSError) as info:
        with _validate.out_of_memory_as_error("Sample", "sampling", "memory_policy = sequential_offload",
                                              needed_bytes=int(11.5 * GIB), device="cpu"):
            failing_step()
    message = str(info.value)
    assert "memory_policy = sequential_offload" in message
    assert "2.50 GiB" in message and "11.5 GiB" in message
    assert info.value.__suppress_context__  # the torch traceback is not the user's error
    gc.collect()
    assert held[0]() is None, "the failed step's tensors are still alive"


@pytest.mark.parametrize("text", ["out of memory", "MPS backend out of memory (MPS allocated: 9 GB)"])
def test_runtime_errors_saying_out_of_memory_are_recognised(text):
    with pytest.raises(InverseDVSError, match="sequential_offload"):
        with _validate.out_of_memory_as_error("Sample", "sampling", "sequential_offload", device="cpu"):
            raise RuntimeError(text)


def test_a_failed_cpu_allocation_is_recognised_with_its_size():
    """The CPU allocator's own error, as torch raises it (no 'out of memory' in it)."""
    with pytest.raises(InverseDVSError, match=r"out of memory while sampling \(it tried to allocate "
                                               r"1000000000000000 bytes more\)"):
        with _validate.out_of_memory_as_error("Sample", "sampling", "sequential_offload", device="cpu"):
            torch.empty(10 ** 15, dtype=torch.uint8)


def test_other_errors_pass_through_unchanged():
    with pytest.raises(KeyError):
        with _validate.out_of_memory_as_error("Sample", "sampling", "sequential_offload", device="cpu"):
            raise KeyError("not memory")


def test_video_memory_estimate_and_refusal(monkeypatch):
    monkeypatch.setattr(_validate, "free_memory_bytes", lambda device: 8 * GIB)
    assert _validate.check_video_memory(49, 480, 720, "Load Video") == 49 * 480 * 720 * 3 * 4
    with pytest.raises(InverseDVSError, match=r"needs about 36\.8 GiB but only 8\.0 GiB is free"):
        _validate.check_video_memory(49, 4096, 8192, "Load Video", copies=2)


def test_free_memory_is_positive_on_this_machine():
    assert _validate.free_memory_bytes(torch.device("cpu")) > 64 * 1024**2


def test_denoiser_estimate_matches_the_measured_full_size_pass():
    """Full-size CogVideoX-5B-I2V (built on the meta device, no memory): batch-2 pass at 49x480x720
    peaked at 13.59 GiB on an H100 (../shared/data/anchors.json)."""
    from diffusers import CogVideoXTransformer3DModel

    config = dict(num_attention_heads=48, attention_head_dim=64, in_channels=32, out_channels=16,
                  time_embed_dim=512, text_embed_dim=4096, num_layers=42, sample_width=90, sample_height=60,
                  sample_frames=49, patch_size=2, max_text_seq_length=226,
                  use_rotary_positional_embeddings=True, use_learned_positional_embeddings=True)
    with torch.device("meta"):
        transformer = CogVideoXTransformer3DModel(**config).to(torch.bfloat16)

    class Model:
        pass

    model = Model()
    model.transformer = transformer
    batch2 = _validate.denoiser_memory(model, (1, 16, 13, 60, 90), batch=2)
    batch1 = _validate.denoiser_memory(model, (1, 16, 13, 60, 90), batch=1)
    assert batch2["needed_bytes"] / GIB == pytest.approx(13.59, rel=0.05)
    weights = _validate._module_bytes(transformer)
    assert batch1["needed_bytes"] - weights == pytest.approx((batch2["needed_bytes"] - weights) / 2, rel=0.01)
    assert batch2["low_vram_bytes"] < 0.35 * batch2["needed_bytes"]
    with pytest.raises(InverseDVSError, match=r"needs about 13\.\d GiB, about 3\.\d GiB with memory = sequential_offload"):
        with _validate.out_of_memory_as_error("Sample", "sampling", "memory = sequential_offload", device="cpu",
                                              **batch2):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB.")


# ----------------------------------------------------------------------------- repeated runs

REPEATS = 5
WARM_UP = 2
# RSS may move by allocator noise; a leak of the tiny pipeline's outputs (~0.5 MiB a run) or of a
# model copy (~2 MiB) over three runs would still show against the live-tensor count below.
RSS_TOLERANCE_BYTES = 24 * 1024**2


def live_tensors() -> tuple[int, int]:
    """(count, bytes) of the torch tensors alive now, after a full garbage collection."""
    gc.collect()
    count = total = 0
    for obj in gc.get_objects():
        kind = type(obj)  # type(), not isinstance(): no lazy module attribute is touched
        if issubclass(kind, torch.Tensor) and not issubclass(kind, torch.nn.Parameter):
            count += 1
            total += obj.numel() * obj.element_size()
    return count, total


def rss_bytes() -> int:
    """Resident memory after a collection, with freed heap handed back to the OS (glibc) first,
    so that allocator caching between runs does not read as growth."""
    import ctypes
    import ctypes.util

    import psutil

    gc.collect()
    libc_name = ctypes.util.find_library("c")
    if libc_name:
        libc = ctypes.CDLL(libc_name)
        if hasattr(libc, "malloc_trim"):
            libc.malloc_trim(0)
    return psutil.Process().memory_info().rss


def test_repeated_runs_do_not_grow_memory(tmp_path):
    from _pipeline import comfy_folders, load_tiny_model, run_pipeline

    rows = []
    with comfy_folders(str(tmp_path)):
        model = load_tiny_model()
        for i in range(REPEATS):
            out = run_pipeline(model, seed=42, prefix="repeat/run")
            del out
            rows.append((rss_bytes(), *live_tensors()))
            if torch.cuda.is_available():
                rows[-1] += (torch.cuda.memory_allocated(),)
    print("\nrun  RSS MiB  live tensors  tensor KiB  CUDA allocated MiB")
    for i, row in enumerate(rows):
        cuda = f"{row[3] / 2**20:>19.2f}" if len(row) > 3 else f"{'-':>19}"
        print(f"{i + 1:>3} {row[0] / 2**20:>8.1f} {row[1]:>13} {row[2] / 1024:>11.1f} {cuda}")
    warm = rows[WARM_UP - 1]
    for row in rows[WARM_UP:]:
        assert row[1] <= warm[1] and row[2] <= warm[2], "tensors accumulate between runs"
        assert row[0] - warm[0] < RSS_TOLERANCE_BYTES
        if torch.cuda.is_available():
            assert row[3] <= warm[3]
    assert len(list((tmp_path / "output" / "repeat").iterdir())) == REPEATS


class _CoreMemory:
    """Stands in for comfy.model_management: records what the pack asks of it."""

    def __init__(self):
        self.freed, self.unloaded_all = [], False

    def free_memory(self, bytes_needed, device):
        self.freed.append(int(bytes_needed))

    def unload_all_models(self):
        self.unloaded_all = True

    def soft_empty_cache(self):
        pass

    def get_torch_device(self):
        return torch.device("cpu")

    def throw_exception_if_processing_interrupted(self):
        pass


@pytest.mark.parametrize("policy", ["resident", "model_offload"])
def test_loading_asks_comfyui_for_room_and_never_evicts_everything(monkeypatch, policy):
    """Load Video Model asks core's memory manager for its weights' size; the user's other models stay."""
    import glob
    import os

    from inversedvs.nodes import _host

    from _pipeline import comfy_folders, scratch_root

    core = _CoreMemory()
    monkeypatch.setattr(_host, "_mm", core)
    with comfy_folders(scratch_root()):
        from inversedvs.nodes.model import LoadVideoModel

        model = LoadVideoModel().load("tiny", "fp32", policy, compile_transformer=False)[0]
    sizes = {part: sum(os.path.getsize(p) for p in glob.glob(os.path.join(model.folder, part, "*.safetensors")))
             for part in ("transformer", "vae")}
    expected = sum(sizes.values()) if policy == "resident" else max(sizes.values())
    assert core.freed == [expected] and not core.unloaded_all
    with pytest.raises(InverseDVSError):
        with _validate.out_of_memory_as_error("Sample", "sampling", "x", needed_bytes=5 * GIB, device="cpu"):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB.")
    assert core.freed[-1] == 5 * GIB and not core.unloaded_all


def test_a_gpu_stage_asks_comfyui_for_its_room_before_judging_whether_it_fits(monkeypatch):
    """Forward Warp and every other stage checked by ``check_fits_memory`` on an accelerator ask core to free what
    they need first (core then evicts only as much as that takes), and refuse only when even then it does not fit."""
    from inversedvs.nodes import _host

    core = _CoreMemory()
    monkeypatch.setattr(_host, "_mm", core)
    free = {"bytes": 8 * GIB}
    monkeypatch.setattr(_validate, "free_memory_bytes", lambda device: free["bytes"])
    needed = _validate.check_video_memory(81, 480, 832, "Forward Warp", copies=18, device="cuda")
    assert core.freed == [needed] and not core.unloaded_all
    free["bytes"] = 2 * GIB
    with pytest.raises(InverseDVSError, match="Forward Warp: 81 frames at 832x480 needs about"):
        _validate.check_video_memory(81, 480, 832, "Forward Warp", copies=18, device="cuda")
    assert core.freed == [needed, needed]
    _validate.check_video_memory(81, 480, 832, "Load Video", device="cpu")
    assert len(core.freed) == 2  # host memory is not core's to free


@pytest.mark.parametrize("videos_free, refused", [(9.0, True), (11.5, False)])
def test_forward_warp_on_the_cpu_asks_for_ten_videos_of_room(monkeypatch, videos_free, refused):
    """The CPU warp peaks at 8.5 videos above its inputs (benchmarks/results/warp_cpu_memory.json); the node
    refuses a clip only when less than WARP_MEMORY_COPIES_CPU = 10 videos (within the headroom) are free."""
    from inversedvs.nodes import warp as warp_node
    from inversedvs.nodes.camera import CameraTrajectory

    frames, height, width = 3, 24, 32
    video = frames * height * width * 3 * 4
    free = int(videos_free * video / _validate.MEMORY_HEADROOM)
    monkeypatch.setattr(_validate, "free_memory_bytes", lambda device: free)
    images = torch.rand(frames, height, width, 3, generator=torch.Generator().manual_seed(0))
    depth = torch.linspace(0.3, 0.7, width).expand(frames, height, width).unsqueeze(-1).expand(-1, -1, -1, 3)
    path = CameraTrajectory().build("orbit_right", "", frames, 1.0, 0, 60.0)[0]
    assert warp_node.WARP_MEMORY_COPIES_CPU == 10
    if refused:
        with pytest.raises(InverseDVSError, match="needs about"):
            warp_node.ForwardWarp().warp(images, depth, path, "relative", 0, "cpu")
    else:
        warped = warp_node.ForwardWarp().warp(images, depth, path, "relative", 0, "cpu")[0]
        assert warped.shape == images.shape
