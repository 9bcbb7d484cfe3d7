"""Diffusion² on ComfyUI's own SVD img2vid and SV3D models, in-process in the real host.

Tiny UNets of core's own class are saved as safetensors and loaded through core's Load Diffusion Model, which
detects them as SVD_img2vid and SV3D_p. The conditionings are what core's SVD_img2vid_Conditioning and
SV3D_Conditioning give for a batch of init images, made here with core's own node functions, core's CLIP vision
class (tiny config) and core's SD VAE. With s = 1 (s = 0) the sampler must give core's own sampling of each row
(column) bit for bit: same σ grid (core's Karras), same noise, core's Euler sampler through SamplerCustomAdvanced.

    COMFYUI_DIR=/path/to/ComfyUI <its python> -m pytest -m host tests/test_native_diffusion2.py
"""

from __future__ import annotations

import pytest
import torch

from _comfy_host import HOST_MARKS, sd_vae, save_tiny_svd_unet, tiny_clip_vision
from _comfy_host import comfy, inference  # noqa: F401  (fixtures)
from inversedvs.errors import InverseDVSError
from inversedvs.krnr import composition as comp

pytestmark = HOST_MARKS

V, F = 2, 3  # views (rows), frames (columns)
PIXELS = 16  # 2x2 latents: core's UNet matches its skip shapes when a downsampling reaches 1x1
ELEVATION = 10.0
VIDEO_CFG, MULTIVIEW_CFG = 1.0, 2.0  # the video model without guidance, SV3D with (its negative pass batched)


@pytest.fixture(scope="module")
def models(comfy, tmp_path_factory):
    import comfy.sd

    folder = tmp_path_factory.mktemp("svd")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    loaded = {kind: comfy.sd.load_diffusion_model(save_tiny_svd_unet(str(folder / f"{kind}.safetensors"), kind, seed))
              for seed, kind in enumerate(("svd", "sv3d_p"))}
    loaded["clip_vision"] = tiny_clip_vision(str(folder))
    loaded["vae"] = sd_vae()
    yield loaded
    torch.set_num_threads(threads)


