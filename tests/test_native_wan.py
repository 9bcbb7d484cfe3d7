"""The method on ComfyUI's own Wan 2.1 image-to-video model, in-process in the real host.

A tiny WanModel of core's own class is saved as safetensors and loaded through core's
``load_diffusion_model`` (as WAN21 I2V, rectified flow, shift 8); the VAE is core's Wan 2.1 VAE at
random weights, asked only for its compression (the method runs on latents directly: the VAE is
not the point here and costs ~10 s a call on the CPU).

    COMFYUI_DIR=/path/to/ComfyUI <its python> -m pytest -m host tests/test_native_wan.py
"""

from __future__ import annotations

import pytest
import torch

from _comfy_host import HOST_MARKS, image_conditioning, save_tiny_wan, text_conditioning, wan21_vae
from _comfy_host import comfy, inference  # noqa: F401  (fixtures)
from inversedvs.errors import InverseDVSError
from inversedvs.krnr import levels
from inversedvs.krnr.krnr import krnr_recursive

pytestmark = HOST_MARKS

LATENT_SHAPE = (1, 16, 3, 8, 12)  # 9 frames of 64×96 through Wan 2.1's 4×8×8 VAE
PIXELS = (9, 64, 96)
RECONSTRUCTION_STEPS = (2, 4, 8)


@pytest.fixture(scope="module")
def model(comfy, tmp_path_factory):
    import comfy.sd

    path = save_tiny_wan(str(tmp_path_factory.mktemp("wan") / "tiny_wan21_i2v.safetensors"))
    return comfy.sd.load_diffusion_model(path)


@pytest.fixture(scope="module")
def vae(comfy):
    return wan21_vae()


@pytest.fixture(scope="module")
def latent():
    gen = torch.Generator().manual_seed(1)
    return {"samples": torch.randn(LATENT_SHAPE, generator=gen) * 0.5}


@pytest.fixture(scope="module")
def conds(latent):
    samples = latent["samples"]
    return {name: image_conditioning(text_conditioning(seed), samples)
            for seed, name in enumerate(("empty", "positive", "negative"))}


@pytest.fixture(scope="module")
def hole_mask():
    mask = torch.zeros(PIXELS)
    mask[:, :, 64:] = 1.0  # the right third of every frame unseen
    return mask


def nodes():
    from inversedvs.nodes import native

    return native


def within_float32_steps(got: torch.Tensor, want: torch.Tensor, terms, steps: int) -> bool:
    """|got − want| ≤ ``steps`` float32 spacings at the size of the largest of want and ``terms``, everywhere."""
    scale = want.abs()
    for term in terms:
        scale = torch.maximum(scale, term.abs())
    spacing = torch.nextafter(scale, torch.tensor(float("inf"))) - scale
    return bool(((got - want).abs() <= steps * spacing).all())


def _relative_error(a, b):
    return float((a - b).norm() / b.norm())


def _invert(model, conds, latent, steps, strength, end="sampling_start"):
    return nodes().NativeInvert().invert(model, conds["empty"], latent, steps, strength, end)[0]


class ModelCalls:
    """A core model wrapper that counts passes, keeps the first input and can press cancel on pass ``cancel_at``."""

    def __init__(self, comfy, cancel_at: int | None = None):
        self.comfy, self.cancel_at, self.calls, self.first_input = comfy, cancel_at, 0, None

    def __call__(self, apply_model, args):
        self.calls += 1
        if self.first_input is None:
            self.first_input = args["input"].clone()
        if self.calls == self.cancel_at:
            self.comfy.model_management.interrupt_current_processing(True)
        return apply_model(args["input"], args["timestep"], **args["c"])

    def patch(self, model):
        patched = model.clone()
        patched.set_model_unet_function_wrapper(self)
        return patched


def test_core_loads_the_tiny_model_as_wan21_i2v_flow(comfy, model, vae):
    import comfy.model_base

    native = pytest.importorskip("inversedvs.backend.comfy_native")
    assert type(model.model) is comfy.model_base.WAN21 and model.model.image_to_video
    sampling = native.check_flow_model(model, "test")
    assert float(sampling.shift) == 8.0 and float(sampling.sigma_max) == 1.0
    assert native.compression(vae, "test") == (4, 8)
    sigmas = nodes().NativeSigmas().sigmas(model, 30, 0.98)[0]
    full = native.full_grid(model, 30)
    assert len(full) == 31 and float(full[0]) == 1.0 and float(full[-1]) == 0.0
    assert torch.equal(sigmas, full[1:])  # strength 0.98 of 30 steps skips the first level, as on CogVideoX


