"""Check the pack inside a real ComfyUI: import, node specs, the example workflows run, the frontend loads them.

    COMFYUI_DIR=/path/to/ComfyUI python scripts/comfy_host_check.py [--python PY] [--browser /usr/bin/chromium]

Run it with ComfyUI's own Python (``--python`` starts ComfyUI with another one). Nothing in the
ComfyUI checkout is changed: everything happens in a temporary base directory —

* ``custom_nodes/ComfyUI-InverseDVS`` holds the files a ``git clone`` of this pack holds (the README's
  install; copied from the working tree, so uncommitted edits are checked too); ``input/`` starts
  empty; tiny model folders of the real layouts are saved and given to ComfyUI through an
  ``extra_model_paths.yaml``, among them a tiny core WanModel in ``diffusion_models/``, core's Wan 2.1
  VAE and ViT-H at seeded random weights in ``vae/`` and ``clip_vision/`` (built with core's own classes);
* ComfyUI starts on 127.0.0.1 (``--cpu``) with ``--base-directory`` pointing there;
* checks: no import error for the pack in the log; the pack put its sample clips into ``input/``;
  ``/object_info`` lists every pack node with the inputs and outputs of its class, and the core nodes
  the workflows use as ``make_workflows.py`` describes them; the pack's workflows are served as
  templates; each workflow (API twin) queued with ``POST /prompt`` runs every one of its output nodes
  (in ``/history``) and writes its videos, the full ones with the tiny models (at a small size and few
  steps, so it takes seconds on a CPU; the Wan one through core's UNETLoader / VAELoader / VAEEncode /
  CLIPVisionLoader / CLIPVisionEncode / WanImageToVideo / VAEDecode, its text encode nodes swapped for
  the stand-in of ``tests/_host_nodes.py``, as core always builds the full umt5-xxl; the Diffusion² one at 2 views x
  3 frames through core's SVD / SV3D conditioning and KSampler, its two Image Only Checkpoint Loaders stood in for by
  UNETLoader / CLIPVisionLoader / VAELoader on tiny core SVD and SV3D_p UNets, the seeded ViT-H and core's SD VAE,
  and its dynamic Gaussians fitted in 8 steps: a 4-frame orbit video and one PLY file per matrix frame);
  the full workflow with the choice values the first version
  saved runs too and gives the same frames; an unknown choice value is refused; a bad input's error
  reaches the dialog titled "InverseDVS error";
* with a browser: every UI workflow loaded into ComfyUI's own frontend in headless Chromium has no
  missing node type, keeps every widget value, converts to exactly its API twin, and a screenshot of
  each is written to ``docs/`` (``--screenshots DIR`` to put them elsewhere).

Exit status 0 when every check passed; each check prints one line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from importlib import import_module

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_workflows as mw  # noqa: E402
from pack import PACK_ROOT, load_pack  # noqa: E402

PACK_FOLDER = "ComfyUI-InverseDVS"
TINY_VIDEO_MODEL = "tiny-cogvideox-i2v"  # folder name of the tiny video model (random weights)
TINY_DEPTH_MODEL = "tiny-depth-anything"
DEPTH_KIND = "inversedvs_depth"
# The Wan run: core's loaders read a tiny WanModel, core's Wan 2.1 VAE and ViT-H at seeded random weights from
# core's standard folders; the text encoder is swapped for the stand-in in tests/_host_nodes.py (core always
# builds the full umt5-xxl, too large for a CPU check).
TINY_WAN = "tiny_wan21_i2v.safetensors"
TINY_WAN_VAE = "wan_2.1_vae_random.safetensors"
RANDOM_CLIP_VISION = "clip_vision_h_random.safetensors"
# The SD 1.5 run: core's Load Checkpoint reads a tiny SD 1.5 UNet with core's SD VAE and CLIP-L at seeded weights.
TINY_SD15 = "tiny_sd15_random.safetensors"
# The Diffusion² run: core's Image Only Checkpoint Loader is stood in for by core's UNETLoader / CLIPVisionLoader /
# VAELoader on tiny SVD and SV3D_p UNets of core's class, the seeded ViT-H and core's SD VAE (SVD's latent space).
TINY_SVD = "tiny_svd_random.safetensors"
TINY_SV3D = "tiny_sv3d_p_random.safetensors"
SD_VAE = "sd_vae_random.safetensors"
DIFFUSION2_UNETS = {"svd_xt.safetensors": TINY_SVD, "sv3d_p.safetensors": TINY_SV3D}
DIFFUSION2_VIEWS, DIFFUSION2_FRAMES = 2, 3
DIFFUSION2_RUN_OVERRIDES = {
    ("InverseDVS_LoadVideo", "width"): 16,
    ("InverseDVS_LoadVideo", "height"): 16,
    ("SVD_img2vid_Conditioning", "width"): 16,
    ("SVD_img2vid_Conditioning", "height"): 16,
    ("SVD_img2vid_Conditioning", "video_frames"): DIFFUSION2_FRAMES,
    ("SV3D_Conditioning", "width"): 16,
    ("SV3D_Conditioning", "height"): 16,
    ("SV3D_Conditioning", "video_frames"): DIFFUSION2_VIEWS,
    ("KSampler", "steps"): 1,
    ("InverseDVS_Diffusion2Sample", "steps"): 1,
    ("InverseDVS_Diffusion2Sample", "vrs_steps"): 1,
    ("InverseDVS_Diffusion2Pick", "index"): 1,
    # group 4: a few steps of the dynamic Gaussians' fit (the torch rasteriser: ComfyUI runs --cpu), a short orbit
    ("InverseDVS_FitDynamicGaussians", "iterations"): 8,
    ("InverseDVS_FitDynamicGaussians", "warmup"): 5,  # the least direction = auto takes
    ("InverseDVS_FitDynamicGaussians", "gaussians"): 50,
    ("InverseDVS_RenderDynamicGaussians", "frames"): 4,
}
DIFFUSION2_ORBIT_FRAMES = DIFFUSION2_RUN_OVERRIDES[("InverseDVS_RenderDynamicGaussians", "frames")]
DIFFUSION2_PLY_PREFIX = "InverseDVS/diffusion2_4d"  # Save Dynamic Gaussians (PLY)'s filename_prefix in the workflow
DIFFUSION2_OBJECT_PREFIX = "InverseDVS/diffusion2_object"  # Save Dynamic Gaussians' (the reloadable object file)
DIFFUSION2_OBJECT_SUFFIX = ".gaussians4d.safetensors"
HOST_NODES = os.path.join(PACK_ROOT, "tests", "_host_nodes.py")
HOST_NODES_FILE = "inversedvs_host_check_nodes.py"  # its name in custom_nodes/
ENCODER_STAND_INS = {"CLIPTextEncode": ("InverseDVSHostCheck_TinyTextEncode", ("text",))}
ENCODER_LOADERS = ("CLIPLoader",)
SAVERS = ("SaveVideo", "InverseDVS_SaveVideo", "SaveImage")
START_TIMEOUT_S = 240
RUN_TIMEOUT_S = 600
BROWSER_TIMEOUT_S = 90
VIEWPORT = mw.VIEW_SIZE
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")
# The frontend's settings for the check: no first-run template dialog, no minimap, text drawn at any zoom.
FRONTEND_SETTINGS = {"Comfy.TutorialCompleted": True, "Comfy.Minimap.Visible": False,
                     "LiteGraph.Canvas.LowQualityRenderingZoomThreshold": 0.1}
# Smaller work for the full workflow with tiny models: (node type, input) → value, where the input exists.
FULL_RUN_OVERRIDES = {
    ("InverseDVS_LoadVideo", "frame_load_cap"): 9,
    ("InverseDVS_LoadVideo", "width"): 96,
    ("InverseDVS_LoadVideo", "height"): 64,
    ("InverseDVS_CameraTrajectory", "frames"): 9,
    ("InverseDVS_KRNRInvert", "steps"): 4,
    ("InverseDVS_Sample", "steps"): 4,
    ("InverseDVS_KRNRInvert", "window_overlap"): 4,  # the tiny model's window is 9 frames
    ("InverseDVS_DepthEstimate", "model"): TINY_DEPTH_MODEL,
    ("InverseDVS_DepthEstimate", "input_size"): 56,
    ("InverseDVS_LoadVideoModel", "model_folder"): TINY_VIDEO_MODEL,
    ("InverseDVS_LoadVideoModel", "dtype"): "fp32",
    ("InverseDVS_LoadVideoModel", "compile_transformer"): False,
    ("InverseDVS_NativeInvert", "steps"): 4,
    ("InverseDVS_NativeSample", "steps"): 4,
    ("WanImageToVideo", "width"): 96,
    ("WanImageToVideo", "height"): 64,
    ("WanImageToVideo", "length"): 9,
    ("UNETLoader", "unet_name"): TINY_WAN,
    ("VAELoader", "vae_name"): TINY_WAN_VAE,
    ("CLIPVisionLoader", "clip_name"): RANDOM_CLIP_VISION,
}
# The SD 1.5 novel-view workflow with the tiny checkpoint: one image of 96x64, 4 inversion steps.
IMAGE_RUN_OVERRIDES = {
    ("InverseDVS_LoadVideo", "width"): 96,
    ("InverseDVS_LoadVideo", "height"): 64,
    ("InverseDVS_ImageInvert", "steps"): 4,
    ("CheckpointLoaderSimple", "ckpt_name"): TINY_SD15,
}
# Choice values the pack's first version (0.1.0) saved in workflows, and the identifier each is now:
# saved workflows holding them must still validate and run the same.
SAVED_BY_0_1 = {
    ("InverseDVS_LoadVideo", "resize"): {"crop to fill": "crop_to_fill"},
    ("InverseDVS_DepthEstimate", "temporal_alignment"): {"first frame": "first_frame"},
    ("InverseDVS_CameraTrajectory", "preset"): {
        "custom keyframes": "custom_keyframes",
        "still (identity)": "still",
        "orbit left": "orbit_left",
        "orbit right": "orbit_right",
        "arc up": "arc_up",
        "arc down": "arc_down",
        "dolly in": "dolly_in",
        "dolly out": "dolly_out",
        "truck left": "truck_left",
        "truck right": "truck_right",
        "pedestal up": "pedestal_up",
        "pedestal down": "pedestal_down",
        "zoom in": "zoom_in",
        "zoom out": "zoom_out",
        "reference loop1": "reference_loop1",
        "reference loop2": "reference_loop2",
        "reference loop3": "reference_loop3",
        "reference loop4": "reference_loop4",
        "reference oscillating_wave": "reference_oscillating_wave",
        "reference wave1": "reference_wave1",
    },
    ("InverseDVS_ForwardWarp", "depth_kind"): {"relative (white = near)": "relative"},
    ("InverseDVS_KRNRInvert", "inversion_end"): {"terminal (reference)": "terminal"},
    ("InverseDVS_StochasticLatentModulate", "scope"): {"tensor (reference)": "tensor"},
    ("InverseDVS_StochasticLatentModulate", "clean_from"): {"posterior sample (reference)": "posterior_sample",
                                                            "posterior mean": "posterior_mean"},
}
# Inputs the first version saved that the nodes no longer have, with the value it saved: ComfyUI hands a node
# only the inputs it declares, so a saved workflow holding them still runs (Load Video keeps every frame now).
REMOVED_SINCE_0_1 = {("InverseDVS_LoadVideo", "trim_to_4k_plus_1"): True}
# Frames the long-clip workflow loads in the check: more than the tiny model's 9-frame window, not 4k+1, so it is
# padded, run in windows (3 of 3 latent frames) and the padding dropped again.
LONG_RUN_FRAMES = 19
# Frames the native long-clip workflow loads: not 4k+1, so Pad Frames pads them to 21 for core's VAE Encode and the
# ImageFromBatch after VAE Decode drops the padding again (Wan's 81-frame window is too long for a CPU check).
WAN_LONG_RUN_FRAMES = 18
# Choice lists that come from the user's folders: compared by content the check put there.
FOLDER_CHOICES = {
    ("InverseDVS_LoadVideoModel", "model_folder"): (TINY_VIDEO_MODEL,),
    ("InverseDVS_DepthEstimate", "model"): (TINY_DEPTH_MODEL,),
    ("InverseDVS_LoadVideo", "video"): (mw.SAMPLE_VIDEO, mw.SAMPLE_DEPTH_VIDEO),
    ("UNETLoader", "unet_name"): (TINY_WAN, TINY_SVD, TINY_SV3D),
    ("VAELoader", "vae_name"): (TINY_WAN_VAE, SD_VAE),
    ("CLIPVisionLoader", "clip_name"): (RANDOM_CLIP_VISION,),
    ("CheckpointLoaderSimple", "ckpt_name"): (TINY_SD15,),
}


class CheckFailed(Exception):
    pass


def report(ok: bool, what: str, detail: str = "") -> bool:
    print(f"[{'ok' if ok else 'FAIL'}] {what}" + (f": {detail}" if detail else ""), flush=True)
    return ok


# ---------------------------------------------------------------------------- the temporary base directory


def install_pack(custom_nodes: str) -> str:
    """Put the files a ``git clone`` of the pack holds (tracked and new, not ignored) into
    ``custom_nodes/ComfyUI-InverseDVS``, as the README installs it; returns the folder."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                            cwd=PACK_ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    target = os.path.join(custom_nodes, PACK_FOLDER)
    for rel in filter(None, listed):
        source = os.path.join(PACK_ROOT, rel)
        if not os.path.isfile(source):  # deleted in the working tree
            continue
        os.makedirs(os.path.dirname(os.path.join(target, rel)), exist_ok=True)
        shutil.copy2(source, os.path.join(target, rel))
    return target


