"""The catalogue of bad inputs: each case feeds one bad input to a NODE and expects a clear error.

Every case is registered with ``@case(node, bad input, key phrase)``. The test runs it in a fresh
sandbox (its own ComfyUI input/output/models folders), checks that the node raised
``InverseDVSError`` (no torch traceback, no other exception) whose message holds the key phrase,
and ``scripts/make_error_catalogue.py`` writes the exact messages to ``docs/errors.md``; the last
test checks that the committed document equals what the generator produces now.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import re
import shutil
import struct
import sys
import tempfile

import pytest
import torch

from inversedvs.errors import InverseDVSError
from inversedvs.nodes import _validate
from inversedvs.nodes.camera import CameraTrajectory
from inversedvs.nodes.camera_import import LoadCameraPath, SaveCameraPath
from inversedvs.nodes.depth import DepthEstimate
from inversedvs.nodes.diffusion import KRNRInvert, Sample, StochasticLatentModulate
from inversedvs.nodes.diffusion2 import Diffusion2Pick, Diffusion2Sample
from inversedvs.nodes.fusion import FUSION_KEY, START_KEY, NovelViewFusion, NovelViewSample
from inversedvs.nodes.gaussians4d import (FitDynamicGaussians, LoadDynamicGaussians, RenderDynamicGaussians,
                                         SaveDynamicGaussians)
from inversedvs.nodes.model import EncodeText, LoadVideoModel, VAEDecode, VAEEncode
from inversedvs.nodes.output import SaveVideo
from inversedvs.nodes.video import LoadVideo
from inversedvs.nodes.warp import ForwardWarp
from inversedvs.warp.camera import camera_centers

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
PACK_ROOT = os.path.dirname(TESTS_DIR)
DOC_PATH = os.path.join(PACK_ROOT, "docs", "errors.md")
# Messages longer than this are not read by anyone; they must stay a few sentences.
MAX_MESSAGE_CHARS = 600
# Free memory the sandbox reports, so memory messages read the same on every machine.
SANDBOX_FREE_BYTES = 16 * 1024**3
# The tiny model's video: 9 frames (4k+1) of 64x96 → latents [1, 4, 3, 8, 12].
TINY_FRAMES, TINY_H, TINY_W = 9, 64, 96
DEFAULT_FOV = 90.0


# ----------------------------------------------------------------------------- registry


@dataclasses.dataclass(frozen=True)
class Case:
    node: str  # display name of the node that receives the bad input
    bad_input: str  # what is wrong, in the artist's words
    expect: str  # a phrase the message must contain
    run: callable  # run(sandbox): feeds the bad input to the node

    @property
    def id(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", f"{self.node} {self.bad_input}".lower()).strip("-")


CASES: list[Case] = []
# Unusual inputs that are accepted on purpose: (node, input, behaviour, check(sandbox)).
ACCEPTED: list[Case] = []


def case(node: str, bad_input: str, expect: str):
    """Register the decorated ``run(sandbox)`` as a catalogue case."""

    def register(run):
        CASES.append(Case(node, bad_input, expect, run))
        return run

    return register


def accepted(node: str, unusual_input: str, behaviour: str):
    """Register the decorated ``check(sandbox)``: the node accepts the input and ``behaviour`` holds."""

    def register(check):
        ACCEPTED.append(Case(node, unusual_input, behaviour, check))
        return check

    return register


class Sandbox:
    """A throw-away ComfyUI layout (``<tmp>/ComfyUI/{input,output,models}``) the host bridge points at.

    ``patch(obj, name, value)`` replaces an attribute until the sandbox closes.
    """

    ENV = {"INVERSEDVS_INPUT_DIR": "input", "INVERSEDVS_OUTPUT_DIR": "output", "INVERSEDVS_MODELS_DIR": "models"}

    def __enter__(self):
        self.tmp = tempfile.mkdtemp(prefix="inversedvs-case-")
        self.root = os.path.join(self.tmp, "ComfyUI")
        self._saved_env = {k: os.environ.get(k) for k in self.ENV}
        self._patches = []
        for key, sub in self.ENV.items():
            os.makedirs(os.path.join(self.root, sub))
            os.environ[key] = os.path.join(self.root, sub)
        self.patch(_validate, "free_memory_bytes", lambda device: SANDBOX_FREE_BYTES)
        return self

    def __exit__(self, *exc):
        for obj, name, had, old in reversed(self._patches):
            if had:
                setattr(obj, name, old)
            else:
                delattr(obj, name)
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(self.tmp, ignore_errors=True)

    def patch(self, obj, name, value):
        """Set ``obj.name = value`` until the sandbox closes (an instance attribute is removed again)."""
        own = vars(obj) if hasattr(obj, "__dict__") else {}
        self._patches.append((obj, name, name in own, own.get(name)))
        setattr(obj, name, value)

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def write(self, relative: str, data: bytes) -> str:
        """Write ``data`` to ``ComfyUI/<relative>`` (folders created) and return the absolute path."""
        path = self.path(*relative.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def normalise(self, message: str) -> str:
        """The message with the sandbox's temporary location removed (paths read 'ComfyUI/...')."""
        for prefix in {self.tmp, os.path.realpath(self.tmp)}:
            message = message.replace(prefix + os.sep, "")
        return message.replace(os.sep, "/") if os.sep != "/" else message


def provoke(c: Case) -> str:
    """Run case ``c`` in a fresh sandbox; return the normalised InverseDVSError message."""
    with Sandbox() as box:
        try:
            c.run(box)
        except InverseDVSError as err:
            return box.normalise(str(err))
    raise AssertionError(f"{c.node}: '{c.bad_input}' was accepted; it must raise InverseDVSError")


# ----------------------------------------------------------------------------- inputs