def test_flow_inversion_then_sampling_with_k0_reconstructs_better_as_steps_grow(model, vae, conds, latent):
    no_holes = torch.zeros(PIXELS)
    errors = []
    for steps in RECONSTRUCTION_STEPS:
        noise = _invert(model, conds, latent, steps, 1.0)
        assert noise["inversion"]["end_sigma"] == 1.0
        out = nodes().NativeSample().sample(model, vae, conds["empty"], conds["negative"], latent, noise, no_holes,
                                            steps, 1.0, 0, 1.0, 1.0, False, 42)[0]
        errors.append(_relative_error(out["samples"], latent["samples"]))
    print("\nflow inversion → sampling, k = 0, uniform guidance: ‖x̂−x‖/‖x‖ by steps",
          dict(zip(RECONSTRUCTION_STEPS, [round(e, 4) for e in errors])))
    assert errors[0] > errors[1] > errors[2]
    assert errors[-1] < 0.2 and errors[0] / errors[-1] > 2.0  # first order: each doubling of steps ~halves it
    # the inverted latent is far from the input: the reconstruction is the march back, not a copy
    assert _relative_error(noise["samples"], latent["samples"]) > 1.0


def test_krnr_noise_makes_the_sampler_start_on_the_closed_form_and_the_recursion(comfy, model, vae, conds, latent,
                                                                                   hole_mask):
    native_nodes = nodes()
    noise = _invert(model, conds, latent, 10, 0.3)
    clean_m, noise_m, _ = native_nodes.NativeModulate().modulate(model, vae, latent, noise, hole_mask, 7)
    sigmas = native_nodes.NativeSigmas().sigmas(model, 10, 0.3)[0]
    sigma0 = float(sigmas[0])
    assert 0.0 < sigma0 < 1.0 and len(sigmas) == 4
    process_in = model.get_model_object("process_latent_in")
    x0, eps = process_in(clean_m["samples"]), process_in(noise_m["samples"])
    for k in (0, 1, 3, 8):
        start = native_nodes.NativeKRNRNoise().noise(model, clean_m, noise_m, sigmas, k)[0]
        recursion = krnr_recursive(x0, eps, levels.flow_level(sigma0), k)
        closed = (1 - sigma0**k) * x0 + sigma0**k * eps
        assert torch.allclose(recursion, closed, atol=1e-5), k
        # where core's sampler starts: noise_scaling(σ_0, noise, process_latent_in(latent))
        sampling = model.get_model_object("model_sampling")
        noise_k = start.generate_noise(latent)
        begin = sampling.noise_scaling(sigmas[0], noise_k, process_in(latent["samples"]))
        assert torch.allclose(begin, recursion, atol=1e-5, rtol=0), k
        # the sampler sums σ_0·noise and (1−σ_0)·latent in float32: exact to its rounding of those terms
        terms = (sigmas[0] * noise_k, (1.0 - sigmas[0]) * process_in(latent["samples"]))
        assert within_float32_steps(begin, start.start, terms, 2), k
    # and the first pass of a real run sees exactly that start
    calls = ModelCalls(comfy)
    guider = native_nodes.NativeGuider().guider(calls.patch(model), conds["positive"], conds["negative"],
                                                torch.zeros(LATENT_SHAPE[2:]), 1.0, 1.0, False)[0]
    native = pytest.importorskip("inversedvs.backend.comfy_native")
    native.sample_advanced(start, guider, sigmas, latent)
    assert calls.calls == len(sigmas) - 1  # one pass per step with uniform guidance
    assert torch.equal(calls.first_input, begin)


def _five_nodes(model, vae, conds, latent, noise, mask, steps, strength, k, guidance, preservation, dynamic, seed):
    from comfy_extras.nodes_custom_sampler import KSamplerSelect, SamplerCustomAdvanced

    n = nodes()
    clean_m, noise_m, unseen = n.NativeModulate().modulate(model, vae, latent, noise, mask, seed)
    (sigmas,) = n.NativeSigmas().sigmas(model, steps, strength)
    (start,) = n.NativeKRNRNoise().noise(model, clean_m, noise_m, sigmas, k)
    (guider,) = n.NativeGuider().guider(model, conds["positive"], conds["negative"], unseen, guidance, preservation,
                                        dynamic)
    (sampler,) = KSamplerSelect().get_sampler("euler")
    return SamplerCustomAdvanced().sample(start, guider, sampler, sigmas, latent)[0]