def make_tiny_models(root: str) -> list[str]:
    """Tiny random-weight model folders of the real layouts under ``root/<kind>/``; returns the kinds."""
    import make_tiny_models as tiny

    pack = load_pack()
    tiny.main([root, "--name", TINY_VIDEO_MODEL])
    tiny_depth = import_module(pack.__name__ + ".warp.tiny_depth")
    tiny_depth.save_tiny_depth_model(os.path.join(root, DEPTH_KIND), TINY_DEPTH_MODEL)
    return sorted(kind for kind in os.listdir(root) if os.path.isdir(os.path.join(root, kind)))


# Run by ComfyUI's Python with $COMFYUI_DIR set, in tests/: core's own classes build the tiny Wan files.
MAKE_TINY_WAN = """
import sys, safetensors.torch, _comfy_host as host, _host_nodes
host.import_comfy()
host.save_tiny_wan(sys.argv[1])
vae = host.wan21_vae()
safetensors.torch.save_file({k: v.contiguous() for k, v in vae.first_stage_model.state_dict().items()}, sys.argv[2])
_host_nodes.save_random_clip_vision_h(sys.argv[3])
host.save_tiny_sd15_checkpoint(sys.argv[4])
host.save_tiny_svd_unet(sys.argv[5], "svd", 0)
host.save_tiny_svd_unet(sys.argv[6], "sv3d_p", 1)
safetensors.torch.save_file({k: v.contiguous() for k, v in host.sd_vae().first_stage_model.state_dict().items()},
                            sys.argv[7])
"""