def frames(n: int = 5, height: int = 32, width: int = 48, seed: int = 0) -> torch.Tensor:
    """A small random IMAGE batch [n, height, width, 3] in 0..1."""
    return torch.rand(n, height, width, 3, generator=torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------- Save Video


@case("Save Video", "filename_prefix climbing out of the output folder with '..'", "contains '..'")
def _(box):
    SaveVideo().save(frames(), 8.0, "../../escaped")


@case("Save Video", "filename_prefix that is an absolute path", "absolute path")
def _(box):
    SaveVideo().save(frames(), 8.0, "/etc/escaped")


@case("Save Video", "filename_prefix that names a Windows drive", "names a drive")
def _(box):
    SaveVideo().save(frames(), 8.0, "C:\\Users\\Public\\escaped")


@case("Save Video", "filename_prefix through a link that leaves the output folder", "leads outside")
def _(box):
    outside = os.path.join(box.tmp, "elsewhere")
    os.makedirs(outside)
    os.symlink(outside, box.path("output", "link"))
    SaveVideo().save(frames(), 8.0, "link/escaped")


@case("Save Video", "empty filename_prefix", "is empty")
def _(box):
    SaveVideo().save(frames(), 8.0, "  ")


@case("Save Video", "frames containing NaN", "NaN")
def _(box):
    images = frames()
    images[2, 3, 4, 1] = float("nan")
    SaveVideo().save(images, 8.0, "InverseDVS/video")


@case("Save Video", "a MASK or a latent where frames are expected", "IMAGE batch")
def _(box):
    SaveVideo().save(torch.rand(5, 32, 48), 8.0, "InverseDVS/video")


@case("Save Video", "fps of 0", "fps = 0 is out of range")
def _(box):
    SaveVideo().save(frames(), 0.0, "InverseDVS/video")


@case("Save Video", "a 300-character filename_prefix", "is 300 bytes long")
def _(box):
    SaveVideo().save(frames(), 8.0, "InverseDVS/" + "take" * 75)


@case("Save Video", "a filename_prefix whose folder part is an existing file", "which is an existing file")
def _(box):
    box.write("output/renders", b"an earlier render without an extension")
    SaveVideo().save(frames(), 8.0, "renders/video")



# ----------------------------------------------------------------------------- geometry


def input_clip(box, name: str = "clip.mp4", n: int = 9) -> str:
    """A real n-frame 96x64 H.264 clip written into ComfyUI/input; returns its name."""
    from inversedvs.nodes.output import write_mp4

    path = box.path("input", name)
    write_mp4(path, frames(n, 64, 96), 8.0)
    return name


def load(video, **changes):
    args = dict(frame_load_cap=49, skip_first_frames=0, select_every_nth=1, width=96, height=64,
                resize="crop to fill")
    args.update(changes)
    return LoadVideo().load(video, **args)


def camera_path(n: int = TINY_FRAMES, preset: str = "orbit right"):
    return CameraTrajectory().build(preset, "", n, 1.0, 0, DEFAULT_FOV, 1.0)[0]


def keyframes(text: str):
    CameraTrajectory().build("custom keyframes", text, TINY_FRAMES, 1.0, 0, DEFAULT_FOV, 1.0)


def ramp_depth(n: int = TINY_FRAMES, height: int = TINY_H, width: int = TINY_W) -> torch.Tensor:
    """A disparity IMAGE [n, height, width, 3]: a left-to-right ramp (white = near)."""
    ramp = torch.linspace(0.1, 1.0, width).expand(n, height, width)
    return ramp[..., None].expand(n, height, width, 3).contiguous()


def warp(images=None, depth=None, path=None):
    images = frames(TINY_FRAMES, TINY_H, TINY_W) if images is None else images
    depth = ramp_depth() if depth is None else depth
    path = camera_path() if path is None else path
    return ForwardWarp().warp(images, depth, path, "relative (white = near)", 0)


@case("Load Video", "a file name that is not in the input folder", "was not found in ComfyUI's input folder")
def _(box):
    load("holiday.mp4")


@case("Load Video", "a file name climbing out of the input folder with '..'", "contains '..'")
def _(box):
    load("../../secrets/clip.mp4")


@case("Load Video", "an absolute path typed as the file name", "absolute path")
def _(box):
    load("/etc/passwd")


@case("Load Video", "a zero-length video file", "could not be opened as a video")
def _(box):
    box.write("input/empty.mp4", b"")
    load("empty.mp4")


@case("Load Video", "a corrupt video (random bytes)", "could not be opened as a video")
def _(box):
    box.write("input/noise.mp4", bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(1),
                                                     dtype=torch.uint8).tolist()))
    load("noise.mp4")


