"""The example workflows' sample clips, put into ComfyUI's input folder when the pack loads.

The clips are the pack's synthetic sample (``warp.sample``: a textured room with three spheres, one
of them moving) and its exact depth as a white = near video, rendered once and shipped in
``samples/`` (``scripts/make_workflows.py --samples`` renders them again). A file of the same name
already in the input folder is never replaced, and a sample the user deleted comes back at the next
start, so the example workflows always find their clips.
"""

from __future__ import annotations

import os
import shutil

PACK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE_DIR = os.path.join(PACK_ROOT, "samples")
SAMPLE_VIDEO = "inversedvs_sample.mp4"  # the sample clip, 49 frames at 720x480, 8 fps
SAMPLE_DEPTH_VIDEO = "inversedvs_sample_depth.mp4"  # its exact depth (white = near), same frames
SAMPLE_FILES = (SAMPLE_VIDEO, SAMPLE_DEPTH_VIDEO)
LOG_PREFIX = "[InverseDVS]"


def install_samples(input_dir: str) -> list[str]:
    """Copy each sample clip into ``input_dir`` unless a file of that name is there; returns the names
    copied. Failures (a read-only folder, a full disk) are printed, never raised: the pack still loads,
    and no partial file is left behind."""
    try:
        os.makedirs(input_dir, exist_ok=True)
    except OSError as err:
        print(f"{LOG_PREFIX} could not make the input folder {input_dir} ({err}); the example workflows load "
              f"their clips from there: copy them from {SAMPLE_DIR}.")
        return []
    copied = []
    for name in SAMPLE_FILES:
        target = os.path.join(input_dir, name)
        try:
            with open(os.path.join(SAMPLE_DIR, name), "rb") as src, open(target, "xb") as dst:
                try:
                    shutil.copyfileobj(src, dst)
                except BaseException:
                    dst.close()
                    os.remove(target)
                    raise
        except FileExistsError:  # the user's file (or an earlier copy): kept as it is
            continue
        except OSError as err:
            print(f"{LOG_PREFIX} could not put the sample clip {name} into {input_dir} ({err}); the example "
                  f"workflows load it from there: copy it from {SAMPLE_DIR}.")
            continue
        copied.append(name)
    if copied:
        print(f"{LOG_PREFIX} sample clips for the example workflows put into {input_dir}: {', '.join(copied)}")
    return copied
