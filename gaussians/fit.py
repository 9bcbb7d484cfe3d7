"""Fitting dynamic 3D Gaussians to a V views × F frames image matrix sampled on a known orbit.

The canonical Gaussians are the object at the reference time (frame 0); a deformation field moves them to every
other time. The fit runs in two phases (Diffusion²'s reconstruction):

* warm-up (the first ``warmup`` iterations): only the canonical Gaussians, only against frame 0's V views (the
  reference time's orbit, the most consistent part of the matrix);
* dynamic (the rest): the deformation field against every frame, the canonical Gaussians fine-tuned at
  ``canonical_lr_scale`` times their learning rate. Geometry and texture are decoupled: the colours learn at full
  weight only from the reference view (view 0) and the reference time (frame 0), from every other image at
  ``far_weight`` (their gradient is scaled, the image is not), since the matrix's detail fades away from both.

Each iteration renders ``views_per_step`` random views of one frame and takes an Adam step on the photometric loss
((1 - λ)·L1 + λ·(1 - SSIM)). Every ``densify_every`` iterations until ``densify_until`` Gaussians whose averaged
screen-space gradient exceeds ``grad_threshold`` are cloned (small ones) or split in two (large ones), and nearly
transparent ones are removed (adaptive density control of 3D Gaussian splatting).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field as dataclass_field
from typing import Callable

import torch

from . import cameras, losses, model, render
from .deform import DeformationField, deform

# Adam's learning rates of the canonical tensors (means in world units: SV3D's orbit has radius 2) and of the
# field; an object-sized fit of a few thousand iterations, as fast image-to-3D Gaussian fits run.
LEARNING_RATES = {"means": 3e-3, "quats": 5e-3, "log_scales": 5e-3, "opacity_logits": 5e-2, "sh0": 1e-2}
FIELD_LEARNING_RATE = 8e-4
FINAL_LR_FRACTION = 0.01  # the means' and the field's learning rates decay exponentially to this fraction
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-15
SPLIT_SHRINK = 1.6  # a split Gaussian's two children are this much smaller
PROBE_FRACTION = 0.2  # direction "auto": each direction is tried for this share of the warm-up
RENDER_BATCH = 4  # cameras rendered at once after the fit (as many as a fit step renders)


@dataclass(frozen=True)
class FitConfig:
    iterations: int = 5000
    warmup: int = 3000
    gaussians: int = 5000  # how many start in the ball
    max_gaussians: int = 300_000
    object_radius: float = 0.5  # the start ball (world units; at SV3D's 2-unit orbit the frame spans ±0.61)
    views_per_step: int = 4
    ssim_weight: float = losses.SSIM_WEIGHT
    far_weight: float = 0.1
    canonical_lr_scale: float = 0.1
    densify_every: int = 100
    densify_from: int = 500
    densify_until: int = 3500
    grad_threshold: float = 2e-4
    clone_scale: float = 0.01  # Gaussians up to this size (× scene_scale) are cloned, larger ones split
    prune_opacity: float = 0.005
    scene_scale: float = cameras.SV3D_RADIUS * 1.1  # the clone / split size's unit
    field_depth: int = 8
    field_width: int = 256
    seed: int = 0


@dataclass
class Fitted:
    """A fitted dynamic object: canonical Gaussians, the field, and the orbit and frames it was fitted to."""

    gaussians: model.Gaussians
    field: DeformationField
    frames: int
    height: int
    width: int
    azimuth_deg: torch.Tensor  # [V]
    elevation_deg: torch.Tensor  # [V]
    radius: float
    fov_deg: float
    direction: str
    background: torch.Tensor  # [3]
    losses: list = dataclass_field(default_factory=list)

    def time(self, frame: float) -> float:
        """The field's time in [0, 1] of a (fractional) frame index in [0, F - 1]."""
        return 0.0 if self.frames == 1 else float(frame) / (self.frames - 1)


class _Adam:
    """Adam over the canonical tensors, whose rows densification adds and removes (its moments follow them)."""

    def __init__(self, tensors: dict[str, torch.Tensor]):
        self.m = {k: torch.zeros_like(t) for k, t in tensors.items()}
        self.v = {k: torch.zeros_like(t) for k, t in tensors.items()}
        self.steps = 0

    def step(self, tensors: dict[str, torch.Tensor], rates: dict[str, float]) -> None:
        self.steps += 1
        b1, b2 = ADAM_BETAS
        for k, t in tensors.items():
            if t.grad is None:
                continue
            self.m[k].mul_(b1).add_(t.grad, alpha=1 - b1)
            self.v[k].mul_(b2).addcmul_(t.grad, t.grad, value=1 - b2)
            m_hat = self.m[k] / (1 - b1 ** self.steps)
            v_hat = self.v[k] / (1 - b2 ** self.steps)
            t.data.addcdiv_(m_hat, v_hat.sqrt().add_(ADAM_EPS), value=-rates[k])

    def reindex(self, source: torch.Tensor) -> None:
        """Rows follow ``source`` [N_new] (the old row each new row comes from)."""
        self.m = {k: t[source] for k, t in self.m.items()}
        self.v = {k: t[source] for k, t in self.v.items()}


