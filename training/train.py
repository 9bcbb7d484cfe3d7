"""Train the small CogVideoX-I2V on procedural scenes: the VAE first, then the transformer with the VAE frozen.

    python training/train.py vae --work WORK [--minutes M] [--max-steps N]
    python training/train.py transformer --work WORK --text TEXT_FOLDER [--minutes M] [--max-steps N]
    python training/train.py export --work WORK --text TEXT_FOLDER --out weights/inversedvs-mini-cogvideox-i2v
    python training/train.py text --out TEXT_FOLDER        # the frozen T5 + tokenizer, made once

Each stage checkpoints into WORK (model, optimiser, step, seconds trained, loss log) and, run again, resumes
from there until its budget (config minutes, or --minutes) or --max-steps is reached. Clips come from
``warp.synthetic.random_scene`` with seeds ≥ clip.train_seed_offset (seeds below it are held out for tests and
benchmarks), rendered on the training device. The image condition is the one CogVideoX I2V is trained and
sampled with: the first frame encoded alone as a one-frame video, a posterior sample, scaled, zero-padded over
the other latent frames; in training the frame first gets Gaussian pixel noise of σ = exp(N(μ, s)).
The loss is the v-prediction MSE under CogVideoX-5B-I2V's own noise schedule (zero terminal SNR).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
from pack import load_pack  # noqa: E402

load_pack("inversedvs")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from inversedvs.krnr.schedule import COGVIDEOX_5B_I2V_SCHEDULER, alphas_cumprod  # noqa: E402
from inversedvs.warp.synthetic import render_clips  # noqa: E402
from training import model as M  # noqa: E402

CLIP_BATCH = 32  # clips rendered and encoded at once when building the transformer's pool


def lr_at(step: int, progress: float, t: dict) -> float:
    """Linear warm-up over warmup_steps, then cosine from lr to min_lr_fraction·lr over the budget (progress 0..1)."""
    warm = min(1.0, (step + 1) / t["warmup_steps"])
    cos = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return t["lr"] * warm * (t["min_lr_fraction"] + (1 - t["min_lr_fraction"]) * cos)


def videos_for(seeds, cfg: dict, device) -> tuple[torch.Tensor, list[str]]:
    """Clips of ``seeds`` as VAE input [B, 3, F, H, W] in -1..1 and their captions."""
    c = cfg["clip"]
    videos, captions = render_clips(seeds, c["frames"], c["height"], c["width"], device, torch.float32,
                                    c["supersample"])
    return videos.permute(0, 4, 1, 2, 3) * 2.0 - 1.0, captions


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of videos in -1..1."""
    mse = ((a.float() - b.float()) / 2).pow(2).mean().clamp_min(1e-10)
    return float(-10 * torch.log10(mse))


class Run:
    """A stage's checkpoint in WORK: model and optimiser states, step, seconds trained and the loss log."""

    def __init__(self, work: str, stage: str):
        self.path = os.path.join(work, f"{stage}_checkpoint.pt")
        self.log_path = os.path.join(work, f"{stage}_losses.json")
        self.step, self.seconds, self.log = 0, 0.0, []

    def resume(self, model, optimiser) -> bool:
        if not os.path.exists(self.path):
            return False
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        self.step, self.seconds, self.log = state["step"], state["seconds"], state["log"]
        print(f"resumed {self.path} at step {self.step} ({self.seconds:.0f} s trained)", flush=True)
        return True

    def save(self, model, optimiser, extra: dict) -> None:
        state = {"model": model.state_dict(), "optimiser": optimiser.state_dict(), "step": self.step,
                 "seconds": self.seconds, "log": self.log}
        torch.save(state, self.path + ".tmp")
        os.replace(self.path + ".tmp", self.path)
        with open(self.log_path, "w") as f:
            json.dump({"log": self.log, "columns": ["step", "seconds", *extra.get("columns", ["loss"])],
                       **{k: v for k, v in extra.items() if k != "columns"}}, f, indent=1)


