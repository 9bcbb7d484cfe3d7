"""The training script end to end at a toy size on the CPU: VAE, resume, transformer, export, and the export
loads through the pack's own loader like CogVideoX-5B-I2V."""

import json

import pytest
import torch
from _scripts import load_script

TOY = {
    "clip": {"frames": 9, "height": 16, "width": 32, "supersample": 1, "train_seed_offset": 1000000},
    "vae": {"block_out_channels": [8, 8, 8, 8], "latent_channels": 4, "layers_per_block": 1, "norm_num_groups": 4,
            "batch": 1, "lr": 0.001, "warmup_steps": 2, "min_lr_fraction": 0.05, "kl_weight": 1e-6,
            "l1_weight": 0.5, "minutes": 5},
    "transformer": {"num_layers": 1, "num_attention_heads": 1, "attention_head_dim": 16, "time_embed_dim": 16,
                    "batch": 2, "lr": 0.0005, "warmup_steps": 2, "min_lr_fraction": 0.05, "weight_decay": 0.01,
                    "prompt_dropout": 0.5, "image_noise_log_sigma_mean": -3.0, "image_noise_log_sigma_std": 0.5,
                    "pool_clips": 3, "minutes": 5},
    "text": {"d_model": 16, "num_layers": 1, "num_heads": 2, "d_kv": 8, "d_ff": 32, "max_length": 40, "seed": 0},
    "log_every": 1,
}


@pytest.fixture(scope="module")
def train():
    return load_script("training/train.py", "inversedvs_train")


def test_stages_resume_export_and_load_like_cogvideox(train, tmp_path):
    from inversedvs.backend.cogvideox import check_model_folder, load_cogvideox

    config = tmp_path / "config.json"
    config.write_text(json.dumps(TOY))
    work, text, out = str(tmp_path / "work"), str(tmp_path / "text"), str(tmp_path / "model")
    common = ["--config", str(config), "--device", "cpu"]
    assert train.main(["text", "--out", text, *common]) == 0
    assert train.main(["vae", "--work", work, "--max-steps", "2", *common]) == 0
    first = json.loads((tmp_path / "work" / "vae_losses.json").read_text())["log"]
    assert [row[0] for row in first] == [1, 2]
    assert train.main(["vae", "--work", work, "--max-steps", "3", *common]) == 0  # resumes at step 2
    log = json.loads((tmp_path / "work" / "vae_losses.json").read_text())["log"]
    assert [row[0] for row in log] == [1, 2, 3] and log[:2] == first
    assert train.main(["transformer", "--work", work, "--text", text, "--max-steps", "2", *common]) == 0
    losses = json.loads((tmp_path / "work" / "transformer_losses.json").read_text())
    assert len(losses["log"]) == 2 and all(row[2] > 0 for row in losses["log"])
    assert train.main(["export", "--work", work, "--text", text, "--out", out, *common]) == 0
    model = load_cogvideox(check_model_folder(out, "toy", [out]), dtype="fp32", policy="resident")
    assert model.latent_channels == 4 and model.transformer.config.in_channels == 8
    assert model.schedule.config["prediction_type"] == "v_prediction"
    state = train.load_weights(str(tmp_path / "work" / "transformer_weights"))
    shipped = model.transformer.state_dict()
    assert all(torch.equal(shipped[k], v.half().float()) for k, v in state.items())
    embeds = model.encode_text(["a red ball bouncing", "a blue ball resting"])
    assert embeds.shape == (2, 40, 16) and not torch.allclose(embeds[0], embeds[1])