def _images(n, seed):
    return torch.rand(n, PIXELS, PIXELS, 3, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def conds(models):
    """Core's two conditioning nodes on the reference orbit (V images) and the reference video (F frames)."""
    from comfy_extras.nodes_stable3d import SV3D_Conditioning
    from comfy_extras.nodes_video_model import SVD_img2vid_Conditioning

    orbit, video = _images(V, 1), _images(F, 2)
    video_pos, video_neg, _ = SVD_img2vid_Conditioning().encode(models["clip_vision"], orbit, models["vae"], PIXELS,
                                                                PIXELS, F, 127, 6, 0.0)
    multiview = SV3D_Conditioning.execute(models["clip_vision"], video, models["vae"], PIXELS, PIXELS, V, ELEVATION)
    return {"orbit": orbit, "video": video, "video_positive": video_pos, "video_negative": video_neg,
            "multiview_positive": multiview[0], "multiview_negative": multiview[1]}


def nodes():
    from inversedvs.nodes import diffusion2

    return diffusion2


def backend():
    return pytest.importorskip("inversedvs.backend.comfy_svd")


def _split(conds):
    return nodes().matrix_conditions(conds["video_positive"], conds["video_negative"], conds["multiview_positive"],
                                     conds["multiview_negative"], "test")


def _matrix(models, conds, steps, s, vrs_steps, seed=7, video_model=None):
    rows, columns, shape = _split(conds)
    return backend().sample_matrix(video_model or models["svd"], rows, VIDEO_CFG, models["sv3d_p"], columns,
                                   MULTIVIEW_CFG, shape, steps, s, vrs_steps, seed)


class GivenNoise:
    """A NOISE that hands core's sampler a fixed tensor."""

    def __init__(self, noise):
        self.noise, self.seed = noise, 0

    def generate_noise(self, latent):
        return self.noise.clone()


def _core_sample(model, positive, negative, cfg, noise, sigmas):
    """Core's own sampling of one row / column: CFGGuider + euler through SamplerCustomAdvanced."""
    import comfy.samplers
    from comfy_extras.nodes_custom_sampler import SamplerCustomAdvanced

    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(positive, negative)
    guider.set_cfg(cfg)
    latent = {"samples": torch.zeros(noise.shape)}
    return SamplerCustomAdvanced().sample(GivenNoise(noise), guider, comfy.samplers.sampler_object("euler"), sigmas,
                                          latent)[0]["samples"]


class Calls:
    """A UNet wrapper that keeps each pass's σ and the sampler's x (before core scales it for the UNet)."""

    def __init__(self):
        self.calls = []

    def __call__(self, apply_model, args):
        self.calls.append((float(args["timestep"].reshape(-1)[0]), args["input"].clone()))
        return apply_model(args["input"], args["timestep"], **args["c"])

    def patch(self, model):
        patched = model.clone()
        patched.set_model_unet_function_wrapper(self)
        return patched


def test_core_detects_the_tiny_models_and_the_split_is_core_nodes_per_image(models, conds):
    from comfy_extras.nodes_video_model import SVD_img2vid_Conditioning

    assert type(models["svd"].model).__name__ == "SVD_img2vid" and type(models["sv3d_p"].model).__name__ == "SV3D_p"
    backend().check_models(models["svd"], models["sv3d_p"], "test")
    rows, columns, shape = _split(conds)
    assert (len(rows), len(columns), shape) == (V, F, (4, PIXELS // 8, PIXELS // 8))
    # row v's conditioning is what core's node gives for orbit image v alone
    for v in range(V):
        alone, _, _ = SVD_img2vid_Conditioning().encode(models["clip_vision"], conds["orbit"][v:v + 1], models["vae"],
                                                        PIXELS, PIXELS, F, 127, 6, 0.0)
        (embeds, options), = rows[v]["positive"]
        assert torch.allclose(embeds, alone[0][0], atol=1e-5)
        assert torch.allclose(options["concat_latent_image"], alone[0][1]["concat_latent_image"], atol=1e-4)
        assert {k: options[k] for k in ("motion_bucket_id", "fps")} == {"motion_bucket_id": 127, "fps": 6}
    # every column keeps SV3D's V azimuths
    assert columns[2]["positive"][0][1]["azimuth"] == conds["multiview_positive"][0][1]["azimuth"]
    assert len(columns[0]["positive"][0][1]["azimuth"]) == V


def test_s_1_is_cores_sampling_of_each_row_and_s_0_of_each_column(models, conds):
    steps, seed = 2, 7
    sigmas = backend().sigmas(models["svd"], steps)
    noise = backend().matrix_noise(V, F, (4, PIXELS // 8, PIXELS // 8), seed)
    rows, columns, _ = _split(conds)
    by_rows = comp.from_batch(_matrix(models, conds, steps, 1.0, 0, seed), V)
    for v in range(V):
        core = _core_sample(models["svd"], rows[v]["positive"], rows[v]["negative"], VIDEO_CFG, noise[v], sigmas)
        assert torch.equal(by_rows[v], core)
    by_columns = comp.from_batch(_matrix(models, conds, steps, 0.0, 0, seed), V)
    for f in range(F):
        core = _core_sample(models["sv3d_p"], columns[f]["positive"], columns[f]["negative"], MULTIVIEW_CFG,
                            noise[:, f].contiguous(), sigmas)
        assert torch.equal(by_columns[:, f], core)
    assert not torch.allclose(by_rows, by_columns)


def test_vrs_repeats_only_the_first_steps_from_the_renoised_latent(models, conds):
    steps, seed = 2, 7
    calls = Calls()
    _matrix(models, conds, steps, 1.0, 1, seed, video_model=calls.patch(models["svd"]))
    sigmas = [float(s) for s in backend().sigmas(models["svd"], steps)]
    # rows only (s = 1): each step's V row passes, the first step twice
    assert [round(s, 3) for s, _ in calls.calls] == [round(s, 3) for s in [sigmas[0]] * V * 2 + [sigmas[1]] * V]
    # the repeat at σ_0 starts from core's first Euler step plus (σ_0 − σ_1)·ε, ε from the generator of seed + 1
    rows, _, shape = _split(conds)
    noise = backend().matrix_noise(V, F, shape, seed)
    eps = torch.randn((V, F) + shape, generator=torch.Generator().manual_seed(seed + 1))
    scale = models["svd"].get_model_object("latent_format").scale_factor
    for v in range(V):
        first = _core_sample(models["svd"], rows[v]["positive"], rows[v]["negative"], VIDEO_CFG, noise[v],
                             backend().sigmas(models["svd"], steps)[:2]) * scale
        expected = first + (sigmas[0] - sigmas[1]) * eps[v]
        assert torch.allclose(calls.calls[V + v][1], expected, rtol=1e-5, atol=1e-4)
        # the first evaluation was the plain start (core's noise scaling of the seed's noise)
        assert not torch.allclose(calls.calls[v][1], calls.calls[V + v][1])


def test_the_node_gives_the_matrix_images_grid_and_views_and_one_step_is_linear_in_s(models, conds):
    s, seed = 0.25, 3
    out = nodes().Diffusion2Sample().sample(models["svd"], conds["video_positive"], conds["video_negative"],
                                            models["sv3d_p"], conds["multiview_positive"],
                                            conds["multiview_negative"], models["vae"], 1, VIDEO_CFG, MULTIVIEW_CFG,
                                            s, 0, seed)
    latent, images, grid, views = out
    assert views == V and latent[nodes().MATRIX_KEY] == {"views": V, "frames": F}
    assert latent["samples"].shape == (V * F, 4, PIXELS // 8, PIXELS // 8)
    assert images.shape == (V * F, PIXELS, PIXELS, 3) and grid.shape == (1, V * PIXELS, F * PIXELS, 3)
    # one step (to σ = 0) is linear in s: the node's s = 0.25 is ¼ of the rows' matrix and ¾ of the columns'
    ends = {w: _matrix(models, conds, 1, w, 0, seed) for w in (0.0, 1.0)}
    mixed = s * ends[1.0] + (1 - s) * ends[0.0]
    assert torch.allclose(latent["samples"], mixed, atol=1e-4 * float(mixed.abs().max()))
    assert not torch.allclose(ends[0.0], ends[1.0])
    # core's VAE Decode of the matrix's view 1 is the images' view 1; the grid's tile (1, 2) is image 1·F + 2
    decoded = models["vae"].decode(latent["samples"][F:2 * F])
    assert torch.allclose(images[F:2 * F], decoded, atol=1e-5)
    assert torch.allclose(grid[0, PIXELS:, 2 * PIXELS:], images[F + 2], atol=1e-6)
    picked, = nodes().Diffusion2Pick().pick(images, views, "view", 1)
    assert torch.equal(picked, images[F:2 * F])
    orbit, = nodes().Diffusion2Pick().pick(images, views, "time", 2)
    assert torch.equal(orbit, images[[2, F + 2]])


def test_bad_models_and_mismatched_conditions_are_refused(models, conds):
    sample = nodes().Diffusion2Sample().sample
    args = dict(video_model=models["svd"], video_positive=conds["video_positive"],
                video_negative=conds["video_negative"], multiview_model=models["sv3d_p"],
                multiview_positive=conds["multiview_positive"], multiview_negative=conds["multiview_negative"],
                vae=models["vae"], steps=1, video_cfg=1.0, multiview_cfg=1.0, s=0.5, vrs_steps=0, seed=0)
    with pytest.raises(InverseDVSError, match="video_model must be Stable Video Diffusion"):
        sample(**dict(args, video_model=models["sv3d_p"]))
    with pytest.raises(InverseDVSError, match="multiview_model must be SV3D"):
        sample(**dict(args, multiview_model=models["svd"]))
    # the two conditionings swapped
    with pytest.raises(InverseDVSError, match="video_positive is not the output of core's SVD_img2vid_Conditioning"):
        sample(**dict(args, video_positive=conds["multiview_positive"], video_negative=conds["multiview_negative"],
                      multiview_positive=conds["video_positive"], multiview_negative=conds["video_negative"]))


def test_cancel_stops_within_a_step(comfy, models, conds):
    import comfy.model_management as mm

    class CancelAfterFirst(Calls):
        def __call__(self, apply_model, args):
            out = super().__call__(apply_model, args)
            mm.interrupt_current_processing(True)  # what ComfyUI's Cancel button sets
            return out

    calls = CancelAfterFirst()
    try:
        with pytest.raises(mm.InterruptProcessingException):
            _matrix(models, conds, 2, 1.0, 0, video_model=calls.patch(models["svd"]))
    finally:
        mm.interrupt_current_processing(False)
    assert len(calls.calls) == 1  # the second row of the first step was not started


def test_the_4d_fit_takes_its_cameras_from_cores_sv3d_conditioning_and_reports_progress(comfy, models, monkeypatch):
    """Fit Dynamic Gaussians on the orbit core's SV3D_Conditioning describes: its azimuths (0, 120, 240, 360 for 4
    views: core's template ends where it starts) and elevation are the cameras; ComfyUI's progress bar moves once
    an iteration and Cancel stops the fit within one."""
    import comfy.model_management as mm
    import comfy.utils
    from comfy_extras.nodes_stable3d import SV3D_Conditioning

    import _gaussian_scene as scene
    from inversedvs.gaussians import losses
    from inversedvs.nodes import _host, gaussians4d

    # the pack was imported before ComfyUI here: give it core's progress bar and interrupt, as inside ComfyUI
    monkeypatch.setattr(_host, "_cu", comfy.utils)
    monkeypatch.setattr(_host, "_mm", mm)

    views, frames, size, elevation = 4, 2, 32, 20.0
    multiview = SV3D_Conditioning.execute(models["clip_vision"], _images(frames, 5), models["vae"], size, size, views,
                                          elevation)[0]
    azimuth, elevations = nodes().orbit_of(multiview, "multiview_positive", "test")
    assert azimuth.tolist() == [0.0, 120.0, 240.0, 360.0] and elevations.tolist() == [elevation] * views
    targets, _, _ = scene.matrix(views, frames, size, azimuth=azimuth, elevation=elevation)
    images = targets.reshape(views * frames, size, size, 3)
    ticks = []
    previous = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: ticks.append((value, total)))
    try:
        fitted, renders = gaussians4d.FitDynamicGaussians().fit(images, multiview, 80, 40, 200, "right", 33.8,
                                                                "white", "auto", 0)
    finally:
        comfy.utils.set_progress_bar_global_hook(previous)
    assert ticks[-1] == (80, 80) and len(ticks) == 80
    assert renders.shape == images.shape and fitted.frames == frames
    white = losses.psnr(torch.ones_like(images), images).mean()
    assert losses.psnr(renders, images).mean() > white + 6  # measured: 8.8 dB for white, 18.9 dB for the fit

    def cancel_at_third(value, total, preview, node_id=None):
        if value == 3:
            mm.interrupt_current_processing(True)  # what ComfyUI's Cancel button sets

    comfy.utils.set_progress_bar_global_hook(cancel_at_third)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            gaussians4d.FitDynamicGaussians().fit(images, multiview, 80, 40, 200, "right", 33.8, "white", "auto", 0)
    finally:
        mm.interrupt_current_processing(False)
        comfy.utils.set_progress_bar_global_hook(previous)
