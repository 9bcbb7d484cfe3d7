"""One CogVideoX-5B-I2V transformer pass on the GPU: which speed-ups are real, and what offloading costs.

Full-size architecture at random weights, 49 frames at 720x480 (13 x 60 x 90 latents, 17,776
tokens), batch 1 (one inversion pass) and batch 2 (a guided sampling pass). Variants, applied
one after another to the same model: eager with PyTorch's default attention choice, eager with
Flash only, eager cuDNN-first (backend.accel.attention_context), + fused QKV, + compiled blocks
(first-call compile time reported); then the same model under the offload policies; then the
VAE (plain / cudnn.benchmark / tiled). Every output is compared with the eager default's.

    python benchmarks/bench_transformer.py [--out DIR] [--skip-vae]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import full_size  # noqa: E402

LATENT_FRAMES, LATENT_H, LATENT_W = 13, 60, 90
TEXT_TOKENS = 226
TIMESTEP = 500


def rotary(device, frames=LATENT_FRAMES, h=LATENT_H, w=LATENT_W):
    """CogVideoX-1.0 3-D rotary tables for a latent grid (what the I2V pipeline passes)."""
    from diffusers.models.embeddings import get_3d_rotary_pos_embed
    from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import get_resize_crop_region_for_grid

    gh, gw = h // 2, w // 2
    crops = get_resize_crop_region_for_grid((gh, gw), full_size.TRANSFORMER_CONFIG["sample_width"] // 2,
                                            full_size.TRANSFORMER_CONFIG["sample_height"] // 2)
    return get_3d_rotary_pos_embed(64, crops, (gh, gw), frames, device=device)


def make_inputs(batch, device, seed=0, frames=LATENT_FRAMES, h=LATENT_H, w=LATENT_W):
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.randn(1, frames, 32, h, w, generator=g, device=device, dtype=torch.bfloat16).repeat(batch, 1, 1, 1, 1)
    text = torch.randn(batch, TEXT_TOKENS, 4096, generator=g, device=device, dtype=torch.bfloat16)
    t = torch.full((batch,), TIMESTEP, device=device, dtype=torch.long)
    return x, text, t, rotary(device, frames, h, w)


def one_pass(model, inputs):
    x, text, t, rope = inputs
    with torch.no_grad():
        return model(x, text, t, image_rotary_emb=rope, return_dict=False)[0]


def measure(model, inputs, context=None, repeat=3):
    """(median seconds, peak GiB, output) of one pass, after one warm-up pass."""
    import contextlib

    ctx = context or contextlib.nullcontext

    def run():
        with ctx():
            return one_pass(model, inputs)

    run()
    C.reset_peak()
    secs = C.median_time(run, repeat=repeat, warmup=0)
    out = run()
    return secs, C.peak_gib(), out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=C.RESULTS_DIR)
    ap.add_argument("--skip-vae", action="store_true")
    args = ap.parse_args()
    pack = C.load_pack()
    from inversedvs.backend import accel
    from inversedvs.backend.offload import Placement

    dev = torch.device("cuda")
    res = {"what": "one CogVideoX-5B-I2V transformer pass, 49x480x720 (17,776 tokens), bf16, random weights"}
    model, secs = C.timed(full_size.build_transformer, dev)
    res["params_billion"] = full_size.parameter_count(model) / 1e9
    res["build_s"] = secs
    res["weights_gib"] = C.allocated_gib()
    b1, b2 = make_inputs(1, dev), make_inputs(2, dev)
    rows = res["variants"] = {}

    def record(name, batch, secs, peak, out, ref):
        row = {"batch": batch, "s": round(secs, 4), "peak_gib": round(peak, 2)}
        if ref is not None:
            row["vs_eager_default"] = C.compare(out, ref)
        rows[f"{name}_b{batch}"] = row
        C.save_results("transformer_pass", res, args.out)  # partial results survive a time-out
        print(f"{name:28s} b{batch}  {secs:7.3f} s  peak {peak:6.2f} GiB", row.get("vs_eager_default", ""), flush=True)

    s, p, ref1 = measure(model, b1)
    record("eager_default", 1, s, p, ref1, None)
    s, p, ref2 = measure(model, b2)
    record("eager_default", 2, s, p, ref2, None)

    from torch.nn.attention import SDPBackend, sdpa_kernel

    s, p, o = measure(model, b2, lambda: sdpa_kernel([SDPBackend.FLASH_ATTENTION]))
    record("eager_flash", 2, s, p, o, ref2)
    for batch, inp, ref in ((1, b1, ref1), (2, b2, ref2)):
        s, p, o = measure(model, inp, accel.attention_context)
        record("eager_cudnn", batch, s, p, o, ref)

    _, secs = C.timed(accel.fuse_qkv, model)
    res["fuse_qkv_s"] = secs
    for batch, inp, ref in ((1, b1, ref1), (2, b2, ref2)):
        s, p, o = measure(model, inp, accel.attention_context)
        record("fused_cudnn", batch, s, p, o, ref)

    accel.compile_repeated_blocks(model)
    for batch, inp, ref in ((1, b1, ref1), (2, b2, ref2)):
        with accel.attention_context():
            _, first = C.timed(one_pass, model, inp)
        res[f"compile_first_call_b{batch}_s"] = first
        print(f"compiled first call b{batch}: {first:.1f} s", flush=True)
        s, p, o = measure(model, inp, accel.attention_context, repeat=5)
        record("fused_cudnn_compiled", batch, s, p, o, ref)
    import torch._dynamo.utils as dynamo_utils

    res["compiled_unique_graphs"] = dynamo_utils.counters["stats"]["unique_graphs"]
    res["compiled_graph_breaks"] = sum(dynamo_utils.counters["graph_break"].values())

    # offload policies on the compiled model
    del b1
    gc.collect()
    for policy in ("sequential_offload", "model_offload"):
        placement = Placement(policy, dev)
        _, secs = C.timed(placement.register, "transformer", model)
        torch.cuda.empty_cache()
        res[f"{policy}_register_s"] = secs
        res[f"{policy}_resident_gib"] = C.allocated_gib()
        C.reset_peak()
        session = placement.use("transformer")
        _, res[f"{policy}_use_enter_s"] = C.timed(session.__enter__)
        try:
            with accel.attention_context():
                s = C.median_time(lambda: one_pass(model, b2), repeat=3, warmup=1)
                o = one_pass(model, b2)
        finally:
            _, res[f"{policy}_use_exit_s"] = C.timed(session.__exit__, None, None, None)
        record(f"{policy}_compiled", 2, s, C.peak_gib(), o, ref2)
        placement.release_all()
        res[f"{policy}_stats"] = placement.stats()
        placement.unregister("transformer")
        gc.collect()
        torch.cuda.empty_cache()
    res["compiled_unique_graphs_after_offload"] = dynamo_utils.counters["stats"]["unique_graphs"]
    del model, b2, o, ref1, ref2
    gc.collect()
    torch.cuda.empty_cache()

    if not args.skip_vae:
        vae = full_size.build_vae(dev)
        video = torch.rand(1, 3, 49, 480, 720, device=dev, dtype=torch.bfloat16) * 2 - 1
        lat = torch.randn(1, 16, 13, 60, 90, device=dev, dtype=torch.bfloat16)
        vres = res["vae"] = {}
        for name, tiled, bench in (("plain", False, False), ("cudnn_benchmark", False, True), ("tiled", True, True)):
            torch.backends.cudnn.benchmark = bench
            vae.enable_tiling() if tiled else vae.disable_tiling()
            with torch.no_grad():
                vae.encode(video)  # warm-up (and cudnn autotune)
                C.reset_peak()
                _, enc = C.timed(vae.encode, video)
                enc_peak = C.peak_gib()
                vae.decode(lat)
                C.reset_peak()
                _, dec = C.timed(vae.decode, lat)
                dec_peak = C.peak_gib()
            vres[name] = {"encode_s": enc, "encode_peak_gib": enc_peak, "decode_s": dec, "decode_peak_gib": dec_peak}
            print(f"vae {name:16s} encode {enc:.3f} s ({enc_peak:.2f} GiB)  decode {dec:.3f} s ({dec_peak:.2f} GiB)", flush=True)
        torch.backends.cudnn.benchmark = False

    path = C.save_results("transformer_pass", res, args.out)
    print("saved", path)


if __name__ == "__main__":
    main()
