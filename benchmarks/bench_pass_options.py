"""Speed-ups of the compiled transformer pass, and of the text stage, measured side by side.

Full-size CogVideoX-5B-I2V transformer at random weights, 49×720×480 (17,776 tokens), batch 1, with
the pack's speed-ups (FlashAttention-4 where installed, fused feed-forward, compiled blocks). Parts:

1. ``variants``: the block compiled in other ways, each against the pack's default
   (first-call seconds, median pass, output difference): ``unfused_ff`` (diffusers' own
   feed-forward activation instead of ``backend.feedforward``'s bias + tanh-GELU in the product's
   epilogue), ``coordinate_descent`` and ``max_autotune_gemm`` (inductor options).
2. ``profile``: where one pass's GPU time goes, for ``unfused_ff`` and the default — kernels
   grouped as matrix products, attention, fused element-wise (Triton) and other, plus the 25
   longest kernels by name.
3. ``flash4_tiles``: FlashAttention-4's Hopper kernel at other (tile_m, tile_n) than its default.
4. ``text``: moving T5-XXL's 9.5 GB of weights to the GPU: tensor by tensor from pageable memory
   (a T5 used once), packing (``backend.offload.Parcel``: pageable, or pinned in 1 GiB pieces)
   and one copy of the packed bytes; T5's forward itself; and the process's resident memory
   while T5 is packed, after it is dropped (PyTorch caches the freed pinned pieces), and after
   ``return_pinned_memory``.
5. ``host_memory``: the resident memory the offload policies add for the full-size transformer
   (packed into pinned pieces at registration), and a pass under each equal to the resident one.

    python benchmarks/bench_pass_options.py [--skip variants,tiles,text,host] [--name pass_options] [--out DIR]
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

NAME = "pass_options"
TILES = ((192, 128), (192, 192), (128, 128), (128, 192), (192, 160), (192, 96))
PROMPTS = 3  # prompt, negative prompt, empty prompt
TEXT_TOKENS = 226


def kernel_group(name: str) -> str:
    n = name.lower()
    if "flash" in n or "fmha" in n or "attn" in n:
        return "attention"
    if "triton" in n:
        return "elementwise_triton"
    if any(s in n for s in ("gemm", "nvjet", "xmma", "cutlass", "cublas", "sm90_")):
        return "matmul"
    return "other"


def profile_pass(model, inputs):
    """GPU milliseconds of one pass by kernel group, and the 25 longest kernels."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        T.one_pass(model, inputs)
        C.sync()
    kernels = {}
    for e in prof.key_averages():
        us = getattr(e, "self_device_time_total", None)
        if us is None:
            us = e.self_cuda_time_total
        if us > 0:
            kernels[e.key] = (kernels.get(e.key, (0.0, 0))[0] + us, e.count)
    groups = {}
    for name, (us, _) in kernels.items():
        g = kernel_group(name)
        groups[g] = round(groups.get(g, 0.0) + us / 1e3, 2)
    top = sorted(kernels.items(), key=lambda kv: -kv[1][0])[:25]
    return {"ms_by_group": groups, "ms_total": round(sum(groups.values()), 2),
            "top_kernels": [{"name": k[:160], "ms": round(v[0] / 1e3, 3), "count": v[1], "group": kernel_group(k)}
                            for k, v in top]}


def recompile(model, accel, options=None):
    """Drop the model's compiled blocks and compile them again with inductor ``options``."""
    import torch._dynamo

    for block in model.transformer_blocks:
        block.__dict__.pop("forward", None)
    model._inversedvs_compiled = False
    accel._COMPILE_FAILED.clear()
    accel._compiled_forward.cache_clear()
    torch._dynamo.reset()
    accel.compile_repeated_blocks(model, options=options)


def _unfuse_feedforward(model, feedforward):
    """Put diffusers' tanh-GELU modules back in place of the pack's ``EpilogueGELU`` (same weights)."""
    from diffusers.models.activations import GELU

    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, feedforward.EpilogueGELU):
                with torch.device("meta"):  # its own projection is replaced at once: no allocation
                    plain = GELU(child.proj.in_features, child.proj.out_features, approximate="tanh")
                plain.proj = child.proj
                setattr(parent, name, plain)


