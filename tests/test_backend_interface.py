"""Both backends held to the one interface the method's shared code relies on (``backend/base.py``).

CogVideoX (diffusers, the pack's tiny model through Load Video Model) and a ComfyUI-native Wan 2.1 I2V
(core's own WanModel and Wan VAE through core's loaders), each through the nodes a user wires, with the
same assertions: the compression the backend reports is the one its VAE encodes with and the one
SLM's latent grid uses; the sampling grid at strength 1 starts from pure noise; inversion to the
sampling start followed by sampling with k = 0 and no guidance gives the input back, better as the
steps grow.

    COMFYUI_DIR=/path/to/ComfyUI <its python> -m pytest -m host tests/test_backend_interface.py
"""

from __future__ import annotations

import pytest
import torch

from _comfy_host import HOST_MARKS, import_comfy, save_tiny_wan, text_conditioning, wan21_vae
from inversedvs.krnr import levels

pytestmark = HOST_MARKS

PIXELS = (9, 32, 48)  # frames, height, width: 4·2 + 1 frames, a multiple of 16 on both sides
STEPS = (2, 8, 32)
STRENGTH = 0.8
# Relative latent error that inversion + k = 0 sampling must stay under at the most steps (measured: CogVideoX's
# tiny model 1.58, 0.58, 0.18 at 2, 8, 32 steps; the tiny Wan 0.128, 0.056, 0.016), and the least gain from 8 to 32.
RECONSTRUCTION_BOUND = 0.25
GAIN_8_TO_32 = 2.0


def _clip():
    gen = torch.Generator().manual_seed(3)
    frames = torch.rand(*PIXELS, 3, generator=gen)
    return frames, torch.zeros(PIXELS)  # every pixel seen


class CogVideoXSide:
    """The pack's own loader and nodes on the tiny CogVideoX model."""

    name = "cogvideox"

    def __init__(self, tmp_path_factory):
        import contextlib

        from _pipeline import comfy_folders, load_tiny_model, scratch_root

        self._folders = contextlib.ExitStack()
        self._folders.enter_context(comfy_folders(scratch_root()))
        self.model = load_tiny_model()

    def close(self):
        """Give back the model folders' environment (``comfy_folders``) for the tests after this module."""
        self._folders.close()

    def compression(self):
        return self.model.compression()

    def channels(self):
        return self.model.latent_channels

    def encode(self, frames):
        from inversedvs.nodes.model import VAEEncode

        return VAEEncode().encode(self.model, frames, False)[0]

    def start_level(self, steps):
        schedule = self.model.schedule
        return levels.ddpm_level(schedule.alpha_bar(schedule.grid(steps, 1.0)[0]))

    def reconstruct(self, latent, mask, steps):
        from inversedvs.nodes.diffusion import KRNRInvert, Sample
        from inversedvs.nodes.model import EncodeText

        positive, negative = EncodeText().encode(self.model, "", "")
        noise = KRNRInvert().invert(self.model, latent, steps, STRENGTH, "sampling_start")[0]
        out = Sample().sample(self.model, positive, negative, latent, noise, mask, steps, STRENGTH, 0, "paper",
                              1.0, 1.0, False, 42)[0]
        return out["samples"], latent["samples"]


class NativeSide:
    """Core's loaders, VAE Encode and WanImageToVideo, and the pack's native nodes, on a tiny Wan 2.1 I2V."""

    name = "native"

    def __init__(self, tmp_path_factory):
        import comfy.sd

        path = save_tiny_wan(str(tmp_path_factory.mktemp("wan_iface") / "tiny_wan21_i2v.safetensors"))
        self.model = comfy.sd.load_diffusion_model(path)
        self.vae = wan21_vae()

    def compression(self):
        from inversedvs.backend import comfy_native

        return comfy_native.compression(self.vae, "test")

    def channels(self):
        from inversedvs.backend import comfy_native

        return comfy_native.latent_channels(self.model)

    def encode(self, frames):
        from nodes import VAEEncode

        latent = VAEEncode().encode(self.vae, frames)[0]
        self.frames = frames
        return latent

    def start_level(self, steps):
        from inversedvs.backend import comfy_native

        return levels.flow_level(float(comfy_native.sampling_sigmas(self.model, steps, 1.0)[0]))

    def reconstruct(self, latent, mask, steps):
        from comfy_extras.nodes_wan import WanImageToVideo

        from inversedvs.backend import comfy_native
        from inversedvs.nodes.native import NativeInvert, NativeSample

        frames, height, width = PIXELS
        if not hasattr(self, "conds"):
            self.conds = WanImageToVideo.execute(text_conditioning(0), text_conditioning(1), self.vae, width, height,
                                                 frames, 1, start_image=self.frames[:1]).result[:2]
        positive, negative = self.conds
        noise = NativeInvert().invert(self.model, positive, latent, steps, STRENGTH, "sampling_start")[0]
        out = NativeSample().sample(self.model, self.vae, positive, negative, latent, noise, mask, steps, STRENGTH,
                                    0, 1.0, 1.0, False, 42)[0]
        return (comfy_native.to_model_space(self.model, out["samples"]),
                comfy_native.to_model_space(self.model, latent["samples"]))


@pytest.fixture(scope="module", params=[CogVideoXSide, NativeSide], ids=lambda c: c.name)
def side(request, tmp_path_factory):
    import_comfy()
    with torch.inference_mode():
        built = request.param(tmp_path_factory)
    yield built
    getattr(built, "close", lambda: None)()


@pytest.fixture(autouse=True)
def inference():
    with torch.inference_mode():  # as ComfyUI's executor runs every node
        yield


@pytest.fixture(scope="module")
def encoded(side):
    frames, mask = _clip()
    with torch.inference_mode():
        return side.encode(frames), mask


def test_the_reported_compression_is_the_one_the_vae_encodes_with_and_slm_uses(side, encoded):
    from inversedvs.nodes.diffusion import latent_masks

    latent, mask = encoded
    temporal, spatial = side.compression()
    frames, height, width = PIXELS
    grid = ((frames - 1) // temporal + 1, height // spatial, width // spatial)
    assert tuple(latent["samples"].shape) == (1, side.channels(), *grid)
    visibility, unseen, fully = latent_masks(mask, latent["samples"], "test", temporal, spatial)
    assert tuple(visibility.shape) == grid and not bool(unseen.any())


def test_the_grid_at_strength_one_starts_from_pure_noise(side):
    for steps in STEPS:
        start = side.start_level(steps)
        assert abs(start.a) < 1e-6 and abs(start.b - 1.0) < 1e-6


def test_inversion_then_k0_sampling_gives_the_input_back_better_as_steps_grow(side, encoded):
    latent, mask = encoded
    errors = []
    for steps in STEPS:
        out, want = side.reconstruct(latent, mask, steps)
        errors.append(float((out - want).norm() / want.norm()))
    assert errors == sorted(errors, reverse=True) and errors[-1] < RECONSTRUCTION_BOUND, errors
    assert errors[-1] * GAIN_8_TO_32 < errors[-2], errors