def make_tiny_wan(root: str, comfyui: str, python: str) -> None:
    """A tiny core WanModel in ``root/diffusion_models/``, core's Wan 2.1 VAE and ViT-H at seeded weights in
    ``root/vae/`` and ``root/clip_vision/``, a tiny SD 1.5 checkpoint in ``root/checkpoints/``, and tiny SVD / SV3D_p
    UNets with core's SD VAE for the Diffusion² run."""
    paths = [os.path.join(root, "diffusion_models", TINY_WAN), os.path.join(root, "vae", TINY_WAN_VAE),
             os.path.join(root, "clip_vision", RANDOM_CLIP_VISION), os.path.join(root, "checkpoints", TINY_SD15),
             os.path.join(root, "diffusion_models", TINY_SVD), os.path.join(root, "diffusion_models", TINY_SV3D),
             os.path.join(root, "vae", SD_VAE)]
    for path in paths:
        os.makedirs(os.path.dirname(path), exist_ok=True)
    done = subprocess.run([python, "-c", MAKE_TINY_WAN, *paths], cwd=os.path.join(PACK_ROOT, "tests"),
                          env=dict(os.environ, COMFYUI_DIR=comfyui), capture_output=True, text=True)
    if done.returncode != 0 or not all(os.path.isfile(p) for p in paths):
        raise CheckFailed(f"could not build the tiny Wan and SD 1.5 files with core's classes:\n{done.stderr[-3000:]}")


def prepare_base(base: str, comfyui: str, python: str) -> str:
    """Fill the temporary base directory; returns the extra_model_paths.yaml path."""
    os.makedirs(os.path.join(base, "custom_nodes"))
    install_pack(os.path.join(base, "custom_nodes"))
    shutil.copy2(HOST_NODES, os.path.join(base, "custom_nodes", HOST_NODES_FILE))
    for sub in ("input", "output", "temp", "models", os.path.join("user", "default")):
        os.makedirs(os.path.join(base, sub), exist_ok=True)
    with open(os.path.join(base, "user", "default", "comfy.settings.json"), "w") as f:
        json.dump(FRONTEND_SETTINGS, f)
    tiny_root = os.path.join(base, "tiny_models")
    make_tiny_wan(tiny_root, comfyui, python)
    kinds = make_tiny_models(tiny_root)
    yaml_path = os.path.join(base, "extra_model_paths.yaml")
    with open(yaml_path, "w") as f:
        f.write("inversedvs_tiny:\n")
        f.write(f"    base_path: {tiny_root}\n")
        for kind in kinds:
            f.write(f"    {kind}: {kind}\n")
    return yaml_path


# ---------------------------------------------------------------------------- ComfyUI over HTTP


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, comfyui: str, python: str, base: str, yaml_path: str, port: int):
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = os.path.join(base, "comfyui.log")
        cmd = [python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
               "--base-directory", base, "--extra-model-paths-config", yaml_path, "--disable-auto-launch",
               "--database-url", "sqlite:///:memory:"]
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=comfyui, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path: str, data: dict, refused: bool = False):
        """POST JSON; the answer. With ``refused``, the answer of an HTTP 400 (anything else fails)."""
        req = urllib.request.Request(self.url + path, data=json.dumps(data).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                answer = json.loads(r.read())
        except urllib.error.HTTPError as e:
            body = e.read().decode(errors="replace")
            if refused and e.code == 400:
                return json.loads(body)
            raise CheckFailed(f"POST {path}: HTTP {e.code}: {body[:2000]}")
        if refused:
            raise CheckFailed(f"POST {path} was accepted: {json.dumps(answer)[:500]}")
        return answer

    def output_nodes(self, prompt: dict) -> list[str]:
        """Ids of the prompt's output nodes (what ComfyUI runs a prompt for)."""
        if not hasattr(self, "_object_info"):
            self._object_info = self.get("/object_info")
        return [k for k, n in prompt.items() if self._object_info[n["class_type"]].get("output_node")]

    def wait_ready(self) -> None:
        deadline = time.time() + START_TIMEOUT_S
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise CheckFailed(f"ComfyUI exited with {self.proc.returncode}; log:\n{self.log()[-4000:]}")
            try:
                self.get("/system_stats")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.5)
        raise CheckFailed(f"ComfyUI did not answer within {START_TIMEOUT_S} s")

    def run_until_done(self, prompt: dict, timeout: float = RUN_TIMEOUT_S) -> dict:
        """Queue an API-format prompt (every output node accepted) and return its finished history entry."""
        answer = self.post("/prompt", {"prompt": prompt, "client_id": "inversedvs-host-check"})
        if answer.get("node_errors"):
            raise CheckFailed(f"prompt rejected: {json.dumps(answer['node_errors'])[:2000]}")
        prompt_id = answer["prompt_id"]
        deadline = time.time() + timeout
        while time.time() < deadline:
            history = self.get(f"/history/{prompt_id}")
            entry = history.get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None and (
                    entry["status"].get("status_str") in ("success", "error")):
                return entry
            if self.proc.poll() is not None:
                raise CheckFailed(f"ComfyUI exited while running; log:\n{self.log()[-4000:]}")
            time.sleep(0.5)
        raise CheckFailed(f"the prompt did not finish within {timeout:.0f} s")

    def run_prompt(self, prompt: dict, timeout: float = RUN_TIMEOUT_S) -> dict:
        """Run a prompt to success with every one of its output nodes executed; its history entry."""
        entry = self.run_until_done(prompt, timeout)
        if entry["status"]["status_str"] != "success":
            errors = execution_errors(entry)
            detail = "; ".join(f"{e.get('node_type')}: {e.get('exception_message', '').strip()}" for e in errors)
            raise CheckFailed(f"execution failed: {detail or entry['status']}")
        expected = self.output_nodes(prompt)
        queued = set(entry["prompt"][4])  # the output nodes ComfyUI accepted to run
        missing = [f"{k} ({prompt[k]['class_type']})" for k in expected
                   if k not in queued or not entry["outputs"].get(k)]
        if missing:
            raise CheckFailed(f"reported success, but these output nodes did not run: {', '.join(missing)}")
        return entry

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


