"""A tiny Depth Anything (random weights) in the real transformers layout, for tests and host checks.

The folder it writes (config.json, model.safetensors, preprocessor_config.json) loads through the
same code path as a real Depth Anything V2 folder; its output carries no meaning.
"""

from __future__ import annotations

import json
import os

TINY_DEPTH_FOLDER = "tiny-depth-anything"
TINY_SEED = 0
PATCH = 14
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def tiny_depth_model():
    """A DepthAnythingForDepthEstimation with a 4-layer, 32-wide Dinov2 backbone (≈0.14 M parameters)."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, Dinov2Config

    backbone = Dinov2Config(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                            patch_size=PATCH, image_size=4 * PATCH,
                            out_features=["stage1", "stage2", "stage3", "stage4"], reshape_hidden_states=False)
    config = DepthAnythingConfig(backbone_config=backbone, reassemble_hidden_size=32, neck_hidden_sizes=[8, 16, 32, 32],
                                 fusion_hidden_size=16, head_hidden_size=8, depth_estimation_type="relative")
    torch.manual_seed(TINY_SEED)
    return DepthAnythingForDepthEstimation(config).eval()


def save_tiny_depth_model(root: str, name: str = TINY_DEPTH_FOLDER) -> str:
    """Write the tiny model to ``root/name`` (safetensors) and return that folder."""
    folder = os.path.join(root, name)
    tiny_depth_model().save_pretrained(folder, safe_serialization=True)
    with open(os.path.join(folder, "preprocessor_config.json"), "w") as f:
        json.dump({"image_processor_type": "DPTImageProcessor", "image_mean": list(IMAGENET_MEAN),
                   "image_std": list(IMAGENET_STD), "size": {"height": 518, "width": 518},
                   "keep_aspect_ratio": True, "ensure_multiple_of": PATCH, "do_normalize": True}, f, indent=1)
    return folder