def _decay(start: float, step: int, total: int) -> float:
    return start * FINAL_LR_FRACTION ** (min(step, total) / max(total, 1))


class Fit:
    """One fit in progress; ``run(n)`` takes n iterations. ``targets`` [V, F, H, W, 3] in [0, 1]."""

    def __init__(self, targets: torch.Tensor, viewmats: torch.Tensor, Ks: torch.Tensor, config: FitConfig,
                 engine: str, background: torch.Tensor, device: torch.device | str):
        self.config, self.engine, self.device = config, engine, torch.device(device)
        self.targets = targets.to(self.device, torch.float16 if self.device.type == "cuda" else torch.float32)
        self.views, self.frames, self.height, self.width = targets.shape[:4]
        self.viewmats = viewmats.to(self.device, torch.float32)
        self.Ks = Ks.to(self.device, torch.float32)
        self.background = background.to(self.device, torch.float32)
        generator = torch.Generator().manual_seed(config.seed)
        self.gaussians = model.in_ball(config.gaussians, config.object_radius, generator).map(
            lambda t: t.to(self.device).requires_grad_())
        with torch.random.fork_rng(devices=[]):  # the field's initial weights from the seed, the global state untouched
            torch.manual_seed(config.seed)
            self.field = DeformationField(config.field_depth, config.field_width).to(self.device)
        self.field_optimizer = torch.optim.Adam(self.field.parameters(), lr=FIELD_LEARNING_RATE, eps=ADAM_EPS)
        self.adam = _Adam(self.gaussians.tensors())
        self.batches = torch.Generator().manual_seed(config.seed + 1)
        self.iteration = 0
        self.history: list[float] = []
        self._reset_statistics()

    def _reset_statistics(self) -> None:
        self.grad_sum = torch.zeros(len(self.gaussians), device=self.device)
        self.grad_count = torch.zeros(len(self.gaussians), device=self.device)

    @property
    def dynamic(self) -> bool:
        return self.iteration >= self.config.warmup

    def render(self, views: torch.Tensor, frame: int, texture_weights: torch.Tensor | None = None):
        """(images [B, H, W, 3], alpha [B, H, W], means2d) of ``views`` [B] at ``frame`` (differentiable)."""
        g = self.gaussians
        field = self.field if self.dynamic else None
        t = 0.0 if self.frames == 1 else frame / (self.frames - 1)
        means, quats, log_scales = deform(g.means, g.quats, g.log_scales, field, t)
        colors = model.rgb_from_sh0(g.sh0)
        if texture_weights is not None:
            w = texture_weights[:, None, None]
            colors = w * colors + (1 - w) * colors.detach()
        return render.render(self.engine, means, torch.nn.functional.normalize(quats, dim=-1),
                             torch.exp(log_scales), torch.sigmoid(g.opacity_logits), colors,
                             self.viewmats[views], self.Ks[views], self.height, self.width, self.background,
                             means2d=True)

    def step(self) -> float:
        c = self.config
        frame = int(torch.randint(self.frames, (1,), generator=self.batches)) if self.dynamic else 0
        count = min(c.views_per_step, self.views)
        views = torch.randperm(self.views, generator=self.batches)[:count].to(self.device)
        near = (views == 0) | (frame == 0)
        weights = torch.where(near, 1.0, c.far_weight).to(self.device, torch.float32)
        image, _, means2d = self.render(views, frame, weights)
        means2d.retain_grad()
        target = self.targets[views, frame].float()
        loss = losses.photometric_loss(image, target, c.ssim_weight).mean()
        loss.backward()
        self._accumulate(means2d.grad)
        canonical = 1.0 if not self.dynamic else c.canonical_lr_scale
        rates = {k: lr * canonical for k, lr in LEARNING_RATES.items()}
        rates["means"] = _decay(LEARNING_RATES["means"], self.iteration, c.iterations) * canonical
        self.adam.step(self.gaussians.tensors(), rates)
        if self.dynamic:
            for group in self.field_optimizer.param_groups:
                group["lr"] = _decay(FIELD_LEARNING_RATE, self.iteration - c.warmup, c.iterations - c.warmup)
            self.field_optimizer.step()
        self.field_optimizer.zero_grad(set_to_none=True)
        for t in self.gaussians.tensors().values():
            t.grad = None
        self.iteration += 1
        if (c.densify_from <= self.iteration <= c.densify_until and self.iteration % c.densify_every == 0):
            self.densify()
        value = float(loss.detach())
        self.history.append(value)
        return value

    def _accumulate(self, grad: torch.Tensor | None) -> None:
        if grad is None:
            return
        g = grad.detach().clone()
        g[..., 0] *= self.width / 2.0 * g.shape[0]
        g[..., 1] *= self.height / 2.0 * g.shape[0]
        norm = g.norm(dim=-1)  # [B, N]
        self.grad_sum += norm.sum(0)
        self.grad_count += (norm > 0).sum(0)

    @torch.no_grad()
    def densify(self) -> None:
        c = self.config
        g = self.gaussians.map(lambda t: t.detach())
        average = self.grad_sum / self.grad_count.clamp_min(1)
        grow = average > c.grad_threshold
        room = c.max_gaussians - len(g)
        if int(grow.sum()) > max(room, 0):  # keep the strongest when the cap is near
            grow = torch.zeros_like(grow)
            if room > 0:
                grow[torch.topk(average, room).indices] = True
        small = torch.exp(g.log_scales).amax(-1) <= c.clone_scale * c.scene_scale
        clone, split = grow & small, grow & ~small
        index = torch.arange(len(g), device=self.device)
        split_index = index[split]
        # Two children per split Gaussian, drawn from it, each SPLIT_SHRINK times smaller; the parent goes.
        scales = torch.exp(g.log_scales[split_index]).repeat(2, 1)
        rotation = render.quaternion_to_rotation(g.quats[split_index]).repeat(2, 1, 1)
        noise = torch.randn(scales.shape, generator=self.batches).to(self.device)
        offsets = (rotation @ (scales * noise).unsqueeze(-1)).squeeze(-1)
        source = torch.cat([index[~split], index[clone], split_index.repeat(2)])
        new = g.map(lambda t: t[source])
        n_split = split_index.numel() * 2
        if n_split:
            new.means[-n_split:] += offsets
            new.log_scales[-n_split:] -= math.log(SPLIT_SHRINK)
        keep = torch.sigmoid(new.opacity_logits) >= c.prune_opacity
        if int(keep.sum()) == 0:
            keep[torch.argmax(new.opacity_logits)] = True
        source, new = source[keep], new.map(lambda t: t[keep])
        self.gaussians = new.map(lambda t: t.contiguous().requires_grad_())
        self.adam.reindex(source)
        self._reset_statistics()

    def run(self, iterations: int, callback: Callable[[int, float], None] | None = None) -> None:
        for _ in range(iterations):
            loss = self.step()
            if callback is not None:
                callback(self.iteration, loss)

    @torch.no_grad()
    def evaluate(self, frame: int = 0) -> float:
        """Mean photometric loss over every view at ``frame`` (no gradient, no texture weighting)."""
        views = torch.arange(self.views, device=self.device)
        total = 0.0
        for chunk in views.split(max(self.config.views_per_step, 1)):
            image = self.render(chunk, frame)[0]
            total += float(losses.photometric_loss(image, self.targets[chunk, frame].float(),
                                                   self.config.ssim_weight).sum())
        return total / self.views


