"""Write the tiny random-weight CogVideoX-I2V folder (real classes, real diffusers layout) for tests and demos.

    python scripts/make_tiny_models.py MODELS_DIR [--name tiny-cogvideox-i2v]

creates MODELS_DIR/inversedvs_video/<name>/ (transformer/, vae/, scheduler/, text_encoder/,
tokenizer/, model_index.json). Point ComfyUI at MODELS_DIR through extra_model_paths.yaml
(``inversedvs_video: inversedvs_video/``) and pick <name> in Load Video Model. The weights are
random: the output looks like noise; it exercises the whole pipeline, not the model's quality.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pack import load_pack  # noqa: E402

DEFAULT_NAME = "tiny-cogvideox-i2v"


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models_dir", help="a models/ folder (ComfyUI's, or one named in extra_model_paths.yaml)")
    parser.add_argument("--name", default=DEFAULT_NAME, help="folder name under inversedvs_video/")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    args = parser.parse_args(argv)
    load_pack("inversedvs")
    from inversedvs.backend.tiny import save_tiny_video_model

    folder = os.path.join(os.path.abspath(args.models_dir), "inversedvs_video", args.name)
    save_tiny_video_model(folder, seed=args.seed)
    print(f"tiny video model (random weights) written to {folder}")
    return folder


if __name__ == "__main__":
    main()