def variants(model, accel, feedforward, res, save):
    dev = torch.device("cuda")
    inputs = T.make_inputs(1, dev)
    rows = res["variants"] = {}
    res["profile"] = {}
    ref = None
    for name, options in (("default", None), ("unfused_ff", None),
                          ("coordinate_descent", {"coordinate_descent_tuning": True}),
                          ("max_autotune_gemm", {"max_autotune_gemm": True})):
        if name == "unfused_ff":
            _unfuse_feedforward(model, feedforward)
        elif res["ff_epilogue"]:
            feedforward.use_epilogue_gelu(model)
        try:
            recompile(model, accel, options)
            _, first = C.timed(T.one_pass, model, inputs)
            secs, peak, out = T.measure(model, inputs, repeat=5)
            if accel._COMPILE_FAILED:
                raise RuntimeError("inductor failed; the block ran eagerly")
        except Exception as error:  # a variant that does not build here is reported, not fatal
            rows[name] = {"error": f"{type(error).__name__}: {str(error)[:300]}"}
            print(name, rows[name], flush=True)
            continue
        row = rows[name] = {"s": round(secs, 4), "first_call_s": round(first, 1), "peak_gib": round(peak, 2)}
        if name in ("default", "unfused_ff"):
            res["profile"][name] = profile_pass(model, inputs)
            print("profile", name, res["profile"][name]["ms_by_group"], flush=True)
        if ref is None:
            ref = out
        else:
            row["vs_default"] = C.compare(out, ref)
            row["speedup_vs_default"] = round(rows["default"]["s"] / secs, 4)
        print(f"{name:20s} {secs:.4f} s/pass (first call {first:.1f} s)", row.get("speedup_vs_default", ""),
              row.get("vs_default", {}).get("rel_l2", ""), flush=True)
        save()
    recompile(model, accel)


def flash4_tiles(res, save):
    from flash_attn.cute.interface import _flash_attn_fwd

    import bench_attention as A

    g = torch.Generator(device="cuda").manual_seed(1)
    q, k, v = (torch.randn(1, A.TOKENS, A.HEADS, A.HEAD_DIM, generator=g, device="cuda", dtype=torch.bfloat16)
               for _ in range(3))
    flops = 4 * A.HEADS * A.TOKENS**2 * A.HEAD_DIM
    rows = res["flash4_tiles"] = {}
    ref = None
    for tile in (None,) + TILES:
        key = "default" if tile is None else f"{tile[0]}x{tile[1]}"
        try:
            def run():
                return _flash_attn_fwd(q, k, v, tile_mn=tile)[0]

            out = run()
            secs = C.median_time(run, repeat=10, warmup=3)
        except Exception as error:
            rows[key] = {"error": f"{type(error).__name__}: {str(error)[:200]}"}
            print(key, rows[key], flush=True)
            continue
        row = rows[key] = {"ms": round(secs * 1e3, 3), "tflops": round(flops / secs / 1e12, 1)}
        if ref is None:
            ref = out
        else:
            row["vs_default"] = C.compare(out, ref)["rel_l2"]
        print(f"flash4 tile {key:8s} {row['ms']:.3f} ms {row['tflops']} TFLOP/s", flush=True)
        save()


