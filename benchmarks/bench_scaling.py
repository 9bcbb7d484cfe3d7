"""How the pipeline's cost grows with frames and resolution, and how close the fast path stays to fp32.

* frames (17, 33, …) at 720x480: the default flow (b) — first run and a repeat on the loaded
  model — and the low-VRAM flow (c), through the pack's nodes (bench_pipeline's flows);
* resolution (e.g. 512x320, 720x480, 1024x576) at 49 frames: one compiled transformer pass at
  batch 1 and 2 and the VAE encode/decode, measured; the flow's total is computed from them
  (CogVideoX-5B-I2V's learned position table only exists for 720x480, so the nodes refuse other
  sizes; here the table is sized to each resolution, everything else is the real architecture);
* precision: one transformer pass in fp32 (eager) against bf16 eager and bf16 compiled, same weights;
* where a pass's time goes: the attention call alone (the kernel the pack picks) at batch 1 and 2;
* the VAE with channels-last 3-D memory format against the default layout.

    python benchmarks/bench_scaling.py [--frames 17,33] [--sizes 512x320,720x480,1024x576] [--out DIR]
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import sys
import tempfile

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import bench_pipeline as BP  # noqa: E402
import bench_transformer as BT  # noqa: E402
import full_size  # noqa: E402


def default_pass_counts() -> tuple[int, int]:
    """(inversion passes at batch 1, guided sampling passes at batch 2) of the default flow."""
    from inversedvs.krnr import ddim
    from inversedvs.krnr.schedule import NoiseSchedule
    from inversedvs.nodes.diffusion import DEFAULT_INVERSION_END, INVERSION_ENDS

    schedule = NoiseSchedule()
    to_terminal = DEFAULT_INVERSION_END == INVERSION_ENDS[1]
    inversion = len(ddim.inversion_timesteps(schedule, BP.STEPS, BP.STRENGTH, to_terminal))
    return inversion, len(schedule.grid(BP.STEPS, BP.STRENGTH))


def frames_table(frames_list, parts, res, args):
    transformer, vae, text_encoder = parts
    rows = res.setdefault("frames", {})
    with BP.prebuilt_weights(transformer, vae, text_encoder):
        for frames in frames_list:
            video, mask = BP.synthetic_inputs(frames, 480, 720)
            row = rows[str(frames)] = {}
            model, _ = BP.load_model("model_offload", True)
            row["b_first"] = BP.fast_flow(model, video, mask, False)[0]
            row["b"] = BP.fast_flow(model, video, mask, False)[0]
            BP.unload(model)
            model, _ = BP.load_model("sequential_offload", True)
            row["c"] = BP.fast_flow(model, video, mask, True)[0]
            BP.unload(model)
            print(f"frames {frames}: b first {row['b_first']['total_s']} s, b {row['b']['total_s']} s "
                  f"({row['b']['peak_gib']} GiB), c {row['c']['total_s']} s ({row['c']['peak_gib']} GiB)", flush=True)
            C.save_results(args.name, res, args.out)


def resolution_table(sizes, vae, res, args, device):
    from inversedvs.backend import accel

    rows = res.setdefault("resolution", {})
    inversion_passes, sampling_passes = default_pass_counts()
    for size in sizes:
        width, height = (int(v) for v in size.split("x"))
        h, w = height // 8, width // 8
        model = full_size.build_transformer(device, height=height, width=width)
        accel.speed_up_transformer(model, compile_blocks=True)
        row = rows[size] = {"tokens": 13 * (h // 2) * (w // 2) + BT.TEXT_TOKENS}
        for batch in (1, 2):
            inputs = BT.make_inputs(batch, device, h=h, w=w)
            _, row[f"compile_first_call_b{batch}_s"] = C.timed(BT.one_pass, model, inputs)
            secs, peak, _ = BT.measure(model, inputs)
            row[f"pass_b{batch}_s"], row[f"pass_b{batch}_peak_gib"] = round(secs, 3), round(peak, 2)
        del model, inputs
        gc.collect()
        torch.cuda.empty_cache()
        video = torch.rand(1, 3, 49, height, width, device=device, dtype=torch.bfloat16) * 2 - 1
        lat = torch.randn(1, 16, 13, h, w, device=device, dtype=torch.bfloat16)
        vae.disable_tiling()
        with torch.no_grad():
            vae.encode(video)
            C.reset_peak()
            _, row["vae_encode_s"] = C.timed(vae.encode, video)
            row["vae_encode_peak_gib"] = round(C.peak_gib(), 2)
            vae.decode(lat)
            C.reset_peak()
            _, row["vae_decode_s"] = C.timed(vae.decode, lat)
            row["vae_decode_peak_gib"] = round(C.peak_gib(), 2)
        del video, lat
        torch.cuda.empty_cache()
        row["flow_b_estimate_s"] = round(inversion_passes * row["pass_b1_s"] + sampling_passes * row["pass_b2_s"]
                                         + row["vae_encode_s"] + row["vae_decode_s"], 1)
        print(f"{size}: {row}", flush=True)
        C.save_results(args.name, res, args.out)


def precision_check(res, args, device):
    """One batch-1 pass: fp32 eager (the yardstick) vs bf16 eager and bf16 compiled on the same weights."""
    from inversedvs.backend import accel

    torch.manual_seed(1)
    ref_model = full_size.build_transformer(device, dtype=torch.float32)
    inputs32 = BT.make_inputs(1, device)
    inputs32 = (inputs32[0].float(), inputs32[1].float(), inputs32[2], inputs32[3])
    torch.backends.cuda.matmul.allow_tf32 = False
    with accel.attention_context():
        ref = BT.one_pass(ref_model, inputs32)
    model = copy.deepcopy(ref_model).to(torch.bfloat16)
    del ref_model
    gc.collect()
    torch.cuda.empty_cache()
    inputs = (inputs32[0].bfloat16(), inputs32[1].bfloat16(), inputs32[2], inputs32[3])
    eager = BT.one_pass(model, inputs)
    accel.speed_up_transformer(model, compile_blocks=True)
    compiled = BT.one_pass(model, inputs)
    res["precision_vs_fp32"] = {"bf16_eager": C.compare(eager, ref), "bf16_compiled": C.compare(compiled, ref),
                                "compiled_vs_eager": C.compare(compiled, eager)}
    print("precision", res["precision_vs_fp32"], flush=True)
    del model, ref, eager, compiled
    gc.collect()
    torch.cuda.empty_cache()
    C.save_results(args.name, res, args.out)


def attention_share(res, args, device):
    """The attention call alone, with the kernel the default flow picks here (flash4 or SDPA/cuDNN)."""
    from inversedvs.backend import accel, attention

    rows = res.setdefault("attention_alone", {})
    kernel = rows["kernel"] = attention.pick_kernel(device, torch.bfloat16)
    attend = attention.ATTEND[kernel]
    tokens = BT.LATENT_FRAMES * (BT.LATENT_H // 2) * (BT.LATENT_W // 2) + BT.TEXT_TOKENS
    for batch in (1, 2):
        q, k, v = (torch.randn(batch, tokens, 48, 64, device=device, dtype=torch.bfloat16) for _ in range(3))
        with accel.attention_context():
            secs = C.median_time(lambda: attend(q, k, v), repeat=10)
        flops = 4 * batch * 48 * tokens * tokens * 64
        rows[f"b{batch}"] = {"per_block_ms": round(secs * 1e3, 2), "per_pass_42_blocks_s": round(42 * secs, 3),
                             "tflops": round(flops / secs / 1e12, 1)}
    print("attention", rows, flush=True)


def vae_layout(vae, res, args, device):
    rows = res.setdefault("vae_memory_format", {})
    video = torch.rand(1, 3, 49, 480, 720, device=device, dtype=torch.bfloat16) * 2 - 1
    lat = torch.randn(1, 16, 13, 60, 90, device=device, dtype=torch.bfloat16)
    vae.disable_tiling()
    for name, fmt in (("contiguous", torch.contiguous_format), ("channels_last_3d", torch.channels_last_3d)):
        for p in vae.parameters():
            if p.dim() == 5:
                p.data = p.data.contiguous(memory_format=fmt)
        with torch.no_grad():
            vae.decode(lat)
            _, dec = C.timed(vae.decode, lat.contiguous(memory_format=fmt))
            vae.encode(video)
            _, enc = C.timed(vae.encode, video.contiguous(memory_format=fmt))
        rows[name] = {"encode_s": round(enc, 3), "decode_s": round(dec, 3)}
    for p in vae.parameters():
        p.data = p.data.contiguous()
    print("vae layout", rows, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", default="17,33")
    ap.add_argument("--sizes", default="512x320,720x480,1024x576")
    ap.add_argument("--skip", default="", help="comma list of: frames,resolution,precision,attention,vae")
    ap.add_argument("--name", default="scaling")
    ap.add_argument("--out", default=C.RESULTS_DIR)
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    C.load_pack()
    device = torch.device("cuda")
    res = {"what": "InverseDVS cost against frames and resolution (default flow b, low-VRAM flow c), precision, "
                   "attention share; full-size random-weight CogVideoX-5B-I2V, 30 steps, strength 0.98"}
    BP.model_folder(tempfile.mkdtemp(prefix="inversedvs-bench-"))
    parts = BP.build_parts(device, tiny=False)
    vae = parts[1]
    if "attention" not in skip:
        attention_share(res, args, device)
    if "vae" not in skip:
        vae_layout(vae, res, args, device)
    if "frames" not in skip:
        frames_table([int(f) for f in args.frames.split(",") if f], parts, res, args)
    transformer = parts[0]
    del parts, transformer
    gc.collect()
    torch.cuda.empty_cache()
    vae.to(device)
    if "precision" not in skip:
        precision_check(res, args, device)
    if "resolution" not in skip:
        resolution_table([s for s in args.sizes.split(",") if s], vae, res, args, device)
    print("saved", C.save_results(args.name, res, args.out))


if __name__ == "__main__":
    main()