@case("Load Video", "a truncated video (download cut off halfway)", "truncated")
def _(box):
    with open(box.path("input", input_clip(box, "whole.mp4", 25)), "rb") as f:
        data = f.read()
    box.write("input/half.mp4", data[: len(data) // 2])
    load("half.mp4")


@case("Load Video", "skip_first_frames beyond the end of the clip", "no frames left")
def _(box):
    load(input_clip(box), skip_first_frames=500)


@case("Load Video", "a huge resolution (25 frames at 8192x8192, refused before allocating)", "needs about")
def _(box):
    load(input_clip(box, n=25), width=8192, height=8192)


@case("Depth Estimate", "a depth model folder that does not exist", "was not found")
def _(box):
    DepthEstimate().estimate(frames(), "Depth-Anything-V2-Large-hf", "running", 518, 8)


@case("Depth Estimate", "a depth model folder with pickle weights only (pytorch_model.bin)", "lacks model.safetensors")
def _(box):
    folder = box.path("models", "inversedvs_depth", "depth-bin")
    os.makedirs(folder)
    box.write("models/inversedvs_depth/depth-bin/config.json", b"{}")
    torch.save({"w": torch.zeros(1)}, os.path.join(folder, "pytorch_model.bin"))
    DepthEstimate().estimate(frames(), "depth-bin", "running", 518, 8)


@case("Depth Estimate", "depth weights that are a renamed pickle", "not in safetensors format")
def _(box):
    folder = box.path("models", "inversedvs_depth", "depth-renamed")
    os.makedirs(folder)
    box.write("models/inversedvs_depth/depth-renamed/config.json", b"{}")
    torch.save({"w": torch.zeros(1)}, os.path.join(folder, "model.safetensors"))
    DepthEstimate().estimate(frames(), "depth-renamed", "running", 518, 8)


@case("Depth Estimate", "batch_size of 0 (typed in the API)", "batch_size = 0 is not allowed")
def _(box):
    DepthEstimate().estimate(frames(), "Depth-Anything-V2-Small-hf", "running", 518, 0)


def depth_folder_with_config(box, name: str, config: bytes) -> str:
    """A depth folder ``name`` holding ``config`` as config.json and a valid (empty) safetensors file."""
    from safetensors.torch import save_file

    folder = box.path("models", "inversedvs_depth", name)
    os.makedirs(folder)
    box.write(f"models/inversedvs_depth/{name}/config.json", config)
    save_file({"w": torch.zeros(1)}, os.path.join(folder, "model.safetensors"))
    return name


@case("Depth Estimate", "a depth model folder of another model type (a CogVideoX transformer)", "not Depth Anything")
def _(box):
    name = depth_folder_with_config(box, "transformer", b'{"_class_name": "CogVideoXTransformer3DModel"}')
    DepthEstimate().estimate(frames(), name, "running", 518, 8)


@case("Depth Estimate", "a metric Depth Anything folder (predicts distances)", "is a metric Depth Anything")
def _(box):
    name = depth_folder_with_config(box, "metric", b'{"model_type": "depth_anything", "depth_estimation_type": "metric"}')
    DepthEstimate().estimate(frames(), name, "running", 518, 8)


@case("Depth Estimate", "an empty config.json in the depth folder", "config.json is not valid JSON")
def _(box):
    DepthEstimate().estimate(frames(), depth_folder_with_config(box, "empty-config", b""), "running", 518, 8)


@case("Camera Trajectory", "a keyframe line of 20 000 values", "at most 10000 keyframes")
def _(box):
    keyframes("0 1\n" + " ".join(["0.5"] * 20000) + "\n0 0")


@case("Camera Trajectory", "empty keyframe text", "the keyframe text is empty")
def _(box):
    keyframes("  \n ")


@case("Camera Trajectory", "keyframe text with a missing line (no radius line)", "missing: radius")
def _(box):
    keyframes("0 5 10\n0 -10 -20")


@case("Camera Trajectory", "a keyframe word that is not a number", "'ten'")
def _(box):
    keyframes("0 5 ten\n0 -10 -20\n0 0 0")


@case("Camera Trajectory", "a keyframe line with a single value", "at least 2 are needed")
def _(box):
    keyframes("0 5 10\n30\n0 0")


@case("Camera Trajectory", "a 4th line of keyframes", "4th line")
def _(box):
    keyframes("0 5\n0 10\n0 0\n0 1")


@case("Camera Trajectory", "a field of view of 179 degrees", "fov_x_deg = 179 is out of range")
def _(box):
    CameraTrajectory().build("orbit right", "", TINY_FRAMES, 1.0, 0, 179.0, 1.0)


@case("Camera Trajectory", "a radius scale of 0", "radius_scale = 0 is out of range")
def _(box):
    CameraTrajectory().build("orbit right", "", TINY_FRAMES, 0.0, 0, DEFAULT_FOV, 1.0)


@case("Camera Trajectory", "an anchor frame after the last frame", "anchor")
def _(box):
    CameraTrajectory().build("orbit right", "", TINY_FRAMES, 1.0, TINY_FRAMES, DEFAULT_FOV, 1.0)


@case("Forward Warp", "depth with fewer frames than the video", "frame counts disagree")
def _(box):
    warp(depth=ramp_depth(5))


@case("Forward Warp", "a camera path with another frame count (49 for 9)", "frame counts disagree")
def _(box):
    warp(path=camera_path(49))


@case("Forward Warp", "depth of another size than the frames", "frame sizes disagree")
def _(box):
    warp(depth=ramp_depth(TINY_FRAMES, 32, 48))


@case("Forward Warp", "depth containing NaN", "NaN")
def _(box):
    depth = ramp_depth()
    depth[3, 10, 10] = float("nan")
    warp(depth=depth)


@case("Forward Warp", "depth containing infinity", "infinite")
def _(box):
    depth = ramp_depth()
    depth[0, 0, 0] = float("inf")
    warp(depth=depth)


@case("Forward Warp", "depth that is zero everywhere", "zero (or negative) everywhere")
def _(box):
    warp(depth=torch.zeros(TINY_FRAMES, TINY_H, TINY_W, 3))


@case("Forward Warp", "a constant depth map", "is constant")
def _(box):
    warp(depth=torch.full((TINY_FRAMES, TINY_H, TINY_W, 3), 0.5))


@case("Forward Warp", "something other than a camera path connected", "must come from Camera Trajectory")
def _(box):
    warp(path={"frames": TINY_FRAMES})


# ----------------------------------------------------------------------------- camera files

# A COLMAP model of three cameras turning 10° to the right each, 1 unit apart along x.
COLMAP_CAMERAS = "# CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n1 PINHOLE 96 64 60 60 48 32\n"


def colmap_images(count: int = 3, names=None) -> str:
    lines = []
    for k, name in enumerate(names or [f"frame_{i + 1:04}.png" for i in range(count)]):
        w, y = math.cos(math.radians(5 * k)), math.sin(math.radians(5 * k))
        lines += [f"{k + 1} {w} 0 {y} 0 {-k} 0 0 1 {name}", ""]
    return "\n".join(lines) + "\n"


def colmap_model(box, images: str | None = None, cameras: str | None = COLMAP_CAMERAS, folder: str = "scan") -> str:
    """Write ``folder``/images.txt (and cameras.txt unless None) into the sandbox's input folder."""
    if cameras is not None:
        box.write(f"input/{folder}/cameras.txt", cameras.encode())
    box.write(f"input/{folder}/images.txt", (images or colmap_images()).encode())
    return f"{folder}/images.txt"


def load_path(file: str, frames: int = 3, mismatch: str = "refuse", reference: str = "as_is", resize: str = "crop_to_fill",
              images=None):
    return LoadCameraPath().load(file, frames, mismatch, 0, reference, 1.0, resize, images)


def transforms_file(box, document) -> str:
    box.write("input/t/transforms.json", (document if isinstance(document, str) else json.dumps(document)).encode())
    return "t/transforms.json"


EYE = [[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]


@case("Load Camera Path", "a COLMAP images.txt without cameras.txt next to it", "cameras.txt was not found next to it")
def _(box):
    load_path(colmap_model(box, cameras=None))


@case("Load Camera Path", "an unknown COLMAP camera model", "unknown camera model 'PINHOLE_PLUS'")
def _(box):
    load_path(colmap_model(box, cameras="1 PINHOLE_PLUS 96 64 60 60 48 32\n"))


@case("Load Camera Path", "a fisheye COLMAP camera", "is not a perspective (pinhole) camera")
def _(box):
    load_path(colmap_model(box, cameras="1 OPENCV_FISHEYE 96 64 60 60 48 32 0.1 0 0 0\n"))


@case("Load Camera Path", "'nan' in a COLMAP pose", "only finite numbers")
def _(box):
    load_path(colmap_model(box, images=colmap_images().replace(" 0 0 0 1 frame_0001", " nan 0 0 1 frame_0001")))


@case("Load Camera Path", "an image using a camera the cameras file does not define", "does not define")
def _(box):
    load_path(colmap_model(box, images=colmap_images().replace(" 0 0 1 frame_0002", " 0 0 4 frame_0002")))


@case("Load Camera Path", "images.txt without the 2-D points line after an image", "two lines per image")
def _(box):
    load_path(colmap_model(box, images=colmap_images().replace("\n\n", "\n", 1)))


@case("Load Camera Path", "a truncated images.bin", "truncated")
def _(box):
    box.write("input/bin/cameras.bin", struct.pack("<QiiQQdddd", 1, 1, 1, 96, 64, 60, 60, 48, 32))
    box.write("input/bin/images.bin", struct.pack("<QI", 3, 1) + struct.pack("<dd", 1, 0))
    load_path("bin/images.bin")


@case("Load Camera Path", "fewer cameras than frames (frame_mismatch = refuse)", "fewer poses than frames")
def _(box):
    load_path(colmap_model(box), frames=5)


@case("Load Camera Path", "fewer cameras than frames (frame_mismatch = first_frames)", "fewer poses than frames")
def _(box):
    load_path(colmap_model(box), frames=5, mismatch="first_frames")


@case("Load Camera Path", "images missing from the numbered frames", "images are missing: frame number(s) 2, 3")
def _(box):
    load_path(colmap_model(box, images=colmap_images(names=["f_1.png", "f_4.png", "f_5.png"])))


@case("Load Camera Path", "cameras all looking one way with scale_reference = look_at", "look in (nearly) the same")
def _(box):
    dolly = "".join(f"{k + 1} 1 0 0 0 0 0 {-k} 1 frame_{k + 1}.png\n\n" for k in range(3))
    load_path(colmap_model(box, images=dolly), reference="look_at")


@case("Load Camera Path", "resize = stretch onto a clip of another aspect ratio", "square pixels")
def _(box):
    load_path(colmap_model(box), resize="stretch", images=frames(3, 32, 96))


@case("Load Camera Path", "a principal point far from the image centre", "off the image centre")
def _(box):
    load_path(colmap_model(box, cameras="1 PINHOLE 96 64 60 60 70 32\n"))


@case("Load Camera Path", "a transforms.json that is not valid JSON", "not valid JSON (line 1, column")
def _(box):
    load_path(transforms_file(box, '{"frames": [}'))


@case("Load Camera Path", "a transforms.json frame without transform_matrix", "frames[1]: 'transform_matrix' is missing")
def _(box):
    load_path(transforms_file(box, {"camera_angle_x": 1.2, "frames": [{"transform_matrix": EYE}, {"file_path": "b"}]}))


@case("Load Camera Path", "a transforms.json without a focal length", "no focal length")
def _(box):
    load_path(transforms_file(box, {"frames": [{"transform_matrix": EYE}]}), frames=1)


@case("Load Camera Path", "a transform_matrix with scale", "is not a rotation plus translation")
def _(box):
    scaled = [[2.0, 0, 0, 0], [0, 2.0, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 1.0]]
    load_path(transforms_file(box, {"camera_angle_x": 1.2, "frames": [{"transform_matrix": scaled}]}), frames=1)


@case("Load Camera Path", "a JSON file that is no camera file", "neither a transforms.json")
def _(box):
    box.write("input/workflow.json", b'{"nodes": []}')
    load_path("workflow.json")


@case("Load Camera Path", "a saved path file of an unknown version", "path file version 7")
def _(box):
    box.write("input/old.camera_path.json", b'{"format": "inversedvs_camera_path", "version": 7, "frames": []}')
    load_path("old.camera_path.json")


@case("Load Camera Path", "a camera file name climbing out of the input folder with '..'", "contains '..'")
def _(box):
    load_path("../secret/images.txt")


@case("Load Camera Path", "a camera file that is not in the input folder", "was not found in ComfyUI's input folder")
def _(box):
    load_path("gone/transforms.json")


@accepted("Load Camera Path", "fewer cameras than frames with frame_mismatch = resample",
          "Accepted: the file's path is spread over the clip; rotations are slerped and positions interpolated "
          "between the two nearest cameras, and the first and last frames are the file's first and last cameras.")
def _(box):
    path, _ = load_path(colmap_model(box), frames=5, mismatch="resample")
    assert path.frames == 5
    centres = camera_centers(path.world_to_camera)
    assert torch.allclose(centres[1], (centres[0] + centres[2]) / 2, atol=1e-9)


@case("Save Camera Path", "something other than a camera path connected", "must come from Camera Trajectory or Load")
def _(box):
    SaveCameraPath().save({"frames": 3}, "InverseDVS/camera_path")


@case("Save Camera Path", "filename_prefix climbing out of the output folder with '..'", "contains '..'")
def _(box):
    SaveCameraPath().save(CameraTrajectory().build("orbit right", "", 3, 1.0, 0, DEFAULT_FOV, 1.0)[0], "../escaped")


# ----------------------------------------------------------------------------- the video model

_TINY = {}


def tiny_folder() -> str:
    from inversedvs.backend.tiny import cached_tiny_video_model

    return cached_tiny_video_model()


def tiny_model():
    """The tiny CogVideoX-I2V loaded once through Load Video Model (fp32, resident, not compiled)."""
    if "model" not in _TINY:
        # the model reads its folder again later (text encoder), so the folder outlives every sandbox
        models = os.path.join(tempfile.gettempdir(), "inversedvs-tiny-models")
        link = os.path.join(models, "inversedvs_video", "tiny")
        if os.path.realpath(link) != os.path.realpath(tiny_folder()):
            os.makedirs(os.path.dirname(link), exist_ok=True)
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(tiny_folder(), link)
        saved = os.environ.get("INVERSEDVS_MODELS_DIR")
        os.environ["INVERSEDVS_MODELS_DIR"] = models
        try:
            _TINY["model"] = LoadVideoModel().load("tiny", "fp32", "resident", compile_transformer=False)[0]
        finally:
            if saved is None:
                os.environ.pop("INVERSEDVS_MODELS_DIR")
            else:
                os.environ["INVERSEDVS_MODELS_DIR"] = saved
    return _TINY["model"]


def tiny_latent() -> dict:
    """The tiny model's LATENT of a random 9x64x96 clip (encoded once; copy before changing)."""
    if "latent" not in _TINY:
        _TINY["latent"] = VAEEncode().encode(tiny_model(), frames(TINY_FRAMES, TINY_H, TINY_W), False)[0]
    return dict(_TINY["latent"])


def tiny_noise() -> dict:
    """K-RNR Invert's output for ``tiny_latent`` with 4 steps at strength 0.98."""
    if "noise" not in _TINY:
        _TINY["noise"] = KRNRInvert().invert(tiny_model(), tiny_latent(), 4, 0.98, "sampling_start")[0]
    return dict(_TINY["noise"])


def tiny_conditioning():
    if "text" not in _TINY:
        _TINY["text"] = EncodeText().encode(tiny_model(), "a dog on the beach", "blur")
    return _TINY["text"]


def hole_mask(n=TINY_FRAMES, height=TINY_H, width=TINY_W) -> torch.Tensor:
    """A MASK [n, height, width] with a hole band on the right third (1 = hole)."""
    mask = torch.zeros(n, height, width)
    mask[:, :, 2 * width // 3:] = 1.0
    return mask


def sample_args(**changes) -> dict:
    """Keyword arguments of a valid tiny Sample run (4 steps), with ``changes`` applied."""
    positive, negative = tiny_conditioning()
    args = dict(model=tiny_model(), positive=positive, negative=negative, clean=tiny_latent(), noise=tiny_noise(),
                mask=hole_mask(), steps=4, strength=0.98, k=6, mode="paper", guidance=6.0, preservation=1.0,
                dynamic_guidance=False, seed=42)
    args.update(changes)
    return args


def tiny_copy(box, name: str) -> str:
    """A full copy of the tiny model folder at ComfyUI/models/inversedvs_video/<name>."""
    target = box.path("models", "inversedvs_video", name)
    shutil.copytree(tiny_folder(), target)
    return target


def lora_file(box, name: str, state: dict) -> None:
    from safetensors.torch import save_file

    path = box.path("models", "inversedvs_lora", name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    save_file(state, path)


def load_tiny_with(box, lora: str) -> None:
    os.makedirs(box.path("models", "inversedvs_video"), exist_ok=True)
    os.symlink(tiny_folder(), box.path("models", "inversedvs_video", "tiny"))
    LoadVideoModel().load("tiny", "fp32", "resident", lora=lora, lora_strength=1.0, compile_transformer=False)


@case("Load Video Model", "a model folder that does not exist", "was not found")
def _(box):
    LoadVideoModel().load("CogVideoX-5b-I2V", "bf16", "model_offload", compile_transformer=False)


@case("Load Video Model", "a model folder name climbing out with '..'", "was not found")
def _(box):
    tiny_copy(box, "real")
    LoadVideoModel().load("../inversedvs_video/real/../../../..", "bf16", "model_offload", compile_transformer=False)


@case("Load Video Model", "an incomplete model folder (VAE weights and tokenizer missing)", "is incomplete; missing")
def _(box):
    folder = tiny_copy(box, "partial")
    for f in os.listdir(os.path.join(folder, "vae")):
        if f.endswith(".safetensors"):
            os.remove(os.path.join(folder, "vae", f))
    shutil.rmtree(os.path.join(folder, "tokenizer"))
    LoadVideoModel().load("partial", "bf16", "model_offload", compile_transformer=False)


@case("Load Video Model", "weights in pickle format only (diffusion_pytorch_model.bin)", "is incomplete; missing")
def _(box):
    folder = tiny_copy(box, "pickled")
    transformer = os.path.join(folder, "transformer")
    for f in os.listdir(transformer):
        if f.endswith(".safetensors"):
            os.remove(os.path.join(transformer, f))
    torch.save({"w": torch.zeros(1)}, os.path.join(transformer, "diffusion_pytorch_model.bin"))
    LoadVideoModel().load("pickled", "bf16", "model_offload", compile_transformer=False)


@case("Load Video Model", "a LoRA that is a pickle file (.bin)", "not a .safetensors file")
def _(box):
    path = box.path("models", "inversedvs_lora", "flow_lora.bin")
    os.makedirs(os.path.dirname(path))
    torch.save({"transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(2, 32)}, path)
    load_tiny_with(box, "flow_lora.bin")


@case("Load Video Model", "a pickle file renamed to .safetensors", "not in safetensors format")
def _(box):
    path = box.path("models", "inversedvs_lora", "renamed.safetensors")
    os.makedirs(os.path.dirname(path))
    torch.save({"transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(2, 32)}, path)
    load_tiny_with(box, "renamed.safetensors")


@case("Load Video Model", "a LoRA made for another model (Stable Diffusion layer names)", "does not fit")
def _(box):
    lora_file(box, "sd15_style.safetensors", {
        "unet.down_blocks.0.attentions.0.proj_in.lora_A.weight": torch.zeros(4, 320),
        "unet.down_blocks.0.attentions.0.proj_in.lora_B.weight": torch.zeros(320, 4),
    })
    load_tiny_with(box, "sd15_style.safetensors")


@case("Load Video Model", "a LoRA for a model of another size (same layer names)", "layers of another size")
def _(box):
    lora_file(box, "cogvideox_2b.safetensors", {
        "transformer.transformer_blocks.0.attn1.to_q.lora_A.weight": torch.zeros(4, 1920),
        "transformer.transformer_blocks.0.attn1.to_q.lora_B.weight": torch.zeros(1920, 4),
    })
    load_tiny_with(box, "cogvideox_2b.safetensors")


@case("Load Video Model", "a file that is not a LoRA at all", "not a LoRA this pack can read")
def _(box):
    lora_file(box, "upscaler.safetensors", {"conv_first.weight": torch.zeros(8, 3, 3, 3)})
    load_tiny_with(box, "upscaler.safetensors")


@case("Encode Text", "something other than the video model connected as model", "must come from Load Video Model")
def _(box):
    EncodeText().encode({"samples": torch.zeros(1)}, "a dog", "")


@case("VAE Decode Video", "a LATENT whose frame_count does not fit its latent frames (20 for 3)",
      "does not fit its 3 latent frames")
def _(box):
    VAEDecode().decode(tiny_model(), {"samples": torch.zeros(1, 4, 3, 8, 12), "frame_count": 20}, False)


@case("VAE Encode Video", "a size that is not a multiple of 16 (90x64)", "must be multiples of 16")
def _(box):
    VAEEncode().encode(tiny_model(), frames(TINY_FRAMES, 64, 90), False)


@case("VAE Decode Video", "a LATENT from another model (16 channels)", "has 16 channels")
def _(box):
    VAEDecode().decode(tiny_model(), {"samples": torch.zeros(1, 16, 3, 8, 12)}, False)


@case("K-RNR Invert", "steps = 0", "at least 1 step")
def _(box):
    KRNRInvert().invert(tiny_model(), tiny_latent(), 0, 0.98, "sampling_start")


@case("K-RNR Invert", "strength = 0", "strength = 0 is out of range")
def _(box):
    KRNRInvert().invert(tiny_model(), tiny_latent(), 4, 0.0, "sampling_start")


@case("K-RNR Invert", "strength above 1", "strength = 1.5 is out of range")
def _(box):
    KRNRInvert().invert(tiny_model(), tiny_latent(), 4, 1.5, "sampling_start")


@case("K-RNR Invert", "a window_overlap as long as the model's window (12 frames, window 9) on a long clip",
      "window_overlap = 12 frames")
def _(box):
    latent = {"samples": torch.zeros(1, 4, 6, 8, 12), "image": torch.zeros(1, 4, 1, 8, 12)}
    KRNRInvert().invert(tiny_model(), latent, 4, 0.98, "sampling_start", 12)


@case("K-RNR Invert", "an image LATENT (Stable Diffusion, 4-D)", "an image latent")
def _(box):
    KRNRInvert().invert(tiny_model(), {"samples": torch.zeros(1, 4, 8, 12)}, 4, 0.98, "sampling_start")


@case("K-RNR Invert", "a LATENT from another video model (16 channels)", "has 16 channels")
def _(box):
    KRNRInvert().invert(tiny_model(), {"samples": torch.zeros(1, 16, 3, 8, 12)}, 4, 0.98, "sampling_start")


@case("K-RNR Invert", "a LATENT tagged with another model's id", "was made by")
def _(box):
    KRNRInvert().invert(tiny_model(), dict(tiny_latent(), model="wan2.1-i2v"), 4, 0.98, "sampling_start")


@case("Stochastic Latent Modulation", "a mask that is all holes", "no visible values to draw from")
def _(box):
    StochasticLatentModulate().modulate(tiny_latent(), tiny_noise(), torch.ones(TINY_FRAMES, TINY_H, TINY_W), 42)


@case("Stochastic Latent Modulation", "a mask of another size than the latent's video", "but the latent belongs to")
def _(box):
    StochasticLatentModulate().modulate(tiny_latent(), tiny_noise(), hole_mask(TINY_FRAMES, 128, 192), 42)


@case("Stochastic Latent Modulation", "a mask in 0..255 instead of 0..1", "must hold values in 0..1")
def _(box):
    StochasticLatentModulate().modulate(tiny_latent(), tiny_noise(), hole_mask() * 255, 42)


@case("Stochastic Latent Modulation", "noise inverted from another latent (other shape)", "differ")
def _(box):
    noise = dict(tiny_noise(), samples=torch.zeros(1, 4, 5, 8, 12))
    StochasticLatentModulate().modulate(tiny_latent(), noise, hole_mask(), 42)


@case("Sample", "out of GPU memory during sampling", "memory = sequential_offload")
def _(box):
    model = tiny_model()

    @contextlib.contextmanager
    def session_that_runs_out(condition, embeds):
        def predict_v(x, t):
            raise torch.cuda.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 512.00 KiB. GPU 0 has a total capacity of 23.57 GiB of which "
                "300.00 KiB is free."
            )

        yield predict_v

    box.patch(model, "transformer_session", session_that_runs_out)
    Sample().sample(**sample_args())


@case("Sample", "steps and strength different from the inversion's", "Use the same steps and strength")
def _(box):
    Sample().sample(**sample_args(steps=30))


@case("Sample", "a mask whose frame count disagrees with the latent (5 frames for 9)", "but the latent belongs to")
def _(box):
    Sample().sample(**sample_args(mask=hole_mask(5)))


@case("Sample", "a prompt encoded by another text encoder (CLIP width 768)", "of width 768")
def _(box):
    clip = [[torch.zeros(1, 77, 768), {}]]
    Sample().sample(**sample_args(positive=clip))


@case("Sample", "reference mode with a latent that lacks the VAE statistics", "reference mode needs")
def _(box):
    latent = tiny_latent()
    bare = {"samples": latent["samples"], "model": latent["model"]}
    Sample().sample(**sample_args(clean=bare, mode="reference"))


@case("Camera Trajectory", "a radius offset of a million orbit radii", "radius offsets (line 3) reach 1e+06")
def _(box):
    keyframes("0 0\n0 0\n0 1e6")


@case("Camera Trajectory", "an azimuth of 10000 degrees", "angle keyframes (lines 1-2) reach 10000")
def _(box):
    keyframes("0 0\n0 10000\n0 0")


@case("Forward Warp", "a scripted camera path that flies absurdly far (radius offset 1e6)", "nothing of the video is visible")
def _(box):
    from inversedvs.warp import trajectory

    keys = trajectory.Keyframes(forward=(0.0, 1e6))
    warp(path=trajectory.camera_path(keys, TINY_FRAMES, DEFAULT_FOV, 1.0, 0, "script"))


@case("Forward Warp", "RGBA frames (4 channels) from another pack", "IMAGE batch")
def _(box):
    warp(images=torch.rand(TINY_FRAMES, TINY_H, TINY_W, 4))


@case("Camera Trajectory", "'nan' typed as a keyframe", "only finite numbers")
def _(box):
    keyframes("0 nan\n0 10\n0 0")


@case("Load Video", "a text file renamed to .mp4", "could not be opened as a video")
def _(box):
    box.write("input/notes.mp4", b"shot list: 1. beach 2. corgi\n" * 50)
    load("notes.mp4")


@case("K-RNR Invert", "steps and strength that leave no step to sample (1 step at 0.98)", "leaves no step to sample")
def _(box):
    KRNRInvert().invert(tiny_model(), tiny_latent(), 1, 0.98, "sampling_start")


@case("Stochastic Latent Modulation", "noise from another model (16 channels)", "has 16 channels")
def _(box):
    StochasticLatentModulate().modulate(tiny_latent(), {"samples": torch.zeros(1, 16, 3, 8, 12)}, hole_mask(), 42)


@case("VAE Decode Video", "a bare tensor instead of a LATENT", "is not a LATENT")
def _(box):
    VAEDecode().decode(tiny_model(), torch.zeros(1, 4, 3, 8, 12), False)


# ----------------------------------------------------------------------------- wires crossed in the graph


@case("Sample", "clean and noise swapped", "look swapped")
def _(box):
    Sample().sample(**sample_args(clean=tiny_noise(), noise=tiny_latent()))


@case("Stochastic Latent Modulation", "clean and noise swapped", "look swapped")
def _(box):
    StochasticLatentModulate().modulate(tiny_noise(), tiny_latent(), hole_mask(), 42)


@case("Sample", "noise inverted from another video (same size)", "inverted from another video")
def _(box):
    clip = torch.rand(TINY_FRAMES, TINY_H, TINY_W, 3, generator=torch.Generator().manual_seed(99))
    other = VAEEncode().encode(tiny_model(), clip, False)[0]
    Sample().sample(**sample_args(clean=other))


@case("Sample", "noise inverted with another image condition seed", "another image condition")
def _(box):
    clip = frames(TINY_FRAMES, TINY_H, TINY_W)
    reseeded = VAEEncode().encode(tiny_model(), clip, False, "first_frame_sample", 7)[0]
    Sample().sample(**sample_args(clean=reseeded))


@case("Sample", "noise inverted with other weights (the model loaded again with a LoRA)", "other weights")
def _(box):
    model = tiny_model()
    box.patch(model, "weights_id", "another-set-of-weights")
    Sample().sample(**sample_args(model=model))


@case("K-RNR Invert", "an inverted noise given to be inverted again", "already an inverted noise")
def _(box):
    KRNRInvert().invert(tiny_model(), tiny_noise(), 4, 0.98, "sampling_start")


# ----------------------------------------------------------------------------- numbers that are not numbers


@case("Load Video Model", "a LoRA holding NaN", "NaN or infinite values")
def _(box):
    down = torch.zeros(2, 32)
    down[0, 0] = float("nan")
    lora_file(box, "diverged.safetensors", {"transformer_blocks.0.attn1.to_q.lora_A.weight": down,
                                            "transformer_blocks.0.attn1.to_q.lora_B.weight": torch.zeros(32, 2)})
    load_tiny_with(box, "diverged.safetensors")


@case("Sample", "a clean LATENT holding NaN", "clean contains NaN")
def _(box):
    latent = tiny_latent()
    samples = latent["samples"].clone()
    samples[0, 0, 0, 0, 0] = float("nan")
    Sample().sample(**sample_args(clean=dict(latent, samples=samples)))


@case("K-RNR Invert", "a LATENT whose image condition holds infinity", "(its 'image') contains NaN")
def _(box):
    latent = tiny_latent()
    KRNRInvert().invert(tiny_model(), dict(latent, image=latent["image"] * float("inf")), 4, 0.98, "sampling_start")


@case("Sample", "a CONDITIONING holding NaN", "positive contains NaN")
def _(box):
    positive, _ = tiny_conditioning()
    Sample().sample(**sample_args(positive=[[positive[0][0] * float("nan"), {}]]))


# ----------------------------------------------------------------------------- shapes core nodes produce


@case("K-RNR Invert", "a batch of two video latents", "batch of 2 videos")
def _(box):
    latent = tiny_latent()
    KRNRInvert().invert(tiny_model(), dict(latent, samples=latent["samples"].repeat(2, 1, 1, 1, 1)), 4, 0.98,
                        "sampling_start")


@case("Sample", "a negative prompt of another token length than the model's", "has 20 tokens")
def _(box):
    positive, _ = tiny_conditioning()
    Sample().sample(**sample_args(negative=[[torch.zeros(1, 20, positive[0][0].shape[-1]), {}]]))


@case("Sample", "a combined CONDITIONING (two prompts)", "holds 2 prompts")
def _(box):
    positive, negative = tiny_conditioning()
    Sample().sample(**sample_args(positive=positive + negative))


@case("VAE Decode Video", "a zero-sized LATENT", "is empty")
def _(box):
    VAEDecode().decode(tiny_model(), {"samples": torch.zeros(1, 4, 0, 8, 12)}, False)


@case("Sample", "a zero-sized MASK", "is empty")
def _(box):
    Sample().sample(**sample_args(mask=torch.zeros(0, TINY_H, TINY_W)))


def inversion_of(height: int = TINY_H // 8, width: int = TINY_W // 8) -> dict:
    """What Invert Image gives for a TINY_H x TINY_W image (values are not read by the input checks)."""
    z = torch.zeros(1, 4, height, width)
    return {"samples": z, FUSION_KEY: {"mean": z, "noise": z, "inverted": z, "sigmas": torch.tensor([0.0, 1.0])}}


def fuse(inversion=None, depth=None, path=None, strategy="a_noise_term", views="last"):
    """Novel View Fusion on one TINY_H x TINY_W image (no model: every case stops before the model is asked)."""
    depth = ramp_depth(1) if depth is None else depth
    return NovelViewFusion().fuse(None, None, inversion_of() if inversion is None else inversion, depth,
                                  camera_path(2) if path is None else path, "relative", views, strategy, 0)


@case("Novel View Fusion", "a plain LATENT (not Invert Image's) as inversion", "connect the output of Invert Image")
def _(box):
    fuse(inversion={"samples": torch.zeros(1, 4, TINY_H // 8, TINY_W // 8)})


@case("Novel View Fusion", "a depth map of another size than the encoded image", "the depth is 48x64")
def _(box):
    fuse(depth=ramp_depth(1, 64, 48))


@case("Novel View Fusion", "a depth video (9 frames) for one image", "depth holds 9 frames")
def _(box):
    fuse(depth=ramp_depth())


@case("Novel View Fusion", "an unknown strategy", "strategy must be one of")
def _(box):
    fuse(strategy="C")


@case("Novel View Fusion", "a camera path of another node", "camera_path must come from")
def _(box):
    fuse(path="orbit_right")


@case("Novel View Sample", "a LATENT that is not Novel View Fusion's start", "connect the start output")
def _(box):
    NovelViewSample().sample(None, None, None, inversion_of(), 1.0)


@case("Novel View Sample", "cfg = -1", "cfg = -1 is out of range")
def _(box):
    NovelViewSample().sample(None, None, None, {START_KEY: {}}, -1.0)


def svd_conditioning(images: int, size: int = 8, **extra):
    """What core's SVD_img2vid_Conditioning gives for a batch of ``images`` init images (positive or negative)."""
    options = {"motion_bucket_id": 127, "fps": 6, "augmentation_level": 0.0,
               "concat_latent_image": torch.zeros(images, 4, size, size), **extra}
    return [[torch.zeros(1, images, 1024), options]]


def sv3d_conditioning(images: int, views: int, size: int = 8):
    """What core's SV3D_Conditioning gives for ``images`` init images and video_frames = ``views``."""
    options = {"concat_latent_image": torch.zeros(images, 4, size, size), "elevation": [0.0] * views,
               "azimuth": [360.0 / max(views - 1, 1) * i for i in range(views)]}
    return [[torch.zeros(1, images, 1024), options]]


def diffusion2(video=None, multiview=None, steps=2, vrs_steps=1, s=0.5):
    """Sample (Diffusion²) on a 3-view x 4-frame matrix (no model: every case stops before the models are asked)."""
    video = svd_conditioning(3) if video is None else video
    multiview = sv3d_conditioning(4, 3) if multiview is None else multiview
    return Diffusion2Sample().sample(None, video, video, None, multiview, multiview, None, steps, 2.5, 2.5, s,
                                     vrs_steps, 0)


@case("Sample (Diffusion², SVD x SV3D)", "a text CONDITIONING as video_positive",
      "is not the output of core's SVD_img2vid_Conditioning")
def _(box):
    diffusion2(video=[[torch.zeros(1, 77, 768), {}]])


@case("Sample (Diffusion², SVD x SV3D)", "SV3D_Conditioning made for 21 views with a 3-image orbit",
      "set video_frames to 3")
def _(box):
    diffusion2(multiview=sv3d_conditioning(4, 21))


@case("Sample (Diffusion², SVD x SV3D)", "the orbit encoded at 64x64 and the video at 72x72",
      "give both nodes the same width and height")
def _(box):
    diffusion2(multiview=sv3d_conditioning(4, 3, size=9))


@case("Sample (Diffusion², SVD x SV3D)", "vrs_steps = 6 with 2 steps", "vrs_steps = 6 is not allowed")
def _(box):
    diffusion2(vrs_steps=6)


@case("Sample (Diffusion², SVD x SV3D)", "s = 1.5", "s = 1.5 is out of range")
def _(box):
    diffusion2(s=1.5)


@case("Pick (Diffusion²)", "7 images for 3 views", "are not 3 views of equal length")
def _(box):
    Diffusion2Pick().pick(torch.zeros(7, 8, 8, 3), 3, "view", 0)


@case("Pick (Diffusion²)", "view 3 of a 3-view matrix", "index = 3 is not allowed")
def _(box):
    Diffusion2Pick().pick(torch.zeros(12, 8, 8, 3), 3, "view", 3)


def fit4d(images=None, multiview=None, iterations=10, warmup=5, renderer="torch"):
    """Fit Dynamic Gaussians on a 3-view x 2-frame matrix of 16x16 (every case stops before the fit runs)."""
    images = torch.full((6, 16, 16, 3), 0.5) if images is None else images
    multiview = sv3d_conditioning(2, 3) if multiview is None else multiview
    return FitDynamicGaussians().fit(images, multiview, iterations, warmup, 50, "auto", 33.8, "white", renderer, 0)


def fitted4d():
    """A fitted object of 20 Gaussians and an untrained field, as Fit Dynamic Gaussians returns one."""
    from inversedvs.gaussians import fit, model
    from inversedvs.gaussians.deform import DeformationField

    return fit.Fitted(model.in_ball(20, 0.5, torch.Generator().manual_seed(0)), DeformationField(2, 8), frames=2,
                      height=16, width=16, azimuth_deg=torch.zeros(3, dtype=torch.float64),
                      elevation_deg=torch.zeros(3, dtype=torch.float64), radius=2.0, fov_deg=33.8,
                      direction="right", background=torch.ones(3))


@case("Fit Dynamic Gaussians (Diffusion²)", "a text CONDITIONING as multiview_positive",
      "is not the output of core's SV3D_Conditioning")
def _(box):
    fit4d(multiview=[[torch.zeros(1, 77, 768), {}]])


@case("Fit Dynamic Gaussians (Diffusion²)", "an SV3D conditioning whose azimuths hold NaN",
      "is not a list of finite angles")
def _(box):
    multiview = sv3d_conditioning(2, 3)
    multiview[0][1]["azimuth"] = [0.0, float("nan"), 240.0]
    fit4d(multiview=multiview)


@case("Fit Dynamic Gaussians (Diffusion²)", "7 images for a 3-view orbit", "are not 3 views")
def _(box):
    fit4d(images=torch.full((7, 16, 16, 3), 0.5))


@case("Fit Dynamic Gaussians (Diffusion²)", "an 8x8 matrix", "needs at least 16x16")
def _(box):
    fit4d(images=torch.full((6, 8, 8, 3), 0.5))


@case("Fit Dynamic Gaussians (Diffusion²)", "warmup = 11 with 10 iterations", "warmup = 11 is not allowed")
def _(box):
    fit4d(warmup=11)


@case("Fit Dynamic Gaussians (Diffusion²)", "direction = auto with warmup = 0", "choose right or left")
def _(box):
    fit4d(warmup=0)


@case("Fit Dynamic Gaussians (Diffusion²)", "renderer = gsplat on a machine without a CUDA GPU",
      "Set renderer to auto or torch")
def _(box):
    fit4d(renderer="gsplat")


@case("Fit Dynamic Gaussians (Diffusion²)", "out of memory during the fit (torch rasteriser)",
      "renderer = auto with gsplat installed")
def _(box):
    from inversedvs.gaussians import fit

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB.")

    box.patch(fit, "fit_matrix", out_of_memory)
    fit4d()


@case("Render Dynamic Gaussians", "a LATENT as gaussians", "must be the output of Fit Dynamic Gaussians")
def _(box):
    RenderDynamicGaussians().render({"samples": torch.zeros(1, 4, 2, 2)}, 4, 0.0, 360.0, 0.0, 0.0, 1.0, 0, 0,
                                    "torch")


@case("Render Dynamic Gaussians", "time_end = 1.5", "time_end = 1.5 is out of range")
def _(box):
    RenderDynamicGaussians().render(fitted4d(), 4, 0.0, 360.0, 0.0, 0.0, 1.5, 0, 0, "torch")


@case("Save Dynamic Gaussians (PLY)", "filename_prefix climbing out of the output folder with '..'",
      "contains '..'")
def _(box):
    SaveDynamicGaussians().save(fitted4d(), "../../escaped")


@case("Load Dynamic Gaussians", "a safetensors file of model weights renamed to .gaussians4d.safetensors",
      "is not a dynamic Gaussians file")
def _(box):
    import safetensors.torch

    safetensors.torch.save_file({"weight": torch.zeros(2, 2)}, box.path("input", "weights.gaussians4d.safetensors"))
    LoadDynamicGaussians().load("weights.gaussians4d.safetensors")


@case("Load Dynamic Gaussians", "a pickle file renamed to .gaussians4d.safetensors", "save the object again")
def _(box):
    with open(box.path("input", "pickled.gaussians4d.safetensors"), "wb") as f:
        f.write(b"\x80\x04\x95" + bytes(64))
    LoadDynamicGaussians().load("pickled.gaussians4d.safetensors")


@case("VAE Encode Video", "float frames in 0..255", "divide by 255")
def _(box):
    VAEEncode().encode(tiny_model(), frames(TINY_FRAMES, TINY_H, TINY_W).round(decimals=2) * 255, False)


@accepted("VAE Encode Video", "uint8 frames (0..255)",
          "Accepted: uint8 IMAGE values are read as 0..255 and encode exactly like the same frames as floats in 0..1.")
def _(box):
    clip = (torch.rand(TINY_FRAMES, TINY_H, TINY_W, 3, generator=torch.Generator().manual_seed(3)) * 255).to(
        torch.uint8)
    as_uint8 = VAEEncode().encode(tiny_model(), clip, False)[0]
    as_float = VAEEncode().encode(tiny_model(), clip.float() / 255.0, False)[0]
    assert torch.equal(as_uint8["samples"], as_float["samples"])


# ----------------------------------------------------------------------------- damaged model folders


def damaged_copy(box, name: str, relative: str, data: bytes | None = None, keep_bytes: int | None = None) -> None:
    """A copy of the tiny folder with ``relative`` replaced by ``data`` (or cut to ``keep_bytes``), then loaded."""
    target = tiny_copy(box, name)
    path = os.path.join(target, *relative.split("/"))
    if keep_bytes is not None:
        with open(path, "rb") as f:
            data = f.read()[:keep_bytes]
    with open(path, "wb") as f:
        f.write(data)
    LoadVideoModel().load(name, "fp32", "resident", compile_transformer=False)


@case("Load Video Model", "an empty scheduler_config.json", "scheduler_config.json' is empty")
def _(box):
    damaged_copy(box, "empty_scheduler", "scheduler/scheduler_config.json", b"")


@case("Load Video Model", "a scheduler_config.json with a non-number setting", "Could not load scheduler/")
def _(box):
    damaged_copy(box, "odd_scheduler", "scheduler/scheduler_config.json",
                 b'{"num_train_timesteps": "one thousand", "prediction_type": "v_prediction"}')


@case("Load Video Model", "an invalid transformer config.json", "is not valid JSON")
def _(box):
    damaged_copy(box, "bad_config", "transformer/config.json", b'{"num_layers": 2,')


@case("Load Video Model", "truncated text-encoder weights", "is truncated")
def _(box):
    damaged_copy(box, "cut_t5", "text_encoder/model.safetensors", keep_bytes=4096)


@accepted("Stochastic Latent Modulation", "a mask that is all visible (nothing to synthesise)",
          "Accepted (the 'still (identity)' camera preset gives it): every fully visible latent cell is returned "
          "unchanged, and Sample then re-renders the input.")
def _(box):
    from inversedvs.slm.masks import latent_visibility

    visible = torch.zeros(TINY_FRAMES, TINY_H, TINY_W)
    latent, noise = tiny_latent(), tiny_noise()
    clean, modulated, _ = StochasticLatentModulate().modulate(latent, noise, visible, 42,
                                                              clean_from="posterior mean")
    seen = (latent_visibility(visible) == 1.0).expand_as(latent["samples"])
    assert seen.float().mean() > 0.5
    assert torch.equal(clean["samples"][seen], latent["mean"][seen])
    assert torch.equal(modulated["samples"][seen], noise["samples"][seen])
    result = Sample().sample(**sample_args(mask=visible, clean=clean, noise=modulated))[0]
    assert result["samples"].shape == latent["samples"].shape and torch.isfinite(result["samples"]).all()


# ----------------------------------------------------------------------------- tests

_MESSAGES: dict[str, str] = {}


def message_of(c: Case) -> str:
    """The case's message, provoked once per test session."""
    if c.id not in _MESSAGES:
        _MESSAGES[c.id] = provoke(c)
    return _MESSAGES[c.id]


def test_case_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input_gives_clear_error(c):
    message = message_of(c)
    assert c.expect in message, f"expected '{c.expect}' in: {message}"
    assert "Traceback" not in message and len(message) <= MAX_MESSAGE_CHARS
    assert message.rstrip().endswith((".", ")", "'")), message


@pytest.mark.parametrize("c", ACCEPTED, ids=[c.id for c in ACCEPTED])
def test_unusual_input_is_accepted_as_documented(c):
    with Sandbox() as box:
        c.run(box)


def _generator():
    path = os.path.join(PACK_ROOT, "scripts", "make_error_catalogue.py")
    spec = importlib.util.spec_from_file_location("make_error_catalogue", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_catalogue_doc_matches_the_code():
    """docs/errors.md holds exactly the messages the nodes give now (regenerate with the script)."""
    expected = _generator().render(CASES, {c.id: message_of(c) for c in CASES}, ACCEPTED)
    with open(DOC_PATH, encoding="utf-8") as f:
        committed = f.read()
    assert committed == expected, "docs/errors.md is stale: run `python scripts/make_error_catalogue.py`"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
