"""Merge a LoRA from a safetensors file into a model's linear layers, without peft.

Accepted key names (diffusers / peft / kohya-style), for module path ``M``:
``[transformer.|base_model.model.]M.lora_A[.default].weight`` and ``…lora_B…``, or
``M.lora_down.weight`` / ``M.lora_up.weight``, with an optional ``M.alpha`` scalar. The update
W ← W + strength · (alpha / rank) · B·A is computed in float32 and stored in W's dtype.
"""

from __future__ import annotations

import os
import re

import torch

from ..errors import InverseDVSError
from .files import safetensors_header

_PREFIXES = ("transformer.", "base_model.model.", "diffusion_model.", "model.")
_PAIR = re.compile(r"^(?P<module>.+?)\.(?P<kind>lora_A|lora_B|lora_down|lora_up)(?:\.default)?\.weight$")
_ALPHA = re.compile(r"^(?P<module>.+?)\.alpha$")
# How many offending key names an error message lists.
LISTED_KEYS = 3


def read_safetensors(path: str, what: str) -> dict[str, torch.Tensor]:
    """Tensors of a complete ``.safetensors`` file, all finite; anything else is refused and never unpickled."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    hint = "convert it to safetensors first, or download it again."
    safetensors_header(path, what, hint)
    try:
        state = load_file(path, device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise InverseDVSError(
            f"{what} '{os.path.basename(path)}' could not be read as safetensors ({err}). "
            "The file is damaged or not a safetensors file; download it again."
        ) from None
    bad = [key for key, tensor in state.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        raise InverseDVSError(
            f"{what} '{os.path.basename(path)}' holds NaN or infinite values in {len(bad)} of its "
            f"{len(state)} tensors (e.g. {', '.join(bad[:LISTED_KEYS])}); merging it would turn every output into NaN. The file is "
            "damaged or came from a training run that diverged: download it again or use another file."
        )
    return state


def _strip_prefix(name: str) -> str:
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def lora_pairs(state: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Group LoRA tensors by module path: {module: {"down": A [r, in], "up": B [out, r], "alpha": scalar?}}."""
    groups: dict[str, dict[str, torch.Tensor]] = {}
    unknown = []
    for key, tensor in state.items():
        name = _strip_prefix(key)
        pair = _PAIR.match(name)
        alpha = _ALPHA.match(name)
        if pair:
            part = "down" if pair["kind"] in ("lora_A", "lora_down") else "up"
            groups.setdefault(pair["module"], {})[part] = tensor
        elif alpha:
            groups.setdefault(alpha["module"], {})["alpha"] = tensor
        else:
            unknown.append(key)
    if unknown or not groups:
        shown = ", ".join(unknown[:LISTED_KEYS]) or "none"
        raise InverseDVSError(
            f"This file is not a LoRA this pack can read (unrecognised keys: {shown}). Use a LoRA in diffusers/peft "
            "format (…lora_A.weight / …lora_B.weight) trained for CogVideoX-5B-I2V."
        )
    incomplete = [m for m, g in groups.items() if "down" not in g or "up" not in g]
    if incomplete:
        raise InverseDVSError(
            f"The LoRA is incomplete: {', '.join(incomplete[:LISTED_KEYS])} lack a lora_A or lora_B weight. "
            "Download the LoRA file again."
        )
    return groups


def merge_lora(model: torch.nn.Module, state: dict[str, torch.Tensor], strength: float,
               model_name: str = "the video model") -> int:
    """Add strength·(alpha/r)·B·A to every targeted weight of ``model``; returns how many layers changed.

    Linear layers: A [r, in], B [out, r]. Conv2d layers (e.g. the patch embedding): A [r, in, kh, kw],
    B [out, r, 1, 1]. Every key must name such a layer of ``model`` with matching shapes, else nothing is
    changed and InverseDVSError says the LoRA belongs to another model.
    """
    groups = lora_pairs(state)
    modules = dict(model.named_modules())
    missing, mismatched, updates = [], [], []
    for name, g in groups.items():
        layer = modules.get(name)
        if not isinstance(layer, (torch.nn.Linear, torch.nn.Conv2d)):
            missing.append(name)
            continue
        down, up = g["down"], g["up"]
        rank = down.shape[0]
        shape = (up.shape[0], *down.shape[1:])  # the weight shape this pair updates
        if up.ndim != down.ndim or up.shape[1] != rank or tuple(shape) != tuple(layer.weight.shape) \
                or any(d != 1 for d in up.shape[2:]):
            mismatched.append(f"{name} (LoRA {tuple(shape)}, model {tuple(layer.weight.shape)})")
            continue
        scale = float(g["alpha"]) / rank if "alpha" in g else 1.0
        updates.append((layer, down, up, scale))
    if missing or mismatched:
        parts = []
        if missing:
            parts.append(f"{len(missing)} layers not in {model_name} (e.g. {', '.join(missing[:LISTED_KEYS])})")
        if mismatched:
            parts.append(f"{len(mismatched)} layers of another size (e.g. {', '.join(mismatched[:LISTED_KEYS])})")
        raise InverseDVSError(
            f"This LoRA does not fit {model_name}: {'; '.join(parts)}. It was trained for another model; "
            "use a LoRA made for CogVideoX-5B-I2V (e.g. Go-with-the-Flow's I2V5B LoRA)."
        )
    with torch.no_grad():
        for layer, down, up, scale in updates:
            delta = (up.float().flatten(1) @ down.float().flatten(1)).view(layer.weight.shape) * (strength * scale)
            layer.weight.copy_((layer.weight.float() + delta.to(layer.weight.device)).to(layer.weight.dtype))
    return len(updates)
