"""Camera paths from keyframes: the reference's 3-line text format, interpolation, presets.

Keyframe text (the reference's path files, read as is): three lines of space-separated numbers,
  line 1: elevation θ in degrees (about the x axis; positive = camera up),
  line 2: azimuth φ in degrees (about the y axis; positive = camera right),
  line 3: radius offset r in units of the orbit radius (positive = toward the pivot).
Each list holds at least 2 keyframes, spread evenly over the clip; lists may differ in length.
Blank lines and lines starting with '#' are ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..errors import InverseDVSError
from .camera import DEFAULT_FOV_X_DEG, POSE_DTYPE, CameraPath, orbit_world_to_camera

KEYFRAME_LINES = ("elevation θ (degrees)", "azimuth φ (degrees)", "radius offset r (× orbit radius)")
MIN_KEYFRAMES = 2
# More keyframes than this on one line is no camera move anyone types; the bound keeps parsing and
# the spline solve (linear in the count) within a fraction of a second.
MAX_KEYFRAMES = 10_000
# A list with more keyframes than this is interpolated with a cubic spline, otherwise linearly.
LINEAR_MAX_KEYFRAMES = 3
COMMENT = "#"


@dataclass(frozen=True)
class Keyframes:
    """Keyframe lists of one path; each list is spread evenly over the clip.

    theta, phi: degrees; forward, right, up: units of the orbit radius; zoom: focal multipliers (> 0).
    """

    theta: tuple[float, ...] = (0.0, 0.0)
    phi: tuple[float, ...] = (0.0, 0.0)
    forward: tuple[float, ...] = (0.0, 0.0)
    right: tuple[float, ...] = (0.0, 0.0)
    up: tuple[float, ...] = (0.0, 0.0)
    zoom: tuple[float, ...] = (1.0, 1.0)

    def scaled(self, amount: float) -> "Keyframes":
        """The same move ``amount`` times as large (zoom scales in log space: zoom ** amount)."""
        def mul(values):
            return tuple(v * amount for v in values)
        return Keyframes(mul(self.theta), mul(self.phi), mul(self.forward), mul(self.right), mul(self.up),
                         tuple(z ** amount for z in self.zoom))


# ----------------------------------------------------------------------------- text format


def _parse_number(word: str, line_no: int, what: str, source: str) -> float:
    try:
        value = float(word)
    except ValueError:
        raise InverseDVSError(
            f"{source}: line {line_no} ({what}) has '{word}', which is not a number. "
            "Each line holds numbers separated by spaces, e.g. '0 10 20 30'."
        ) from None
    if not math.isfinite(value):
        raise InverseDVSError(f"{source}: line {line_no} ({what}) has '{word}'; only finite numbers are allowed.")
    return value


def parse_keyframes(text: str, source: str = "keyframes") -> Keyframes:
    """Parse the reference's 3-line keyframe text (θ, φ, r) into Keyframes.

    Raises InverseDVSError naming the line for: no text, a missing line, extra lines, a word that
    is not a number, or a line with fewer than 2 or more than MAX_KEYFRAMES values. ``source`` names the text in messages.
    """
    if not isinstance(text, str) or not text.strip():
        raise InverseDVSError(
            f"{source}: the keyframe text is empty. Type three lines: elevation θ, azimuth φ and radius "
            "offset r, e.g. '0 0' / '0 30' / '0 0' for a 30° orbit to the right."
        )
    lines = [(no, raw.split()) for no, raw in enumerate(text.splitlines(), start=1)
             if raw.strip() and not raw.lstrip().startswith(COMMENT)]
    if len(lines) < len(KEYFRAME_LINES):
        missing = ", ".join(KEYFRAME_LINES[len(lines):])
        raise InverseDVSError(
            f"{source}: found {len(lines)} line(s) of numbers but 3 are needed; missing: {missing}. "
            "Add the missing line (e.g. '0 0' for no change)."
        )
    if len(lines) > len(KEYFRAME_LINES):
        extra = lines[len(KEYFRAME_LINES)][0]
        raise InverseDVSError(
            f"{source}: line {extra} is a 4th line of numbers; the format has exactly 3 lines "
            f"({', '.join(KEYFRAME_LINES)}). Remove it or join it to the line it belongs to."
        )
    lists = []
    for (line_no, words), what in zip(lines, KEYFRAME_LINES):
        if len(words) > MAX_KEYFRAMES:
            raise InverseDVSError(
                f"{source}: line {line_no} ({what}) has {len(words)} values; at most {MAX_KEYFRAMES} keyframes "
                "are read per line. A camera move needs a few dozen at most; thin the list out."
            )
        values = tuple(_parse_number(w, line_no, what, source) for w in words)
        if len(values) < MIN_KEYFRAMES:
            raise InverseDVSError(
                f"{source}: line {line_no} ({what}) has {len(values)} value; at least {MIN_KEYFRAMES} are "
                f"needed (start and end), e.g. '{values[0]:g} {values[0]:g}' to hold it still."
            )
        lists.append(values)
    return Keyframes(theta=lists[0], phi=lists[1], forward=lists[2])


def format_keyframes(keys: Keyframes) -> str:
    """The 3-line text of ``keys`` (θ, φ, r); the inverse of parse_keyframes for those lists."""
    return "\n".join(" ".join(f"{v:g}" for v in values) for values in (keys.theta, keys.phi, keys.forward))


# ----------------------------------------------------------------------------- interpolation


def solve_tridiagonal(lower: torch.Tensor, diag: torch.Tensor, upper: torch.Tensor,
                      rhs: torch.Tensor) -> torch.Tensor:
    """x [..., n] with lower[i]·x[i-1] + diag[i]·x[i] + upper[i]·x[i+1] = rhs[i] (all [..., n]).

    lower[..., 0] and upper[..., -1] are ignored. Cyclic reduction: each level eliminates the odd
    unknowns from the even rows, halving the system, so the work is O(n) in log2(n) batched steps.
    Stable for diagonally dominant systems (as the spline's are).
    """
    n = diag.shape[-1]
    if n == 1:
        return rhs / diag
    edge = torch.arange(n, device=diag.device)
    lower = torch.where(edge == 0, torch.zeros_like(lower), lower)
    upper = torch.where(edge == n - 1, torch.zeros_like(upper), upper)
    # one identity row before and two after, so every kept row has both neighbours
    a, c, d = (F.pad(t, (1, 2)) for t in (lower, upper, rhs))
    b = F.pad(diag, (1, 2), value=1.0)
    keep, prev, nxt = slice(1, n + 1, 2), slice(0, n, 2), slice(2, n + 2, 2)
    alpha, gamma = -a[..., keep] / b[..., prev], -c[..., keep] / b[..., nxt]
    even = solve_tridiagonal(
        alpha * a[..., prev],
        b[..., keep] + alpha * c[..., prev] + gamma * a[..., nxt],
        gamma * c[..., nxt],
        d[..., keep] + alpha * d[..., prev] + gamma * d[..., nxt],
    )
    padded = F.pad(even, (0, 1))  # x beyond the last row (its coefficient is 0)
    odd = slice(1, n, 2)
    count = (n // 2)
    x_odd = (rhs[..., odd] - lower[..., odd] * padded[..., :count] - upper[..., odd] * padded[..., 1:count + 1]) \
        / diag[..., odd]
    x = torch.empty_like(rhs)
    x[..., 0::2], x[..., 1::2] = even, x_odd
    return x


def cubic_spline_slopes(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Slopes s [..., n] at the knots of the not-a-knot cubic spline through (x [n], y [..., n]), n >= 4.

    With h[i] = x[i+1] - x[i] and chord slopes d[i] = (y[i+1] - y[i]) / h[i], interior knots make
    the second derivative continuous,
      h[i]·s[i-1] + 2(h[i-1] + h[i])·s[i] + h[i-1]·s[i+1] = 3(h[i]·d[i-1] + h[i-1]·d[i]),
    and the ends make the third derivative continuous at x[1] and x[n-2] (not-a-knot). The system
    is tridiagonal: O(n) work.
    """
    h = x[1:] - x[:-1]
    d = (y[..., 1:] - y[..., :-1]) / h
    zero = h.new_zeros(1)
    lower = torch.cat([zero, h[1:], zero]).expand_as(y).clone()
    diag = torch.cat([h[1:2], 2 * (h[:-1] + h[1:]), h[-2:-1]]).expand_as(y).clone()
    upper = torch.cat([zero, h[:-1], zero]).expand_as(y).clone()
    rhs = torch.empty_like(y)
    rhs[..., 1:-1] = 3 * (h[1:] * d[..., :-1] + h[:-1] * d[..., 1:])
    h0, h1, hl, hk = h[0], h[1], h[-1], h[-2]
    upper[..., 0] = h0 + h1
    rhs[..., 0] = ((h0 + 2 * (h0 + h1)) * h1 * d[..., 0] + h0**2 * d[..., 1]) / (h0 + h1)
    lower[..., -1] = hl + hk
    rhs[..., -1] = (hl**2 * d[..., -2] + (2 * (hk + hl) + hl) * hk * d[..., -1]) / (hk + hl)
    return solve_tridiagonal(lower, diag, upper, rhs)


def cubic_spline(x: torch.Tensor, y: torch.Tensor, x_new: torch.Tensor) -> torch.Tensor:
    """The not-a-knot cubic spline through knots (x [n] increasing, y [..., n]; n >= 4) at x_new [m]
    → [..., m], evaluated in Hermite form from the knot slopes."""
    s = cubic_spline_slopes(x, y)
    i = torch.searchsorted(x, x_new, right=True).sub(1).clamp(0, x.shape[0] - 2)
    h = x[i + 1] - x[i]
    t = (x_new - x[i]) / h
    t2, t3 = t * t, t * t * t
    return ((2 * t3 - 3 * t2 + 1) * y[..., i] + (t3 - 2 * t2 + t) * h * s[..., i]
            + (-2 * t3 + 3 * t2) * y[..., i + 1] + (t3 - t2) * h * s[..., i + 1])


def interpolate_keyframes(values, frames: int) -> torch.Tensor:
    """Values [frames] (float64) from keyframes spread evenly over ``frames`` frames.

    More than LINEAR_MAX_KEYFRAMES keyframes: not-a-knot cubic spline; otherwise linear. The first
    and last values are kept exactly. One frame gives the first keyframe.
    """
    y = torch.as_tensor(values, dtype=POSE_DTYPE)
    if frames == 1:
        return y[:1].clone()
    x = torch.linspace(0.0, 1.0, y.shape[0], dtype=POSE_DTYPE)
    x_new = torch.linspace(0.0, 1.0, frames, dtype=POSE_DTYPE)
    if y.shape[0] > LINEAR_MAX_KEYFRAMES:
        out = cubic_spline(x, y, x_new)
    else:
        i = torch.searchsorted(x, x_new, right=True).sub(1).clamp(0, y.shape[0] - 2)
        w = (x_new - x[i]) / (x[i + 1] - x[i])
        out = y[i] + w * (y[i + 1] - y[i])
    out[0], out[-1] = y[0], y[-1]
    return out


# ----------------------------------------------------------------------------- presets

ORBIT_DEG = 30.0
ARC_DEG = 15.0
DOLLY = 0.4
TRUCK = 0.3
PEDESTAL = 0.2
ZOOM = 1.5

# The reference's path files (θ, φ, r lines), kept as presets.
REFERENCE_SHAPES = {
    "loop1": "0 2 10 15 12 6 0 -2 -5 -12 -8 -3 0\n0 -3 -10 -20 -30 -25 -17 -10 0\n0 0.02 0.09 0.16 0.25 0.2 0.09 0",
    "loop2": "0 2 10 15 12 6 0 -2 -5 -12 -8 -3 0\n0 3 10 20 30 25 17 10 0\n0 0.02 0.09 0.16 0.25 0.28 0.19 0.09 0",
    "loop3": "0 -3 -15 -20 -17 -5 0\n0 -2 -5 -10 -8 -5 0 2 5 3 0\n0 0",
    "loop4": "0 3 10 20 17 10 0\n0 -2 -8 -6 0 2 5 3 0\n0 -0.02 -0.09 -0.16 -0.09 0",
    "oscillating_wave": "0 5 10 5 0 -5 -10 -5 0 5 10 5 0\n0 3 6 9 12 15 12 9 6 3 0\n0 0 0 0 0 0 0 0 0",
    "wave1": "0 30\n0 -1 -2 -1 0 3 0 -3 0 1 2\n0 0",
}

CUSTOM = "custom keyframes"
STILL = "still (identity)"
PRESETS: dict[str, Keyframes] = {
    STILL: Keyframes(),
    "orbit left": Keyframes(phi=(0.0, -ORBIT_DEG)),
    "orbit right": Keyframes(phi=(0.0, ORBIT_DEG)),
    "arc up": Keyframes(theta=(0.0, ARC_DEG)),
    "arc down": Keyframes(theta=(0.0, -ARC_DEG)),
    "dolly in": Keyframes(forward=(0.0, DOLLY)),
    "dolly out": Keyframes(forward=(0.0, -DOLLY)),
    "truck left": Keyframes(right=(0.0, -TRUCK)),
    "truck right": Keyframes(right=(0.0, TRUCK)),
    "pedestal up": Keyframes(up=(0.0, PEDESTAL)),
    "pedestal down": Keyframes(up=(0.0, -PEDESTAL)),
    "zoom in": Keyframes(zoom=(1.0, ZOOM)),
    "zoom out": Keyframes(zoom=(1.0, 1.0 / ZOOM)),
    **{f"reference {name}": parse_keyframes(text, name) for name, text in REFERENCE_SHAPES.items()},
}
PRESET_NAMES = (CUSTOM, *PRESETS)


def camera_path(keys: Keyframes, frames: int, fov_x_deg: float = DEFAULT_FOV_X_DEG, radius_scale: float = 1.0,
                anchor: int = 0, label: str = "keyframes") -> CameraPath:
    """A CameraPath of ``frames`` frames from keyframes (each list interpolated over the clip)."""
    if frames < 1:
        raise InverseDVSError(f"Camera path: frames = {frames}; at least 1 frame is needed (49 for CogVideoX).")
    if not 0 <= anchor < frames:
        raise InverseDVSError(
            f"Camera path: anchor_frame = {anchor} but the path has {frames} frames; use 0 to {frames - 1}."
        )
    if min(keys.zoom) <= 0:
        raise InverseDVSError("Camera path: zoom keyframes must be positive (1 = no zoom).")
    per_frame = {name: interpolate_keyframes(getattr(keys, name), frames)
                 for name in ("theta", "phi", "forward", "right", "up", "zoom")}
    poses = orbit_world_to_camera(per_frame["theta"], per_frame["phi"], per_frame["forward"],
                                  per_frame["right"], per_frame["up"])
    return CameraPath(world_to_camera=poses, zoom=per_frame["zoom"], fov_x_deg=float(fov_x_deg),
                      radius_scale=float(radius_scale), anchor=int(anchor), label=label)


def preset_keyframes(name: str, amount: float = 1.0) -> Keyframes:
    """Keyframes of preset ``name`` (one of PRESETS) scaled by ``amount``."""
    if name not in PRESETS:
        raise InverseDVSError(f"Camera path: unknown preset '{name}'; choose one of: {', '.join(PRESET_NAMES)}.")
    return PRESETS[name].scaled(amount)