def execution_errors(entry: dict) -> list[dict]:
    """The execution_error messages of a history entry (node_type, exception_type, exception_message, …)."""
    return [m[1] for m in entry["status"].get("messages", []) if m[0] == "execution_error"]


# ---------------------------------------------------------------------------- checks


def check_import_log(server: Server) -> None:
    log = server.log()
    bad = [line for line in log.splitlines()
           if PACK_FOLDER in line and ("IMPORT FAILED" in line or "Cannot import" in line)]
    if bad or f"custom_nodes/{PACK_FOLDER}" not in log:
        raise CheckFailed("the pack did not import:\n" + "\n".join(bad or [log[-3000:]]))


def _normalise(value):
    return json.loads(json.dumps(value))


def check_object_info(server: Server) -> int:
    """Every pack node as its class says; the allowed core nodes as CORE_NODES says. Returns the node count."""
    pack = load_pack()
    info = server.get("/object_info")
    problems = []
    for node_type, cls in pack.NODE_CLASS_MAPPINGS.items():
        entry = info.get(node_type)
        if entry is None:
            problems.append(f"{node_type} missing")
            continue
        expected = _normalise(cls.INPUT_TYPES())
        for section in ("required", "optional"):
            got_inputs = entry["input"].get(section, {})
            want_inputs = expected.get(section, {})
            if list(got_inputs) != list(want_inputs):
                problems.append(f"{node_type}.{section}: inputs {list(got_inputs)} != {list(want_inputs)}")
                continue
            for name, want in want_inputs.items():
                got = got_inputs[name]
                folder = FOLDER_CHOICES.get((node_type, name))
                if folder is not None:
                    missing = [c for c in folder if c not in got[0]]
                    if missing:
                        problems.append(f"{node_type}.{name}: ComfyUI does not list {missing} (has {got[0]})")
                    got, want = [None] + got[1:], [None] + want[1:]
                if got != want:
                    problems.append(f"{node_type}.{name}: {json.dumps(got)[:300]} != {json.dumps(want)[:300]}")
        outputs = list(cls.RETURN_TYPES)
        names = list(getattr(cls, "RETURN_NAMES", outputs))
        if entry["output"] != outputs or entry["output_name"] != names:
            problems.append(f"{node_type}: outputs {entry['output']}/{entry['output_name']} != {outputs}/{names}")
        if entry["display_name"] != pack.NODE_DISPLAY_NAME_MAPPINGS[node_type]:
            problems.append(f"{node_type}: display name {entry['display_name']!r}")
    for node_type, spec in mw.CORE_NODES.items():
        entry = info.get(node_type)
        if entry is None:
            problems.append(f"core node {node_type} missing")
            continue
        core = mw.spec_from_input_types(node_type, "", entry["input"], entry["output"], entry["output_name"])
        mine = mw.spec_from_input_types(node_type, "", spec["input"], spec["output"], spec["output_name"])
        for a, b in zip(core.inputs, mine.inputs):
            keys = set(b.options) & {"default", "min", "max", "step"}
            choices = b.choices
            if (node_type, b.name) in mw.CORE_FOLDER_INPUTS:  # lists the folder: the files the check put there
                choices = a.choices
                missing = [c for c in FOLDER_CHOICES.get((node_type, b.name), ()) if c not in a.choices]
                if missing:
                    problems.append(f"core {node_type}.{b.name}: ComfyUI does not list {missing} (has {a.choices})")
            if (a.name, a.type, a.required, a.choices) != (b.name, b.type, b.required, choices) or any(
                    a.options.get(k) != b.options.get(k) for k in keys):
                problems.append(f"core {node_type}.{b.name}: ComfyUI has {a}, make_workflows has {b}")
        if len(core.inputs) != len(mine.inputs) or core.outputs != mine.outputs:
            problems.append(f"core {node_type}: inputs/outputs differ from make_workflows.CORE_NODES")
    if problems:
        raise CheckFailed("\n  ".join(problems))
    return len(pack.NODE_CLASS_MAPPINGS)


def check_templates(server: Server, names: list[str]) -> None:
    served = server.get("/api/workflow_templates").get(PACK_FOLDER, [])
    missing = sorted(set(names) - set(served))
    if missing:
        raise CheckFailed(f"not served as templates: {missing} (served: {served})")
    for name in names:
        with open(os.path.join(mw.WORKFLOW_DIR, name + ".json"), encoding="utf-8") as f:
            if server.get(f"/api/workflow_templates/{PACK_FOLDER}/{name}.json") != json.load(f):
                raise CheckFailed(f"the served template {name}.json differs from the file")
        with urllib.request.urlopen(f"{server.url}/api/workflow_templates/{PACK_FOLDER}/{name}.jpg", timeout=30) as r:
            if r.read(3) != b"\xff\xd8\xff":
                raise CheckFailed(f"the thumbnail {name}.jpg is not served as a JPEG")


def load_api(name: str) -> dict:
    with open(os.path.join(mw.API_DIR, name + ".json"), encoding="utf-8") as f:
        return json.load(f)


def apply_overrides(prompt: dict, overrides: dict) -> dict:
    prompt = json.loads(json.dumps(prompt))
    for node in prompt.values():
        for (node_type, name), value in overrides.items():
            if node["class_type"] == node_type and name in node["inputs"] and not isinstance(
                    node["inputs"][name], list):
                node["inputs"][name] = value
    return prompt


def saved_videos(entry: dict, output_dir: str) -> dict[str, tuple[str, int, str]]:
    """Node id → (path, frames, digest of the decoded frames) of every video a finished prompt wrote
    into the output folder."""
    import hashlib

    import av

    found = {}
    for node_id, outputs in entry.get("outputs", {}).items():
        for item in outputs.get("images", []) + outputs.get("videos", []):
            if item.get("type") != "output":
                continue
            path = os.path.join(output_dir, item.get("subfolder", ""), item["filename"])
            if not os.path.isfile(path) or os.path.getsize(path) == 0:
                raise CheckFailed(f"{path} was reported but not written")
            digest = hashlib.sha256()
            frames = 0
            with av.open(path) as container:
                for frame in container.decode(video=0):
                    digest.update(frame.to_ndarray(format="rgb24").tobytes())
                    frames += 1
            found[node_id] = (os.path.relpath(path, output_dir), frames, digest.hexdigest())
    return found


