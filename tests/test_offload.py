"""Memory policies (backend/offload.py): no-ops on CPU, and the offload mechanics driven on CPU.

The mechanics tests switch ``Placement.noop`` off on a CPU placement: the "device" copies are
then separate CPU buffers, so the same attach/stream/detach code that runs on a GPU runs here.
"""

import pytest
import torch

from inversedvs.backend.offload import POLICIES, BlockStream, Parcel, Placement, _tensors_of, repeated_blocks
from inversedvs.errors import InverseDVSError

N_BLOCKS = 6
WIDTH = 16


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(WIDTH, WIDTH)
        self.norm = torch.nn.LayerNorm(WIDTH)
        self.register_buffer("shift", torch.randn(WIDTH))

    def forward(self, x):
        return x + torch.tanh(self.lin(self.norm(x))) + self.shift


class Stack(torch.nn.Module):
    """A toy 'transformer': an input layer, repeated blocks, an output layer, a short side list."""

    def __init__(self):
        super().__init__()
        self.inp = torch.nn.Linear(WIDTH, WIDTH)
        self.blocks = torch.nn.ModuleList([Block() for _ in range(N_BLOCKS)])
        self.side = torch.nn.ModuleList([torch.nn.Linear(WIDTH, WIDTH) for _ in range(2)])
        self.out = torch.nn.Linear(WIDTH, WIDTH)

    def forward(self, x):
        x = self.inp(x)
        for b in self.blocks:
            x = b(x)
        return self.out(self.side[1](self.side[0](x)))


def _model_and_input(seed=0):
    torch.manual_seed(seed)
    return Stack().eval(), torch.randn(3, WIDTH)


def _within(t: torch.Tensor, buf: torch.Tensor) -> bool:
    start = buf.data_ptr()
    return start <= t.data_ptr() < start + buf.numel() * buf.element_size()


def _on_host(t: torch.Tensor, parcel: Parcel) -> bool:
    """Whether ``t``'s data lies in one of ``parcel``'s host pieces."""
    return any(_within(t, chunk) for _, chunk in parcel.chunks)


def test_policies_are_noops_on_cpu():
    for policy in POLICIES:
        model, x = _model_and_input()
        ptrs = [t.data_ptr() for t in _tensors_of(model)]
        expected = model(x)
        placement = Placement(policy, torch.device("cpu"))
        assert placement.noop
        placement.register("transformer", model)
        with placement.use("transformer") as m:
            assert m is model
            got = m(x)
        placement.release_all()
        assert torch.equal(got, expected)
        assert [t.data_ptr() for t in _tensors_of(model)] == ptrs


def test_bad_policy_and_unknown_name_are_clear_errors():
    with pytest.raises(InverseDVSError, match="sequential_offload"):
        Placement("everything_on_gpu", torch.device("cpu"))
    placement = Placement("resident", torch.device("cpu"))
    with pytest.raises(InverseDVSError, match="never loaded"):
        with placement.use("vae"):
            pass


def test_repeated_blocks_picks_the_longest_uniform_list():
    model, _ = _model_and_input()
    assert repeated_blocks(model) is model.blocks
    assert repeated_blocks(torch.nn.Sequential(torch.nn.Linear(2, 2))) is None


def test_repeated_blocks_finds_cogvideox_transformer_blocks():
    from diffusers import CogVideoXTransformer3DModel

    tiny = CogVideoXTransformer3DModel(
        num_attention_heads=2, attention_head_dim=16, in_channels=8, out_channels=4, time_embed_dim=8,
        text_embed_dim=16, num_layers=5, sample_width=8, sample_height=8, sample_frames=5,
        max_text_seq_length=4, use_rotary_positional_embeddings=True,
    )
    assert repeated_blocks(tiny) is tiny.transformer_blocks