def test_the_sample_node_equals_the_five_node_sampler_custom_advanced_wiring(model, vae, conds, latent, hole_mask):
    noise = _invert(model, conds, latent, 6, 0.8)
    settings = dict(steps=6, strength=0.8, k=2, guidance=5.0, preservation=1.0, dynamic=True, seed=3)
    wired = _five_nodes(model, vae, conds, latent, noise, hole_mask, **settings)
    s = settings
    one = nodes().NativeSample().sample(model, vae, conds["positive"], conds["negative"], latent, noise, hole_mask,
                                        s["steps"], s["strength"], s["k"], s["guidance"], s["preservation"],
                                        s["dynamic"], s["seed"])[0]
    assert torch.equal(one["samples"], wired["samples"])
    assert torch.isfinite(one["samples"]).all()
    # guidance acts where the mask is unseen: another guidance changes the unseen cells more than the visible ones
    other = _five_nodes(model, vae, conds, latent, noise, hole_mask, **dict(settings, guidance=1.0, dynamic=False))
    change = (other["samples"] - wired["samples"]).abs().mean(dim=(0, 1, 2))  # [h, w]
    assert float(change[:, 8:].mean()) > float(change[:, :6].mean()) > 0.0


def _lora(rank: int = 4, scale: float = 0.5):
    gen = torch.Generator().manual_seed(5)
    state = {}
    for block in (0, 1):
        for layer in ("self_attn.q", "self_attn.o", "ffn.0"):
            out_dim, in_dim = (256, 128) if layer == "ffn.0" else (128, 128)
            key = f"diffusion_model.blocks.{block}.{layer}"
            state[f"{key}.lora_up.weight"] = torch.randn(out_dim, rank, generator=gen) * scale
            state[f"{key}.lora_down.weight"] = torch.randn(rank, in_dim, generator=gen) * scale
    return state


def test_a_lora_and_a_core_model_patch_upstream_change_the_method(comfy, model, vae, conds, latent, hole_mask):
    import comfy.sd
    from comfy_extras.nodes_model_advanced import ModelSamplingSD3

    def run(m):
        noise = _invert(m, conds, latent, 3, 1.0)
        out = nodes().NativeSample().sample(m, vae, conds["positive"], conds["negative"], latent, noise, hole_mask,
                                            3, 1.0, 2, 4.0, 1.0, False, 42)[0]
        return noise["samples"], out["samples"]

    plain = run(model)
    with_lora, _ = comfy.sd.load_lora_for_models(model, None, _lora(), 1.0, 0.0)
    assert len(with_lora.patches) == 6  # every LoRA layer found its weight in core's Wan
    lora = run(with_lora)
    shifted = run(ModelSamplingSD3().patch(model, shift=2.0)[0])
    for changed in (lora, shifted):
        for a, b in zip(changed, plain):
            assert _relative_error(a, b) > 1e-3
    assert all(torch.equal(a, b) for a, b in zip(run(model), plain))  # the patches stayed on their clones


def test_cancel_stops_inversion_and_sampling_within_a_step_and_progress_is_reported(comfy, model, vae, conds,
                                                                                      latent, hole_mask):
    import comfy.model_management as mm
    import comfy.utils

    reports = []
    saved_hook = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.PROGRESS_BAR_HOOK = lambda value, total, preview, node_id=None: reports.append((value, total))
    try:
        noise = _invert(model, conds, latent, 5, 1.0)
        assert reports == [(i, 5) for i in range(1, 6)]
        for cancel_at in (1, 3):
            calls = ModelCalls(comfy, cancel_at)
            with pytest.raises(mm.InterruptProcessingException):
                _invert(calls.patch(model), conds, latent, 5, 1.0)
            assert calls.calls == cancel_at
            calls = ModelCalls(comfy, cancel_at)
            with pytest.raises(mm.InterruptProcessingException):
                nodes().NativeSample().sample(calls.patch(model), vae, conds["positive"], conds["negative"], latent,
                                              noise, hole_mask, 5, 1.0, 2, 4.0, 1.0, False, 42)
            assert calls.calls == cancel_at  # core batches the positive and negative of a step into one pass
            assert not mm.processing_interrupted()
    finally:
        comfy.utils.PROGRESS_BAR_HOOK = saved_hook