def probe_iterations(config: FitConfig) -> int:
    """Iterations direction "auto" spends on each direction before keeping one."""
    return max(1, int(config.warmup * PROBE_FRACTION)) if config.warmup else 0


def fit_matrix(targets: torch.Tensor, azimuth_deg: torch.Tensor, elevation_deg: torch.Tensor, config: FitConfig,
               direction: str = "auto", radius: float = cameras.SV3D_RADIUS, fov_deg: float = cameras.SV3D_FOV_DEG,
               background: torch.Tensor | None = None, engine: str = "torch", device: str | torch.device = "cpu",
               callback: Callable[[int, float], None] | None = None) -> Fitted:
    """Fit dynamic Gaussians to ``targets`` [V, F, H, W, 3] in [0, 1] (view v, frame f) seen from the orbit
    ``azimuth_deg``, ``elevation_deg`` [V].

    ``direction``: "right" / "left" (``cameras``), or "auto": both are tried for ``PROBE_FRACTION`` of the warm-up
    from the same start and the one whose Gaussians explain frame 0's views better is kept and carried on (a
    mirrored orbit cannot be fitted consistently). ``callback(iteration, loss)`` runs after every iteration
    (progress, cancel): ``config.iterations + probe_iterations(config)`` times with "auto" (the kept probe's
    iterations count towards the fit), ``config.iterations`` otherwise.
    """
    # Autograd on, and the inputs as ordinary tensors, even when the caller runs in inference mode (ComfyUI does).
    with torch.inference_mode(False), torch.enable_grad():
        targets, azimuth_deg, elevation_deg = targets.clone(), azimuth_deg.clone(), elevation_deg.clone()
        background = torch.ones(3) if background is None else background.clone()
        return _fit(targets, azimuth_deg, elevation_deg, config, direction, radius, fov_deg, background, engine,
                    device, callback)


