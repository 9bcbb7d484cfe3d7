"""The demo without --model runs the shipped small model, and its result keeps what the source saw."""

import argparse

import pytest
import torch
from _scripts import load_script

# Measured 19.0 dB (4 steps, k = 6, guidance 3, orbit left, CPU fp32; 17.9 dB at guidance 10); the tiny
# random-weight model's output is noise.
SEEN_PSNR_MIN = 15.0


@pytest.fixture(scope="module")
def demo():
    return load_script("scripts/demo.py", "inversedvs_demo_mini")


def test_default_demo_uses_the_small_model_and_keeps_the_seen_pixels(demo, capsys):
    parser = argparse.ArgumentParser()
    demo.add_geometry_arguments(parser)
    demo.add_model_arguments(parser)
    args = demo.resolve_defaults(parser.parse_args(["--out", "unused", "--width", "192", "--height", "128",
                                                    "--steps", "4", "--trajectory", "orbit left"]))
    assert args.frames == demo.MINI_MODEL_FRAMES and args.prompt == demo.MINI_MODEL_PROMPT
    assert args.guidance == demo.MINI_MODEL_GUIDANCE
    geometry = demo.run_geometry(args)
    out = demo.run_model(geometry, args)
    assert "small CogVideoX-I2V" in capsys.readouterr().out
    result, warped, seen = out["result"], out["warped"], out["mask"] < 0.5
    assert result.shape == (17, 128, 192, 3)
    seen_psnr = float(-10 * torch.log10((result - warped).pow(2).mean(-1)[seen].mean()))
    print("PSNR of the result to the warped input on seen pixels:", round(seen_psnr, 2))
    assert seen_psnr > SEEN_PSNR_MIN
