"""The native nodes on a Wan 2.2-style model: 48 latent channels (core's Wan22 latent format) on a 16× grid.

The transformer is a tiny WanModel of core's own class with 48 input and output channels, loaded by
core's loader as WAN22 (the TI2V-5B family). Core's full-size Wan 2.2 VAE has 705 M parameters (2.8 GB
at float32), too heavy for these tests; the nodes only ask a VAE for its compression, so a stand-in
answers what core's Wan 2.2 VAE answers (4× in time, 16× in space).

    COMFYUI_DIR=/path/to/ComfyUI <its python> -m pytest -m host tests/test_native_wan22.py
"""

from __future__ import annotations

import pytest
import torch

from _comfy_host import HOST_MARKS, import_comfy, save_tiny_wan, text_conditioning
from inversedvs.errors import InverseDVSError

pytestmark = HOST_MARKS

LATENT_SHAPE = (1, 48, 2, 2, 4)  # 5 frames of 32×64 through a 4×16×16 VAE
PIXELS = (5, 32, 64)


class Wan22Compression:
    """What core's Wan 2.2 VAE reports about its compression (comfy.sd.VAE: latent_dim 3, ratios 4 and 16)."""

    latent_dim = 3

    def temporal_compression_decode(self):
        return 4

    def spacial_compression_encode(self):
        return 16


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    import_comfy()
    import comfy.sd

    path = save_tiny_wan(str(tmp_path_factory.mktemp("wan22") / "tiny_wan22.safetensors"), seed=2,
                         model_type="t2v", in_dim=48, out_dim=48)
    return comfy.sd.load_diffusion_model(path)


def test_48_channel_16x_latents_run_the_method_and_reconstruct(model):
    import comfy.latent_formats
    import comfy.model_base

    from inversedvs.nodes import native

    assert type(model.model) is comfy.model_base.WAN22
    assert isinstance(model.get_model_object("latent_format"), comfy.latent_formats.Wan22)
    gen = torch.Generator().manual_seed(3)
    latent = {"samples": torch.randn(LATENT_SHAPE, generator=gen) * 0.5}
    cond = text_conditioning(0)
    vae = Wan22Compression()
    with torch.inference_mode():
        errors = []
        for steps in (2, 6):
            noise = native.NativeInvert().invert(model, cond, latent, steps, 1.0, "sampling_start")[0]
            out = native.NativeSample().sample(model, vae, cond, text_conditioning(1), latent, noise,
                                               torch.zeros(PIXELS), steps, 1.0, 0, 1.0, 1.0, False, 42)[0]
            errors.append(float((out["samples"] - latent["samples"]).norm() / latent["samples"].norm()))
        print("\nWan 2.2-style 48 channels, k = 0: ‖x̂−x‖/‖x‖ at 2 and 6 steps", [round(e, 4) for e in errors])
        assert errors[1] < errors[0] < 0.5
        mask = torch.zeros(PIXELS)
        mask[:, :, 48:] = 1.0
        _, _, unseen = native.NativeModulate().modulate(model, vae, latent, noise, mask, 1)
        assert unseen.shape == (2, 2, 4)  # the 16× grid
        assert bool(unseen[:, :, 3].all()) and not bool(unseen[:, :, 0].any())
        guided = native.NativeSample().sample(model, vae, cond, text_conditioning(1), latent, noise, mask, 6, 1.0,
                                              2, 4.0, 1.0, True, 42)[0]
        assert guided["samples"].shape == LATENT_SHAPE and torch.isfinite(guided["samples"]).all()
        with pytest.raises(InverseDVSError, match="latent belongs to a video of 5 frames of 64x32"):
            native.NativeModulate().modulate(model, vae, latent, noise, torch.zeros(5, 16, 32), 1)


def test_ti2v_keeps_its_first_latent_frame_clean_in_inversion_and_sampling_as_core_does(model):
    """Wan 2.2 TI2V-5B takes its image as a clean first latent frame (core's Wan22ImageToVideoLatent gives a noise
    mask). Invert keeps that frame clean, SLM's clean LATENT carries core's noise mask so SamplerCustomAdvanced keeps
    it, and Sample (native) is that wiring: its first latent frame is the warped video's, bit for bit."""
    from comfy_extras.nodes_custom_sampler import SamplerCustomAdvanced

    from inversedvs.backend import comfy_native
    from inversedvs.nodes import native

    gen = torch.Generator().manual_seed(5)
    latent = {"samples": torch.randn(LATENT_SHAPE, generator=gen) * 0.5}
    cond, negative, vae = text_conditioning(0), text_conditioning(1), Wan22Compression()
    mask = torch.zeros(PIXELS)
    mask[:, :, 48:] = 1.0
    with torch.inference_mode():
        assert comfy_native.keeps_first_frame(model)
        noise = native.NativeInvert().invert(model, cond, latent, 4, 1.0, "sampling_start")[0]
        first = latent["samples"][:, :, :1]
        assert torch.allclose(noise["samples"][:, :, :1], first, atol=1e-5)
        assert (noise["samples"][:, :, 1:] - latent["samples"][:, :, 1:]).abs().mean() > 0.1  # the rest inverted
        clean, modulated, unseen = native.NativeModulate().modulate(model, vae, latent, noise, mask, 7)
        assert clean["noise_mask"].shape == (1, 1, 2, 2, 4)
        assert not bool(clean["noise_mask"][:, :, 0].any()) and bool(clean["noise_mask"][:, :, 1:].all())
        out = native.NativeSample().sample(model, vae, cond, negative, latent, noise, mask, 4, 1.0, 2, 4.0, 1.0, True,
                                           7)[0]
        assert torch.allclose(clean["samples"][:, :, :1], first, atol=1e-5)  # SLM leaves the kept frame as encoded
        assert torch.allclose(out["samples"][:, :, :1], first, atol=1e-5)
        (sigmas,) = native.NativeSigmas().sigmas(model, 4, 1.0)
        (start,) = native.NativeKRNRNoise().noise(model, clean, modulated, sigmas, 2)
        (guider,) = native.NativeGuider().guider(model, cond, negative, unseen, 4.0, 1.0, True)
        wired = SamplerCustomAdvanced().sample(start, guider, comfy_native.sampler(), sigmas, clean)[0]
        assert torch.equal(wired["samples"], out["samples"])