def check_run(server: Server, name: str, base: str, overrides: dict | None = None,
              prompt: dict | None = None) -> tuple[str, dict]:
    """Run workflow ``name`` (or ``prompt``); the report line and its videos (``saved_videos``)."""
    prompt = prompt or apply_overrides(load_api(name), overrides or {})
    savers = [k for k, n in prompt.items() if n["class_type"] in SAVERS]
    start = time.time()
    entry = server.run_prompt(prompt)
    seconds = time.time() - start
    videos = saved_videos(entry, os.path.join(base, "output"))
    if sorted(videos) != sorted(savers):
        raise CheckFailed(f"Save Video nodes {savers} but videos written by {sorted(videos)}")
    empty = [v for v in videos.values() if v[1] == 0]
    if empty:
        raise CheckFailed(f"videos without frames: {empty}")
    line = (f"{seconds:.1f} s, all {len(server.output_nodes(prompt))} output nodes ran, wrote "
            + ", ".join(f"{p} ({n} frames)" for p, n, _ in videos.values()))
    return line, videos


def with_encoder_stand_ins(prompt: dict) -> tuple[dict, int]:
    """The prompt with core's text / vision encode nodes swapped for the host check's stand-ins and their loaders
    left out; the number of nodes swapped."""
    prompt = json.loads(json.dumps(prompt))
    swapped = 0
    for node in prompt.values():
        stand_in = ENCODER_STAND_INS.get(node["class_type"])
        if stand_in is not None:
            node["class_type"] = stand_in[0]
            node["inputs"] = {name: node["inputs"][name] for name in stand_in[1]}
            swapped += 1
    prompt = {k: n for k, n in prompt.items() if n["class_type"] not in ENCODER_LOADERS}
    dangling = [f"{k}.{name}" for k, n in prompt.items() for name, v in n["inputs"].items()
                if isinstance(v, list) and v[0] not in prompt]
    if dangling:
        raise CheckFailed(f"inputs left without their source: {dangling}")
    return prompt, swapped


def check_wan_run(server: Server, name: str, base: str) -> str:
    """The Wan workflow through POST /prompt: core's UNETLoader / VAELoader / CLIPVisionLoader / CLIPVisionEncode /
    VAEEncode / WanImageToVideo / VAEDecode on the tiny and seeded files, the text encoder swapped for a stand-in."""
    prompt, swapped = with_encoder_stand_ins(apply_overrides(load_api(name), FULL_RUN_OVERRIDES))
    if swapped != 3:
        raise CheckFailed(f"{name}: {swapped} text encode nodes swapped, expected 3 (prompt, negative, empty)")
    line, videos = check_run(server, name, base, prompt=prompt)
    frames = {n for _, n, _ in videos.values()}
    want = FULL_RUN_OVERRIDES[("WanImageToVideo", "length")]
    if frames != {want}:
        raise CheckFailed(f"{name}: wrote videos of {frames} frames, expected {want}")
    return (f"core loaders on {TINY_WAN}, {TINY_WAN_VAE} and {RANDOM_CLIP_VISION}, {swapped} text encode nodes "
            f"stood in for; {line}")


def check_wan_long_run(server: Server, name: str, base: str) -> str:
    """The native long-clip workflow on WAN_LONG_RUN_FRAMES frames through core's loaders: every saved video has
    exactly that many frames."""
    overrides = {**FULL_RUN_OVERRIDES, ("InverseDVS_LoadVideo", "frame_load_cap"): WAN_LONG_RUN_FRAMES}
    prompt, swapped = with_encoder_stand_ins(apply_overrides(load_api(name), overrides))
    line, videos = check_run(server, name, base, prompt=prompt)
    frames = {n for _, n, _ in videos.values()}
    if frames != {WAN_LONG_RUN_FRAMES}:
        raise CheckFailed(f"{name}: wrote videos of {frames} frames, expected {WAN_LONG_RUN_FRAMES}")
    return f"{WAN_LONG_RUN_FRAMES} frames padded to 21 for core's VAE Encode and cut back after decoding; {line}"


def check_image_run(server: Server, name: str, base: str) -> str:
    """The SD 1.5 novel-view workflow through POST /prompt: core's Load Checkpoint / CLIP Text Encode / VAE Encode /
    VAE Decode / Save Image on the tiny checkpoint, one image in, one new view saved."""
    line, images = check_run(server, name, base, IMAGE_RUN_OVERRIDES)
    if {n for _, n, _ in images.values()} != {1}:
        raise CheckFailed(f"{name}: saved {images}, expected one image")
    return f"core's Load Checkpoint on {TINY_SD15}, real CLIP Text Encode; {line}"


def with_checkpoint_stand_ins(prompt: dict) -> tuple[dict, int]:
    """The prompt with each Image Only Checkpoint Loader replaced by core's UNETLoader (its tiny UNet), CLIPVisionLoader
    (the seeded ViT-H) and VAELoader (core's SD VAE) wired to its MODEL / CLIP_VISION / VAE outputs."""
    prompt = json.loads(json.dumps(prompt))
    loaders = [k for k, n in prompt.items() if n["class_type"] == "ImageOnlyCheckpointLoader"]
    for key in loaders:
        unet = DIFFUSION2_UNETS[prompt.pop(key)["inputs"]["ckpt_name"]]
        parts = [(f"{key}_unet", "UNETLoader", {"unet_name": unet, "weight_dtype": "default"}),
                 (f"{key}_clip_vision", "CLIPVisionLoader", {"clip_name": RANDOM_CLIP_VISION}),
                 (f"{key}_vae", "VAELoader", {"vae_name": SD_VAE})]
        for node in prompt.values():
            for name, value in node["inputs"].items():
                if isinstance(value, list) and value[0] == key:
                    node["inputs"][name] = [parts[value[1]][0], 0]
        for new_key, class_type, inputs in parts:
            prompt[new_key] = {"class_type": class_type, "inputs": inputs}
    return prompt, len(loaders)


def ply_vertex_count(path: str) -> int:
    """The ``element vertex N`` a PLY file's header declares; CheckFailed when it is no PLY file or declares none."""
    with open(path, "rb") as f:
        data = f.read(4096)
    if not data.startswith(b"ply\n"):
        raise CheckFailed(f"{path} does not start with b'ply\\n' (starts {data[:16]!r})")
    header = data.split(b"end_header", 1)[0].decode("ascii", "replace").splitlines()
    counts = [line.split()[2] for line in header if line.startswith("element vertex ") and len(line.split()) == 3]
    if not counts or not counts[0].isdigit():
        raise CheckFailed(f"{path}: no 'element vertex N' in its header {header[:12]}")
    return int(counts[0])


def saved_outputs(base: str, prefix: str, suffix: str = ".ply") -> set[str]:
    """Paths, relative to the output folder, of the files ending in ``suffix`` saved under ``prefix`` (by default
    the PLY files Save Dynamic Gaussians (PLY) writes)."""
    folder, name = os.path.split(prefix)
    found = os.path.join(base, "output", folder)
    if not os.path.isdir(found):
        return set()
    return {f"{folder}/{entry}" for entry in os.listdir(found)
            if entry.startswith(name + "_") and entry.endswith(suffix)}


