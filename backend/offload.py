"""Where the video model's weights live while the pipeline runs: the memory policies.

Three policies, one interface (:class:`Placement`):

``resident``
    every registered module sits on the compute device for the whole run (most memory). A module
    registered from host memory keeps its host copy, so ``release_all`` costs no copy back.
``model_offload``
    a module's weights live in host memory and come to the device for the duration of
    ``with placement.use(name)``; leaving the block drops the device copy, so other stages (VAE
    decode, text encode) get the memory back. A module registered as ``reused`` (the default) is
    packed at registration into pinned host buffers and arrives in one fast copy per use (53 GB/s
    on an H100 host, against 7.5 GB/s from pageable memory); a module used only once is copied
    tensor by tensor instead, which spares the packing (pinning T5's 9.5 GB takes ≈ 5 s).
``sequential_offload``
    like ``model_offload``, and a module built from a long list of identical blocks (the video
    transformer's 42 blocks, T5's 24) streams those blocks through the device one at a time: a
    side CUDA stream copies block ``i + 1`` while block ``i`` computes, so only two blocks and
    the activations occupy the device.

Weights are treated as read-only while registered: leaving the device drops the device copy
instead of copying it back, which makes offloading free. A weight that was changed in place on
the device (its version counter moved) is copied back before the device copy is dropped.

On a CPU-only machine (``device`` is the CPU) every policy is a no-op: modules stay where they
are and ``use`` hands them back unchanged.
"""

from __future__ import annotations

import contextlib
import itertools

import torch

from ..errors import InverseDVSError

POLICIES = ("resident", "model_offload", "sequential_offload")

# Byte alignment of each tensor inside a packed buffer (covers every dtype and vector loads).
PACK_ALIGN_BYTES = 256
# A module list counts as "repeated blocks" (streamed under sequential_offload) from this length on.
MIN_STREAMED_BLOCKS = 4
# Packed weights are pinned in pieces of at most this size (a larger tensor gets a piece of its own),
# so packing needs little host memory beyond the weights: each source tensor is freed once copied.
PIN_CHUNK_BYTES = 1 << 30


