"""An analytic scene of textured planes and spheres, ray-cast from any camera with exact depth, and a
procedural generator of such dynamic scenes (a seed gives a scene, its moving camera and its caption).

One renderer serves the tests (geometry with known answers: a render from one camera, warped with
its exact depth, must match the render from another), the pack's embedded sample clip, the
training clips of the shipped video model and the ground truth of the fidelity benchmark. Spheres
move over the clip (linearly, bouncing, spinning), so clips are dynamic. World units are
arbitrary; the world frame is the camera at rest (x right, y down, z forward). Rendering runs in
the dtype and on the device of the poses given (float64 on the CPU for the geometry tests,
float32 on a GPU for training data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .camera import camera_centers, compose, intrinsics, rotation_y

# A hit must lie this far along the ray (in units of the ray's z step) to count.
MIN_HIT = 1e-6
# Relative slack when deciding that a point is the first surface along a ray (visibility test).
VISIBILITY_TOLERANCE = 1e-4
TWO_PI = 2.0 * math.pi
PATTERNS = ("waves", "checker", "stripes")


@dataclass(frozen=True)
class Plane:
    """Points X with normal·X = offset; a texture of ``period`` world units across two axes."""
    normal: tuple[float, float, float]
    offset: float
    color: tuple[float, float, float]
    period: float = 1.0
    pattern: str = "waves"


@dataclass(frozen=True)
class Sphere:
    """A sphere with ``radius`` whose centre at time τ (0..1 over the clip) is
    ``center`` + τ·``velocity`` − |sin(π·``hops``·τ)|·``bounce``·ŷ (it hops up, y is down); its texture
    (bands of latitude and longitude) is fixed to the sphere, which turns by ``spin`` radians about
    the vertical axis over the clip."""
    center: tuple[float, float, float]
    radius: float
    color: tuple[float, float, float]
    velocity: tuple[float, float, float] = (0.0, 0.0, 0.0)
    bands: float = 4.0
    pattern: str = "waves"
    bounce: float = 0.0
    hops: float = 2.0
    spin: float = 0.0


@dataclass(frozen=True)
class Scene:
    """Planes and spheres; rays that hit nothing see the sky, a vertical gradient from ``horizon`` to
    ``zenith`` colour (black when ``sky`` is None)."""
    planes: tuple[Plane, ...]
    spheres: tuple[Sphere, ...]
    sky: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None


def _texture(base: tuple, a: torch.Tensor, b: torch.Tensor, pattern: str = "waves") -> torch.Tensor:
    """Colours [..., 3] in [0.05, 0.95] from a base colour (3 floats) and two phase maps a, b [...] (radians).

    waves: smooth rainbow ripples; checker: two tones in squares; stripes: two tones in bands of a.
    """
    base = torch.tensor(base, dtype=a.dtype, device=a.device)
    if pattern == "waves":
        channel_phase = torch.tensor([0.0, 2.1, 4.2], dtype=a.dtype, device=a.device)
        wave = torch.sin(a.unsqueeze(-1) + channel_phase) * torch.cos(b.unsqueeze(-1))
        return (0.6 * base + 0.25 + 0.15 * wave).clamp(0.05, 0.95)
    if pattern == "checker":
        tone = torch.sign(torch.sin(a) * torch.sin(b))
    elif pattern == "stripes":
        tone = torch.sign(torch.sin(a))
    else:
        raise ValueError(f"unknown texture pattern {pattern!r}; choose one of {PATTERNS}")
    light, dark = 0.35 + 0.6 * base, 0.15 + 0.45 * base
    return torch.where(tone.unsqueeze(-1) > 0, light, dark).clamp(0.05, 0.95)


def _plane_uv(plane: Plane, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n = torch.tensor(plane.normal, dtype=points.dtype, device=points.device)
    helper = torch.tensor([0.0, 1.0, 0.0] if abs(plane.normal[1]) < 0.9 else [1.0, 0.0, 0.0],
                          dtype=points.dtype, device=points.device)
    e1 = torch.linalg.cross(n, helper)
    e1 = e1 / e1.norm()
    e2 = torch.linalg.cross(n, e1)
    k = TWO_PI / plane.period
    return k * (points @ e1), k * (points @ e2) * 0.7


def sphere_centers(sphere: Sphere, times: torch.Tensor) -> torch.Tensor:
    """Centres [F, 3] of ``sphere`` at ``times`` [F] (0..1)."""
    c = torch.tensor(sphere.center, dtype=times.dtype, device=times.device)
    v = torch.tensor(sphere.velocity, dtype=times.dtype, device=times.device)
    lift = torch.tensor([0.0, -sphere.bounce, 0.0], dtype=times.dtype, device=times.device)
    hop = torch.sin(math.pi * sphere.hops * times).abs().unsqueeze(-1)
    return c + times.unsqueeze(-1) * v + hop * lift


def sky_color(sky, directions: torch.Tensor) -> torch.Tensor:
    """Sky colours [..., 3] seen along ``directions`` [..., 3]: horizon colour at the horizon, zenith
    colour straight up (y is down); zeros without a sky."""
    if sky is None:
        return torch.zeros_like(directions)
    horizon, zenith = (torch.tensor(c, dtype=directions.dtype, device=directions.device) for c in sky)
    up = (-directions[..., 1] / directions.norm(dim=-1)).clamp(0, 1).sqrt().unsqueeze(-1)
    return horizon + up * (zenith - horizon)


def cast(scene: Scene, origins: torch.Tensor, directions: torch.Tensor, times: torch.Tensor):
    """First hits of rays o + t·d, t > 0.

    origins [F, 3], directions [F, N, 3] (any length), times [F] in 0..1.
    Returns t [F, N] (inf where nothing is hit) and the colour [F, N, 3] (the sky where nothing is hit).
    """
    o = origins.unsqueeze(1)
    best_t = torch.full(directions.shape[:2], float("inf"), dtype=directions.dtype, device=directions.device)
    color = sky_color(scene.sky, directions)
    for plane in scene.planes:
        normal = torch.tensor(plane.normal, dtype=directions.dtype, device=directions.device)
        denom = directions @ normal
        t = (plane.offset - (o @ normal)) / torch.where(denom.abs() > 0, denom, torch.full_like(denom, float("nan")))
        hit = (t > MIN_HIT) & (t < best_t)
        a, b = _plane_uv(plane, o + t.unsqueeze(-1) * directions)
        best_t = torch.where(hit, t, best_t)
        color = torch.where(hit.unsqueeze(-1), _texture(plane.color, a, b, plane.pattern), color)
    for sphere in scene.spheres:
        c = sphere_centers(sphere, times).unsqueeze(1)  # [F, 1, 3]
        oc = o - c
        qa = (directions * directions).sum(-1)
        qb = (directions * oc).sum(-1)
        qc = (oc * oc).sum(-1) - sphere.radius**2
        disc = qb * qb - qa * qc
        t = (-qb - disc.clamp_min(0).sqrt()) / qa
        hit = (disc >= 0) & (t > MIN_HIT) & (t < best_t)
        local = (o + t.unsqueeze(-1) * directions - c) / sphere.radius
        longitude = torch.atan2(local[..., 0], local[..., 2]) + sphere.spin * times.unsqueeze(-1)
        latitude = torch.asin(local[..., 1].clamp(-1, 1))
        col = _texture(sphere.color, sphere.bands * longitude, sphere.bands * latitude, sphere.pattern)
        best_t = torch.where(hit, t, best_t)
        color = torch.where(hit.unsqueeze(-1), col, color)
    return best_t, color


def render(scene: Scene, world_to_camera: torch.Tensor, K: torch.Tensor, height: int, width: int,
           times: torch.Tensor) -> dict[str, torch.Tensor]:
    """Ray-cast the scene from F cameras, in the dtype and on the device of ``world_to_camera``.

    world_to_camera [F, 4, 4], K [F, 3, 3] or [3, 3], times [F] (0..1, moves the spheres).
    Returns {"image": [F, H, W, 3] in 0..1, "depth": [F, H, W] z in each camera (0 where nothing is
    hit), "points": [F, H, W, 3] world points (nan where nothing is hit)}.
    """
    w2c = world_to_camera
    dtype, device = w2c.dtype, w2c.device
    f = w2c.shape[0]
    K = K.to(device, dtype).expand(f, 3, 3)
    v, u = torch.meshgrid(torch.arange(height, dtype=dtype, device=device),
                          torch.arange(width, dtype=dtype, device=device), indexing="ij")
    pixels = torch.stack([u, v, torch.ones_like(u)], -1).reshape(-1, 3)
    rays_cam = pixels @ torch.linalg.inv(K).transpose(1, 2)  # z = 1: t is the camera z-depth
    directions = rays_cam @ w2c[:, :3, :3]  # Rᵀ applied to each ray
    origins = camera_centers(w2c)
    t, color = cast(scene, origins, directions, times.to(device, dtype))
    hit = torch.isfinite(t)
    points = origins.unsqueeze(1) + t.unsqueeze(-1) * directions
    points = torch.where(hit.unsqueeze(-1), points, torch.full_like(points, float("nan")))
    return {
        "image": color.reshape(f, height, width, 3),
        "depth": torch.where(hit, t, torch.zeros_like(t)).reshape(f, height, width),
        "points": points.reshape(f, height, width, 3),
    }


def visible_from(scene: Scene, points: torch.Tensor, world_to_camera: torch.Tensor, K: torch.Tensor, height: int,
                 width: int, times: torch.Tensor) -> torch.Tensor:
    """Which world points [F, H, W, 3] (nan = none) the cameras world_to_camera [F, 4, 4] see:
    inside their image (pixel centres ±0.5) and first along the ray from the camera. → bool [F, H, W]."""
    w2c = world_to_camera.to(torch.float64)
    f = w2c.shape[0]
    K = K.to(torch.float64).expand(f, 3, 3)
    flat = points.reshape(f, -1, 3).to(torch.float64)
    cam = flat @ w2c[:, :3, :3].transpose(1, 2) + w2c[:, None, :3, 3]
    z = cam[..., 2]
    uv = (cam @ K.transpose(1, 2))[..., :2] / z.unsqueeze(-1)
    inside = (z > 0) & (uv[..., 0] >= -0.5) & (uv[..., 0] <= width - 0.5) & (uv[..., 1] >= -0.5) & (uv[..., 1] <= height - 0.5)
    origins = camera_centers(w2c)
    directions = flat - origins.unsqueeze(1)  # the point sits at t = 1
    t, _ = cast(scene, origins, torch.nan_to_num(directions), times.to(torch.float64))
    first = t >= 1.0 - VISIBILITY_TOLERANCE
    return (inside & first & torch.isfinite(flat).all(-1)).reshape(f, *points.shape[1:3])


# ----------------------------------------------------------------------------- procedural scenes

# Named colours: scene colours are drawn from these, so captions can name them.
COLORS = {
    "red": (0.85, 0.2, 0.2), "orange": (0.95, 0.55, 0.15), "yellow": (0.9, 0.85, 0.25),
    "green": (0.3, 0.75, 0.3), "teal": (0.2, 0.65, 0.65), "blue": (0.25, 0.4, 0.9),
    "purple": (0.6, 0.3, 0.8), "pink": (0.95, 0.55, 0.7), "brown": (0.55, 0.38, 0.22),
    "white": (0.9, 0.9, 0.9), "gray": (0.5, 0.5, 0.5),
}
SKIES = {"blue": ((0.75, 0.85, 0.95), (0.25, 0.45, 0.85)), "sunset": ((0.95, 0.65, 0.4), (0.4, 0.3, 0.6)),
         "gray": ((0.8, 0.8, 0.8), (0.55, 0.6, 0.65))}
MAX_BALLS = 3
BALL_MOTIONS = ("rolling left", "rolling right", "bouncing", "spinning", "resting")
# The words captions are made of, besides the names above (see ``random_scene``).
CAPTION_GRAMMAR = ("a", "ball", "and", "on", "floor", "by", "wall", "under", "sky", "between", "walls", "camera")
# Camera moves over a clip: caption words → (centre velocity in world units per clip, yaw in degrees per clip).
CAMERA_MOVES = {
    "static": ((0.0, 0.0, 0.0), 0.0), "moving forward": ((0.0, 0.0, 1.2), 0.0),
    "moving back": ((0.0, 0.0, -1.0), 0.0), "sliding left": ((-1.0, 0.0, 0.0), 0.0),
    "sliding right": ((1.0, 0.0, 0.0), 0.0), "panning left": ((0.0, 0.0, 0.0), -12.0),
    "panning right": ((0.0, 0.0, 0.0), 12.0),
}
SCENE_FOV_X_DEG = 70.0


@dataclass(frozen=True)
class SceneClip:
    """A generated scene, the camera that films it (centre velocity per clip, yaw per clip in degrees,
    field of view) and its caption."""
    scene: Scene
    camera_velocity: tuple[float, float, float]
    camera_yaw_deg: float
    fov_x_deg: float
    caption: str


def _pick(gen: torch.Generator, options):
    options = list(options)
    return options[int(torch.randint(len(options), (1,), generator=gen))]


def _uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen, dtype=torch.float64))


def random_scene(seed: int) -> SceneClip:
    """The scene of ``seed``: a textured floor, a back wall or open sky, maybe side walls, one to
    MAX_BALLS textured balls that roll, bounce, spin or rest, and a camera move; with a caption
    naming the colours, patterns, motions and the camera move. Same seed, same scene."""
    gen = torch.Generator().manual_seed(int(seed))
    floor_y = _uniform(gen, 1.0, 1.8)
    words = []
    floor_name, floor_pattern = _pick(gen, COLORS), _pick(gen, PATTERNS)
    planes = [Plane((0.0, 1.0, 0.0), floor_y, COLORS[floor_name], _uniform(gen, 0.6, 1.6), floor_pattern)]
    words.append(f"on a {floor_name} {floor_pattern} floor")
    sky = None
    if _uniform(gen, 0, 1) < 0.5:
        wall_name, wall_pattern = _pick(gen, COLORS), _pick(gen, PATTERNS)
        planes.append(Plane((0.0, 0.0, 1.0), _uniform(gen, 7.0, 11.0), COLORS[wall_name], _uniform(gen, 0.8, 2.0),
                            wall_pattern))
        words.append(f"by a {wall_name} {wall_pattern} wall")
    else:
        sky_name = _pick(gen, SKIES)
        sky = SKIES[sky_name]
        words.append(f"under a {sky_name} sky")
    if _uniform(gen, 0, 1) < 0.4:
        side_name = _pick(gen, COLORS)
        side_x = _uniform(gen, 2.5, 4.0)
        for sign in (-1.0, 1.0):
            planes.append(Plane((1.0, 0.0, 0.0), sign * side_x, COLORS[side_name], 1.2, "stripes"))
        words.append(f"between {side_name} walls")
    balls, ball_words = [], []
    for _ in range(1 + int(torch.randint(MAX_BALLS, (1,), generator=gen))):
        name, pattern = _pick(gen, COLORS), _pick(gen, PATTERNS)
        radius = _uniform(gen, 0.35, 0.9)
        center = (_uniform(gen, -2.0, 2.0), floor_y - radius, _uniform(gen, 3.0, 7.0))
        motion = _pick(gen, BALL_MOTIONS)
        speed = _uniform(gen, 1.0, 2.5)
        velocity = {"rolling left": (-speed, 0.0, 0.0), "rolling right": (speed, 0.0, 0.0)}.get(motion, (0.0, 0.0, 0.0))
        balls.append(Sphere(center, radius, COLORS[name], velocity, bands=float(torch.randint(2, 6, (1,), generator=gen)),
                            pattern=pattern, bounce=_uniform(gen, 0.5, 1.2) if motion == "bouncing" else 0.0,
                            spin=(TWO_PI * _uniform(gen, 0.3, 0.8) if motion in ("spinning", "rolling right") else
                                  -TWO_PI * _uniform(gen, 0.3, 0.8) if motion == "rolling left" else 0.0)))
        ball_words.append(f"a {name} {pattern} ball {motion}")
    move = _pick(gen, CAMERA_MOVES)
    velocity, yaw = CAMERA_MOVES[move]
    caption = " and ".join(ball_words) + " " + " ".join(words) + f", camera {move}"
    return SceneClip(Scene(tuple(planes), tuple(balls), sky), velocity, yaw, SCENE_FOV_X_DEG, caption)


def caption_vocabulary() -> tuple[str, ...]:
    """Every word a generated caption can hold (sorted; the comma is punctuation, not a word)."""
    words = set(CAPTION_GRAMMAR) | set(COLORS) | set(PATTERNS) | set(SKIES)
    for phrase in BALL_MOTIONS + tuple(CAMERA_MOVES):
        words.update(phrase.split())
    return tuple(sorted(words))


def clip_poses(clip: SceneClip, times: torch.Tensor) -> torch.Tensor:
    """World-to-camera poses [F, 4, 4] of the clip's camera at ``times`` [F] (0..1), in times' dtype
    and device: the centre moves by τ·velocity and the view turns by τ·yaw about the vertical axis."""
    R = rotation_y(times * clip.camera_yaw_deg).to(times)  # world → camera rotation is Ryᵀ
    R = R.transpose(1, 2)
    centre = times.unsqueeze(-1) * torch.tensor(clip.camera_velocity, dtype=times.dtype, device=times.device)
    return compose(R, -(R @ centre.unsqueeze(-1)).squeeze(-1))


def supersampled_intrinsics(K: torch.Tensor, factor: int) -> torch.Tensor:
    """K [..., 3, 3] of the same camera on an image ``factor`` times larger each way (pixel centres kept)."""
    S = torch.tensor([[factor, 0.0, 0.5 * (factor - 1)], [0.0, factor, 0.5 * (factor - 1)], [0.0, 0.0, 1.0]],
                     dtype=K.dtype, device=K.device)
    return S @ K


def render_clip(clip: SceneClip, frames: int, height: int, width: int, device: torch.device | str = "cpu",
                dtype: torch.dtype = torch.float32, supersample: int = 1, poses: torch.Tensor | None = None,
                K: torch.Tensor | None = None):
    """Render a generated clip: frames at times 0..1 from the clip's camera, or from ``poses`` [F, 4, 4] with
    intrinsics ``K`` [F, 3, 3] or [3, 3] (default: the clip's field of view) — a target camera's view.

    ``supersample`` s renders s×s rays per pixel and averages the colours (anti-aliasing); depth is
    the pixel centre's. Returns {"image": [F, H, W, 3] 0..1, "depth": [F, H, W] (0 = sky),
    "world_to_camera": [F, 4, 4], "K": [3, 3] or [F, 3, 3], "times": [F]} in ``dtype`` on ``device``.
    """
    times = torch.linspace(0.0, 1.0, frames, dtype=dtype, device=device) if frames > 1 else \
        torch.zeros(1, dtype=dtype, device=device)
    w2c = clip_poses(clip, times) if poses is None else poses.to(device, dtype)
    K = (intrinsics(height, width, clip.fov_x_deg)[0] if K is None else K).to(device, dtype)
    out = render(clip.scene, w2c, K, height, width, times)
    image = out["image"]
    if supersample > 1:
        s = supersample
        fine = render(clip.scene, w2c, supersampled_intrinsics(K, s), height * s, width * s, times)["image"]
        image = torch.nn.functional.avg_pool2d(fine.permute(0, 3, 1, 2), s).permute(0, 2, 3, 1)
    return {"image": image, "depth": out["depth"], "world_to_camera": w2c, "K": K, "times": times}


def render_clips(seeds, frames: int, height: int, width: int, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32, supersample: int = 1) -> tuple[torch.Tensor, list[str]]:
    """Videos [B, F, H, W, 3] in 0..1 of the scenes of ``seeds`` (B of them) and their captions."""
    clips = [random_scene(s) for s in seeds]
    videos = torch.stack([render_clip(c, frames, height, width, device, dtype, supersample)["image"] for c in clips])
    return videos, [c.caption for c in clips]
