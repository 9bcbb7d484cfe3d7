"""A fitted dynamic object as safetensors tensors plus string metadata, and back (nothing is unpickled).

Tensors: the canonical Gaussians (``gaussians.<name>``, ``model.Gaussians``' five), the deformation field's
weights (``field.<parameter>``), the orbit (``orbit.azimuth_deg``, ``orbit.elevation_deg``) and ``background``.
Metadata: ``format`` = FORMAT, ``version``, the frames / size / camera numbers and the field's shape. ``from_state``
checks everything a file could get wrong (missing or extra tensors, shapes, dtypes, non-finite values, absurd
sizes) and says what, as a ValueError.
"""

from __future__ import annotations

import math

import torch

from .cameras import DIRECTIONS
from .deform import DeformationField
from .fit import Fitted
from .model import Gaussians

FORMAT = "inversedvs-dynamic-gaussians"
VERSION = "1"
MAX_FIELD_DEPTH = 16  # with MAX_FIELD_WIDTH: at most 16 M weights are allocated before a file is checked
MAX_FIELD_WIDTH = 1024
MAX_FREQUENCIES = 32
MAX_SIDE = 16384
MAX_FRAMES = 4096
_SHAPES = {"means": 3, "quats": 4, "log_scales": 3, "opacity_logits": None, "sh0": 3}  # per-Gaussian trailing size


def to_state(fitted: Fitted) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """(tensors, metadata) of ``fitted``: float32, contiguous, on the CPU."""
    tensors = {f"gaussians.{k}": t for k, t in fitted.gaussians.tensors().items()}
    tensors.update({f"field.{k}": t for k, t in fitted.field.state_dict().items()})
    tensors.update({"orbit.azimuth_deg": fitted.azimuth_deg, "orbit.elevation_deg": fitted.elevation_deg,
                    "background": fitted.background})
    tensors = {k: t.detach().to("cpu", torch.float32).contiguous() for k, t in tensors.items()}
    field = fitted.field
    metadata = {"format": FORMAT, "version": VERSION, "frames": str(fitted.frames), "height": str(fitted.height),
                "width": str(fitted.width), "radius": repr(float(fitted.radius)), "fov_deg": repr(float(fitted.fov_deg)),
                "direction": fitted.direction, "field_depth": str(len(field.layers)),
                "field_width": str(field.head.in_features), "position_frequencies": str(field.position_frequencies),
                "time_frequencies": str(field.time_frequencies)}
    return tensors, metadata


def _integer(metadata: dict, key: str, lo: int, hi: int) -> int:
    text = metadata.get(key)
    if not isinstance(text, str) or not text.isdigit() or not lo <= int(text) <= hi:
        raise ValueError(f"its '{key}' is {text!r}, not a whole number from {lo} to {hi}")
    return int(text)


def _number(metadata: dict, key: str, lo: float, hi: float) -> float:
    try:
        value = float(metadata.get(key))
    except (TypeError, ValueError):
        value = math.nan
    if not lo < value < hi:
        raise ValueError(f"its '{key}' is {metadata.get(key)!r}, not a number between {lo:g} and {hi:g}")
    return value


def from_state(tensors: dict[str, torch.Tensor], metadata: dict | None) -> Fitted:
    """The ``Fitted`` that ``to_state`` saved; ValueError naming the first thing that is wrong."""
    metadata = metadata or {}
    if metadata.get("format") != FORMAT:
        raise ValueError("it is not a dynamic Gaussians file (no 'format' = "
                         f"'{FORMAT}' in its metadata)")
    if metadata.get("version") != VERSION:
        raise ValueError(f"it is version {metadata.get('version')!r}; this pack reads version {VERSION}")
    frames = _integer(metadata, "frames", 1, MAX_FRAMES)
    height, width = (_integer(metadata, k, 1, MAX_SIDE) for k in ("height", "width"))
    radius, fov = _number(metadata, "radius", 0.0, 1e6), _number(metadata, "fov_deg", 0.0, 180.0)
    direction = metadata.get("direction")
    if direction not in DIRECTIONS:
        raise ValueError(f"its 'direction' is {direction!r}, not one of {', '.join(DIRECTIONS)}")
    field = DeformationField(_integer(metadata, "field_depth", 1, MAX_FIELD_DEPTH),
                             _integer(metadata, "field_width", 1, MAX_FIELD_WIDTH),
                             _integer(metadata, "position_frequencies", 0, MAX_FREQUENCIES),
                             _integer(metadata, "time_frequencies", 0, MAX_FREQUENCIES))
    expected = {f"gaussians.{k}" for k in _SHAPES} | {f"field.{k}" for k in field.state_dict()} | {
        "orbit.azimuth_deg", "orbit.elevation_deg", "background"}
    missing, extra = sorted(expected - set(tensors)), sorted(set(tensors) - expected)
    if missing or extra:
        raise ValueError(f"its tensors do not match its metadata (missing {missing[:4]}, unexpected {extra[:4]})")
    for key, t in tensors.items():
        if not t.is_floating_point():
            raise ValueError(f"its tensor '{key}' holds {t.dtype} values, not floats")
        if not torch.isfinite(t).all():
            raise ValueError(f"its tensor '{key}' holds NaN or infinite values")
    count = tensors["gaussians.means"].shape[0]
    for name, size in _SHAPES.items():
        shape = tuple(tensors[f"gaussians.{name}"].shape)
        if shape != ((count,) if size is None else (count, size)):
            raise ValueError(f"its tensor 'gaussians.{name}' has shape {shape} for {count} Gaussians")
    if count < 1:
        raise ValueError("it holds no Gaussians")
    state = {k[len("field."):]: t.float() for k, t in tensors.items() if k.startswith("field.")}
    for key, t in field.state_dict().items():
        if tuple(state[key].shape) != tuple(t.shape):
            raise ValueError(f"its field weight '{key}' has shape {tuple(state[key].shape)}, not {tuple(t.shape)}")
    field.load_state_dict(state)
    views = tensors["orbit.azimuth_deg"].shape
    if len(views) != 1 or views[0] < 1 or tuple(tensors["orbit.elevation_deg"].shape) != tuple(views):
        raise ValueError("its orbit is not two lists of angles of one length")
    if tuple(tensors["background"].shape) != (3,):
        raise ValueError("its background is not one RGB colour")
    gaussians = Gaussians(**{name: tensors[f"gaussians.{name}"].float() for name in _SHAPES})
    return Fitted(gaussians=gaussians, field=field.eval(), frames=frames, height=height, width=width,
                  azimuth_deg=tensors["orbit.azimuth_deg"].double(),
                  elevation_deg=tensors["orbit.elevation_deg"].double(), radius=radius, fov_deg=fov, direction=direction, background=tensors["background"].float())