def _tensors_of(module: torch.nn.Module) -> list[torch.Tensor]:
    """Every distinct parameter and buffer of ``module`` (shared tensors once), in a fixed order."""
    seen, out = set(), []
    for t in list(module.parameters()) + list(module.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


def _aligned(n: int) -> int:
    return (n + PACK_ALIGN_BYTES - 1) // PACK_ALIGN_BYTES * PACK_ALIGN_BYTES


def _byte_views(flat: torch.Tensor, like: list[torch.Tensor], offsets: list[int]) -> list[torch.Tensor]:
    """Views into the byte buffer ``flat`` [N] uint8 with the dtype and shape of each tensor in ``like``."""
    views = []
    for t, off in zip(like, offsets):
        nbytes = t.numel() * t.element_size()
        views.append(flat[off : off + nbytes].view(t.dtype).view(t.shape))
    return views


def _chunk_starts(offsets: list[int], sizes: list[int]) -> list[int]:
    """Indices of the tensors that open a new host piece (pieces of at most PIN_CHUNK_BYTES)."""
    starts = [0] if offsets else []
    for i in range(1, len(offsets)):
        if offsets[i] + sizes[i] - offsets[starts[-1]] > PIN_CHUNK_BYTES:
            starts.append(i)
    return starts


def return_pinned_memory() -> None:
    """Hand freed pinned host memory back to the OS.

    PyTorch keeps freed pinned blocks cached for reuse (and rounds each up to a power of two, one
    reason packing works in PIN_CHUNK_BYTES pieces); without this, dropping a packed model would
    not give its RAM back. Call it after the last reference to the model's weights is gone.
    """
    if not torch.cuda.is_available():  # no pinned memory without a driver
        return
    empty = getattr(getattr(torch, "accelerator", None), "empty_host_cache", None)
    empty = empty or getattr(torch._C, "_host_emptyCache", None)
    if empty is not None:
        empty()


def _host_buffer(nbytes: int, pin: bool) -> torch.Tensor:
    """An uninitialised host byte buffer [nbytes] uint8, pinned when asked and the OS allows it."""
    if pin:
        try:
            return torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
        except RuntimeError:  # no driver, or the OS refused to lock this much memory
            pass
    try:
        return torch.empty(nbytes, dtype=torch.uint8)
    except RuntimeError as err:  # the host itself is out of memory
        raise InverseDVSError(
            f"Not enough free system RAM to hold the model's weights in host memory (a {nbytes / 1e9:.1f} GB piece "
            f"failed: {str(err).splitlines()[0][:120]}). Close other programs, turn Load Video Model's "
            "keep_text_encoder off (frees T5's 9.5 GB between prompts), or use memory = resident on a GPU that "
            "holds the whole model."
        ) from None


class Parcel:
    """Weights (parameters and buffers) packed into host byte buffers, movable in device buffers.

    The byte layout is one range of ``nbytes`` (each tensor at ``offsets[i]``, aligned); on the
    host it is split into ``chunks`` — (start, [n] uint8 buffer) pieces, pinned when ``pin`` and
    pinning succeeds (``pinned``). After construction the tensors' data are views into the
    chunks. ``sections`` splits the tensors, in order, into groups that move on their own (one
    per transformer block when blocks stream; by default one group of all): ``attach(flat, k)``
    points section ``k``'s tensors at a device buffer holding that section's bytes
    (``section_bytes(k)``), ``detach(k)`` points them back at the host copy. Modules holding the
    tensors see the change at once (``Tensor.data`` is swapped in place). Sharing host pieces
    between sections keeps small groups from each taking a pinned block of its own (PyTorch
    rounds every pinned block up to a power of two: a 265 MB block would take 512 MB).
    """

    def __init__(self, tensors: list[torch.Tensor], pin: bool, section_sizes: list[int] | None = None):
        self.tensors = list(tensors)
        sizes = [t.numel() * t.element_size() for t in self.tensors]
        self.offsets, total = [], 0
        for size in sizes:
            self.offsets.append(total)
            total += _aligned(size)
        self.nbytes = total
        counts = section_sizes if section_sizes is not None else [len(self.tensors)]
        if sum(counts) != len(self.tensors):
            raise ValueError("section sizes must add up to the number of tensors")
        bounds = list(itertools.accumulate(counts, initial=0))
        self.sections = list(zip(bounds, bounds[1:]))  # (first, stop) tensor indices
        self.chunks: list[tuple[int, torch.Tensor]] = []
        self._host_views: list[torch.Tensor] = []
        starts = _chunk_starts(self.offsets, sizes)
        for first, stop in zip(starts, starts[1:] + [len(self.tensors)]):
            begin, end = self._byte_range(first, stop)
            chunk = _host_buffer(end - begin, pin)
            self.chunks.append((begin, chunk))
            local = [off - begin for off in self.offsets[first:stop]]
            for t, view in zip(self.tensors[first:stop], _byte_views(chunk, self.tensors[first:stop], local)):
                view.copy_(t.data)
                t.data = view  # the source storage is freed here when nothing else holds it
                self._host_views.append(view)
        self.pinned = bool(self.chunks) and all(c.is_pinned() for _, c in self.chunks)
        self.device_flats: dict[int, torch.Tensor] = {}  # attached sections → their device buffers
        self._versions: dict[int, list[int]] = {}

    def _byte_range(self, first: int, stop: int) -> tuple[int, int]:
        """Bytes [begin, end) of tensors first … stop − 1 in the layout."""
        if first >= stop:
            return 0, 0
        return self.offsets[first], self.offsets[stop] if stop < len(self.tensors) else self.nbytes

    def section_bytes(self, section: int) -> tuple[int, int]:
        """Bytes [begin, end) of section ``section`` in the layout."""
        return self._byte_range(*self.sections[section])

    def attach(self, flat: torch.Tensor, section: int = 0) -> None:
        """Point section ``section``'s tensors at ``flat`` ([end − begin] uint8 on the device, its bytes)."""
        first, stop = self.sections[section]
        begin, _ = self.section_bytes(section)
        tensors = self.tensors[first:stop]
        for t, view in zip(tensors, _byte_views(flat, tensors, [o - begin for o in self.offsets[first:stop]])):
            t.data = view
        self.device_flats[section] = flat
        self._versions[section] = [t._version for t in tensors]

    def detach(self, section: int | None = None) -> None:
        """Point a section's tensors (every attached section's for None) back at the host copy.

        Weights changed in place on the device are copied back first.
        """
        for k in list(self.device_flats) if section is None else [section]:
            if k not in self.device_flats:
                continue
            first, stop = self.sections[k]
            for t, view, v in zip(self.tensors[first:stop], self._host_views[first:stop], self._versions.pop(k)):
                if t._version != v:
                    view.copy_(t.data)
                t.data = view
            del self.device_flats[k]


class LooseTensors:
    """Tensors moved to the device one by one, without packing or pinning (a module used once, or resident).

    ``attach(device)`` points each tensor at a device copy; ``detach()`` points it back at its host
    data, keeping in-place changes made on the device (as :class:`Parcel` does).
    """

    def __init__(self, tensors: list[torch.Tensor]):
        self.tensors = list(tensors)
        self.host = None
        self._versions = None

    def attach(self, device: torch.device) -> None:
        self.host = [t.data for t in self.tensors]
        for t in self.tensors:
            t.data = t.data.to(device, copy=True)
        self._versions = [t._version for t in self.tensors]

    def detach(self) -> None:
        if self.host is None:
            return
        for t, h, v in zip(self.tensors, self.host, self._versions):
            if t._version != v:
                h.copy_(t.data)
            t.data = h
        self.host = None
        self._versions = None


def _copy_to(parcel: Parcel, device: torch.device, stream, section: int = 0) -> tuple[torch.Tensor, object]:
    """Start copying a section of ``parcel``'s host bytes to ``device``; returns (device buffer, ready event or None).

    With ``stream`` None the copy is queued on the current stream (asynchronous from pinned
    memory; the host bytes never change, so nothing has to wait for it).
    """
    begin, end = parcel.section_bytes(section)
    with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
        flat = torch.empty(end - begin, dtype=torch.uint8, device=device)
        for start, chunk in parcel.chunks:
            lo, hi = max(begin, start), min(end, start + chunk.numel())
            if lo < hi:
                flat[lo - begin : hi - begin].copy_(chunk[lo - start : hi - start], non_blocking=parcel.pinned)
        if stream is None:
            return flat, None
        ready = torch.cuda.Event()
        ready.record(stream)
    return flat, ready


def _wait_for(flat: torch.Tensor, ready, device: torch.device) -> None:
    """Make the compute stream wait for a side-stream copy and keep ``flat`` alive for its work."""
    if ready is None:
        return
    compute = torch.cuda.current_stream(device)
    compute.wait_event(ready)
    flat.record_stream(compute)


def _on(t: torch.Tensor, device: torch.device) -> bool:
    """Whether tensor ``t`` lives on ``device`` (an index-less device matches any index of its type)."""
    return t.device.type == device.type and (device.index is None or t.device.index == device.index)


def repeated_blocks(module: torch.nn.Module) -> torch.nn.ModuleList | None:
    """The longest ``nn.ModuleList`` of ``module`` whose items share one class (≥ MIN_STREAMED_BLOCKS), else None.

    For CogVideoX's transformer this is ``transformer_blocks`` (42 × CogVideoXBlock); for T5's
    encoder ``encoder.block`` (24 × T5Block).
    """
    best = None
    for sub in module.modules():
        if isinstance(sub, torch.nn.ModuleList) and len(sub) >= MIN_STREAMED_BLOCKS:
            if len({type(b) for b in sub}) == 1 and (best is None or len(sub) > len(best)):
                best = sub
    return best


class BlockStream:
    """Runs ``blocks`` with their weights on ``device`` one (plus one prefetched) at a time.

    The blocks' weights are packed into one :class:`Parcel`, one section per block. Forward
    pre-hooks attach block ``i``'s weights (waiting for their copy) and start copying block
    ``i + 1`` (block 0 after the last, ready for the next pass); forward hooks detach block ``i``.
    With a CUDA ``device`` the copies run on a side stream; otherwise they are synchronous.
    Hooks act only while ``active`` is true.
    """

    def __init__(self, blocks: torch.nn.ModuleList, device: torch.device, pin: bool):
        self.device = device
        per_block = [_tensors_of(b) for b in blocks]
        self.parcel = Parcel([t for ts in per_block for t in ts], pin, [len(ts) for ts in per_block])
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self.pending: dict[int, tuple[torch.Tensor, object]] = {}
        self.active = False
        self.max_on_device = 0  # most blocks held on the device at once (attached + in flight)
        self._handles = []
        for i, block in enumerate(blocks):
            self._handles.append(block.register_forward_pre_hook(self._pre_hook(i)))
            self._handles.append(block.register_forward_hook(self._post_hook(i)))

    def _prefetch(self, i: int) -> None:
        if i not in self.pending:
            self.pending[i] = _copy_to(self.parcel, self.device, self.stream, section=i)

    def _count_on_device(self) -> None:
        attached = len(self.parcel.device_flats)
        self.max_on_device = max(self.max_on_device, attached + len(self.pending))

    def _pre_hook(self, i: int):
        def hook(module, args):
            if not self.active:
                return None
            self._prefetch(i)
            flat, ready = self.pending.pop(i)
            _wait_for(flat, ready, self.device)
            self.parcel.attach(flat, section=i)
            self._prefetch((i + 1) % len(self.parcel.sections))
            self._count_on_device()
            return None

        return hook

    def _post_hook(self, i: int):
        def hook(module, args, output):
            if self.active:
                self.parcel.detach(section=i)
            return None

        return hook

    def stop(self) -> None:
        """Deactivate the hooks and drop every device copy (attached or prefetched)."""
        self.active = False
        self.parcel.detach()
        self.pending.clear()

    def remove(self) -> None:
        self.stop()
        for h in self._handles:
            h.remove()
        self._handles = []


class _Entry:
    """One registered module and how it is placed."""

    def __init__(self, module: torch.nn.Module):
        self.module = module
        self.moving: list[torch.Tensor] = []  # weights that come to the device on ``use`` (not streamed)
        self.loose: LooseTensors | None = None  # those weights, moved tensor by tensor (used once / resident)
        self.parcel: Parcel | None = None  # or those weights packed (a reused module)
        self.stream: BlockStream | None = None  # repeated blocks that stream
        self.on_device = False  # resident modules: currently moved to the device
        self.depth = 0  # nesting of ``use``


def _detach(entry: _Entry) -> None:
    """Drop the device copy of an entry's moving weights, whichever way they were brought."""
    if entry.loose is not None:
        entry.loose.detach()
    if entry.parcel is not None:
        entry.parcel.detach()


class Placement:
    """Places registered modules on ``device`` according to ``policy`` (one of POLICIES).

    ``register(name, module)`` does the initial placement; ``with use(name) as m:`` yields the
    module ready to run on ``device``; ``release_all()`` takes every module off the device.
    When ``device`` is the CPU (or equals ``offload_device``) every policy is a no-op.
    """

    def __init__(self, policy: str, device: torch.device, offload_device: torch.device = torch.device("cpu")):
        if policy not in POLICIES:
            raise InverseDVSError(
                f"Unknown memory policy {policy!r}. Choose one of: {', '.join(POLICIES)}."
            )
        self.policy = policy
        self.device = torch.device(device)
        self.offload_device = torch.device(offload_device)
        self.noop = self.device.type == "cpu" or self.device == self.offload_device
        self.pin = self.device.type == "cuda" and self.offload_device.type == "cpu"
        self._entries: dict[str, _Entry] = {}

    # -- registration ---------------------------------------------------------------------------
    def register(self, name: str, module: torch.nn.Module, reused: bool = True) -> None:
        """Take charge of ``module`` under ``name`` and place it: on the device (resident) or in host memory.

        ``reused``: the module will be used more than once, so the offload policies pack its
        weights into pinned host memory now (slow once, fast copies on every use); False moves
        them tensor by tensor on its use instead (a module used once).
        """
        if name in self._entries:
            self.unregister(name)
        entry = _Entry(module)
        self._entries[name] = entry
        if self.noop:
            return
        if self.policy == "resident":
            tensors = _tensors_of(module)
            if not all(_on(t, self.device) for t in tensors):
                # keep the host copies: leaving the device later costs no copy back
                entry.moving = tensors
                entry.loose = LooseTensors(tensors)
            self._to_device(entry)
            return
        module.to(self.offload_device)
        blocks = repeated_blocks(module) if self.policy == "sequential_offload" else None
        if blocks is not None:
            entry.stream = BlockStream(blocks, self.device, self.pin)
            streamed = {id(t) for b in blocks for t in _tensors_of(b)}
            entry.moving = [t for t in _tensors_of(module) if id(t) not in streamed]
        else:
            entry.moving = _tensors_of(module)
        if reused:
            entry.parcel = Parcel(entry.moving, self.pin)
        else:
            entry.loose = LooseTensors(entry.moving)

    def unregister(self, name: str) -> torch.nn.Module:
        """Stop managing ``name``; its weights end in host memory (a module built on the device stays there)."""
        entry = self._entries.pop(name)
        if entry.stream is not None:
            entry.stream.remove()
        _detach(entry)
        return entry.module

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    # -- use ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def use(self, name: str):
        """Yield module ``name`` with its weights on the device for the duration of the block."""
        if name not in self._entries:
            raise InverseDVSError(
                f"Model part {name!r} was never loaded (known: {', '.join(self._entries) or 'none'}). "
                "Re-run the model loader node."
            )
        entry = self._entries[name]
        if self.noop:
            yield entry.module
            return
        if self.policy == "resident":
            if not entry.on_device:
                self._to_device(entry)
            yield entry.module
            return
        entry.depth += 1
        try:
            if entry.depth == 1:
                if entry.parcel is not None:
                    flat, _ = _copy_to(entry.parcel, self.device, None)
                    entry.parcel.attach(flat)
                else:
                    entry.loose.attach(self.device)
                if entry.stream is not None:
                    entry.stream.active = True
            yield entry.module
        finally:
            entry.depth = max(entry.depth - 1, 0)  # release_all() may have reset it meanwhile
            if entry.depth == 0:
                if entry.stream is not None:
                    entry.stream.stop()
                _detach(entry)

    def _to_device(self, entry: _Entry) -> None:
        """Resident placement: the module's weights onto the device (keeping host copies when it has them)."""
        if entry.loose is not None:
            entry.loose.attach(self.device)
        else:
            entry.module.to(self.device)
        entry.on_device = True

    def release_all(self) -> None:
        """Take every registered module off the device (host memory keeps the weights) and free the cache."""
        for entry in self._entries.values():
            if self.noop:
                continue
            if entry.stream is not None:
                entry.stream.stop()
            _detach(entry)
            entry.depth = 0
            if entry.on_device and entry.loose is None:  # built on the device: no host copy to return to
                entry.module.to(self.offload_device)
            entry.on_device = False
        if self.device.type == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def stats(self) -> dict:
        """Placement facts for reports: policy, and per streamed module the most blocks held at once."""
        return {
            "policy": self.policy,
            "noop": self.noop,
            "max_blocks_on_device": {
                n: e.stream.max_on_device for n, e in self._entries.items() if e.stream is not None
            },
        }

