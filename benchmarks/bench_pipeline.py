"""The whole InverseDVS diffusion pipeline on one GPU, through the pack's own nodes, side by side.

Full-size CogVideoX-5B-I2V parts at random weights (benchmarks/full_size.py: same kernels, same
memory as the real weights), a random warped video with a hole mask, 30 steps, strength 0.98:

(a) ``reference``: what the released code does — every model resident (T5 too), the warped video
    encoded twice, two transformer passes per inversion step (guidance 6 on two empty prompts),
    inversion up to timestep 999, reference K-RNR, guided sampling, decoded twice; no speed-ups.
(b) ``default``: the pack's defaults — Load Video Model (memory = model_offload, compiled blocks,
    weights packed into pinned host memory), Encode Text (T5 read and packed on the first prompt,
    kept in host memory for the next, brought to the GPU for the call), VAE Encode, K-RNR Invert (one pass per step, the node's
    default inversion end), SLM, Sample (paper K-RNR, guided), VAE Decode. Run twice: the first run
    includes compilation.
(b_ref) the reference's settings through the fast path (one inversion pass per step, terminal
    inversion, reference K-RNR, compiled): its output against (a)'s is the cost of the speed-ups.
(c) ``low_vram``: memory = sequential_offload, tiled VAE.
Optional flows for the VRAM table: ``resident`` (memory = resident) and ``b_tiled`` (the default
policy with tiled VAE).

Per stage (text, encode, invert, sample, decode): seconds and peak GPU memory. Loading weights
is not counted (the reference figures do not count it either); the loaders' ``from_pretrained``
are replaced by the prebuilt full-size modules, everything after that is the pack's code.

    python benchmarks/bench_pipeline.py [--flows a,b,b_ref,c] [--frames 49] [--out DIR]
    python benchmarks/bench_pipeline.py --tiny        # CPU smoke run with the tiny models
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402
import full_size  # noqa: E402

STEPS = 30
STRENGTH = 0.98
SEED = 42
GUIDANCE = 10.0
REFERENCE_INVERSION_GUIDANCE = 6.0  # the released code's guidance during inversion (two empty prompts)
PROMPT = "a person walking along a beach at sunset, the camera slowly orbiting"
HOLE_FRACTION = 0.2  # share of each frame's width, on the right, that the warp left unseen
MODEL_NAME = "bench-cogvideox"
STAGES = ("text", "encode", "invert", "sample", "decode")


class StageClock:
    """Per-stage wall time (device synchronised) and peak GPU memory of one flow."""

    def __init__(self):
        self.stages = {}

    @contextlib.contextmanager
    def stage(self, name):
        C.reset_peak()
        t0 = time.perf_counter()
        yield
        C.sync()
        secs = time.perf_counter() - t0
        row = self.stages.setdefault(name, {"s": 0.0, "peak_gib": 0.0})
        row["s"] = round(row["s"] + secs, 3)
        row["peak_gib"] = round(max(row["peak_gib"], C.peak_gib()), 2)

    def summary(self):
        total = sum(r["s"] for r in self.stages.values())
        return {"stages": self.stages, "total_s": round(total, 2),
                "peak_gib": max((r["peak_gib"] for r in self.stages.values()), default=0.0)}


def synthetic_inputs(frames, height, width, seed=0):
    """A warped video IMAGE [F, H, W, 3] in 0..1 and its hole MASK [F, H, W] (1 = unseen, a right band)."""
    g = torch.Generator().manual_seed(seed)
    video = torch.rand(frames, height, width, 3, generator=g)
    mask = torch.zeros(frames, height, width)
    band = int(width * HOLE_FRACTION)
    for f in range(frames):
        mask[f, :, width - band - f % 8:] = 1.0  # a band that moves a little, like a camera pan
    video = video * (1.0 - mask[..., None])
    return video, mask


@contextlib.contextmanager
def prebuilt_weights(transformer, vae, text_encoder):
    """Make the loaders' ``from_pretrained`` hand out the prebuilt modules instead of reading files."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel
    from transformers import T5EncoderModel

    saved = [(cls, cls.__dict__["from_pretrained"]) if "from_pretrained" in cls.__dict__ else (cls, None)
             for cls in (CogVideoXTransformer3DModel, AutoencoderKLCogVideoX, T5EncoderModel)]
    CogVideoXTransformer3DModel.from_pretrained = classmethod(lambda cls, *a, **k: transformer)
    AutoencoderKLCogVideoX.from_pretrained = classmethod(lambda cls, *a, **k: vae)
    T5EncoderModel.from_pretrained = classmethod(lambda cls, *a, **k: text_encoder)
    try:
        yield
    finally:
        for cls, original in saved:
            if original is None:
                del cls.from_pretrained
            else:
                cls.from_pretrained = original


