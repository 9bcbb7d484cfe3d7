"""Stochastic Latent Modulation (SLM): fill unseen latent cells with values drawn from visible ones.

Draws are uniform, with replacement, from a seeded ``torch.Generator``. Visible cells are never
changed. Scopes: ``tensor`` (the reference: any batch, channel, frame, position), ``channel``
(same batch item and channel, any frame) and ``frame`` (same batch item, channel and frame).
"""

from __future__ import annotations

import torch

from ..errors import InverseDVSError

SCOPES = ("tensor", "channel", "frame")


def _nothing_visible(what: str) -> InverseDVSError:
    return InverseDVSError(
        f"Stochastic Latent Modulation: every latent cell of the {what} is unseen, so there are no visible "
        "values to draw from. The camera move hides the whole video: use a smaller move or check the hole mask "
        "(1 = hole, 0 = seen)."
    )


def _fill_tensor_scope(x: torch.Tensor, fill: torch.Tensor, generator: torch.Generator, what: str) -> torch.Tensor:
    """Fill ``x[fill]`` with ``x[~fill]`` values drawn uniformly with replacement (x, fill: same shape)."""
    donors = x[~fill]
    n_fill = int(fill.sum())
    if n_fill == 0:
        return x.clone()
    if donors.numel() == 0:
        raise _nothing_visible(what)
    idx = torch.randint(0, donors.numel(), (n_fill,), generator=generator, device=generator.device)
    out = x.clone()
    out[fill] = donors[idx.to(x.device)]
    return out


def _fill_grouped(x: torch.Tensor, fill: torch.Tensor, generator: torch.Generator, what: str) -> torch.Tensor:
    """Fill within groups: ``x``, ``fill`` [G, N]; each group's filled cells draw from its own visible cells."""
    visible = ~fill
    counts = visible.sum(dim=-1, keepdim=True)  # [G, 1]
    needs = fill.any(dim=-1, keepdim=True)
    if bool(((counts == 0) & needs).any()):
        raise _nothing_visible(what)
    order = torch.argsort(fill.to(torch.uint8), dim=-1, stable=True)  # visible positions first, in order
    u = torch.rand(x.shape, generator=generator, device=generator.device, dtype=torch.float64).to(x.device)
    counts = counts.to(x.device)
    k = torch.minimum((u * counts).floor().long(), (counts - 1).clamp(min=0))
    src = order.gather(-1, k)
    drawn = x.gather(-1, src)
    return torch.where(fill, drawn, x)


def fill_unseen(x: torch.Tensor, fill: torch.Tensor, generator: torch.Generator, scope: str = "tensor",
                what: str = "latent") -> torch.Tensor:
    """Copy of ``x`` [B, C, T, h, w] with cells where ``fill`` ([T, h, w] bool, broadcast) is True replaced.

    Every replacement is a value of ``x`` at a cell where ``fill`` is False, drawn uniformly with
    replacement within ``scope``; cells where ``fill`` is False are returned bit-identical.
    """
    if scope not in SCOPES:
        raise InverseDVSError(f"Unknown SLM scope {scope!r}; choose one of {', '.join(SCOPES)}.")
    fill = fill.to(x.device).expand_as(x)
    if scope == "tensor":
        return _fill_tensor_scope(x, fill, generator, what)
    b, c, t, h, w = x.shape
    if scope == "channel":
        out = _fill_grouped(x.reshape(b * c, t * h * w), fill.reshape(b * c, t * h * w), generator, what)
    else:
        out = _fill_grouped(x.reshape(b * c * t, h * w), fill.reshape(b * c * t, h * w), generator, what)
    return out.reshape(x.shape)


def stochastic_latent_modulation(x0: torch.Tensor, eps: torch.Tensor, unseen: torch.Tensor,
                                 fully_unseen: torch.Tensor, generator: torch.Generator,
                                 scope: str = "tensor") -> tuple[torch.Tensor, torch.Tensor]:
    """One SLM pass: ε at ``fully_unseen`` from ε's other cells, then x0 at ``unseen`` from x0's visible cells.

    ``x0``, ``eps``: [B, C, T, h, w]; masks [T, h, w] bool. Returns new (x0, eps) of the same shapes.
    """
    eps = fill_unseen(eps, fully_unseen, generator, scope, what="inverted noise")
    x0 = fill_unseen(x0, unseen, generator, scope, what="clean latent")
    return x0, eps