def test_memory_goes_through_core_and_never_evicts_every_model(comfy, model, vae, conds, latent, hole_mask,
                                                               monkeypatch):
    import comfy.model_management as mm

    loads = []
    real_load = mm.load_models_gpu
    monkeypatch.setattr(mm, "load_models_gpu", lambda models, *a, **kw: loads.append(models) or real_load(models, *a,
                                                                                                            **kw))

    def refuse():
        raise AssertionError("unload_all_models evicts the user's other models")

    monkeypatch.setattr(mm, "unload_all_models", refuse)
    noise = _invert(model, conds, latent, 2, 1.0)
    nodes().NativeSample().sample(model, vae, conds["positive"], conds["negative"], latent, noise, hole_mask, 2, 1.0,
                                  2, 4.0, 1.0, True, 42)
    assert len(loads) == 2 and all(any(m is model or m.model is model.model for m in ms) for ms in loads)


def test_bad_inputs_give_clear_errors(comfy, model, vae, conds, latent, hole_mask):
    from comfy_extras.nodes_model_advanced import ModelSamplingDiscrete

    n = nodes()
    eps_model = ModelSamplingDiscrete().patch(model, "eps", False)[0]
    with pytest.raises(InverseDVSError, match="rectified-flow"):
        n.NativeInvert().invert(eps_model, conds["empty"], latent, 4, 1.0, "sampling_start")
    with pytest.raises(InverseDVSError, match="48 channels"):
        n.NativeInvert().invert(model, conds["empty"], {"samples": torch.zeros(1, 48, 3, 8, 12)}, 4, 1.0,
                                "sampling_start")
    noise = {"samples": torch.randn(LATENT_SHAPE), "inversion": {"steps": 4, "strength": 1.0, "start_sigma": 1.0}}
    sigmas = n.NativeSigmas().sigmas(model, 4, 0.5)[0]
    with pytest.raises(InverseDVSError, match="Stochastic Latent Modulation"):
        n.NativeKRNRNoise().noise(model, latent, noise, sigmas, 2)
    clean_m, noise_m, unseen = n.NativeModulate().modulate(model, vae, latent, noise, hole_mask, 1)
    with pytest.raises(InverseDVSError, match="same steps and strength"):
        n.NativeKRNRNoise().noise(model, clean_m, noise_m, sigmas, 2)
    with pytest.raises(InverseDVSError, match="latent belongs to a video of 9 frames of 96x64"):
        n.NativeModulate().modulate(model, vae, latent, noise, torch.zeros(9, 64, 64), 1)
    with pytest.raises(InverseDVSError, match="not a video VAE"):
        n.NativeModulate().modulate(model, object(), latent, noise, hole_mask, 1)
    start = n.NativeKRNRNoise().noise(model, clean_m, dict(noise_m, inversion=None), sigmas, 2)[0]
    guider = n.NativeGuider().guider(model, conds["positive"], conds["negative"], torch.zeros(3, 4, 4), 4.0, 1.0,
                                     False)[0]
    native = pytest.importorskip("inversedvs.backend.comfy_native")
    with pytest.raises(InverseDVSError, match="latent grid"):
        native.sample_advanced(start, guider, sigmas, latent)


def test_core_vae_encode_and_wan_image_to_video_feed_the_nodes(comfy, model, vae):
    """The real wiring: core's VAE Encode of the warped video and WanImageToVideo's conditioning (first warped
    frame as start image). WanImageToVideo's zero LATENT works as the sampler's latent as well as the encoded one."""
    from comfy_extras.nodes_wan import WanImageToVideo
    from nodes import VAEEncode

    gen = torch.Generator().manual_seed(4)
    warped = torch.rand(5, 32, 48, 3, generator=gen)
    mask = torch.zeros(5, 32, 48)
    mask[:, :, 32:] = 1.0
    (latent,) = VAEEncode().encode(vae, warped)
    assert latent["samples"].shape == (1, 16, 2, 4, 6)
    positive, empty, zero = WanImageToVideo.execute(text_conditioning(1), text_conditioning(0), vae, 48, 32, 5, 1,
                                                    start_image=warped[:1]).result
    assert not torch.count_nonzero(zero["samples"]) and "concat_latent_image" in empty[0][1]
    n = nodes()
    noise = n.NativeInvert().invert(model, empty, latent, 4, 0.8, "sampling_start")[0]
    out = n.NativeSample().sample(model, vae, positive, empty, latent, noise, mask, 4, 0.8, 2, 4.0, 1.0, True, 42)[0]
    assert out["samples"].shape == latent["samples"].shape and torch.isfinite(out["samples"]).all()
    native = pytest.importorskip("inversedvs.backend.comfy_native")
    clean_m, noise_m, unseen = n.NativeModulate().modulate(model, vae, latent, noise, mask, 42)
    assert unseen.shape == (2, 4, 6) and bool(unseen[:, :, 5].all()) and not bool(unseen[:, :, 0].any())
    (sigmas,) = n.NativeSigmas().sigmas(model, 4, 0.8)
    (start,) = n.NativeKRNRNoise().noise(model, clean_m, noise_m, sigmas, 2)
    (guider,) = n.NativeGuider().guider(model, positive, empty, unseen, 4.0, 1.0, True)
    on_zero = native.sample_advanced(start, guider, sigmas, zero)
    assert torch.allclose(on_zero["samples"], out["samples"], atol=1e-4, rtol=1e-4)