def model_folder(root):
    """A models/ tree holding one diffusers-layout folder (real scheduler config, local tokenizer)."""
    from inversedvs.backend.tiny import save_tiny_video_model

    folder = os.path.join(root, "inversedvs_video", MODEL_NAME)
    save_tiny_video_model(folder)
    os.environ["INVERSEDVS_MODELS_DIR"] = root
    return folder


def forget(model):
    """Stop the model's placement managing the shared modules (weights stay in host memory)."""
    if model is None:
        return
    model.release_text_encoder()
    for name in ("transformer", "vae"):
        if name in model.placement:
            model.placement.release_all()
            model.placement.unregister(name)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def reference_flow(folder, video, mask, text_encoder, device):
    """(a): the released code's flow, on the pack's code, every model resident, no speed-ups."""
    from inversedvs.backend.cogvideox import load_cogvideox
    from inversedvs.krnr import ddim
    from inversedvs.nodes.diffusion import SLM_SCOPES, Sample, StochasticLatentModulate, _condition
    from inversedvs.nodes.model import DEFAULT_NEGATIVE, VAEDecode, VAEEncode
    from transformers import AutoTokenizer

    model = load_cogvideox(folder, dtype="bf16", policy="resident", device=device, speed_up=None)
    text_encoder.to(device)  # the reference keeps T5 on the GPU all along
    tokenizer = AutoTokenizer.from_pretrained(os.path.join(folder, "tokenizer"), local_files_only=True)
    length = int(model.transformer.config.max_text_seq_length)
    clock = StageClock()

    def t5(prompts):
        ids = tokenizer(prompts, padding="max_length", max_length=length, truncation=True,
                        return_tensors="pt").input_ids.to(device)
        with torch.no_grad():
            return text_encoder(ids)[0].float().cpu()

    with clock.stage("text"):
        embeds = t5([PROMPT, DEFAULT_NEGATIVE, ""])
        positive, negative = [[embeds[0:1], {}]], [[embeds[1:2], {}]]
        model._empty_embeds = embeds[2:3]
    with clock.stage("encode"):
        (latent,) = VAEEncode().encode(model, video, False)
        VAEEncode().encode(model, video, False)  # the reference encodes the warped video a second time
    with clock.stage("invert"):
        schedule = model.schedule
        timesteps = ddim.inversion_timesteps(schedule, STEPS, STRENGTH, to_terminal=True)
        empty2 = torch.cat([model._empty_embeds, model._empty_embeds])
        with model.transformer_session(_condition(latent, "bench"), empty2) as predict_v:
            def guided(x, t):
                v = predict_v(x, t)
                return v[:1] + REFERENCE_INVERSION_GUIDANCE * (v[1:] - v[:1])

            noise = ddim.invert(schedule, latent["samples"].float(), timesteps, STEPS, guided)
        noise = {"samples": noise, "model": model.model_id,
                 "inversion": {"steps": STEPS, "strength": STRENGTH, "start": schedule.grid(STEPS, STRENGTH)[0],
                               "end": timesteps[-1]}}
    with clock.stage("sample"):
        (result,) = Sample().sample(model, positive, negative, latent, noise, mask, STEPS, STRENGTH, 6,
                                    "reference", GUIDANCE, 1.0, True, SEED)
    with clock.stage("decode"):
        (images,) = VAEDecode().decode(model, result, False)
        VAEDecode().decode(model, result, False)  # and decodes twice
    out = clock.summary()
    text_encoder.to("cpu")
    forget(model)
    return out, result["samples"], images