def autocast(device):
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu",
                                                                                                  enabled=False)


def train_loop(run: Run, model, optimiser, t: dict, budget_s: float, max_steps: int | None, step_fn, log_every: int,
               columns: list[str], extra: dict):
    """Steps ``step_fn(step) -> (loss tensor, dict of logged floats)`` until the budget or max_steps; checkpoints."""
    window, start = [], time.time() - run.seconds
    model.train()
    while run.seconds < budget_s and (max_steps is None or run.step < max_steps):
        for group in optimiser.param_groups:
            group["lr"] = lr_at(run.step, run.seconds / budget_s, t)
        loss, logged = step_fn(run.step)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        window.append([float(loss.detach())] + [logged[c] for c in columns[1:]])
        run.step += 1
        run.seconds = time.time() - start
        if run.step % log_every == 0 or run.seconds >= budget_s or run.step == max_steps:
            mean = [sum(w[i] for w in window) / len(window) for i in range(len(columns))]
            run.log.append([run.step, round(run.seconds, 1), *[round(m, 5) for m in mean]])
            print(f"step {run.step} {run.seconds:.0f}s " + " ".join(f"{c} {m:.4f}" for c, m in zip(columns, mean)),
                  flush=True)
            window = []
    run.save(model, optimiser, {"columns": columns, **extra})


def build_vae(cfg: dict, device):
    from diffusers import AutoencoderKLCogVideoX

    torch.manual_seed(0)
    return AutoencoderKLCogVideoX(**M.vae_config(cfg)).to(device)


def train_vae(cfg: dict, work: str, device, minutes: float, max_steps: int | None) -> None:
    """Reconstruction (MSE + l1_weight·L1 on -1..1 pixels) + kl_weight·KL of a posterior sample, bf16 on CUDA."""
    v, c = cfg["vae"], cfg["clip"]
    vae = build_vae(cfg, device)
    optimiser = torch.optim.AdamW(vae.parameters(), lr=v["lr"], weight_decay=0.0, betas=(0.9, 0.99))
    run = Run(work, "vae")
    run.resume(vae, optimiser)
    gen = torch.Generator(device).manual_seed(1)

    def step(i):
        seeds = [c["train_seed_offset"] + i * v["batch"] + j for j in range(v["batch"])]
        x, _ = videos_for(seeds, cfg, device)
        with autocast(device):
            dist = vae.encode(x).latent_dist
            rec = vae.decode(dist.sample(gen)).sample.float()
        mse = (rec - x).pow(2).mean()
        loss = mse + v["l1_weight"] * (rec - x).abs().mean() + v["kl_weight"] * dist.kl().mean() / dist.mean[0].numel()
        return loss, {"psnr": float(-10 * torch.log10(mse.detach() / 4))}

    train_loop(run, vae, optimiser, v, minutes * 60, max_steps, step, cfg["log_every"], ["loss", "psnr"],
               {"config": cfg["vae"]})
    vae.eval()
    with torch.no_grad():  # scaling factor: unit variance of the latents, as CogVideoX's VAE is used
        x, _ = videos_for(range(c["train_seed_offset"] - 64, c["train_seed_offset"] - 64 + v["batch"]), cfg, device)
        z = vae.encode(x).latent_dist.sample(gen)
        scaling = float(1.0 / z.float().std())
        held_out = psnr(vae.decode(z).sample, x)
    save_weights(vae.state_dict(), os.path.join(work, "vae_weights"))
    with open(os.path.join(work, "vae_result.json"), "w") as f:
        json.dump({"scaling_factor": scaling, "held_out_psnr_db": held_out, "steps": run.step,
                   "seconds": run.seconds}, f, indent=1)
    print(f"vae: scaling factor {scaling:.4f}, held-out PSNR {held_out:.2f} dB", flush=True)