def text_transfer(res, save):
    from inversedvs.backend.offload import LooseTensors, Parcel, _copy_to, _tensors_of, return_pinned_memory

    dev = torch.device("cuda")
    encoder = full_size.build_text_encoder(dev).to("cpu")
    tensors = _tensors_of(encoder)
    row = res["text"] = {"weights_gb": round(sum(t.numel() * t.element_size() for t in tensors) / 1e9, 2)}
    loose = LooseTensors(tensors)
    _, row["pageable_tensor_by_tensor_s"] = C.timed(loose.attach, dev)
    ids = torch.randint(0, 32000, (PROMPTS, TEXT_TOKENS), device=dev)
    with torch.no_grad():
        encoder(ids)
        row["forward_s"] = C.median_time(lambda: encoder(ids), repeat=3, warmup=0)
    loose.detach()
    for pin in (False, True):
        kind = "pinned" if pin else "pageable"
        parcel, row[f"pack_{kind}_s"] = C.timed(Parcel, tensors, pin)
        row[f"pack_{kind}_is_pinned"] = parcel.pinned
        times = []
        for _ in range(3):
            (flat, _), secs = C.timed(_copy_to, parcel, dev, None)
            times.append(secs)
            del flat
        row[f"copy_{kind}_s"] = round(min(times), 4)
        row[f"copy_{kind}_gb_per_s"] = round(row["weights_gb"] / min(times), 1)
        del parcel
        gc.collect()
    row["rss_gb_while_packed"] = _resident_gb()
    del encoder, tensors, loose
    gc.collect()
    row["rss_gb_after_drop"] = _resident_gb()
    return_pinned_memory()
    row["rss_gb_after_return"] = _resident_gb()
    print("text", row, flush=True)
    save()


def host_memory(res, save, policies=("model_offload", "sequential_offload")):
    """Host memory the offload policies take for the full-size transformer, and a pass through each.

    The weights are packed into pinned pieces at registration; the process's resident memory
    grows by that much (plus rounding). Each policy's pass must equal the resident pass exactly.
    """
    from inversedvs.backend.offload import Placement, return_pinned_memory

    dev = torch.device("cuda")
    model = full_size.build_transformer(dev)
    weights_gb = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e9
    inputs = T.make_inputs(1, dev)
    ref = T.one_pass(model, inputs)
    rows = res["host_memory"] = {"transformer_weights_gb": round(weights_gb, 2)}
    for policy in policies:
        placement = Placement(policy, dev)
        before = _resident_gb()
        _, secs = C.timed(placement.register, "transformer", model)
        after = _resident_gb()
        with placement.use("transformer"):
            out = T.one_pass(model, inputs)
        rows[policy] = {"register_s": round(secs, 2), "rss_growth_gb": round(after - before, 2),
                        "rss_growth_per_weight_gb": round((after - before) / weights_gb, 3),
                        "pass_equals_resident": bool(torch.equal(out, ref)),
                        "pass_vs_resident_rel_l2": C.compare(out, ref)["rel_l2"],
                        "stats": placement.stats()}
        placement.unregister("transformer")
        model.to(dev)  # back on the GPU for the next policy; the pinned pieces are freed
        gc.collect()
        return_pinned_memory()
        print("host", policy, rows[policy], flush=True)
        save()


def _resident_gb() -> float | None:
    """This process's resident memory (RSS, pinned pages included), GB; None off Linux."""
    try:
        with open("/proc/self/status") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
    except (OSError, StopIteration, ValueError):
        return None
    return round(kib * 1024 / 1e9, 2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip", default="", help="comma list of: variants, tiles, text, host")
    ap.add_argument("--name", default=NAME)
    ap.add_argument("--host-policies", default="model_offload,sequential_offload",
                    help="offload policies measured by the host part, in this order")
    ap.add_argument("--out", default=C.RESULTS_DIR)
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    C.load_pack()
    from inversedvs.backend import accel, attention, feedforward

    res = {"what": "speed-ups of one compiled CogVideoX-5B-I2V pass (49x480x720, batch 1), "
                   "FlashAttention-4 tiles, T5 weight transfer"}

    def save():  # after every part: partial results survive a time-out
        return C.save_results(args.name, res, args.out)

    if "text" not in skip:
        text_transfer(res, save)
    if "tiles" not in skip and attention._flash4_importable():
        flash4_tiles(res, save)
    if "host" not in skip:
        host_memory(res, save, args.host_policies.split(","))
    if "variants" not in skip:
        model = full_size.build_transformer(torch.device("cuda"))
        accel.speed_up_transformer(model, compile_blocks=False)
        res["attention"] = model.inversedvs_accel["attention"]
        res["ff_epilogue"] = model.inversedvs_accel["ff_epilogue"]
        variants(model, accel, feedforward, res, save)
    print("saved", save())


if __name__ == "__main__":
    main()