def _fit(targets, azimuth_deg, elevation_deg, config, direction, radius, fov_deg, background, engine, device,
         callback) -> Fitted:
    """``fit_matrix``'s work, with autograd on."""
    V, F, H, W, _ = targets.shape
    Ks = cameras.orbit_intrinsics(V, H, W, fov_deg)

    def start(name: str) -> Fit:
        poses = cameras.orbit_poses(azimuth_deg, elevation_deg, radius, cameras.DIRECTIONS[name])
        return Fit(targets, poses, Ks, config, engine, background, device)

    if direction == "auto":
        probe = probe_iterations(config)
        trials = {}
        for name in cameras.DIRECTIONS:
            trial = start(name)
            trial.run(probe, callback)
            trials[name] = (trial.evaluate(0), trial)
        direction = min(trials, key=lambda k: trials[k][0])
        fit = trials[direction][1]
    else:
        fit = start(direction)
    fit.run(config.iterations - fit.iteration, callback)
    return Fitted(gaussians=fit.gaussians.map(lambda t: t.detach().cpu()), field=fit.field.cpu().eval(),
                  frames=F, height=H, width=W, azimuth_deg=azimuth_deg.clone(), elevation_deg=elevation_deg.clone(),
                  radius=radius, fov_deg=fov_deg, direction=direction, background=background.clone(),
                  losses=fit.history)


@torch.no_grad()
def deformed_at(fitted: Fitted, frame: float) -> model.Gaussians:
    """The fitted Gaussians at (fractional) ``frame`` in [0, F - 1]: the field applied to the canonical set."""
    g = fitted.gaussians
    means, quats, log_scales = deform(g.means, g.quats, g.log_scales, fitted.field, fitted.time(frame))
    return model.Gaussians(means=means, quats=quats, log_scales=log_scales, opacity_logits=g.opacity_logits,
                           sh0=g.sh0)


@torch.no_grad()
def render_fitted(fitted: Fitted, azimuth_deg: torch.Tensor, elevation_deg: torch.Tensor, frames: torch.Tensor,
                  height: int, width: int, engine: str = "torch", device: str | torch.device = "cpu",
                  fov_deg: float | None = None):
    """Images [C, H, W, 3] and alpha [C, H, W] of the fitted object seen from cameras ``azimuth_deg``,
    ``elevation_deg`` [C] (on its orbit's sphere) at (fractional) frames ``frames`` [C] in [0, F - 1]."""
    device = torch.device(device)
    count = len(azimuth_deg)
    poses = cameras.orbit_poses(azimuth_deg, elevation_deg, fitted.radius,
                                cameras.DIRECTIONS[fitted.direction]).to(device, torch.float32)
    Ks = cameras.orbit_intrinsics(count, height, width,
                                  fitted.fov_deg if fov_deg is None else fov_deg).to(device, torch.float32)
    g = fitted.gaussians.map(lambda t: t.to(device))
    background = fitted.background.to(device, torch.float32)
    images, alphas = torch.empty(count, height, width, 3), torch.empty(count, height, width)
    frames = torch.as_tensor(frames, dtype=torch.float64)
    fitted.field.to(device)
    try:
        for frame in torch.unique(frames).tolist():  # the field once per time, for every camera at that time
            cams = (frames == frame).nonzero().flatten()
            means, quats, log_scales = deform(g.means, g.quats, g.log_scales, fitted.field, fitted.time(frame))
            gaussians = (means, torch.nn.functional.normalize(quats, dim=-1), torch.exp(log_scales),
                         torch.sigmoid(g.opacity_logits), model.rgb_from_sh0(g.sh0))
            for chunk in cams.split(RENDER_BATCH):
                image, alpha = render.render(engine, *gaussians, poses[chunk], Ks[chunk], height, width,
                                             background)
                images[chunk], alphas[chunk] = image.cpu(), alpha.cpu()
    finally:
        fitted.field.cpu()
    return images, alphas