def check_diffusion2_run(server: Server, name: str, base: str) -> str:
    """The Diffusion² workflow through POST /prompt at 2 views x 3 frames of 16x16: core's SVD / SV3D conditioning and
    KSampler on the tiny UNets make the reference video and orbit, the sampler the matrix; a view's video is saved;
    dynamic Gaussians fitted to the matrix give an orbit video of DIFFUSION2_ORBIT_FRAMES frames and one PLY file per
    matrix frame."""
    prompt, swapped = with_checkpoint_stand_ins(apply_overrides(load_api(name), DIFFUSION2_RUN_OVERRIDES))
    if swapped != 2:
        raise CheckFailed(f"{name}: {swapped} Image Only Checkpoint Loaders stood in for, expected 2 (SVD, SV3D)")
    ply_savers = [k for k, n in prompt.items() if n["class_type"] == "InverseDVS_SaveDynamicGaussians"]
    if [prompt[k]["inputs"]["filename_prefix"] for k in ply_savers] != [DIFFUSION2_PLY_PREFIX]:
        raise CheckFailed(f"{name}: Save Dynamic Gaussians (PLY) nodes {ply_savers}, expected one saving "
                          f"{DIFFUSION2_PLY_PREFIX}")
    before = saved_outputs(base, DIFFUSION2_PLY_PREFIX)
    objects_before = saved_outputs(base, DIFFUSION2_OBJECT_PREFIX, DIFFUSION2_OBJECT_SUFFIX)
    line, saved = check_run(server, name, base, prompt=prompt)
    frames = sorted(n for _, n, _ in saved.values())
    if frames != sorted([1, DIFFUSION2_FRAMES, DIFFUSION2_ORBIT_FRAMES]):
        raise CheckFailed(f"{name}: saved {saved}, expected the grid, a view's video of {DIFFUSION2_FRAMES} frames and "
                          f"the 4D orbit video of {DIFFUSION2_ORBIT_FRAMES}")
    orbit = [k for k, n in prompt.items() if n["class_type"] == "SaveVideo"
             and n["inputs"]["filename_prefix"].endswith("_4d_orbit")]
    if len(orbit) != 1 or saved[orbit[0]][1] != DIFFUSION2_ORBIT_FRAMES:
        raise CheckFailed(f"{name}: the 4D orbit video {[saved.get(k) for k in orbit]} has not "
                          f"{DIFFUSION2_ORBIT_FRAMES} frames (Render Dynamic Gaussians' frames)")
    plys = sorted(saved_outputs(base, DIFFUSION2_PLY_PREFIX) - before)
    if len(plys) != DIFFUSION2_FRAMES:
        raise CheckFailed(f"{name}: Save Dynamic Gaussians (PLY) wrote {plys} under output/, expected "
                          f"{DIFFUSION2_FRAMES} files (one per matrix frame)")
    vertices = [ply_vertex_count(os.path.join(base, "output", p)) for p in plys]
    if min(vertices) <= 0:
        raise CheckFailed(f"{name}: PLY files without Gaussians: {dict(zip(plys, vertices))}")
    objects = sorted(saved_outputs(base, DIFFUSION2_OBJECT_PREFIX, DIFFUSION2_OBJECT_SUFFIX) - objects_before)
    if len(objects) != 1:
        raise CheckFailed(f"{name}: Save Dynamic Gaussians wrote {objects}, expected one {DIFFUSION2_OBJECT_SUFFIX}")
    return (f"{DIFFUSION2_VIEWS} views x {DIFFUSION2_FRAMES} frames on {TINY_SVD} / {TINY_SV3D} through core's "
            f"UNETLoader, {RANDOM_CLIP_VISION} and {SD_VAE} in place of the 2 checkpoint loaders; {line}; "
            f"{len(plys)} PLY files ({', '.join(plys)}) of {'/'.join(map(str, vertices))} Gaussians, {objects[0]}")


def check_long_run(server: Server, name: str, base: str) -> str:
    """The long-clip workflow on LONG_RUN_FRAMES frames: every saved video has exactly that many frames."""
    overrides = {**FULL_RUN_OVERRIDES, ("InverseDVS_LoadVideo", "frame_load_cap"): LONG_RUN_FRAMES}
    line, videos = check_run(server, name, base, overrides)
    frames = {n for _, n, _ in videos.values()}
    if frames != {LONG_RUN_FRAMES}:
        raise CheckFailed(f"{name}: wrote videos of {frames} frames, expected {LONG_RUN_FRAMES}")
    return f"{LONG_RUN_FRAMES} frames in windows of the tiny model's 9; {line}"


def check_samples_installed(base: str) -> str:
    """The pack put its sample clips into the (empty) input folder, as they are in samples/."""
    samples = import_module(load_pack().__name__ + ".nodes._samples")
    for name in samples.SAMPLE_FILES:
        path = os.path.join(base, "input", name)
        if not os.path.isfile(path):
            raise CheckFailed(f"the pack did not put {name} into ComfyUI's input folder")
        with open(path, "rb") as got, open(os.path.join(samples.SAMPLE_DIR, name), "rb") as want:
            if got.read() != want.read():
                raise CheckFailed(f"input/{name} differs from samples/{name}")
    return ", ".join(samples.SAMPLE_FILES)


def with_saved_values(prompt: dict) -> tuple[dict, int]:
    """The prompt with every choice value the first version saved under another name written that way, and the
    inputs it saved that are gone put back."""
    prompt = json.loads(json.dumps(prompt))
    changed = 0
    for node in prompt.values():
        for (node_type, name), renamed in SAVED_BY_0_1.items():
            old = {new: old for old, new in renamed.items()}.get(node["inputs"].get(name))
            if node["class_type"] == node_type and old is not None:
                node["inputs"][name] = old
                changed += 1
        for (node_type, name), value in REMOVED_SINCE_0_1.items():
            if node["class_type"] == node_type:
                node["inputs"][name] = value
                changed += 1
    return prompt, changed


def check_saved_values(server: Server, name: str, base: str, videos: dict) -> str:
    """The workflow as the first version saved it validates, runs and writes the very same frames."""
    prompt, changed = with_saved_values(apply_overrides(load_api(name), FULL_RUN_OVERRIDES))
    if changed < 5:
        raise CheckFailed(f"only {changed} saved values to try in {name}")
    line, old_videos = check_run(server, name, base, prompt=prompt)
    differ = [videos[k][0] for k in videos if old_videos[k][2] != videos[k][2]]
    if differ:
        raise CheckFailed(f"with the saved values, other frames than with the identifiers: {differ}")
    return f"{changed} old choice values accepted, the same frames as with the identifiers; {line}"


