"""Single-image novel views by signal/noise fusion on ComfyUI's own SD 1.5-class model, in-process in the real host.

A tiny UNet of core's own class is saved as safetensors and loaded through core's ``load_diffusion_model``
(Load Diffusion Model), which detects it as SD 1.5 (ε prediction, the scaled-linear 1000-step schedule).
The nodes run on latents directly (core's VAE is not the point here).

    COMFYUI_DIR=/path/to/ComfyUI <its python> -m pytest -m host tests/test_native_image.py
"""

from __future__ import annotations

import pytest
import torch

from _comfy_host import HOST_MARKS, SD15_TEXT_WIDTH, save_tiny_sd15_unet, text_conditioning
from _comfy_host import comfy, inference  # noqa: F401  (fixtures)
from inversedvs.errors import InverseDVSError
from inversedvs.krnr import fusion

pytestmark = HOST_MARKS

LATENT_SHAPE = (1, 4, 4, 4)  # a 32×32 image through SD's 8× VAE
PIXELS = 32
DEPTH = 2.0  # metric depth of the test plane's nearest row


@pytest.fixture(scope="module")
def model(comfy, tmp_path_factory):
    import comfy.sd

    path = save_tiny_sd15_unet(str(tmp_path_factory.mktemp("sd15") / "tiny_sd15_unet.safetensors"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a pass of this UNet at 4×4 cells is ~0.1 s on one thread, seconds on shared ones
    yield comfy.sd.load_diffusion_model(path)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def latent():
    gen = torch.Generator().manual_seed(1)
    return {"samples": torch.randn(LATENT_SHAPE, generator=gen) * 4.0}  # VAE-encode scale (× 0.18215 ≈ unit)


@pytest.fixture(scope="module")
def conds():
    return {name: text_conditioning(seed, width=SD15_TEXT_WIDTH) for seed, name in enumerate(("empty", "prompt"))}


def nodes():
    from inversedvs.nodes import fusion as fusion_nodes

    return fusion_nodes


def backend():
    return pytest.importorskip("inversedvs.backend.comfy_image")


def plane_depth() -> torch.Tensor:
    """Metric depth of a plane tilted away upwards: DEPTH at the bottom row, 1.25·DEPTH at the top, [1, H, W, 3]."""
    rows = torch.linspace(1.25 * DEPTH, DEPTH, PIXELS).view(1, PIXELS, 1, 1)
    return rows.expand(1, PIXELS, PIXELS, 3).contiguous()


def camera(preset: str, frames: int = 2, amount: float = 1.0):
    from inversedvs.nodes.camera import CameraTrajectory

    return CameraTrajectory().build(preset, "", frames, 1.0, 0, 60.0, amount)[0]


def _relative_error(a, b):
    return float((a - b).norm() / b.norm())


class ModelCalls:
    """A core model wrapper that counts passes and keeps what each one gives the UNet: its input (core's
    calculate_input of the sampler's x) and its timestep."""

    def __init__(self, model):
        self.sampling = model.get_model_object("model_sampling")
        self.inputs = []

    def __call__(self, apply_model, args):
        sigma = args["timestep"]
        self.inputs.append((self.sampling.calculate_input(sigma, args["input"]).clone(),
                            self.sampling.timestep(sigma).clone()))
        return apply_model(args["input"], sigma, **args["c"])

    def patch(self, model):
        patched = model.clone()
        patched.set_model_unet_function_wrapper(self)
        return patched


def _invert(model, conds, latent, steps=4, timestep=600):
    return nodes().ImageInvert().invert(model, conds["empty"], latent, steps, timestep)[0]


def _fuse(model, conds, inversion, path, strategy, views="last", depth=None, seed=3):
    return nodes().NovelViewFusion().fuse(model, conds["empty"], inversion, plane_depth() if depth is None else depth,
                                          path, "metric", views, strategy, seed)


def _sample(model, conds, start, cfg=1.0):
    return nodes().NovelViewSample().sample(model, conds["empty"], conds["prompt"], start, cfg)[0]["samples"]


def test_core_loads_the_tiny_model_as_sd15_and_the_grid_is_the_methods(comfy, model):
    import comfy.model_sampling

    assert type(model.model.model_config).__name__ == "SD15"
    sampling = backend().check_image_model(model, "test")
    assert isinstance(sampling, comfy.model_sampling.EPS)
    grid = fusion.inversion_timesteps(30, 600)
    assert grid[:3] == [0, 20, 40] and grid[-1] == 600 and len(grid) == 31
    sigmas = backend().grid_sigmas(model, grid)
    assert float(sigmas[0]) == 0.0 and torch.allclose(sigmas[1:], sampling.sigmas[grid[1:]], rtol=1e-6, atol=0)
    # ᾱ of core's σ is the DDPM schedule's: scaled-linear betas 0.00085–0.012 over 1000 steps
    betas = torch.linspace(0.00085**0.5, 0.012**0.5, 1000, dtype=torch.float64) ** 2
    alpha_bar = torch.cumprod(1 - betas, 0)[600].item()
    assert abs(backend().level(float(sigmas[-1])).a ** 2 - alpha_bar) < 1e-5


def test_inversion_keeps_equation_1s_split_and_goes_through_core(model, conds, latent):
    calls = ModelCalls(model)
    out = _invert(calls.patch(model), conds, latent, steps=4, timestep=600)
    info = out[nodes().FUSION_KEY]
    sigmas = info["sigmas"]
    assert [round(float(t)) for _, t in calls.inputs] == [150, 300, 450, 600]  # the model asked at each target level
    # the split sums to the inverted latent, and the LATENT carries it in core's latent space
    assert torch.allclose(info["mean"] + info["noise"], info["inverted"], atol=1e-6)
    scale = model.get_model_object("latent_format").scale_factor
    assert torch.allclose(out["samples"] * scale, info["inverted"], atol=1e-6)
    # the first pass sees the clean latent in the DDPM space the UNet takes (core scales x/√(1+σ²))
    first, _ = calls.inputs[0]
    assert torch.allclose(first, latent["samples"] * scale, atol=1e-5)
    # the mean is √ᾱ·x̂0: close to √ᾱ times the source, and the noise term carries √(1−ᾱ) of unit noise
    level = backend().level(float(sigmas[-1]))
    source = latent["samples"] * scale
    assert _relative_error(info["mean"] / level.a, source) < 0.5
    assert 0.3 < float(info["noise"].std()) / level.b < 3.0


def test_with_the_identity_camera_the_fused_latent_samples_back_to_the_source(model, conds, latent):
    scale = model.get_model_object("latent_format").scale_factor
    source = latent["samples"] * scale
    errors, lags = {}, {}
    for steps in (2, 4, 8):
        inversion = _invert(model, conds, latent, steps=steps, timestep=600)
        info = inversion[nodes().FUSION_KEY]
        calls = ModelCalls(model)
        start, holes = _fuse(calls.patch(model), conds, inversion, camera("still"), fusion.STRATEGY_NOISE_TERM)
        assert not bool(holes.any())
        # the identity warp keeps the mean, so strategy A's fused latent (what its one pass sees) is the inversion
        (fused, _), = calls.inputs
        assert torch.allclose(fused, info["inverted"], atol=1e-5)
        start_info = start[nodes().START_KEY]
        # its start differs from the inversion by b·(ε̂ at the inverted latent − ε̂ of the last inversion step)
        lags[steps] = _relative_error(start_info["start"], info["inverted"])
        back = _sample(model, conds, start) * scale
        plain = _sample(model, conds, dict(start, **{nodes().START_KEY: dict(start_info, start=info["inverted"])}))
        errors[steps] = (_relative_error(back, source), _relative_error(plain * scale, source))
    print("\nidentity camera, strategy A, timestep 600: ‖x̂−x‖/‖x‖ (from the fused start, from the inversion) and "
          "‖start − inversion‖/‖inversion‖ by steps", errors, lags)
    # first order in the step: both round trips and the start's lag shrink as the steps grow
    assert errors[2][0] > errors[4][0] > errors[8][0] and errors[2][1] > errors[4][1] > errors[8][1]
    assert lags[2] > lags[4] > lags[8]
    assert errors[8][0] < 0.5 and errors[2][0] / errors[8][0] > 2.0


def test_the_nodes_strategies_are_the_formulas(model, conds, latent):
    inversion = _invert(model, conds, latent, steps=3, timestep=450)
    info = inversion[nodes().FUSION_KEY]
    path = camera("truck_right", amount=0.5)
    level = backend().level(float(info["sigmas"][-1]))
    start_b, holes = _fuse(model, conds, inversion, path, fusion.STRATEGY_INVERTED)
    calls = ModelCalls(model)
    start_a, holes_a = _fuse(calls.patch(model), conds, inversion, path, fusion.STRATEGY_NOISE_TERM)
    assert torch.equal(holes, holes_a) and bool(holes.any()) and not bool(holes.all())
    # both start from the same warped, hole-filled mean: B − b·z_inv = A − b·ε
    mean_b = start_b[nodes().START_KEY]["start"] - level.b * info["inverted"]
    # strategy A's one pass: the UNet sees mean + the source's noise term at the inversion's last timestep
    (fused, timestep), = calls.inputs
    assert round(float(timestep)) == 450
    assert torch.allclose(fused, mean_b + info["noise"], atol=1e-5)
    context = conds["empty"][0][0]
    eps = model.model.diffusion_model(fused, timestep, context=context)
    assert torch.allclose(start_a[nodes().START_KEY]["start"], mean_b + level.b * eps, atol=1e-5)
    # the warp moved the mean: truck right shifts the picture left; visible cells are mixes of the source mean
    assert _relative_error(mean_b, info["mean"]) > 0.1


def test_all_views_give_a_batch_and_sampling_follows_the_grid(model, conds, latent):
    inversion = _invert(model, conds, latent, steps=3, timestep=300)
    start, holes = _fuse(model, conds, inversion, camera("orbit_right", frames=3), fusion.STRATEGY_INVERTED,
                         views="all")
    assert start["samples"].shape == (3,) + LATENT_SHAPE[1:] and holes.shape == (3, 4, 4)
    assert not bool(holes[0].any())  # the path's first camera is the source's
    calls = ModelCalls(model)
    out = _sample(calls.patch(model), conds, start)
    assert out.shape == (3,) + LATENT_SHAPE[1:] and torch.isfinite(out).all()
    assert [round(float(t[0])) for _, t in calls.inputs] == [300, 200, 100]
    first_input, _ = calls.inputs[0]
    sigma0 = float(inversion[nodes().FUSION_KEY]["sigmas"][-1])
    # core's sampler starts on the fused latent: the UNet sees exactly the DDPM-space start
    assert torch.allclose(first_input, start[nodes().START_KEY]["start"], atol=1e-5)
    assert sigma0 > 0


def test_bad_inputs_give_clear_errors(comfy, model, conds, latent):
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3

    n = nodes()
    flow = ModelSamplingSD3().patch(model, shift=3.0)[0]
    with pytest.raises(InverseDVSError, match="DDPM image model"):
        n.ImageInvert().invert(flow, conds["empty"], latent, 4, 600)
    with pytest.raises(InverseDVSError, match="16 channels"):
        n.ImageInvert().invert(model, conds["empty"], {"samples": torch.zeros(1, 16, 4, 4)}, 4, 600)
    with pytest.raises(InverseDVSError, match="one image's latent"):
        n.ImageInvert().invert(model, conds["empty"], {"samples": torch.zeros(1, 4, 3, 4, 4)}, 4, 600)
    with pytest.raises(InverseDVSError, match="steps = 40"):
        n.ImageInvert().invert(model, conds["empty"], latent, 40, 30)
    with pytest.raises(InverseDVSError, match="timestep = 999"):
        n.ImageInvert().invert(model, conds["empty"], latent, 4, 999)
    inversion = _invert(model, conds, latent, steps=2, timestep=200)
    path = camera("still")
    with pytest.raises(InverseDVSError, match="Invert Image"):
        _fuse(model, conds, latent, path, fusion.STRATEGY_INVERTED)
    with pytest.raises(InverseDVSError, match="the depth is 24x32"):
        _fuse(model, conds, inversion, path, fusion.STRATEGY_INVERTED, depth=torch.ones(1, 32, 24, 3))
    with pytest.raises(InverseDVSError, match="2 frames"):
        _fuse(model, conds, inversion, path, fusion.STRATEGY_INVERTED, depth=torch.ones(2, 32, 32, 3))
    with pytest.raises(InverseDVSError, match="strategy must be one of"):
        _fuse(model, conds, inversion, path, "a")
    with pytest.raises(InverseDVSError, match="Novel View Fusion"):
        _sample(model, conds, inversion)
