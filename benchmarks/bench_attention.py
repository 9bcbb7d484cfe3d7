"""Attention kernels for CogVideoX-5B-I2V at 49×720×480, then whole compiled transformer passes.

1. The kernel alone on the real problem: 17,776 tokens (226 text + 17,550 video), 48 heads of 64,
   bf16, batch 1 (inversion) and 2 (guided sampling). PyTorch SDPA steered to cuDNN (the pack's
   SDPA setting), SDPA with Flash only, and FlashAttention-4 (``backend.attention``, when the
   ``flash-attn-4`` package is installed): the pack's op (one launch per sample) and one batched
   launch. Time (median of 10 synchronised calls), TFLOP/s (4·B·H·S²·D), and each kernel's error
   against a float32 reference on four heads.
2. One full-size transformer pass (random weights) with compiled blocks: the stock processor on
   cuDNN SDPA, then ``JointAttention`` on FlashAttention-4; output difference between the two.

    python benchmarks/bench_attention.py [--out DIR]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import bench_transformer as T  # noqa: E402
import full_size  # noqa: E402

TOKENS = T.TEXT_TOKENS + T.LATENT_FRAMES * (T.LATENT_H // 2) * (T.LATENT_W // 2)  # 2×2 patches
HEADS, HEAD_DIM = 48, 64
REFERENCE_HEADS = 4  # heads compared with the float32 reference (a full one would need 60 GB)


def reference(q, k, v):
    """float32 attention of the first REFERENCE_HEADS heads. (B, S, H, D) → (B, S, h, D)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    q, k, v = (x[:, :, :REFERENCE_HEADS].float().transpose(1, 2) for x in (q, k, v))
    with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(1, 2)


def kernels(attention, accel):
    from torch.nn.attention import SDPBackend, sdpa_kernel

    candidates = {"sdpa_cudnn_first": (attention.sdpa_attention, accel.attention_context),
                  "sdpa_flash": (attention.sdpa_attention, lambda: sdpa_kernel([SDPBackend.FLASH_ATTENTION]))}
    if attention._flash4_importable():
        from flash_attn.cute import flash_attn_func

        attention._register_flash4_op()
        candidates["flash4"] = (attention.flash4_attention, None)  # the pack's op: one call per sample
        candidates["flash4_batched"] = (lambda q, k, v: flash_attn_func(q, k, v)[0], None)
    rows = {}
    for batch in (1, 2):
        g = torch.Generator(device="cuda").manual_seed(batch)
        q, k, v = (torch.randn(batch, TOKENS, HEADS, HEAD_DIM, generator=g, device="cuda", dtype=torch.bfloat16)
                   for _ in range(3))
        ref = reference(q, k, v)
        flops = 4 * batch * HEADS * TOKENS**2 * HEAD_DIM
        for name, (fn, context) in candidates.items():
            def run():
                if context is None:
                    return fn(q, k, v)
                with context():
                    return fn(q, k, v)

            out = run()
            secs = C.median_time(run, repeat=10, warmup=3)
            row = rows[f"{name}_b{batch}"] = {
                "ms": round(secs * 1e3, 2), "tflops": round(flops / secs / 1e12, 1),
                "vs_fp32": C.compare(out[:, :, :REFERENCE_HEADS], ref)}
            print(f"{name:18s} b{batch} {row['ms']:8.2f} ms {row['tflops']:6.1f} TFLOP/s  "
                  f"rel_l2 vs fp32 {row['vs_fp32']['rel_l2']:.2e}", flush=True)
        del q, k, v, ref
    return rows


def passes(attention, accel, res, out_dir):
    """Compiled full-size passes: stock processor (cuDNN SDPA) vs JointAttention(flash4)."""
    dev = torch.device("cuda")
    model = full_size.build_transformer(dev)
    accel.compile_repeated_blocks(model)
    rows = res["passes"] = {}
    refs = {}
    for kernel in ("sdpa", "flash4"):  # a freshly built model has the stock processor (SDPA)
        if kernel == "flash4":
            if not attention._flash4_importable():
                break
            attention.use_joint_attention(model, "flash4")
        for batch in (1, 2):
            inputs = T.make_inputs(batch, dev)
            with accel.attention_context():
                _, first = C.timed(T.one_pass, model, inputs)
            secs, peak, out = T.measure(model, inputs, accel.attention_context, repeat=5)
            row = rows[f"compiled_{kernel}_b{batch}"] = {"s": round(secs, 4), "first_call_s": round(first, 1),
                                                          "peak_gib": round(peak, 2)}
            if kernel == "sdpa":
                refs[batch] = out
            else:
                row["vs_compiled_sdpa"] = C.compare(out, refs[batch])
                row["speedup_vs_sdpa"] = round(rows[f"compiled_sdpa_b{batch}"]["s"] / secs, 3)
            print(f"compiled {kernel:6s} b{batch}: {secs:.3f} s/pass (first call {first:.1f} s), peak {peak:.2f} GiB",
                  row.get("speedup_vs_sdpa", ""), row.get("vs_compiled_sdpa", {}).get("rel_l2", ""), flush=True)
            C.save_results("attention", res, out_dir)
            del inputs, out
            gc.collect()
    del model
    gc.collect()
    torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=C.RESULTS_DIR)
    ap.add_argument("--skip-passes", action="store_true")
    args = ap.parse_args()
    C.load_pack()
    from inversedvs.backend import accel, attention

    res = {"what": f"attention at CogVideoX-5B-I2V 49x480x720: {TOKENS} tokens, {HEADS} heads x {HEAD_DIM}, bf16",
           "flash4_installed": attention._flash4_importable()}  # its version: environment.flash_attn_4
    res["kernels"] = kernels(attention, accel)
    C.save_results("attention", res, args.out)
    if not args.skip_passes:
        passes(attention, accel, res, args.out)
    print("saved", C.save_results("attention", res, args.out))


if __name__ == "__main__":
    main()