@pytest.mark.parametrize("chunk_bytes", [1 << 30, 1024])
def test_parcel_round_trip_and_in_place_changes_survive_detach(monkeypatch, chunk_bytes):
    from inversedvs.backend import offload

    monkeypatch.setattr(offload, "PIN_CHUNK_BYTES", chunk_bytes)
    model, x = _model_and_input()
    expected = model(x)
    parcel = Parcel(_tensors_of(model), pin=False)
    assert all(_on_host(t, parcel) for t in parcel.tensors)
    assert not parcel.pinned
    if chunk_bytes == 1024:  # pieces of at most 1 KiB, except a bigger tensor alone in its own
        sizes = [c.numel() for _, c in parcel.chunks]
        assert len(sizes) > 1 and all(n <= 1024 or n == offload._aligned(WIDTH * WIDTH * 4) for n in sizes)
    assert sum(c.numel() for _, c in parcel.chunks) == parcel.nbytes
    assert torch.equal(model(x), expected)  # packing changed nothing

    device_copy, _ = offload._copy_to(parcel, torch.device("cpu"), None)
    parcel.attach(device_copy)
    assert all(_within(t, device_copy) for t in parcel.tensors)
    assert torch.equal(model(x), expected)
    with torch.no_grad():
        model.out.bias.add_(1.0)  # an in-place edit while "on the device" (e.g. a LoRA merge)
    parcel.detach()
    assert all(_on_host(t, parcel) for t in parcel.tensors)
    assert torch.allclose(model(x), expected + 1.0, atol=1e-6)


def test_parcel_sections_move_on_their_own_across_host_pieces(monkeypatch):
    from inversedvs.backend import offload

    monkeypatch.setattr(offload, "PIN_CHUNK_BYTES", 1500)  # pieces smaller than two blocks
    model, x = _model_and_input()
    expected = model(x)
    per_block = [_tensors_of(b) for b in model.blocks]
    parcel = Parcel([t for ts in per_block for t in ts], pin=False, section_sizes=[len(ts) for ts in per_block])
    assert len(parcel.sections) == N_BLOCKS and len(parcel.chunks) > 1
    straddling = [k for k in range(N_BLOCKS)
                  if sum(1 for start, c in parcel.chunks
                         if start < parcel.section_bytes(k)[1] and parcel.section_bytes(k)[0] < start + c.numel()) > 1]
    assert straddling  # some block's bytes lie in two host pieces
    other = next(k for k in range(N_BLOCKS) if k != straddling[0])
    for k in (straddling[0], other):
        flat, _ = offload._copy_to(parcel, torch.device("cpu"), None, section=k)
        begin, end = parcel.section_bytes(k)
        assert flat.numel() == end - begin
        parcel.attach(flat, section=k)
        assert all(_within(t, flat) for t in per_block[k])
    assert set(parcel.device_flats) == {straddling[0], other}
    assert torch.equal(model(x), expected)  # the device copies hold the same bytes
    parcel.detach(section=other)
    assert set(parcel.device_flats) == {straddling[0]}
    parcel.detach()
    assert not parcel.device_flats and all(_on_host(t, parcel) for t in parcel.tensors)
    with pytest.raises(ValueError, match="add up"):
        Parcel(_tensors_of(model.blocks[0]), pin=False, section_sizes=[1])


def test_block_stream_holds_at_most_two_blocks_and_matches_plain_forward():
    model, x = _model_and_input()
    expected = model(x)
    stream = BlockStream(model.blocks, torch.device("cpu"), pin=False)
    stream.active = True
    seen = []
    handles = [
        b.register_forward_pre_hook(lambda m, a, i=i: seen.append((i, all(_on_host(t, stream.parcel) for t in _tensors_of(m)))))
        for i, b in enumerate(model.blocks)
    ]
    got = model(x)
    got_again = model(x)
    for h in handles:
        h.remove()
    assert torch.equal(got, expected) and torch.equal(got_again, expected)
    # when block i started (after the stream's own pre-hook), its weights were the streamed copy, not the host buffer
    assert [i for i, on_host in seen] == list(range(N_BLOCKS)) * 2
    assert not any(on_host for _, on_host in seen)
    assert stream.max_on_device == 2
    assert set(stream.pending) == {0}  # block 0 prefetched for the next pass
    stream.stop()
    assert not stream.pending
    assert all(_on_host(t, stream.parcel) for b in model.blocks for t in _tensors_of(b))
    assert not stream.parcel.device_flats
    stream.remove()
    assert torch.equal(model(x), expected)


