"""Clips longer than one model window: frame padding, overlapping windows, and the blend across overlaps.

Pure torch. A causal video VAE takes ``stride``·k + 1 frames (CogVideoX, Wan: 4k+1); any other count is
padded at the end by repeating the last frame and the padding dropped after decoding, so no frame is
lost. The denoiser is trained on windows of a fixed number of latent frames (CogVideoX-5B-I2V: 13 =
49 frames); a longer latent is split into windows that share ``overlap`` latent frames with the
previous one. Window by window, the shared frames are pulled towards the previous window's result:
at every step the model's clean estimate x̂0 there is blended with the previous result, weight 1 on
the first shared frame (the window's image-condition frame) falling linearly to 1/overlap on the last.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch

# A window of latent frames [start, end).
Span = tuple[int, int]


class Anchor(NamedTuple):
    """What a window is pulled towards: ``target`` [B, C, T, h, w] (the previous result on this window's
    frames, zeros where there is none) and ``weight`` [T] in 0..1 (0 = the window's own estimate)."""

    target: torch.Tensor
    weight: torch.Tensor


def padded_count(frames: int, stride: int) -> int:
    """The smallest stride·k + 1 ≥ ``frames`` (frames ≥ 1): 49 → 49, 50 → 53, 8 → 9 at stride 4."""
    return (max(int(frames), 1) - 1 + stride - 1) // stride * stride + 1


def pad_frames(frames: torch.Tensor, count: int) -> torch.Tensor:
    """[F, ...] → [count, ...] (count ≥ F): the last frame repeated; ``frames`` itself when count = F."""
    extra = count - frames.shape[0]
    if extra <= 0:
        return frames
    return torch.cat([frames, frames[-1:].expand(extra, *frames.shape[1:])], dim=0)


def latent_frames(frames: int, stride: int) -> int:
    """Latent frames of a ``frames``-frame clip after padding: (padded − 1)/stride + 1."""
    return (padded_count(frames, stride) - 1) // stride + 1


def window_spans(length: int, window: int, overlap: int) -> list[Span]:
    """Windows [start, end) of ``window`` latent frames covering 0 … length−1, each sharing at least
    ``overlap`` frames with the one before (1 ≤ overlap < window). A clip that fits is one window
    [(0, length)]; the last window is moved back to end at ``length``, so it shares more frames when the
    length does not fall on the stride (window − overlap)."""
    if length <= window:
        return [(0, length)]
    if not 1 <= overlap < window:
        raise ValueError(f"overlap {overlap} must be at least 1 and below the window of {window} frames")
    stride = window - overlap
    starts = list(range(0, length - window, stride)) + [length - window]
    return [(s, s + window) for s in starts]


def shared_frames(spans: list[Span], i: int) -> int:
    """Latent frames window ``i`` shares with window i−1 (0 for the first)."""
    return 0 if i == 0 else spans[i - 1][1] - spans[i][0]


def previous_weights(shared: int) -> torch.Tensor:
    """Weight [shared] of the previous window's result on the shared frames: 1 − j/shared, j = 0 … shared−1
    (1 on the first shared frame, the window's image-condition frame; 1/shared on the last)."""
    return 1.0 - torch.arange(shared, dtype=torch.float32) / max(shared, 1)


def anchor_for(previous: torch.Tensor, span: Span, shared: int) -> Anchor:
    """The Anchor of a window [start, end) whose first ``shared`` frames the previous windows made.

    ``previous``: the clip's result so far [B, C, T, h, w] (frames ≥ start + shared not read).
    """
    start, end = span
    target = torch.zeros_like(previous[:, :, start:end])
    target[:, :, :shared] = previous[:, :, start:start + shared]
    weight = torch.zeros(end - start)
    weight[:shared] = previous_weights(shared)
    return Anchor(target, weight)


def anchored(x0: torch.Tensor, anchor: Anchor | None) -> torch.Tensor:
    """x̂0 [B, C, T, h, w] pulled to the anchor: w·target + (1 − w)·x̂0 per latent frame (x̂0 when no anchor)."""
    if anchor is None:
        return x0
    w = anchor.weight.to(x0.device, x0.dtype).view(1, 1, -1, 1, 1)
    return (1 - w) * x0 + w * anchor.target.to(x0.device, x0.dtype)  # this form: exactly the target at w = 1


# One window's run: (window index, its span, the window's slice of the input, its image condition
# [B, C, 1, h, w] (None for window 0 when the caller gave none), its anchor or None) → the window's
# result, the slice's shape.
WindowRun = Callable[[int, Span, torch.Tensor, "torch.Tensor | None", "Anchor | None"], torch.Tensor]


def sample_windows(x: torch.Tensor, spans: list[Span], first_condition: torch.Tensor | None,
                   run: WindowRun) -> torch.Tensor:
    """Sample a clip window by window: x [B, C, T, h, w] (the start latent) → result, same shape.

    Window 0 is conditioned on ``first_condition`` (None: the caller conditions window 0 itself, e.g. with
    a condition that came with the model's inputs); every later window on the result's latent frame at
    its start (made by the window before) and anchored on the frames it shares. Each window's result
    overwrites the clip's result on its span. Only one window's slice is handed to ``run`` at a time.
    ``x`` is only sliced: it may live in another space than the results (e.g. a sampler's start in the
    model's space, results in the latent's).
    """
    out = torch.zeros_like(x)
    for i, span in enumerate(spans):
        start, end = span
        shared = shared_frames(spans, i)
        condition = first_condition if i == 0 else out[:, :, start:start + 1].clone()
        anchor = anchor_for(out, span, shared) if shared else None
        out[:, :, start:end] = run(i, span, x[:, :, start:end], condition, anchor)
    return out


def invert_windows(x0: torch.Tensor, spans: list[Span], first_condition: torch.Tensor | None,
                   run: WindowRun) -> torch.Tensor:
    """Invert a clip window by window: x0 [B, C, T, h, w] → noise, same shape.

    Window 0 is conditioned on ``first_condition`` (None: as in ``sample_windows``), every later one on x0's
    latent frame at its start.
    The noise of each latent frame is taken from the first window holding it: where windows overlap
    the later window pulls its result to the earlier one's, so those frames belong to the earlier one.
    """
    out = torch.zeros_like(x0)
    for i, span in enumerate(spans):
        start, end = span
        shared = shared_frames(spans, i)
        condition = first_condition if i == 0 else x0[:, :, start:start + 1].clone()
        noise = run(i, span, x0[:, :, start:end], condition, None)
        out[:, :, start + shared:end] = noise[:, :, shared:]
    return out