def check_unknown_choice_refused(server: Server, name: str) -> str:
    prompt = load_api(name)
    node_id = next(k for k, n in prompt.items() if n["class_type"] == "InverseDVS_CameraTrajectory")
    prompt[node_id]["inputs"]["preset"] = "orbit sideways"
    answer = server.post("/prompt", {"prompt": prompt}, refused=True)
    errors = answer.get("node_errors", {}).get(node_id, {}).get("errors", [])
    if not any(e.get("type") == "value_not_in_list" for e in errors):
        raise CheckFailed(f"an unknown preset was not refused as not in the list: {json.dumps(answer)[:1000]}")
    return "preset 'orbit sideways' refused by ComfyUI's own check (value_not_in_list)"


def check_error_title(server: Server) -> str:
    """A bad input stops the prompt with an error ComfyUI's dialog titles 'InverseDVS error'."""
    title = import_module(load_pack().__name__ + ".errors").ERROR_TITLE
    prompt = {
        "1": {"class_type": "InverseDVS_CameraTrajectory",
              "inputs": {"preset": "custom_keyframes", "keyframes": "up a bit\nthen left", "frames": 9,
                         "radius_scale": 1.0, "anchor_frame": 0, "fov_x_deg": 60.0, "amount": 1.0}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 1]}},
    }
    entry = server.run_until_done(prompt)
    errors = execution_errors(entry)
    if entry["status"]["status_str"] != "error" or len(errors) != 1:
        raise CheckFailed(f"bad keyframes did not stop the prompt with one error: {entry['status']}")
    error = errors[0]
    if error.get("exception_type") != title or error.get("node_type") != "InverseDVS_CameraTrajectory":
        raise CheckFailed(f"the dialog would show {error.get('exception_type')!r} for {error.get('node_type')}")
    message = error.get("exception_message", "")
    if not message.startswith("Camera Trajectory"):
        raise CheckFailed(f"unexpected message: {message!r}")
    return f"{title}: {message.strip()[:100]}"


# ---------------------------------------------------------------------------- the frontend in Chromium

BROWSER_CHECK_JS = r"""
async (workflow, api, userFiles) => {
  const problems = [];
  const missing = workflow.nodes.map(n => n.type).filter(t => !LiteGraph.registered_node_types[t]);
  if (missing.length) problems.push('missing node types: ' + [...new Set(missing)].join(', '));
  await app.loadGraphData(structuredClone(workflow), true, true, workflow.__name);
  await new Promise(r => setTimeout(r, 500));
  const graph = app.graph;
  const saved = graph.serialize();
  for (const node of workflow.nodes) {
    const live = graph.getNodeById(node.id);
    if (!live) { problems.push(`node ${node.id} (${node.type}) not created`); continue; }
    if (live.type !== node.type) problems.push(`node ${node.id}: type ${live.type}`);
    const out = saved.nodes.find(n => n.id === node.id);
    const want = JSON.stringify(node.widgets_values ?? []);
    const got = JSON.stringify(out.widgets_values ?? []);
    if (want !== got) problems.push(`node ${node.id} (${node.type}) widgets ${got} != file ${want}`);
    const values = (live.widgets ?? []).filter(w => w.options?.values && Array.isArray(w.options.values)
        && w.name !== 'control_after_generate' && w.type === 'combo');
    for (const w of values) {
      if (userFiles.includes(`${node.type}.${w.name}`)) continue;  // lists the user's own model folders
      if (!w.options.values.includes(w.value)) problems.push(`node ${node.id} ${w.name}: '${w.value}' not offered`);
    }
    const [minW, minH] = live.computeSize();
    const media = (live.widgets ?? []).some(w => w.name.endsWith('-preview'));  // sized by the file it shows
    if (!media && (node.size[0] + 1 < minW || node.size[1] + 1 < minH))
      problems.push(`node ${node.id} (${node.type}) size ${node.size} smaller than needed ${[minW, minH]}`);
    if (live.has_errors) problems.push(`node ${node.id} has errors`);
  }
  if (saved.links.length !== workflow.links.length) problems.push(`links ${saved.links.length} != ${workflow.links.length}`);
  for (const link of workflow.links) {
    const l = graph.links instanceof Map ? graph.links.get(link[0]) : graph.links[link[0]];
    if (!l || l.origin_id !== link[1] || l.origin_slot !== link[2] || l.target_id !== link[3]
        || l.target_slot !== link[4] || l.type !== link[5]) problems.push(`link ${link[0]} differs: ${JSON.stringify(l)}`);
  }
  const prompt = (await app.graphToPrompt()).output;
  for (const [id, entry] of Object.entries(prompt)) {  // frontend-only widgets (a loader's preview) are not inputs
    const def = graph.getNodeById(Number(id))?.constructor?.nodeData?.input ?? {};
    const known = new Set([...Object.keys(def.required ?? {}), ...Object.keys(def.optional ?? {})]);
    for (const name of Object.keys(entry.inputs)) if (!known.has(name) && !(name in (api[id]?.inputs ?? {}))) delete entry.inputs[name];
  }
  const norm = p => JSON.stringify(Object.keys(p).sort((a, b) => a - b).map(k =>
      [k, p[k].class_type, Object.keys(p[k].inputs).sort().map(i => [i, p[k].inputs[i]])]));
  if (norm(prompt) !== norm(api)) problems.push('graphToPrompt differs from the API twin: ' + norm(prompt).slice(0, 3000));
  const dialogs = [...document.querySelectorAll('.p-dialog')].map(d => d.innerText.slice(0, 300));
  if (dialogs.length) problems.push('dialogs open: ' + dialogs.join(' | '));
  app.canvas.ds.scale = workflow.extra.ds.scale;
  app.canvas.ds.offset = workflow.extra.ds.offset;
  app.canvas.setDirty(true, true);
  app.canvas.draw(true, true);
  return problems;
}
"""


class Browser:
    """Headless Chromium driven over the DevTools protocol (aiohttp websockets, which ComfyUI installs)."""

    def __init__(self, executable: str, profile: str):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--remote-debugging-port={self.port}",
             f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self._ids = itertools.count(1)
        self.console_errors: list[str] = []

    async def connect(self, session) -> None:
        deadline = time.time() + 30
        while True:
            try:
                async with session.get(f"http://127.0.0.1:{self.port}/json/list") as r:
                    pages = [t for t in await r.json() if t["type"] == "page"]
                if pages:
                    break
            except Exception:
                pass
            if time.time() > deadline:
                raise CheckFailed("Chromium did not start")
            await asyncio.sleep(0.2)
        self.ws = await session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)

    async def call(self, method: str, **params):
        call_id = next(self._ids)
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        while True:
            message = await self.ws.receive_json()
            if message.get("method") == "Runtime.exceptionThrown":
                self.console_errors.append(message["params"]["exceptionDetails"].get("text", ""))
            if message.get("id") == call_id:
                if "error" in message:
                    raise CheckFailed(f"{method}: {message['error']}")
                return message["result"]

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in result:
            raise CheckFailed(f"page script failed: {json.dumps(result['exceptionDetails'])[:2000]}")
        return result["result"].get("value")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