@pytest.mark.parametrize("policy", ["model_offload", "sequential_offload"])
@pytest.mark.parametrize("reused", [True, False])
def test_offload_policies_move_weights_only_inside_use(policy, reused):
    model, x = _model_and_input()
    expected = model(x)
    placement = Placement(policy, torch.device("cpu"))
    placement.noop = False  # drive the real mechanics with CPU buffers standing in for the device
    placement.register("transformer", model, reused=reused)
    entry = placement._entries["transformer"]
    host_ptrs = [t.data_ptr() for t in entry.moving]
    if reused:  # packed at registration: every use is one copy of the packed bytes
        assert entry.parcel is not None and entry.loose is None
        assert all(_on_host(t, entry.parcel) for t in entry.moving)
    else:  # used once: moved tensor by tensor, never packed
        assert entry.parcel is None and entry.loose is not None

    for _ in range(2):
        with placement.use("transformer") as m:
            assert m is model
            assert all(t.data_ptr() != p for t, p in zip(entry.moving, host_ptrs))
            if reused:
                assert all(_within(t, entry.parcel.device_flats[0]) for t in entry.moving)
            with placement.use("transformer"):  # nested use keeps the weights in place
                pass
            assert all(t.data_ptr() != p for t, p in zip(entry.moving, host_ptrs))
            got = m(x)
        assert torch.equal(got, expected)
        assert [t.data_ptr() for t in entry.moving] == host_ptrs
    assert (entry.parcel is None) == (not reused)
    if policy == "sequential_offload":
        streamed = {id(t) for b in model.blocks for t in _tensors_of(b)}
        assert not streamed & {id(t) for t in entry.moving}
        assert placement.stats()["max_blocks_on_device"] == {"transformer": 2}
        assert not entry.stream.pending
    else:
        assert entry.stream is None
        assert len(entry.moving) == len(_tensors_of(model))
    placement.release_all()
    assert torch.equal(model(x), expected)


def test_resident_keeps_host_copies_so_release_costs_no_copy_back(monkeypatch):
    from inversedvs.backend import offload

    model, x = _model_and_input()
    expected = model(x)
    tensors = _tensors_of(model)
    host_ptrs = [t.data_ptr() for t in tensors]
    monkeypatch.setattr(offload, "_on", lambda t, device: False)  # the weights count as "in host memory"
    placement = Placement("resident", torch.device("cpu"))
    placement.noop = False  # CPU copies stand in for device copies
    placement.register("text_encoder", model)
    device_ptrs = [t.data_ptr() for t in tensors]
    assert not set(device_ptrs) & set(host_ptrs)
    with placement.use("text_encoder") as m:
        assert m is model and [t.data_ptr() for t in tensors] == device_ptrs
        assert torch.equal(m(x), expected)
    placement.release_all()
    assert [t.data_ptr() for t in tensors] == host_ptrs  # the very same host tensors, nothing copied back
    with placement.use("text_encoder"):  # a later use brings the weights again
        assert not set(t.data_ptr() for t in tensors) & set(host_ptrs)
    placement.unregister("text_encoder")
    assert [t.data_ptr() for t in tensors] == host_ptrs
    assert torch.equal(model(x), expected)


def test_a_host_out_of_memory_is_a_clear_error():
    from inversedvs.backend import offload

    with pytest.raises(InverseDVSError, match="Not enough free system RAM .* keep_text_encoder off"):
        offload._host_buffer(1 << 60, pin=False)