def load_model(policy, compile_blocks):
    """Load Video Model node: (model, seconds) — not counted in a flow's total, like the reference's loading."""
    from inversedvs.nodes.model import LoadVideoModel

    (model,), secs = C.timed(LoadVideoModel().load, MODEL_NAME, "bf16", policy, compile_transformer=compile_blocks)
    return model, secs


def unload(model):
    import inversedvs.nodes.model as model_nodes

    model_nodes._CURRENT["model"] = None
    forget(model)


def fast_flow(model, video, mask, tiled, reference_settings=False):
    """(b), (b_ref), (c) on a loaded model: Encode Text → VAE Encode → K-RNR Invert → SLM → Sample → VAE Decode.

    Every node runs again (as in a queue item whose inputs all changed); the loaded model is
    reused, as ComfyUI reuses the Load Video Model output between queue items.
    """
    from inversedvs.nodes.diffusion import DEFAULT_INVERSION_END, INVERSION_ENDS, KRNRInvert, Sample, StochasticLatentModulate
    from inversedvs.nodes.model import DEFAULT_NEGATIVE, EncodeText, VAEDecode, VAEEncode

    model._empty_embeds = None  # the empty prompt is encoded again too
    clock = StageClock()
    with clock.stage("text"):
        positive, negative = EncodeText().encode(model, PROMPT, DEFAULT_NEGATIVE)
    with clock.stage("encode"):
        (latent,) = VAEEncode().encode(model, video, tiled)
    with clock.stage("invert"):
        end = INVERSION_ENDS[1] if reference_settings else DEFAULT_INVERSION_END
        (noise,) = KRNRInvert().invert(model, latent, STEPS, STRENGTH, end)
    with clock.stage("sample"):
        if reference_settings:  # the reference's modulation happens inside its K-RNR rounds
            clean, noise_in = latent, noise
        else:
            clean, noise_in, _ = StochasticLatentModulate().modulate(latent, noise, mask, SEED)
        mode = "reference" if reference_settings else "paper"
        (result,) = Sample().sample(model, positive, negative, clean, noise_in, mask, STEPS, STRENGTH, 6, mode,
                                    GUIDANCE, 1.0, True, SEED)
    with clock.stage("decode"):
        (images,) = VAEDecode().decode(model, result, tiled)
    out = clock.summary()
    out["accel"] = getattr(model.transformer, "inversedvs_accel", None)
    out["placement"] = model.placement.stats()
    return out, result["samples"], images


