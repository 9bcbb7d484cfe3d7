"""The shipped small CogVideoX-I2V (weights/inversedvs-mini-cogvideox-i2v) through the pack's nodes, on a
held-out procedural clip: on the still path (identity camera, nothing to fill) K-RNR reconstructs the
input better than k = 0 (the zero-terminal inversion collapse) and better than fresh noise.

Measured on the CPU (torch 2.13, fp32) with these settings: held-out seed 0, 9 frames at 192x128, 6 steps,
strength 0.98 (start timestep 832), guidance off. Latent MSE to the posterior mean: k = 0 0.128, k = 1 0.035,
k = 2 0.021, fresh noise at the start timestep 0.054. Decoded PSNR to the input: k = 0 17.4 dB, k = 2 21.9 dB.
Each bound below leaves a margin of about a third around its figure.
"""

import os

import pytest
import torch

from inversedvs.warp.synthetic import render_clips

MINI = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "weights",
                    "inversedvs-mini-cogvideox-i2v")
SEED, FRAMES, HEIGHT, WIDTH = 0, 9, 128, 192  # seed 0 is below training's seed offset: never trained on
STEPS, STRENGTH = 6, 0.98


@pytest.fixture(scope="module")
def still(tmp_path_factory):
    """Load Video Model on the shipped folder, then encode → invert → sample (k = 0, 1, 2 and fresh noise)."""
    from inversedvs.nodes.diffusion import KRNRInvert, Sample
    from inversedvs.nodes.model import EncodeText, LoadVideoModel, VAEDecode, VAEEncode

    root = tmp_path_factory.mktemp("models")
    os.makedirs(root / "inversedvs_video")
    os.symlink(MINI, root / "inversedvs_video" / "mini")
    saved = os.environ.get("INVERSEDVS_MODELS_DIR")
    os.environ["INVERSEDVS_MODELS_DIR"] = str(root)
    try:
        model = LoadVideoModel().load("mini", "fp32", "resident", compile_transformer=False)[0]
    finally:
        if saved is None:
            os.environ.pop("INVERSEDVS_MODELS_DIR")
        else:
            os.environ["INVERSEDVS_MODELS_DIR"] = saved
    videos, captions = render_clips([SEED], FRAMES, HEIGHT, WIDTH, supersample=2)
    video = videos[0]
    latent = VAEEncode().encode(model, video, False)[0]
    inverted = KRNRInvert().invert(model, latent, STEPS, STRENGTH, "terminal (reference)")[0]
    fresh = {**inverted, "samples": torch.randn(inverted["samples"].shape, generator=torch.Generator().manual_seed(5))}
    fresh.pop("inversion")
    positive, negative = EncodeText().encode(model, captions[0], "")
    mask = torch.zeros(video.shape[:3])  # the still path: every pixel seen
    out = {}
    for name, noise, k in (("k0", inverted, 0), ("k1", inverted, 1), ("k2", inverted, 2), ("fresh", fresh, 0)):
        out[name] = Sample().sample(model, positive, negative, latent, noise, mask, STEPS, STRENGTH, k, "paper",
                                    1.0, 1.0, False, 42)[0]
    mse = {name: float((r["samples"] - latent["mean"]).pow(2).mean()) for name, r in out.items()}
    psnr = {name: float(-10 * torch.log10((VAEDecode().decode(model, out[name], False)[0] - video).pow(2).mean()))
            for name in ("k0", "k2")}
    print("latent MSE", {k: round(v, 4) for k, v in mse.items()}, "PSNR", {k: round(v, 2) for k, v in psnr.items()})
    return mse, psnr


def test_krnr_reconstructs_the_still_clip_better_than_k0_and_fresh_noise(still):
    mse, _ = still
    assert mse["k0"] > 0.09 and mse["k1"] < 0.05 and mse["k2"] < 0.03
    assert mse["k1"] < 0.4 * mse["k0"] and mse["k2"] < 0.25 * mse["k0"]
    assert mse["k1"] < 0.85 * mse["fresh"] and mse["k2"] < 0.55 * mse["fresh"]


def test_decoded_reconstruction_is_better_with_krnr(still):
    _, psnr = still
    assert psnr["k2"] > 20.5 and psnr["k0"] < 19.0
    assert psnr["k2"] > psnr["k0"] + 3.0