async def run_in_frontend(browser: Browser, server: Server) -> float:
    """Queue the loaded workflow as the Run button does and wait until its previews are shown."""
    start = time.time()
    before = len(server.get("/history"))
    await browser.evaluate("app.queuePrompt(0, 1)")
    while len(server.get("/history")) == before or server.get("/queue")["queue_running"]:
        if time.time() - start > RUN_TIMEOUT_S:
            raise CheckFailed("the workflow queued from the frontend did not finish")
        await asyncio.sleep(0.5)
    entry = list(server.get("/history").values())[-1]
    if entry["status"].get("status_str") != "success":
        raise CheckFailed(f"the workflow queued from the frontend failed: {entry['status']}")
    await asyncio.sleep(2.0)  # previews arrive over the websocket
    return time.time() - start


async def browser_checks(server: Server, executable: str, names: list[str], screenshot_dir: str | None,
                         profile: str, run_in_browser: tuple[str, ...] = ()) -> list[str]:
    import aiohttp

    browser = Browser(executable, profile)
    lines = []
    try:
        async with aiohttp.ClientSession() as session:
            await browser.connect(session)
            await browser.call("Page.enable")
            await browser.call("Runtime.enable")
            await browser.call("Emulation.setDeviceMetricsOverride", width=VIEWPORT[0], height=VIEWPORT[1],
                               deviceScaleFactor=1, mobile=False)
            await browser.call("Page.navigate", url=server.url + "/")
            deadline = time.time() + BROWSER_TIMEOUT_S
            while not await browser.evaluate("!!(window.app && window.app.graph && window.LiteGraph "
                                             "&& LiteGraph.registered_node_types['InverseDVS_Sample'])"):
                if time.time() > deadline:
                    raise CheckFailed("the frontend did not come up")
                await asyncio.sleep(0.5)
            await asyncio.sleep(1.0)
            for name in names:
                with open(os.path.join(mw.WORKFLOW_DIR, name + ".json"), encoding="utf-8") as f:
                    workflow = json.load(f)
                workflow["__name"] = name + ".json"
                user_files = [f"{t}.{n}" for t, n in [*FOLDER_CHOICES, *mw.CORE_FOLDER_INPUTS]
                              if t != "InverseDVS_LoadVideo"]
                problems = await browser.evaluate(
                    f"({BROWSER_CHECK_JS})({json.dumps(workflow)}, {json.dumps(load_api(name))}, "
                    f"{json.dumps(user_files)})")
                if problems:
                    raise CheckFailed(f"{name} in the frontend:\n  " + "\n  ".join(problems))
                line = f"{name}: loads with no missing node or widget error, converts to its API twin"
                if name in run_in_browser:
                    seconds = await run_in_frontend(browser, server)
                    line += f", runs from the Run button in {seconds:.1f} s"
                if screenshot_dir:
                    await asyncio.sleep(0.5)
                    shot = await browser.call("Page.captureScreenshot", format="png")
                    path = os.path.join(screenshot_dir, f"{name}.png")
                    with open(path, "wb") as f:
                        f.write(base64.b64decode(shot["data"]))
                    line += f", screenshot {os.path.relpath(path, PACK_ROOT)}"
                lines.append(line)
    finally:
        browser.stop()
    return lines


# ---------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui", default=os.environ.get("COMFYUI_DIR"), help="ComfyUI checkout ($COMFYUI_DIR)")
    parser.add_argument("--python", default=os.environ.get("COMFYUI_PYTHON", sys.executable),
                        help="Python that runs ComfyUI (default: this one, or $COMFYUI_PYTHON)")
    parser.add_argument("--browser", default=os.environ.get("INVERSEDVS_BROWSER", shutil.which("chromium") or ""),
                        help="Chromium executable for the frontend check; 'none' skips it")
    parser.add_argument("--screenshots", default=os.path.join(PACK_ROOT, "docs"),
                        help="folder for the frontend screenshots ('none': keep none)")
    parser.add_argument("--skip-full", action="store_true", help="do not run the full workflow")
    parser.add_argument("--keep", action="store_true", help="keep the temporary base directory")
    args = parser.parse_args(argv)
    if not args.comfyui or not os.path.isfile(os.path.join(args.comfyui, "main.py")):
        print("give a ComfyUI checkout with --comfyui or COMFYUI_DIR", file=sys.stderr)
        return 2

    names = [flow.name for flow in mw.workflows()]
    geometry, full, sweep, wan, long_clip, image, wan_long, diffusion2 = names
    base = tempfile.mkdtemp(prefix="inversedvs_host_")
    server = None
    ok = True
    try:
        yaml_path = prepare_base(base, os.path.abspath(args.comfyui), args.python)
        report(True, "temporary ComfyUI base", base)
        server = Server(os.path.abspath(args.comfyui), args.python, base, yaml_path, free_port())
        server.wait_ready()
        report(True, "ComfyUI started", server.url)
        check_import_log(server)
        report(True, "pack imported", "no import error in the log")
        report(True, "sample clips", check_samples_installed(base) + " put into the empty input folder")
        count = check_object_info(server)
        report(True, "/object_info", f"{count} pack nodes match their classes; core nodes match CORE_NODES")
        check_templates(server, names)
        report(True, "templates", f"{len(names)} workflows served under {PACK_FOLDER}")
        report(True, f"run {geometry}", check_run(server, geometry, base)[0])
        report(True, "unknown choice", check_unknown_choice_refused(server, geometry))
        report(True, "error dialog", check_error_title(server))
        if not args.skip_full:
            line, videos = check_run(server, full, base, FULL_RUN_OVERRIDES)
            report(True, f"run {full} (tiny models)", line)
            report(True, f"run {full} as first saved", check_saved_values(server, full, base, videos))
            report(True, f"run {sweep} (tiny models)", check_run(server, sweep, base, FULL_RUN_OVERRIDES)[0])
            report(True, f"run {wan} (tiny Wan)", check_wan_run(server, wan, base))
            report(True, f"run {long_clip} (tiny models)", check_long_run(server, long_clip, base))
            report(True, f"run {image} (tiny SD 1.5)", check_image_run(server, image, base))
            report(True, f"run {wan_long} (tiny Wan)", check_wan_long_run(server, wan_long, base))
            report(True, f"run {diffusion2} (tiny SVD / SV3D)", check_diffusion2_run(server, diffusion2, base))
        if args.browser and args.browser != "none":
            shots = None if args.screenshots == "none" else args.screenshots
            if shots:
                os.makedirs(shots, exist_ok=True)
            lines = asyncio.run(browser_checks(server, args.browser, names, shots, os.path.join(base, "chromium"),
                                               run_in_browser=(geometry,)))
            for line in lines:
                report(True, "frontend", line)
    except CheckFailed as e:
        ok = report(False, "host check", str(e))
    finally:
        if server is not None:
            server.stop()
            if not ok:
                print("---- ComfyUI log (tail) ----\n" + server.log()[-6000:])
        if args.keep:
            print("kept", base)
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