def save_weights(state: dict, prefix: str, max_bytes: int = 15 * 2**20) -> list[str]:
    """fp32 state dict as safetensors pieces ``prefix``.N.safetensors of ≤ max_bytes each."""
    from safetensors.torch import save_file

    pieces, current, size = [], {}, 0
    for k, v in state.items():
        n = v.numel() * v.element_size()
        if current and size + n > max_bytes:
            pieces.append(current)
            current, size = {}, 0
        current[k], size = v.detach().float().contiguous().cpu(), size + n
    pieces.append(current)
    paths = []
    for i, piece in enumerate(pieces):
        paths.append(f"{prefix}.{i}.safetensors")
        save_file(piece, paths[-1])
    return paths


def load_weights(prefix: str) -> dict:
    import glob

    from safetensors.torch import load_file

    state = {}
    for path in sorted(glob.glob(f"{prefix}.*.safetensors")):
        state.update(load_file(path))
    if not state:
        raise FileNotFoundError(f"no weights {prefix}.*.safetensors")
    return state


def rotary(cfg: dict, device):
    """The rotary tables the pack's backend uses for a training-size latent."""
    from diffusers.models.embeddings import get_3d_rotary_pos_embed

    from inversedvs.backend.cogvideox import resize_crop_region

    tc = M.transformer_config(cfg)
    frames, h, w = M.latent_shape(cfg)
    grid = (h // tc["patch_size"], w // tc["patch_size"])
    crops = resize_crop_region(grid, tc["sample_width"] // tc["patch_size"], tc["sample_height"] // tc["patch_size"])
    return get_3d_rotary_pos_embed(embed_dim=tc["attention_head_dim"], crops_coords=crops, grid_size=grid,
                                   temporal_size=frames, device=device)


@torch.no_grad()
def build_pool(cfg: dict, vae, tokenizer, encoder, device, gen) -> dict:
    """Pre-encode pool_clips training clips: video posterior (mean, std), the noised first frame's posterior when
    encoded alone, and the caption embeddings. All [N, ...] float32 on ``device``."""
    t, c = cfg["transformer"], cfg["clip"]
    pool = {"mean": [], "std": [], "image_mean": [], "image_std": [], "text": []}
    n = t["pool_clips"]
    for start in range(0, n, CLIP_BATCH):
        seeds = [c["train_seed_offset"] + 10_000_000 + s for s in range(start, min(n, start + CLIP_BATCH))]
        x, captions = videos_for(seeds, cfg, device)
        dist = vae.encode(x).latent_dist
        sigma = torch.exp(t["image_noise_log_sigma_mean"] + t["image_noise_log_sigma_std"]
                          * torch.randn(len(seeds), 1, 1, 1, 1, device=device, generator=gen))
        first = x[:, :, :1] + sigma * torch.randn(x[:, :, :1].shape, device=device, generator=gen)
        image = vae.encode(first).latent_dist
        pool["mean"].append(dist.mean)
        pool["std"].append(dist.std)
        pool["image_mean"].append(image.mean)
        pool["image_std"].append(image.std)
        pool["text"].append(M.encode_prompts(tokenizer, encoder, captions, cfg["text"]["max_length"]))
    return {k: torch.cat(v) for k, v in pool.items()}


def train_transformer(cfg: dict, work: str, text_folder: str, device, minutes: float, max_steps: int | None) -> None:
    from diffusers import CogVideoXTransformer3DModel

    t = cfg["transformer"]
    with open(os.path.join(work, "vae_result.json")) as f:
        scaling = json.load(f)["scaling_factor"]
    vae = build_vae(cfg, device)
    vae.load_state_dict(load_weights(os.path.join(work, "vae_weights")))
    vae.to(torch.float16).float().eval().requires_grad_(False)  # the shipped fp16 weights
    tokenizer, encoder = M.load_text_parts(text_folder, device)
    gen = torch.Generator(device).manual_seed(2)
    began = time.time()
    pool = build_pool(cfg, vae, tokenizer, encoder, device, gen)
    empty = M.encode_prompts(tokenizer, encoder, [""], cfg["text"]["max_length"])
    print(f"pool of {pool['mean'].shape[0]} clips encoded in {time.time() - began:.0f} s", flush=True)
    del vae
    torch.manual_seed(0)
    transformer = CogVideoXTransformer3DModel(**M.transformer_config(cfg)).to(device)
    print(f"transformer: {sum(p.numel() for p in transformer.parameters()) / 1e6:.2f} M parameters", flush=True)
    optimiser = torch.optim.AdamW(transformer.parameters(), lr=t["lr"], weight_decay=t["weight_decay"],
                                  betas=(0.9, 0.99))
    run = Run(work, "transformer")
    run.resume(transformer, optimiser)
    abar = alphas_cumprod(COGVIDEOX_5B_I2V_SCHEDULER).float().to(device)
    rope = rotary(cfg, device)
    n = pool["mean"].shape[0]

    def step(i):
        idx = torch.randint(n, (t["batch"],), device=device, generator=gen)
        x0 = (pool["mean"][idx] + pool["std"][idx] * torch.randn(pool["mean"][idx].shape, device=device,
                                                                 generator=gen)) * scaling
        image = (pool["image_mean"][idx] + pool["image_std"][idx]
                 * torch.randn(pool["image_mean"][idx].shape, device=device, generator=gen)) * scaling
        cond = torch.zeros_like(x0)
        cond[:, :, :1] = image
        text = pool["text"][idx]
        drop = torch.rand(t["batch"], device=device, generator=gen) < t["prompt_dropout"]
        text = torch.where(drop[:, None, None], empty.expand_as(text), text)
        steps = torch.randint(len(abar), (t["batch"],), device=device, generator=gen)
        a = abar[steps].view(-1, 1, 1, 1, 1)
        noise = torch.randn(x0.shape, device=device, generator=gen)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        target = a.sqrt() * noise - (1 - a).sqrt() * x0
        hidden = torch.cat([xt, cond], dim=1).transpose(1, 2)
        with autocast(device):
            v = transformer(hidden_states=hidden, encoder_hidden_states=text, timestep=steps, image_rotary_emb=rope,
                            return_dict=False)[0]
        loss = (v.float().transpose(1, 2) - target).pow(2).mean()
        return loss, {}

    train_loop(run, transformer, optimiser, t, minutes * 60, max_steps, step, cfg["log_every"], ["loss"],
               {"config": t, "pool_clips": n})
    save_weights(transformer.state_dict(), os.path.join(work, "transformer_weights"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("stage", choices=("text", "vae", "transformer", "export"))
    p.add_argument("--config", default=M.CONFIG_PATH)
    p.add_argument("--work", help="checkpoint folder of the run")
    p.add_argument("--text", help="folder holding text_encoder/ and tokenizer/ (made by the text stage)")
    p.add_argument("--out", help="output folder (text and export stages)")
    p.add_argument("--minutes", type=float, help="training budget of the stage (default: the config's)")
    p.add_argument("--max-steps", type=int)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = p.parse_args(argv)
    cfg = M.load_config(args.config)
    device = torch.device(args.device)
    if args.stage == "text":
        M.save_text_parts(cfg, args.out)
        return 0
    os.makedirs(args.work, exist_ok=True)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    if args.stage == "vae":
        train_vae(cfg, args.work, device, args.minutes or cfg["vae"]["minutes"], args.max_steps)
    elif args.stage == "transformer":
        train_transformer(cfg, args.work, args.text, device, args.minutes or cfg["transformer"]["minutes"],
                          args.max_steps)
    else:
        with open(os.path.join(args.work, "vae_result.json")) as f:
            scaling = json.load(f)["scaling_factor"]
        M.save_model_folder(cfg, args.out, load_weights(os.path.join(args.work, "vae_weights")),
                            load_weights(os.path.join(args.work, "transformer_weights")), scaling, args.text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