def test_two_experts_hand_over_at_the_boundary_in_inversion_and_sampling(comfy, model, vae, conds, latent, hole_mask,
                                                                         tmp_path):
    """Wan 2.2 A14B: with model_high_noise connected, Invert and Sample give every step evaluated at σ ≥ boundary to
    the high-noise expert and the rest to the low-noise one (passes counted per expert); the same model as both
    experts gives the one-model result; experts of different latents are refused."""
    import comfy.sd

    from inversedvs.backend import comfy_native

    high = comfy.sd.load_diffusion_model(save_tiny_wan(str(tmp_path / "high.safetensors"), seed=7))
    steps, strength, boundary = 8, 1.0, 0.9
    n = nodes()
    low_calls, high_calls = ModelCalls(comfy), ModelCalls(comfy)
    low_m, high_m = low_calls.patch(model), high_calls.patch(high)
    noise = n.NativeInvert().invert(low_m, conds["empty"], latent, steps, strength, "sampling_start", high_m,
                                    boundary)[0]
    ascending = comfy_native.inversion_sigmas(model, steps, strength, False)
    targets = [float(s) for s in ascending[1:]]
    assert high_calls.calls == sum(s >= boundary for s in targets) > 0
    assert low_calls.calls == sum(s < boundary for s in targets) > 0
    one = n.NativeInvert().invert(model, conds["empty"], latent, steps, strength, "sampling_start")[0]
    assert (noise["samples"] - one["samples"]).abs().max() > 1e-3  # the high expert made a difference

    low_calls.calls = high_calls.calls = 0
    args = (conds["positive"], conds["negative"], latent, noise, hole_mask, steps, strength, 2, 1.0, 1.0, False, 42)
    n.NativeSample().sample(low_m, vae, *args, "tensor", high_m, boundary)
    evaluated = [float(s) for s in comfy_native.sampling_sigmas(model, steps, strength)[:-1]]
    assert high_calls.calls == sum(s >= boundary for s in evaluated) > 0
    assert low_calls.calls == sum(s < boundary for s in evaluated) > 0

    same_inversion = n.NativeInvert().invert(model, conds["empty"], latent, steps, strength, "sampling_start",
                                             model, boundary)[0]
    assert torch.allclose(same_inversion["samples"], one["samples"], atol=1e-4, rtol=1e-4)
    guided = (conds["positive"], conds["negative"], latent)
    settings = (hole_mask, steps, strength, 2, 4.0, 1.0, True, 42)
    single = n.NativeSample().sample(model, vae, *guided, one, *settings)[0]
    split = n.NativeSample().sample(model, vae, *guided, same_inversion, *settings, "tensor", model, boundary)[0]
    assert torch.allclose(split["samples"], single["samples"], atol=1e-4, rtol=1e-4)
    # sampling with other experts than the inversion's is refused, naming both
    with pytest.raises(InverseDVSError, match="inverted with two experts split at boundary 0.9 but this node samples "
                                              "with one model"):
        n.NativeSample().sample(model, vae, *guided, noise, *settings)
    with pytest.raises(InverseDVSError, match="inverted with one model but this node samples with two experts"):
        n.NativeSample().sample(model, vae, *guided, one, *settings, "tensor", high, boundary)
    with pytest.raises(InverseDVSError, match="split at boundary 0.9 but this node samples with two experts split "
                                              "at boundary 0.8"):
        n.NativeSample().sample(model, vae, *guided, noise, *settings, "tensor", high, 0.8)

    wan22 = comfy.sd.load_diffusion_model(save_tiny_wan(str(tmp_path / "ti2v.safetensors"), model_type="t2v",
                                                        in_dim=48, out_dim=48))
    with pytest.raises(InverseDVSError, match="model_high_noise has 48-channel latents but model has 16"):
        n.NativeInvert().invert(model, conds["empty"], latent, steps, strength, "sampling_start", wan22, boundary)