def build_parts(device, tiny):
    if tiny:
        from diffusers import AutoencoderKLCogVideoX, CogVideoXTransformer3DModel
        from inversedvs.backend import tiny as T
        from transformers import T5EncoderModel

        torch.manual_seed(0)
        bf16 = torch.bfloat16
        return (CogVideoXTransformer3DModel(**T.tiny_transformer_config()).eval().to(bf16),
                AutoencoderKLCogVideoX(**T.tiny_vae_config()).eval().to(bf16),
                T5EncoderModel(T.tiny_text_encoder_config()).eval().to(bf16))
    torch.manual_seed(0)
    transformer = full_size.build_transformer(device)
    vae = full_size.build_vae(device)
    text_encoder = full_size.build_text_encoder(device).to("cpu")  # T5 lives on the host between uses
    return transformer, vae, text_encoder


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", default="a,b,b_ref,c")
    ap.add_argument("--frames", type=int, default=49)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=720)
    ap.add_argument("--tiny", action="store_true", help="CPU smoke run with the pack's tiny models")
    ap.add_argument("--c-runs", type=int, default=2, help="low-VRAM runs on one loaded model (1: first run only)")
    ap.add_argument("--name", default="pipeline")
    ap.add_argument("--out", default=C.RESULTS_DIR)
    args = ap.parse_args()
    if args.tiny:
        args.frames, args.height, args.width = 9, 64, 96
    C.load_pack()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    root = tempfile.mkdtemp(prefix="inversedvs-bench-")
    folder = model_folder(root)
    parts, build_s = C.timed(build_parts, device, args.tiny)
    transformer, vae, text_encoder = parts
    video, mask = synthetic_inputs(args.frames, args.height, args.width)
    res = {"what": f"InverseDVS pipeline, {args.frames}x{args.height}x{args.width}, {STEPS} steps, strength {STRENGTH}, "
                   "random-weight full-size CogVideoX-5B-I2V" if not args.tiny else "tiny smoke run",
           "params_billion": {"transformer": full_size.parameter_count(transformer) / 1e9,
                              "vae": full_size.parameter_count(vae) / 1e9,
                              "text_encoder": full_size.parameter_count(text_encoder) / 1e9},
           "build_s": round(build_s, 1), "flows": {}}
    flows = args.flows.split(",")
    outputs = {}

    def report(name, out, latent, images):
        res["flows"][name] = out
        outputs[name] = (latent, images)
        st = out["stages"]
        print(f"{name:8s} total {out['total_s']:7.2f} s  peak {out['peak_gib']:6.2f} GiB  | "
              + "  ".join(f"{s} {st[s]['s']:.2f}s/{st[s]['peak_gib']:.1f}G" for s in STAGES if s in st), flush=True)
        C.save_results(args.name, res, args.out)

    with prebuilt_weights(transformer, vae, text_encoder):
        if "a" in flows:
            report("a", *reference_flow(folder, video, mask, text_encoder, device))
        if "b" in flows or "b_ref" in flows:
            model, res["load_b_s"] = load_model("model_offload", True)
            if "b" in flows:
                report("b_first", *fast_flow(model, video, mask, False))  # compiles, packs weights
                report("b", *fast_flow(model, video, mask, False))
            if "b_ref" in flows:
                report("b_ref", *fast_flow(model, video, mask, False, reference_settings=True))
            unload(model)
        if "resident" in flows:  # memory = resident, untiled VAE
            model, res["load_resident_s"] = load_model("resident", True)
            report("resident_first", *fast_flow(model, video, mask, False))
            report("resident", *fast_flow(model, video, mask, False))
            unload(model)
        if "b_tiled" in flows:  # the default policy with tiled VAE encode/decode (first run after loading)
            model, res["load_b_tiled_s"] = load_model("model_offload", True)
            report("b_tiled", *fast_flow(model, video, mask, True))
            unload(model)
        if "c" in flows:
            model, res["load_c_s"] = load_model("sequential_offload", True)
            report("c_first" if args.c_runs > 1 else "c", *fast_flow(model, video, mask, True))
            if args.c_runs > 1:
                report("c", *fast_flow(model, video, mask, True))
            unload(model)

    f = res["flows"]
    if "a" in f and "b" in f:
        res["b_over_a"] = round(f["b"]["total_s"] / f["a"]["total_s"], 4)
        res["b_first_over_a"] = round(f["b_first"]["total_s"] / f["a"]["total_s"], 3)
    if "a" in f and "b_ref" in f:
        res["b_ref_over_a"] = round(f["b_ref"]["total_s"] / f["a"]["total_s"], 4)
        res["b_ref_vs_a"] = {"latent": C.compare(outputs["b_ref"][0], outputs["a"][0]),
                             "video": C.compare(outputs["b_ref"][1], outputs["a"][1])}
    if "b" in f and "c" in f:
        res["c_over_b"] = round(f["c"]["total_s"] / f["b"]["total_s"], 3)
    path = C.save_results(args.name, res, args.out)
    for key in ("b_over_a", "b_first_over_a", "b_ref_over_a", "c_over_b", "b_ref_vs_a"):
        if key in res:
            print(key, res[key])
    print("saved", path)


if __name__ == "__main__":
    main()
