"""Build the example workflows in ``workflows/`` from compact graph descriptions and the live node specs.

Every widget, socket and type comes from the registered nodes' ``INPUT_TYPES`` / ``RETURN_TYPES``
(the pack loaded the way ComfyUI loads it), so the files follow the nodes whenever they change:

    python scripts/make_workflows.py            # write workflows/*.json and workflows/api/*.json
    python scripts/make_workflows.py --check    # exit 1 when a committed file differs from the output
    python scripts/make_workflows.py --thumbnails   # also redraw workflows/<name>.jpg from the pack's output
    python scripts/make_workflows.py --samples      # also render the sample clips in samples/ again

Two files per workflow: ``workflows/<name>.json`` in ComfyUI's UI format (what an artist drags onto
the canvas; ComfyUI lists it in its Templates browser with ``<name>.jpg`` beside it) and
``workflows/api/<name>.json`` in the API format that ``POST /prompt`` takes.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pack import PACK_ROOT, load_pack  # noqa: E402

WORKFLOW_DIR = os.path.join(PACK_ROOT, "workflows")
API_DIR = os.path.join(WORKFLOW_DIR, "api")
_SAMPLES = importlib.import_module(load_pack().__name__ + ".nodes._samples")
SAMPLE_VIDEO = _SAMPLES.SAMPLE_VIDEO  # the pack's sample clip, put into the input folder when the pack loads
SAMPLE_DEPTH_VIDEO = _SAMPLES.SAMPLE_DEPTH_VIDEO  # its exact depth (white = near)
FRONTEND_VERSION = "1.27.10"  # the ComfyUI frontend these files were checked against
UI_FORMAT_VERSION = 0.4
UUID_NAMESPACE = uuid.UUID("6f1c0a4e-3d5b-4a8e-9c51-2b7d0e9f4a10")

# ---------------------------------------------------------------------------- node specs

# The files of core's Wan 2.1 image-to-video 480p template, by the models/ folder each goes in.
WAN_FILES = {
    "diffusion_models": "wan2.1_i2v_480p_14B_fp8_e4m3fn.safetensors",
    "text_encoders": "umt5_xxl_fp8_e4m3fn_scaled.safetensors",
    "vae": "wan_2.1_vae.safetensors",
    "clip_vision": "clip_vision_h.safetensors",
}

# The checkpoints Diffusion² loads with core's Image Only Checkpoint Loader (Stability AI's file names).
SVD_FILES = {"checkpoints": ["svd_xt.safetensors", "sv3d_p.safetensors"]}

# The SD 1.5 checkpoint file name core's default workflow loads (any SD 1.5 / SDXL-class checkpoint works).
SD15_FILES = {"checkpoints": "v1-5-pruned-emaonly-fp16.safetensors"}

# Core ComfyUI nodes the workflows may use, with the specs ComfyUI's /object_info gives for them
# (the host check compares this table with a running ComfyUI).
CORE_NODES: dict[str, dict] = {
    "PreviewImage": {
        "input": {"required": {"images": ["IMAGE"]}},
        "output": [], "output_name": [], "display_name": "Preview Image",
    },
    "MaskToImage": {
        "input": {"required": {"mask": ["MASK"]}},
        "output": ["IMAGE"], "output_name": ["IMAGE"], "display_name": "Convert Mask to Image",
    },
    "ImageStitch": {
        "input": {
            "required": {
                "image1": ["IMAGE"],
                "direction": [["right", "down", "left", "up"], {"default": "right"}],
                "match_image_size": ["BOOLEAN", {"default": True}],
                "spacing_width": ["INT", {"default": 0, "min": 0, "max": 1024, "step": 2}],
                "spacing_color": [["white", "black", "red", "green", "blue"], {"default": "white"}],
            },
            "optional": {"image2": ["IMAGE"]},
        },
        "output": ["IMAGE"], "output_name": ["IMAGE"], "display_name": "Image Stitch",
    },
    "CreateVideo": {
        "input": {
            "required": {"images": ["IMAGE", {}],
                         "fps": ["FLOAT", {"default": 30.0, "min": 1.0, "max": 120.0, "step": 1.0}]},
            "optional": {"audio": ["AUDIO", {}]},
        },
        "output": ["VIDEO"], "output_name": ["VIDEO"], "display_name": "Create Video",
    },
    "SaveVideo": {
        "input": {
            "required": {
                "video": ["VIDEO", {}],
                "filename_prefix": ["STRING", {"default": "video/ComfyUI"}],
                "format": ["COMBO", {"default": "auto", "options": ["auto", "mp4"]}],
                "codec": ["COMBO", {"default": "auto", "options": ["auto", "h264"]}],
            },
        },
        "output": [], "output_name": [], "display_name": "Save Video",
    },
    # core's Wan image-to-video nodes (the loaders' lists are the user's model folders: here the files core's
    # Wan 2.1 I2V template names)
    "UNETLoader": {
        "input": {"required": {"unet_name": [[WAN_FILES["diffusion_models"]]],
                               "weight_dtype": [["default", "fp8_e4m3fn", "fp8_e4m3fn_fast", "fp8_e5m2"]]}},
        "output": ["MODEL"], "output_name": ["MODEL"], "display_name": "Load Diffusion Model",
    },
    "CLIPLoader": {
        "input": {"required": {"clip_name": [[WAN_FILES["text_encoders"]]],
                               "type": [["stable_diffusion", "stable_cascade", "sd3", "stable_audio", "mochi", "ltxv",
                                         "pixart", "cosmos", "lumina2", "wan", "hidream", "chroma", "ace", "omnigen2",
                                         "qwen_image", "hunyuan_image"]]},
                  "optional": {"device": [["default", "cpu"], {"advanced": True}]}},
        "output": ["CLIP"], "output_name": ["CLIP"], "display_name": "Load CLIP",
    },
    "VAELoader": {
        "input": {"required": {"vae_name": [[WAN_FILES["vae"], "pixel_space"]]}},
        "output": ["VAE"], "output_name": ["VAE"], "display_name": "Load VAE",
    },
    "CheckpointLoaderSimple": {
        "input": {"required": {"ckpt_name": [[SD15_FILES["checkpoints"]]]}},
        "output": ["MODEL", "CLIP", "VAE"], "output_name": ["MODEL", "CLIP", "VAE"], "display_name": "Load Checkpoint",
    },
    "SaveImage": {
        "input": {"required": {"images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "ComfyUI"}]}},
        "output": [], "output_name": [], "display_name": "Save Image",
    },
    "CLIPVisionLoader": {
        "input": {"required": {"clip_name": [[WAN_FILES["clip_vision"]]]}},
        "output": ["CLIP_VISION"], "output_name": ["CLIP_VISION"], "display_name": "Load CLIP Vision",
    },
    "CLIPVisionEncode": {
        "input": {"required": {"clip_vision": ["CLIP_VISION"], "image": ["IMAGE"], "crop": [["center", "none"]]}},
        "output": ["CLIP_VISION_OUTPUT"], "output_name": ["CLIP_VISION_OUTPUT"], "display_name": "CLIP Vision Encode",
    },
    "CLIPTextEncode": {
        "input": {"required": {"text": ["STRING", {"multiline": True, "dynamicPrompts": True}], "clip": ["CLIP"]}},
        "output": ["CONDITIONING"], "output_name": ["CONDITIONING"], "display_name": "CLIP Text Encode (Prompt)",
    },
    "ImageFromBatch": {
        "input": {"required": {"image": ["IMAGE"], "batch_index": ["INT", {"default": 0, "min": 0, "max": 4095}],
                               "length": ["INT", {"default": 1, "min": 1, "max": 4096}]}},
        "output": ["IMAGE"], "output_name": ["IMAGE"], "display_name": "ImageFromBatch",
    },
    "VAEEncode": {
        "input": {"required": {"pixels": ["IMAGE"], "vae": ["VAE"]}},
        "output": ["LATENT"], "output_name": ["LATENT"], "display_name": "VAE Encode",
    },
    "VAEDecode": {
        "input": {"required": {"samples": ["LATENT"], "vae": ["VAE"]}},
        "output": ["IMAGE"], "output_name": ["IMAGE"], "display_name": "VAE Decode",
    },
    "WanImageToVideo": {
        "input": {
            "required": {
                "positive": ["CONDITIONING", {}], "negative": ["CONDITIONING", {}], "vae": ["VAE", {}],
                "width": ["INT", {"default": 832, "min": 16, "max": 16384, "step": 16}],
                "height": ["INT", {"default": 480, "min": 16, "max": 16384, "step": 16}],
                "length": ["INT", {"default": 81, "min": 1, "max": 16384, "step": 4}],
                "batch_size": ["INT", {"default": 1, "min": 1, "max": 4096}],
            },
            "optional": {"clip_vision_output": ["CLIP_VISION_OUTPUT", {}], "start_image": ["IMAGE", {}]},
        },
        "output": ["CONDITIONING", "CONDITIONING", "LATENT"], "output_name": ["positive", "negative", "latent"],
        "display_name": "WanImageToVideo",
    },
    # core's SVD / SV3D nodes (Diffusion²)
    "ImageOnlyCheckpointLoader": {
        "input": {"required": {"ckpt_name": [SVD_FILES["checkpoints"]]}},
        "output": ["MODEL", "CLIP_VISION", "VAE"], "output_name": ["MODEL", "CLIP_VISION", "VAE"],
        "display_name": "Image Only Checkpoint Loader (img2vid model)",
    },
    "VideoLinearCFGGuidance": {
        "input": {"required": {"model": ["MODEL"],
                               "min_cfg": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.5,
                                                     "round": 0.01}]}},
        "output": ["MODEL"], "output_name": ["MODEL"], "display_name": "VideoLinearCFGGuidance",
    },
    "SVD_img2vid_Conditioning": {
        "input": {"required": {
            "clip_vision": ["CLIP_VISION"], "init_image": ["IMAGE"], "vae": ["VAE"],
            "width": ["INT", {"default": 1024, "min": 16, "max": 16384, "step": 8}],
            "height": ["INT", {"default": 576, "min": 16, "max": 16384, "step": 8}],
            "video_frames": ["INT", {"default": 14, "min": 1, "max": 4096}],
            "motion_bucket_id": ["INT", {"default": 127, "min": 1, "max": 1023}],
            "fps": ["INT", {"default": 6, "min": 1, "max": 1024}],
            "augmentation_level": ["FLOAT", {"default": 0.0, "min": 0.0, "max": 10.0, "step": 0.01}]}},
        "output": ["CONDITIONING", "CONDITIONING", "LATENT"], "output_name": ["positive", "negative", "latent"],
        "display_name": "SVD_img2vid_Conditioning",
    },
    "SV3D_Conditioning": {
        "input": {"required": {
            "clip_vision": ["CLIP_VISION", {}], "init_image": ["IMAGE", {}], "vae": ["VAE", {}],
            "width": ["INT", {"default": 576, "min": 16, "max": 16384, "step": 8}],
            "height": ["INT", {"default": 576, "min": 16, "max": 16384, "step": 8}],
            "video_frames": ["INT", {"default": 21, "min": 1, "max": 4096}],
            "elevation": ["FLOAT", {"default": 0.0, "min": -90.0, "max": 90.0, "step": 0.1, "round": False}]}},
        "output": ["CONDITIONING", "CONDITIONING", "LATENT"], "output_name": ["positive", "negative", "latent"],
        "display_name": "SV3D_Conditioning",
    },
    "KSampler": {
        "input": {"required": {
            "model": ["MODEL"],
            "seed": ["INT", {"default": 0, "min": 0, "max": 18446744073709551615, "control_after_generate": True}],
            "steps": ["INT", {"default": 20, "min": 1, "max": 10000}],
            "cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01}],
            "sampler_name": [["euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2",
                              "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral",
                              "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp",
                              "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_2m_sde_heun", "dpmpp_2m_sde_heun_gpu",
                              "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm", "ipndm", "ipndm_v", "deis",
                              "res_multistep", "res_multistep_cfg_pp", "res_multistep_ancestral",
                              "res_multistep_ancestral_cfg_pp", "gradient_estimation", "gradient_estimation_cfg_pp",
                              "er_sde", "seeds_2", "seeds_3", "sa_solver", "sa_solver_pece", "ddim", "uni_pc",
                              "uni_pc_bh2"]],
            "scheduler": [["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal",
                           "linear_quadratic", "kl_optimal"]],
            "positive": ["CONDITIONING"], "negative": ["CONDITIONING"], "latent_image": ["LATENT"],
            "denoise": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}]}},
        "output": ["LATENT"], "output_name": ["LATENT"], "display_name": "KSampler",
    },
}
# Core's loader inputs that list a model folder (core's standard folder names): (node type, input) → folder.
CORE_FOLDER_INPUTS = {
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("VAELoader", "vae_name"): "vae",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("ImageOnlyCheckpointLoader", "ckpt_name"): "checkpoints",
}

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
UPLOAD_OPTIONS = ("image_upload", "video_upload", "animated_image_upload")
UPLOAD_WIDGET_VALUE = "image"  # the value ComfyUI's frontend stores for a loader's upload button (after the
# node's required widgets, where the frontend inserts the button)
SEED_NAMES = ("seed", "noise_seed")  # INT inputs the frontend gives a control_after_generate widget
SEED_CONTROL = "fixed"  # reproducible by default: the reference seed stays put between runs
TYPE_DEFAULTS = {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}


@dataclass(frozen=True)
class InputSpec:
    """One input of a node: ``type`` is 'COMBO' for choice lists (``choices`` then holds them)."""

    name: str
    type: str
    options: dict
    required: bool
    choices: tuple | None = None

    @property
    def is_widget(self) -> bool:
        return self.type in WIDGET_TYPES and not self.options.get("forceInput", False)

    @property
    def has_seed_control(self) -> bool:
        return self.type == "INT" and (bool(self.options.get("control_after_generate")) or self.name in SEED_NAMES)

    @property
    def has_upload(self) -> bool:
        return self.type == "COMBO" and any(self.options.get(k) for k in UPLOAD_OPTIONS)

    def default(self):
        if "default" in self.options:
            return self.options["default"]
        if self.type == "COMBO":
            return self.choices[0] if self.choices else ""
        return TYPE_DEFAULTS[self.type]


@dataclass(frozen=True)
class NodeSpec:
    type: str
    display_name: str
    inputs: tuple[InputSpec, ...]
    outputs: tuple[tuple[str, str], ...]  # (name, type)

    def input(self, name: str) -> InputSpec:
        for spec in self.inputs:
            if spec.name == name:
                return spec
        raise KeyError(f"{self.type} has no input '{name}'; it has {[s.name for s in self.inputs]}")

    def output_slot(self, name: str) -> int:
        names = [n for n, _ in self.outputs]
        if name not in names:
            raise KeyError(f"{self.type} has no output '{name}'; it has {names}")
        return names.index(name)

    @property
    def widgets(self) -> tuple[InputSpec, ...]:
        return tuple(s for s in self.inputs if s.is_widget)

    @property
    def has_upload(self) -> bool:
        """A required file list with an upload button: the frontend adds the button after the required inputs."""
        return any(s.has_upload and s.required for s in self.inputs)

    @property
    def last_required_widget(self) -> InputSpec | None:
        required = [s for s in self.widgets if s.required]
        return required[-1] if required else None

    @property
    def sockets(self) -> tuple[InputSpec, ...]:
        return tuple(s for s in self.inputs if not s.is_widget)


def parse_input(name: str, entry, required: bool) -> InputSpec:
    """An INPUT_TYPES entry (``(type, options)`` or ``(choices, options)``) as an InputSpec."""
    entry = list(entry) if isinstance(entry, (list, tuple)) else [entry]
    kind = entry[0]
    options = dict(entry[1]) if len(entry) > 1 and isinstance(entry[1], dict) else {}
    if isinstance(kind, (list, tuple)):
        return InputSpec(name, "COMBO", options, required, tuple(kind))
    if kind == "COMBO":
        return InputSpec(name, "COMBO", options, required, tuple(options.get("options", ())))
    return InputSpec(name, str(kind), options, required)


def spec_from_input_types(node_type: str, display: str, input_types: dict, output_types, output_names) -> NodeSpec:
    inputs = []
    for section, required in (("required", True), ("optional", False)):
        for name, entry in (input_types.get(section) or {}).items():
            inputs.append(parse_input(name, entry, required))
    names = list(output_names) if output_names else list(output_types)
    return NodeSpec(node_type, display, tuple(inputs), tuple(zip(names, output_types)))


def node_specs(pack=None) -> dict[str, NodeSpec]:
    """Specs of every pack node (live INPUT_TYPES) and of the allowed core nodes."""
    pack = pack or load_pack()
    specs = {}
    for node_type, cls in pack.NODE_CLASS_MAPPINGS.items():
        specs[node_type] = spec_from_input_types(
            node_type, pack.NODE_DISPLAY_NAME_MAPPINGS.get(node_type, node_type), cls.INPUT_TYPES(),
            cls.RETURN_TYPES, getattr(cls, "RETURN_NAMES", None))
    for node_type, info in CORE_NODES.items():
        specs[node_type] = spec_from_input_types(
            node_type, info["display_name"], info["input"], info["output"], info["output_name"])
    return specs


def check_value(spec: InputSpec, value, where: str) -> None:
    """Raise ValueError when ``value`` does not fit the widget ``spec`` (type, range, choices)."""
    if spec.type == "COMBO":
        if spec.choices and value not in spec.choices:
            raise ValueError(f"{where}: '{value}' is not one of {list(spec.choices)}")
        if not isinstance(value, str):
            raise ValueError(f"{where}: a choice must be a string, got {value!r}")
        return
    if spec.type == "BOOLEAN":
        ok = isinstance(value, bool)
    elif spec.type == "INT":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif spec.type == "FLOAT":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ValueError(f"{where}: {value!r} is not a {spec.type}")
    if spec.type in ("INT", "FLOAT"):
        lo, hi = spec.options.get("min"), spec.options.get("max")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ValueError(f"{where}: {value} is outside [{lo}, {hi}]")


# ---------------------------------------------------------------------------- graph descriptions


@dataclass
class Node:
    """A node of a workflow: ``links`` maps an input to ``(node key, output name)``; ``values`` overrides defaults."""

    key: str
    type: str
    title: str
    column: int
    links: dict[str, tuple[str, str]] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    width: int = 0  # 0: the column width
    color: str | None = None
    band: int = 0  # horizontal band of the layout, top to bottom


@dataclass
class Note:
    key: str
    text: str
    column: int
    width: int = 0
    height: int = 0  # 0: from the number of lines
    band: int = 0


@dataclass
class Group:
    title: str
    keys: tuple[str, ...]
    color: str


@dataclass
class Workflow:
    name: str
    items: list
    groups: list[Group]


# ---------------------------------------------------------------------------- layout

COLUMN_WIDTH = 340
COLUMN_GAP = 60
ROW_GAP = 40
BAND_GAP = 60
GROUP_PAD = 20
GROUP_TITLE_HEIGHT = 50
TITLE_HEIGHT = 30
SLOT_HEIGHT = 22
WIDGET_HEIGHT = 26
MULTILINE_HEIGHT = 110
NOTE_LINE_HEIGHT = 18
NOTE_CHARS_PER_LINE = 46
UPLOAD_PREVIEW_HEIGHT = 330  # a loader with an upload button shows the picked file below its widgets
UPLOAD_NODE_WIDTH = 450
MEDIA_HEIGHT = {"PreviewImage": 220, "SaveVideo": 200, "SaveImage": 220}  # room for the image / video the node shows
VIEW_SIZE = (1920, 1080)  # window the saved view fits (the browser check's window)
VIEW_CHROME = (64, 78)  # ComfyUI's side bar and top bars take this much of the window's width and height
VIEW_MARGIN = 30
COLORS = {"note": ("#432", "#653"), "model": ("#223", "#335"), "prompt": ("#232", "#353"),
          "output": ("#233", "#355")}
GROUP_COLORS = {"geometry": "#3f789e", "diffusion": "#8A8", "output": "#b58b2a", "sweep": "#a1309b",
                "gaussians": "#8AA"}


def estimate_height(spec: NodeSpec, node_type: str) -> int:
    """A node height that fits its sockets, widgets and media (at least what ComfyUI's computeSize gives)."""
    rows = max(len(spec.sockets), len(spec.outputs))
    height = 10 + rows * SLOT_HEIGHT
    for widget in spec.widgets:
        multiline = widget.type == "STRING" and widget.options.get("multiline")
        height += MULTILINE_HEIGHT if multiline else WIDGET_HEIGHT
        height += WIDGET_HEIGHT if widget.has_seed_control else 0
    if spec.has_upload:
        height += WIDGET_HEIGHT + UPLOAD_PREVIEW_HEIGHT
    return height + MEDIA_HEIGHT.get(node_type, 0)


def note_height(note: Note, width: int) -> int:
    if note.height:
        return note.height
    chars = max(10, int(NOTE_CHARS_PER_LINE * width / COLUMN_WIDTH))
    lines = sum(max(1, -(-len(line) // chars)) for line in note.text.split("\n"))
    return 30 + lines * NOTE_LINE_HEIGHT


# ---------------------------------------------------------------------------- build


def _topological_order(flow: Workflow) -> dict[str, int]:
    nodes = [n for n in flow.items if isinstance(n, Node)]
    deps = {n.key: {src for src, _ in n.links.values()} for n in nodes}
    order, done = {}, set()
    notes = [n.key for n in flow.items if isinstance(n, Note)]
    for key in notes:  # notes run nothing; ComfyUI orders them first
        order[key] = len(order)
    while len(done) < len(nodes):
        ready = [n.key for n in nodes if n.key not in done and deps[n.key] <= done]
        if not ready:
            raise ValueError(f"{flow.name}: the graph has a cycle")
        for key in ready:
            order[key] = len(order)
            done.add(key)
    return order


def build(flow: Workflow, specs: dict[str, NodeSpec]) -> tuple[dict, dict]:
    """The UI-format and API-format dicts of ``flow``."""
    ids = {item.key: i + 1 for i, item in enumerate(flow.items)}
    if len(ids) != len(flow.items):
        raise ValueError(f"{flow.name}: duplicate node keys")
    order = _topological_order(flow)

    # links: ids in the order inputs are listed
    links, node_inputs, node_outputs = [], {}, {}
    for item in flow.items:
        if not isinstance(item, Node):
            continue
        if item.type not in specs:
            raise ValueError(f"{flow.name}: node type '{item.type}' is not registered (pack or CORE_NODES)")
        spec = specs[item.type]
        unknown = set(item.links) | set(item.values)
        unknown -= {s.name for s in spec.inputs}
        if unknown:
            raise ValueError(f"{flow.name}/{item.key}: {item.type} has no input(s) {sorted(unknown)}")
        for socket in spec.sockets:
            if socket.required and socket.name not in item.links:
                raise ValueError(f"{flow.name}/{item.key}: required input '{socket.name}' is not connected")
    for item in flow.items:
        if not isinstance(item, Node):
            continue
        spec = specs[item.type]
        inputs = []
        # A widget fed by a link: the frontend gives every input of such a node a slot, in the node's own
        # order (widgets too), and numbers the link's target slot in that list; so does the file.
        widget_linked = any(s.is_widget and s.name in item.links for s in spec.inputs)
        for socket in spec.inputs:
            if socket.name not in item.links:
                if socket.is_widget and widget_linked:
                    inputs.append({"name": socket.name, "type": socket.type, "widget": {"name": socket.name},
                                   "link": None})
                elif not socket.is_widget:
                    entry = {"name": socket.name, "type": socket.type, "link": None}
                    if not socket.required:
                        entry["shape"] = 7  # ComfyUI draws optional sockets hollow
                    inputs.append(entry)
                continue
            src_key, out_name = item.links[socket.name]
            src = specs[next(n.type for n in flow.items if n.key == src_key)]
            slot = src.output_slot(out_name)
            out_type = src.outputs[slot][1]
            if out_type != socket.type:
                raise ValueError(f"{flow.name}/{item.key}.{socket.name}: {socket.type} input fed "
                                 f"{out_type} from {src_key}.{out_name}")
            link_id = len(links) + 1
            links.append([link_id, ids[src_key], slot, ids[item.key], len(inputs), out_type])
            node_outputs.setdefault((src_key, slot), []).append(link_id)
            entry = {"name": socket.name, "type": socket.type, "link": link_id}
            if socket.is_widget:
                entry["widget"] = {"name": socket.name}
            elif not socket.required:
                entry["shape"] = 7
            inputs.append(entry)
        node_inputs[item.key] = inputs

    # layout: bands top to bottom; in a band, columns left to right, items stacked in each column
    heights, widths = {}, {}
    for item in flow.items:
        widths[item.key] = item.width or COLUMN_WIDTH
        if isinstance(item, Node) and specs[item.type].has_upload:
            widths[item.key] = max(widths[item.key], UPLOAD_NODE_WIDTH)
        if isinstance(item, Node):
            heights[item.key] = estimate_height(specs[item.type], item.type)
        else:
            heights[item.key] = note_height(item, widths[item.key])
    group_of = {key: g.title for g in flow.groups for key in g.keys}
    pos, band_top = {}, 0
    for band in sorted({item.band for item in flow.items}):
        members = [item for item in flow.items if item.band == band]
        column_x, x = {}, 0
        for col in sorted({item.column for item in members}):
            column_x[col] = x
            x += max(widths[i.key] for i in members if i.column == col) + COLUMN_GAP
        column_y = {col: band_top + GROUP_TITLE_HEIGHT + GROUP_PAD for col in column_x}
        previous = {}
        for item in members:
            col = item.column
            y = column_y[col]
            last = previous.get(col)
            if last is not None and group_of.get(last) != group_of.get(item.key):
                y += GROUP_TITLE_HEIGHT + 2 * GROUP_PAD  # room for the next group's title
            pos[item.key] = [column_x[col], y]
            column_y[col] = y + TITLE_HEIGHT + heights[item.key] + ROW_GAP
            previous[col] = item.key
        band_top = max(column_y.values()) + BAND_GAP

    ui_nodes, api = [], {}
    for item in flow.items:
        node_id = ids[item.key]
        base = {"id": node_id}
        if isinstance(item, Note):
            fg, bg = COLORS["note"]
            ui_nodes.append({**base, "type": "MarkdownNote", "pos": pos[item.key],
                             "size": [widths[item.key], heights[item.key]], "flags": {}, "order": order[item.key],
                             "mode": 0, "inputs": [], "outputs": [], "title": "Note", "properties": {},
                             "widgets_values": [item.text], "color": fg, "bgcolor": bg})
            continue
        spec = specs[item.type]
        values, api_inputs = [], {}
        for widget in spec.widgets:
            value = item.values.get(widget.name, widget.default())
            check_value(widget, value, f"{flow.name}/{item.key}.{widget.name}")
            values.append(value)
            if widget.has_seed_control:
                values.append(SEED_CONTROL)
            if widget.required and widget is spec.last_required_widget and spec.has_upload:
                values.append(UPLOAD_WIDGET_VALUE)
        for spec_in in spec.inputs:
            if spec_in.name in item.links:
                src_key, out_name = item.links[spec_in.name]
                src_type = next(n.type for n in flow.items if n.key == src_key)
                api_inputs[spec_in.name] = [str(ids[src_key]), specs[src_type].output_slot(out_name)]
            elif spec_in.is_widget:
                api_inputs[spec_in.name] = item.values.get(spec_in.name, spec_in.default())
        outputs = []
        for slot, (name, out_type) in enumerate(spec.outputs):
            outputs.append({"name": name, "type": out_type, "links": node_outputs.get((item.key, slot))})
        ui = {**base, "type": item.type, "pos": pos[item.key], "size": [widths[item.key], heights[item.key]],
              "flags": {}, "order": order[item.key], "mode": 0, "inputs": node_inputs[item.key],
              "outputs": outputs, "title": item.title, "properties": {"Node name for S&R": item.type},
              "widgets_values": values}
        if item.color:
            ui["color"], ui["bgcolor"] = COLORS[item.color]
        ui_nodes.append(ui)
        api[str(node_id)] = {"inputs": api_inputs, "class_type": item.type, "_meta": {"title": item.title}}

    groups = []
    for index, group in enumerate(flow.groups, start=1):
        x0 = min(pos[k][0] for k in group.keys) - GROUP_PAD
        y0 = min(pos[k][1] for k in group.keys) - GROUP_TITLE_HEIGHT - GROUP_PAD
        x1 = max(pos[k][0] + widths[k] for k in group.keys) + GROUP_PAD
        y1 = max(pos[k][1] + heights[k] for k in group.keys) + GROUP_PAD
        groups.append({"id": index, "title": group.title, "bounding": [x0, y0, x1 - x0, y1 - y0],
                       "color": group.color, "font_size": 24, "flags": {}})

    ui = {
        "id": str(uuid.uuid5(UUID_NAMESPACE, flow.name)),
        "revision": 0,
        "last_node_id": len(flow.items),
        "last_link_id": len(links),
        "nodes": ui_nodes,
        "links": links,
        "groups": groups,
        "config": {},
        "extra": {"ds": {}, "frontendVersion": FRONTEND_VERSION},
        "version": UI_FORMAT_VERSION,
    }
    ui["extra"]["ds"] = fit_view(ui, VIEW_SIZE)
    return ui, api


def fit_view(ui: dict, window: tuple[int, int]) -> dict:
    """The canvas view (``extra.ds``) that shows every node and group of ``ui`` in a ``window``-sized browser."""
    boxes = [(n["pos"][0], n["pos"][1] - TITLE_HEIGHT, n["size"][0], n["size"][1] + TITLE_HEIGHT) for n in ui["nodes"]]
    boxes += [tuple(g["bounding"]) for g in ui["groups"]]
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    x1, y1 = max(b[0] + b[2] for b in boxes), max(b[1] + b[3] for b in boxes)
    width, height = window[0] - VIEW_CHROME[0] - 2 * VIEW_MARGIN, window[1] - VIEW_CHROME[1] - 2 * VIEW_MARGIN
    scale = round(min(width / (x1 - x0), height / (y1 - y0), 1.0), 4)
    return {"scale": scale, "offset": [round(VIEW_MARGIN / scale - x0, 2), round(VIEW_MARGIN / scale - y0, 2)]}


# ---------------------------------------------------------------------------- the workflows

P = "InverseDVS_"


GEOMETRY_NOTE = """## Geometry preview (no model weights)

Re-film the video along a new camera path, **geometry only**: the pixels the input already shows are
moved to where the new camera sees them; the **holes** (white in the mask) are what the video model
would fill in later.

1. **Load Video**: pick or upload a clip (49 frames, 720x480 is what CogVideoX wants).
2. **Depth**: the depth video of the clip (white = near).
3. **Camera Path**: a preset or your own keyframes; the preview shows the camera seen from above and
   from the side.
4. **Forward Warp**: look at the warped frames and the hole mask before spending GPU time.

Runs on any machine, CPU included, in seconds."""

FULL_NOTE = """## InverseDVS: the full pipeline

One video in, the same moments seen from a **new, moving camera** out (CogVideoX-5B-I2V, no training).

**Group 1, geometry** (seconds, no GPU): depth, camera path, forward warp. Check the warp and the
hole mask first; change the path until the move looks right. Depth needs a Depth Anything V2 folder
(transformers layout) in `models/inversedvs_depth/`, e.g. `Depth-Anything-V2-Small-hf`.

**Group 2, the video model**: put CogVideoX-5B-I2V (diffusers layout) in
`models/inversedvs_video/`. *K-RNR Invert* runs once; change *k*, *guidance*, *preservation* or the
*seed* in **Sample** and only sampling runs again (ComfyUI keeps the inversion).

Defaults are the paper's: 30 steps, strength 0.98, guidance 10 in holes, 1.0 elsewhere, seed 42.
Low on VRAM? *memory = sequential_offload* and *tiled* decode."""

LONG_NOTE = """## InverseDVS on a clip of any length

The full pipeline with **every frame** of the video: *Load Video* keeps them all (*frame_load_cap* 0)
and the camera path takes its length from Load Video's *frame_count*.

Any frame count works: *VAE Encode* pads to the 4k+1 frames the VAE needs (the last frame repeated)
and *VAE Decode* drops the padding, so the result has exactly your frames. A clip longer than the
model's window (49 frames for CogVideoX-5B-I2V) is inverted and sampled **window by window**:
windows share *window_overlap* frames (K-RNR Invert, 8 by default), each window after the first
starts from the previous window's result and blends into it across the overlap. GPU memory stays
that of one window; time grows with the number of windows; the progress bar covers the whole clip."""

MODEL_NOTE = """**Model files**: `models/inversedvs_video/CogVideoX-5b-I2V/` with `transformer/`, `vae/`,
`scheduler/`, `text_encoder/`, `tokenizer/` (the diffusers layout of THUDM/CogVideoX-5b-I2V).
Optional LoRA files go in `models/inversedvs_lora/`."""

SAMPLE_NOTE = """**Sample** re-runs alone when you change **k** (K-RNR order: how much of the input is
re-injected into the starting noise), **guidance** (in the holes), **preservation** (elsewhere) or
the **seed**. *mode = reference* reproduces the released code's numbers."""

SWEEP_NOTE = """## Sweep: one inversion, several samplings

The geometry, the encoding and **K-RNR Invert** run once; each **Sample** node tries another
*k* / *guidance* pair from the same inverted noise. The stitched video shows the three results side
by side (left to right as the Sample nodes top to bottom), each is also saved on its own.

Add a Sample node (copy one, change its widgets, wire it like the others) to try more."""

WAN_NOTE = """## InverseDVS on Wan 2.1 I2V 14B (core loaders)

The method on the Wan model **core ComfyUI loads itself**: 81 frames at 832x480, 16 fps.

**Group 1, geometry** (seconds, no GPU): depth, camera path, forward warp; check the warp and holes
first. Depth needs a Depth Anything V2 folder in `models/inversedvs_depth/`.

**Group 2, Wan**: core's loaders, prompts and *WanImageToVideo* with the **first warped frame** as
start image: one with an **empty prompt** (what *Invert* inverts with), one with your prompt and the
negative (what *Sample* samples with). *Invert* runs once; change *k*, *guidance*, *preservation* or
the *seed* in **Sample** and only sampling runs again.

Use the same *steps* and *strength* in Invert and Sample. The frame count is set in three places
that must agree: Load Video's *frame_load_cap*, Camera Path's *frames* and both WanImageToVideo
*length*s (81 here; the pack's sample clip has 49, a count Wan takes too)."""

WAN_MODEL_NOTE = """**Model files** (core's standard folders, the names core's Wan 2.1 I2V template uses):
- `models/diffusion_models/wan2.1_i2v_480p_14B_fp8_e4m3fn.safetensors`
- `models/text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors`
- `models/vae/wan_2.1_vae.safetensors`
- `models/clip_vision/clip_vision_h.safetensors`"""

WAN_SAMPLE_NOTE = """**Sample (native)** is SLM, K-RNR Noise, Guider, Sigmas and core's Euler sampler in one node.
For another sampler, wire the five nodes instead: *Stochastic Latent Modulation*, *Sigmas*,
*K-RNR Noise*, *Guider* (native) and core's *KSamplerSelect* into *SamplerCustomAdvanced* (same
bits with euler)."""

WAN_LONG_NOTE = """## InverseDVS on Wan 2.1 I2V 14B, a clip of any length

The Wan workflow with **every frame** of the video: *Load Video* keeps them all (*frame_load_cap* 0)
and the camera path takes its length from Load Video's *frame_count*.

**Pad Frames** pads the warped video and its holes to the 4k+1 frames Wan's VAE takes (the last
frame repeated; core's *VAE Encode* would drop the rest) and the *ImageFromBatch* after *VAE Decode*
keeps the first *frame_count* frames: the result has exactly your frames.

A clip longer than Wan's window (**81 frames**) is inverted and sampled **window by window**:
windows share *window_overlap* frames (Invert, 8 by default), each window after the first starts
from the previous window's result (its image condition) and blends into it across the overlap.
WanImageToVideo's *length* stays 81: each window gets its own image condition. GPU memory stays
that of one window; time grows with the number of windows; the progress bar covers the whole clip."""

WAN_NEGATIVE = "blurry, distorted, deformed, flickering, low quality, watermark, text, static frame"
WAN_FPS = 16.0  # Wan 2.1 clips play at 16 frames per second
WAN_SIZE = {"width": 832, "height": 480, "length": 81}  # core's Wan 2.1 I2V 480p template

DIFFUSION2_NOTE = """## Multi-view videos of one object: Diffusion² (SVD x SV3D)

One picture in, **21 views x 25 frames** out: a video per view of the object orbited, training-free.

**Group 1, the conditions**: core's SVD makes the reference view's animation (25 frames), core's SV3D
the reference time's orbit (21 views), each from the picture (or bring your own video for video-to-4D).

**Group 2, the matrix**: SVD_img2vid_Conditioning of the **orbit** conditions each view's row,
SV3D_Conditioning of the **video** (video_frames = 21) each frame's column. **Sample (Diffusion²)**
denoises all 525 images together: rows by SVD, columns by SV3D, blended by *s* (0.5), the first
*vrs_steps* (5) of 50 steps taken twice. Images come out view by view (item v*25 + f).

**Group 4, 4D**: **Fit Dynamic Gaussians** fits moving Gaussians to the matrix (about a minute on
a GPU with gsplat at 21x25x576²); **Render** films an orbit, **Save (PLY)** writes a file per frame.

Files: `models/checkpoints/svd_xt.safetensors` and `sv3d_p.safetensors`. Use an object on a plain
background at 576x576. Cost: 46 guider calls per step, about 46 SVD clips of work."""

FUSION_NOTE = """## Novel view of one image on SD 1.5 (signal/noise fusion, no training)

One picture in, the same scene from a **new camera** out, on an image model **core ComfyUI loads**
(SD 1.5 here; any SD 1.5 / SDXL-class checkpoint, with LoRAs between the loader and the nodes).

1. **Geometry** (seconds, no GPU): the image, its depth (white = near; swap in Depth Estimate or any
   depth node) and a camera path; *Forward Warp* previews what the new camera sees.
2. **Invert Image** runs DDIM from the image up to timestep 600 in 30 steps (the method's defaults)
   with the empty prompt and keeps the last step's signal (mean) and noise terms.
3. **Novel View Fusion** warps the mean to the path's last camera and fuses it with the source's
   noise: *a_noise_term* (strategy A, one extra model pass) or *b_inverted_latent* (strategy B).
4. **Novel View Sample** runs DDIM back down the same grid with your prompt; VAE Decode shows it.

Change the camera, strategy or cfg and only the later nodes run again (the inversion is cached)."""

FUSION_NEGATIVE = "blurry, distorted, deformed, low quality, watermark, text"
FUSION_SIZE = {"width": 768, "height": 512}  # the sample clip's 3:2 frame at SD 1.5's scale

PROMPT = ("A calm city street at dusk, parked cars and shop fronts along the sidewalk, soft warm light, "
          "realistic, detailed, steady camera motion.")
FPS = 8.0  # CogVideoX clips play at 8 frames per second
SWEEP = ((2, 10.0), (6, 10.0), (6, 12.0))  # (k, guidance) pairs of the sweep workflow


def _geometry(column: int, depth_from_video: bool, whole_clip: bool = False) -> list:
    """Load video → depth → camera path → forward warp, with the previews, from ``column`` on. ``whole_clip``:
    every frame of the file, and the camera path as long as the clip (Load Video's frame_count)."""
    video_values = {"video": SAMPLE_VIDEO, **({"frame_load_cap": 0} if whole_clip else {})}
    path_links = {"frames": ("video", "frame_count")} if whole_clip else {}
    items = [
        Node("video", P + "LoadVideo", "Load Video" + (" (every frame)" if whole_clip else ""), column,
             values=video_values),
    ]
    if depth_from_video:
        items.append(Node("depth", P + "LoadVideo", "Load Depth Video (white = near)", column,
                          values={"video": SAMPLE_DEPTH_VIDEO}))
    else:
        items.append(Node("depth", P + "DepthEstimate", "Depth (Depth Anything V2)", column,
                          links={"images": ("video", "images")}))
    items += [
        Node("path", P + "CameraTrajectory", "Camera Path", column + 1, links=path_links),
        Node("path_preview", "PreviewImage", "Preview: camera path", column + 1,
             links={"images": ("path", "preview")}),
        Node("warp", P + "ForwardWarp", "Forward Warp", column + 2,
             links={"images": ("video", "images"),
                    "depth": ("depth", "images" if depth_from_video else "depth"),
                    "camera_path": ("path", "camera_path")}),
        Node("warp_preview", "PreviewImage", "Preview: warped video", column + 3,
             links={"images": ("warp", "warped")}),
        Node("mask_image", "MaskToImage", "Holes as image", column + 2, links={"mask": ("warp", "mask")}),
        Node("mask_preview", "PreviewImage", "Preview: holes (white = to synthesise)", column + 3,
             links={"images": ("mask_image", "IMAGE")}),
    ]
    return items


GEOMETRY_KEYS = ("video", "depth", "path", "path_preview", "warp", "warp_preview", "mask_image", "mask_preview")


def _save(key: str, images: tuple[str, str], prefix: str, column: int, title: str, band: int = 0) -> list:
    return [
        Node(key + "_video", "CreateVideo", f"Create Video: {title}", column, links={"images": images},
             values={"fps": FPS}, band=band),
        Node(key + "_save", "SaveVideo", f"Save: {title}", column, links={"video": (key + "_video", "VIDEO")},
             values={"filename_prefix": prefix}, color="output", band=band),
    ]


def _model_and_inversion(column: int, band: int) -> list:
    return [
        Node("model", P + "LoadVideoModel", "Load CogVideoX-5B-I2V", column, color="model", band=band),
        Note("model_note", MODEL_NOTE, column, band=band),
        Node("text", P + "EncodeText", "Prompt", column, links={"model": ("model", "model")},
             values={"prompt": PROMPT}, color="prompt", band=band),
        Node("encode", P + "VAEEncode", "VAE Encode (warped video)", column + 1,
             links={"model": ("model", "model"), "images": ("warp", "warped")}, band=band),
        Node("invert", P + "KRNRInvert", "K-RNR Invert (runs once)", column + 1,
             links={"model": ("model", "model"), "latent": ("encode", "latent")}, band=band),
        Node("slm", P + "StochasticLatentModulate", "Stochastic Latent Modulation", column + 1,
             links={"clean": ("encode", "latent"), "noise": ("invert", "noise"), "mask": ("warp", "mask")},
             band=band),
    ]


def _sample(key: str, column: int, title: str, values: dict | None = None, band: int = 0) -> Node:
    return Node(key, P + "Sample", title, column,
                links={"model": ("model", "model"), "positive": ("text", "positive"),
                       "negative": ("text", "negative"), "clean": ("slm", "clean"), "noise": ("slm", "noise"),
                       "mask": ("warp", "mask")},
                values=values or {}, band=band)


def workflows() -> list[Workflow]:
    geometry = Workflow(
        "inversedvs_geometry_preview",
        [Note("about", GEOMETRY_NOTE, 0, height=0), *_geometry(0, depth_from_video=True),
         *_save("warped", ("warp", "warped"), "InverseDVS/warped", 4, "warped video"),
         *_save("mask", ("mask_image", "IMAGE"), "InverseDVS/holes", 4, "hole mask")],
        [Group("Geometry: no model weights needed", ("about",) + GEOMETRY_KEYS, GROUP_COLORS["geometry"]),
         Group("Save", ("warped_video", "warped_save", "mask_video", "mask_save"), GROUP_COLORS["output"])],
    )
    return [geometry, _full("inversedvs_full_pipeline", FULL_NOTE), _sweep(), _wan_workflow(),
            _full("inversedvs_long_clip", LONG_NOTE, whole_clip=True), _fusion_workflow(),
            _wan_workflow("inversedvs_wan21_long_clip_native", WAN_LONG_NOTE, whole_clip=True), _diffusion2_workflow()]


def _full(name: str, note: str, whole_clip: bool = False) -> Workflow:
    """The whole method on one clip: geometry, model, invert once, sample, decode, save result and side by side."""
    return Workflow(
        name,
        [Note("about", note, 0), *_geometry(0, depth_from_video=False, whole_clip=whole_clip),
         *_model_and_inversion(0, band=1),
         _sample("sample", 2, "Sample (change k / guidance / seed here)", band=1),
         Note("sample_note", SAMPLE_NOTE, 2, band=1),
         Node("decode", P + "VAEDecode", "VAE Decode", 3,
              links={"model": ("model", "model"), "latent": ("sample", "latent")}, band=1),
         Node("result_preview", "PreviewImage", "Preview: result", 3, links={"images": ("decode", "images")},
              band=1),
         *_save("result", ("decode", "images"), "InverseDVS/result", 4, "result", band=1),
         Node("compare", "ImageStitch", "Side by side: input | result", 5,
              links={"image1": ("video", "images"), "image2": ("decode", "images")},
              values={"spacing_width": 8, "spacing_color": "black"}, band=1),
         *_save("compare", ("compare", "IMAGE"), "InverseDVS/compare", 5, "side by side", band=1)],
        [Group("1 · Geometry (seconds, no GPU)", ("about",) + GEOMETRY_KEYS, GROUP_COLORS["geometry"]),
         Group("2 · Video model: invert once, sample many times",
               ("model", "model_note", "text", "encode", "invert", "slm", "sample", "sample_note", "decode",
                "result_preview"), GROUP_COLORS["diffusion"]),
         Group("3 · Save", ("result_video", "result_save", "compare", "compare_video", "compare_save"),
               GROUP_COLORS["output"])],
    )


def _sweep() -> Workflow:
    sweep_items = [Note("about", SWEEP_NOTE, 0), *_geometry(0, depth_from_video=False),
                   *_model_and_inversion(4, band=0)]
    sweep_keys = []
    for i, (k, guidance) in enumerate(SWEEP):
        key, setting = f"sample_{i}", f"k = {k}, guidance = {guidance:g}"
        sweep_items += [
            _sample(key, i, f"Sample: {setting}", {"k": k, "guidance": guidance}, band=1),
            Node(key + "_decode", P + "VAEDecode", f"VAE Decode: {setting}", i,
                 links={"model": ("model", "model"), "latent": (key, "latent")}, band=1),
            *_save(key, (key + "_decode", "images"), f"InverseDVS/sweep_k{k}_g{guidance:g}", i, setting, band=1),
        ]
        sweep_keys += [key, key + "_decode", key + "_video", key + "_save"]
    last = len(SWEEP)
    sweep_items += [
        Node("stitch_01", "ImageStitch", "Side by side: first | second", last,
             links={"image1": ("sample_0_decode", "images"), "image2": ("sample_1_decode", "images")},
             values={"spacing_width": 8, "spacing_color": "black"}, band=1),
        Node("stitch_012", "ImageStitch", "Side by side: ... | third", last,
             links={"image1": ("stitch_01", "IMAGE"), "image2": ("sample_2_decode", "images")},
             values={"spacing_width": 8, "spacing_color": "black"}, band=1),
        *_save("sweep", ("stitch_012", "IMAGE"), "InverseDVS/sweep_side_by_side", last, "all side by side",
               band=1),
    ]
    return Workflow(
        "inversedvs_sweep_k_guidance",
        sweep_items,
        [Group("1 · Geometry", ("about",) + GEOMETRY_KEYS, GROUP_COLORS["geometry"]),
         Group("2 · Invert once", ("model", "model_note", "text", "encode", "invert", "slm"),
               GROUP_COLORS["diffusion"]),
         Group("3 · Sample several ways", tuple(sweep_keys) + ("stitch_01", "stitch_012", "sweep_video",
                                                               "sweep_save"), GROUP_COLORS["sweep"])],
    )


def _wan_workflow(name: str = "inversedvs_wan21_i2v_native", note: str = WAN_NOTE, whole_clip: bool = False) -> Workflow:
    """Wan 2.1 I2V 14B with core's loaders, WanImageToVideo, VAE Encode / Decode and the native nodes. ``whole_clip``:
    every frame of the file, padded for core's VAE Encode (Pad Frames) and the padding dropped after VAE Decode."""
    geometry = _geometry(0, depth_from_video=False, whole_clip=whole_clip)
    frames, width, height = WAN_SIZE["length"], WAN_SIZE["width"], WAN_SIZE["height"]
    for node in geometry:
        if node.key == "video":
            node.values.update(width=width, height=height, **({} if whole_clip else {"frame_load_cap": frames}))
        elif node.key == "path" and not whole_clip:
            node.values.update(frames=frames)
    # the video the model sees: the warp, or the warp padded to 4k+1 frames; the result: decoded, or its real frames
    video, holes = (("pad", "images"), ("pad", "mask")) if whole_clip else (("warp", "warped"), ("warp", "mask"))
    result = ("trim", "IMAGE") if whole_clip else ("decode", "IMAGE")
    padding = [
        Node("pad", P + "NativePadFrames", "Pad Frames (no frame lost)", 2,
             links={"images": ("warp", "warped"), "mask": ("warp", "mask"), "vae": ("vae", "VAE")}, band=1),
        Node("trim", "ImageFromBatch", "Drop the padding (first frame_count frames)", 5,
             links={"image": ("decode", "IMAGE"), "length": ("pad", "frame_count")}, values={"batch_index": 0},
             band=1),
    ] if whole_clip else []

    def i2v(key: str, positive: str, title: str) -> Node:
        return Node(key, "WanImageToVideo", title, 3,
                    links={"positive": (positive, "CONDITIONING"), "negative": ("negative", "CONDITIONING"),
                           "vae": ("vae", "VAE"), "clip_vision_output": ("vision_encode", "CLIP_VISION_OUTPUT"),
                           "start_image": ("first_frame", "IMAGE")},
                    values=dict(WAN_SIZE), band=1)

    items = [
        Note("about", note, 0), *geometry,
        Node("unet", "UNETLoader", "Load Diffusion Model (Wan 2.1 I2V 14B)", 0, color="model",
             values={"unet_name": WAN_FILES["diffusion_models"]}, band=1),
        Node("clip", "CLIPLoader", "Load CLIP (umt5-xxl)", 0, color="model",
             values={"clip_name": WAN_FILES["text_encoders"], "type": "wan"}, band=1),
        Node("vae", "VAELoader", "Load VAE (Wan 2.1)", 0, color="model", values={"vae_name": WAN_FILES["vae"]},
             band=1),
        Node("clip_vision", "CLIPVisionLoader", "Load CLIP Vision (ViT-H)", 0, color="model",
             values={"clip_name": WAN_FILES["clip_vision"]}, band=1),
        Note("model_note", WAN_MODEL_NOTE, 0, band=1),
        Node("prompt", "CLIPTextEncode", "Prompt", 1, links={"clip": ("clip", "CLIP")}, values={"text": PROMPT},
             color="prompt", band=1),
        Node("negative", "CLIPTextEncode", "Negative prompt", 1, links={"clip": ("clip", "CLIP")},
             values={"text": WAN_NEGATIVE}, color="prompt", band=1),
        Node("empty", "CLIPTextEncode", "Empty prompt (for the inversion)", 1, links={"clip": ("clip", "CLIP")},
             values={"text": ""}, color="prompt", band=1),
        Node("first_frame", "ImageFromBatch", "First warped frame", 2, links={"image": ("warp", "warped")},
             values={"batch_index": 0, "length": 1}, band=1),
        Node("vision_encode", "CLIPVisionEncode", "CLIP Vision Encode (first warped frame)", 2,
             links={"clip_vision": ("clip_vision", "CLIP_VISION"), "image": ("first_frame", "IMAGE")},
             values={"crop": "none"}, band=1),
        Node("encode", "VAEEncode", "VAE Encode (warped video)", 2,
             links={"pixels": video, "vae": ("vae", "VAE")}, band=1),
        i2v("i2v_invert", "empty", "WanImageToVideo: empty prompt (inversion)"),
        i2v("i2v", "prompt", "WanImageToVideo: prompt (sampling)"),
        Node("invert", P + "NativeInvert", "Invert (runs once)", 4,
             links={"model": ("unet", "MODEL"), "positive": ("i2v_invert", "positive"), "latent": ("encode", "LATENT")},
             band=1),
        Node("sample", P + "NativeSample", "Sample (change k / guidance / seed here)", 4,
             links={"model": ("unet", "MODEL"), "vae": ("vae", "VAE"), "positive": ("i2v", "positive"),
                    "negative": ("i2v", "negative"), "clean": ("encode", "LATENT"), "noise": ("invert", "noise"),
                    "mask": holes}, band=1),
        Note("sample_note", WAN_SAMPLE_NOTE, 4, band=1),
        Node("decode", "VAEDecode", "VAE Decode", 5, links={"samples": ("sample", "latent"), "vae": ("vae", "VAE")},
             band=1),
        *padding,
        Node("result_preview", "PreviewImage", "Preview: result", 5, links={"images": result}, band=1),
        Node("result_save", P + "SaveVideo", "Save: result", 5, links={"images": result},
             values={"fps": WAN_FPS, "filename_prefix": "InverseDVS/wan_result"}, color="output", band=1),
    ]
    wan_keys = ("unet", "clip", "vae", "clip_vision", "model_note", "prompt", "negative", "empty", "first_frame",
                "vision_encode", "encode", "i2v_invert", "i2v", "invert", "sample", "sample_note", "decode",
                "result_preview") + tuple(node.key for node in padding)
    return Workflow(
        name,
        items,
        [Group("1 · Geometry (seconds, no GPU)", ("about",) + GEOMETRY_KEYS, GROUP_COLORS["geometry"]),
         Group("2 · Wan 2.1 I2V (core loaders): invert once, sample many times", wan_keys, GROUP_COLORS["diffusion"]),
         Group("3 · Save", ("result_save",), GROUP_COLORS["output"])],
    )


def _fusion_workflow() -> Workflow:
    """One image's novel view on SD 1.5: core's checkpoint loader, text encode, VAE Encode / Decode, the fusion nodes."""
    one_frame = dict(frame_load_cap=1, **FUSION_SIZE)
    items = [
        Note("about", FUSION_NOTE, 0),
        Node("image", P + "LoadVideo", "Load Image (first frame of the sample clip)", 0,
             values=dict(one_frame, video=SAMPLE_VIDEO)),
        Node("depth", P + "LoadVideo", "Load Depth (white = near)", 0, values=dict(one_frame, video=SAMPLE_DEPTH_VIDEO)),
        Node("path", P + "CameraTrajectory", "Camera Path (its last camera is the new view)", 1,
             values={"frames": 9, "amount": 0.5}),
        Node("path_preview", "PreviewImage", "Preview: camera path", 1, links={"images": ("path", "preview")}),
        Node("warp", P + "ForwardWarp", "Forward Warp (preview of the new view)", 2,
             links={"images": ("image", "images"), "depth": ("depth", "images"), "camera_path": ("path", "camera_path")}),
        Node("warp_preview", "PreviewImage", "Preview: what the new camera sees", 2,
             links={"images": ("warp", "warped")}),
        Node("ckpt", "CheckpointLoaderSimple", "Load Checkpoint (SD 1.5)", 0,
             values={"ckpt_name": SD15_FILES["checkpoints"]}, color="model", band=1),
        Node("empty", "CLIPTextEncode", "Empty prompt (inversion, strategy A)", 1, links={"clip": ("ckpt", "CLIP")},
             values={"text": ""}, color="prompt", band=1),
        Node("prompt", "CLIPTextEncode", "Prompt", 1, links={"clip": ("ckpt", "CLIP")}, values={"text": PROMPT},
             color="prompt", band=1),
        Node("negative", "CLIPTextEncode", "Negative prompt", 1, links={"clip": ("ckpt", "CLIP")},
             values={"text": FUSION_NEGATIVE}, color="prompt", band=1),
        Node("encode", "VAEEncode", "VAE Encode (source image)", 2,
             links={"pixels": ("image", "images"), "vae": ("ckpt", "VAE")}, band=1),
        Node("invert", P + "ImageInvert", "Invert Image (runs once)", 2,
             links={"model": ("ckpt", "MODEL"), "positive": ("empty", "CONDITIONING"), "latent": ("encode", "LATENT")},
             band=1),
        Node("fuse", P + "NovelViewFusion", "Novel View Fusion (camera, strategy)", 3,
             links={"model": ("ckpt", "MODEL"), "positive": ("empty", "CONDITIONING"),
                    "inversion": ("invert", "inversion"), "depth": ("depth", "images"),
                    "camera_path": ("path", "camera_path")}, band=1),
        Node("sample", P + "NovelViewSample", "Novel View Sample", 3,
             links={"model": ("ckpt", "MODEL"), "positive": ("prompt", "CONDITIONING"),
                    "negative": ("negative", "CONDITIONING"), "start": ("fuse", "start")}, band=1),
        Node("decode", "VAEDecode", "VAE Decode", 4, links={"samples": ("sample", "latent"), "vae": ("ckpt", "VAE")},
             band=1),
        Node("compare", "ImageStitch", "Side by side: source | new view", 4,
             links={"image1": ("image", "images"), "image2": ("decode", "IMAGE")},
             values={"spacing_width": 8, "spacing_color": "black"}, band=1),
        Node("compare_preview", "PreviewImage", "Preview: source | new view", 4, links={"images": ("compare", "IMAGE")},
             band=1),
        Node("result_save", "SaveImage", "Save: new view", 5, links={"images": ("decode", "IMAGE")},
             values={"filename_prefix": "InverseDVS/novel_view"}, color="output", band=1),
    ]
    return Workflow(
        "inversedvs_sd15_novel_view_fusion",
        items,
        [Group("1 · Geometry (seconds, no GPU)", ("about", "image", "depth", "path", "path_preview", "warp",
                                                 "warp_preview"), GROUP_COLORS["geometry"]),
         Group("2 · SD 1.5 (core loader): invert once, fuse and sample many times",
               ("ckpt", "empty", "prompt", "negative", "encode", "invert", "fuse", "sample", "decode", "compare",
                "compare_preview"), GROUP_COLORS["diffusion"]),
         Group("3 · Save", ("result_save",), GROUP_COLORS["output"])],
    )


DIFFUSION2_SIZE = 576  # SV3D's resolution (both models run the same square size)
DIFFUSION2_VIEWS, DIFFUSION2_FRAMES = 21, 25  # the paper's matrix: SV3D's orbit x SVD-XT's clip
DIFFUSION2_ORBIT_FPS = 12.0  # Render Dynamic Gaussians' 48 frames: a 4 s turn around the object
DIFFUSION2_CONDITION = dict(steps=20, cfg=2.5, sampler_name="euler", scheduler="karras", seed=42)  # core's SVD example


def _diffusion2_workflow() -> Workflow:
    """Diffusion² from one picture: core's checkpoint loaders, SVD / SV3D conditioning and KSampler for the two
    conditions, then the matrix, one view's video and the grid saved; dynamic Gaussians fitted to the matrix,
    an orbit video of them and their PLY files saved."""
    size = {"width": DIFFUSION2_SIZE, "height": DIFFUSION2_SIZE}
    svd, sv3d = SVD_FILES["checkpoints"]
    svd_values = dict(size, video_frames=DIFFUSION2_FRAMES)
    sv3d_values = dict(size, video_frames=DIFFUSION2_VIEWS)

    def cond(key, node_type, title, column, ckpt, image, values, band):
        return Node(key, node_type, title, column, links={"clip_vision": (ckpt, "CLIP_VISION"),
                                                          "init_image": image, "vae": (ckpt, "VAE")},
                    values=values, color="prompt", band=band)

    def ksampler(key, title, model, conditioning, column):
        return Node(key, "KSampler", title, column, links={"model": model, "positive": (conditioning, "positive"),
                                                           "negative": (conditioning, "negative"),
                                                           "latent_image": (conditioning, "latent")},
                    values=DIFFUSION2_CONDITION)

    items = [
        Note("about", DIFFUSION2_NOTE, 0),
        Node("image", P + "LoadVideo", "Load Image (first frame of the sample clip)", 0,
             values=dict(size, frame_load_cap=1, video=SAMPLE_VIDEO)),
        Node("svd", "ImageOnlyCheckpointLoader", "Load SVD-XT (video model)", 0, values={"ckpt_name": svd},
             color="model", band=1),
        Node("sv3d", "ImageOnlyCheckpointLoader", "Load SV3D-p (multi-view model)", 0, values={"ckpt_name": sv3d},
             color="model", band=1),
        Node("svd_cfg", "VideoLinearCFGGuidance", "Video Linear CFG Guidance (SVD)", 1,
             links={"model": ("svd", "MODEL")}, band=1),
        cond("video_cond", "SVD_img2vid_Conditioning", "SVD conditioning (the picture)", 1, "svd",
             ("image", "images"), svd_values, 0),
        ksampler("video_sample", "KSampler: the reference video", ("svd_cfg", "MODEL"), "video_cond", 2),
        Node("video_decode", "VAEDecode", "VAE Decode: reference video (25 frames)", 3,
             links={"samples": ("video_sample", "LATENT"), "vae": ("svd", "VAE")}),
        cond("orbit_cond", "SV3D_Conditioning", "SV3D conditioning (the picture)", 1, "sv3d", ("image", "images"),
             sv3d_values, 0),
        ksampler("orbit_sample", "KSampler: the reference orbit", ("sv3d", "MODEL"), "orbit_cond", 2),
        Node("orbit_decode", "VAEDecode", "VAE Decode: reference orbit (21 views)", 3,
             links={"samples": ("orbit_sample", "LATENT"), "vae": ("sv3d", "VAE")}),
        cond("rows", "SVD_img2vid_Conditioning", "Rows: SVD conditioning of the orbit", 4, "svd",
             ("orbit_decode", "IMAGE"), svd_values, 1),
        cond("columns", "SV3D_Conditioning", "Columns: SV3D conditioning of the video", 4, "sv3d",
             ("video_decode", "IMAGE"), sv3d_values, 1),
        Node("matrix", P + "Diffusion2Sample", "Sample (Diffusion²): 21 views x 25 frames", 5,
             links={"video_model": ("svd_cfg", "MODEL"), "video_positive": ("rows", "positive"),
                    "video_negative": ("rows", "negative"), "multiview_model": ("sv3d", "MODEL"),
                    "multiview_positive": ("columns", "positive"), "multiview_negative": ("columns", "negative"),
                    "vae": ("svd", "VAE")}, band=1),
        Node("grid_save", "SaveImage", "Save: the matrix as a grid", 6, links={"images": ("matrix", "grid")},
             values={"filename_prefix": "InverseDVS/diffusion2_grid"}, color="output", band=1),
        Node("pick", P + "Diffusion2Pick", "Pick: one view's video (10 = behind)", 6,
             links={"images": ("matrix", "images"), "views": ("matrix", "views")}, values={"index": 10}, band=1),
        Node("view_video", "CreateVideo", "Create Video (6 fps, SVD's)", 7, links={"images": ("pick", "images")},
             values={"fps": 6.0}, band=1),
        Node("view_save", "SaveVideo", "Save: the view's video", 7, links={"video": ("view_video", "VIDEO")},
             values={"filename_prefix": "InverseDVS/diffusion2_view"}, color="output", band=1),
        # group 4, to the right of group 1: the matrix → dynamic Gaussians → an orbit video and PLY files
        Node("fit", P + "FitDynamicGaussians", "Fit Dynamic Gaussians: the matrix in 4D", 4,
             links={"images": ("matrix", "images"), "multiview_positive": ("columns", "positive")}),
        Node("orbit_render", P + "RenderDynamicGaussians", "Render Dynamic Gaussians: an orbit", 5,
             links={"gaussians": ("fit", "gaussians")}),
        Node("ply_save", P + "SaveDynamicGaussians", "Save Dynamic Gaussians (PLY) per frame", 5,
             links={"gaussians": ("fit", "gaussians")}, values={"filename_prefix": "InverseDVS/diffusion2_4d"},
             color="output"),
        Node("object_save", P + "SaveDynamicGaussiansFile", "Save Dynamic Gaussians (to load again)", 5,
             links={"gaussians": ("fit", "gaussians")}, values={"filename_prefix": "InverseDVS/diffusion2_object"},
             color="output"),
        Node("orbit_video", "CreateVideo", f"Create Video ({DIFFUSION2_ORBIT_FPS:g} fps)", 6,
             links={"images": ("orbit_render", "images")}, values={"fps": DIFFUSION2_ORBIT_FPS}),
        Node("orbit_save", "SaveVideo", "Save: the 4D orbit video", 6, links={"video": ("orbit_video", "VIDEO")},
             values={"filename_prefix": "InverseDVS/diffusion2_4d_orbit"}, color="output"),
    ]
    return Workflow(
        "inversedvs_diffusion2_svd_sv3d",
        items,
        [Group("1 · The conditions: the picture's video (SVD) and orbit (SV3D), core's own sampling",
               ("about", "image", "video_cond", "video_sample", "video_decode", "orbit_cond", "orbit_sample",
                "orbit_decode"), GROUP_COLORS["geometry"]),
         Group("2 · Diffusion²: the 21 x 25 matrix", ("svd", "sv3d", "svd_cfg", "rows", "columns", "matrix"),
               GROUP_COLORS["diffusion"]),
         Group("3 · Save", ("grid_save", "pick", "view_video", "view_save"), GROUP_COLORS["output"]),
         Group("4 · 4D: dynamic Gaussians fitted to the matrix",
               ("fit", "orbit_render", "ply_save", "object_save", "orbit_video", "orbit_save"), GROUP_COLORS["gaussians"])],
    )


# ---------------------------------------------------------------------------- thumbnails

THUMB_TILE = (320, 213)  # width, height of one picture in a thumbnail (720x480 scaled)
THUMB_LABEL_HEIGHT = 26
THUMB_QUALITY = 88


def run_pack_nodes(api: dict) -> dict[str, tuple]:
    """Run the pack's nodes of an API-format graph in-process (core MaskToImage too); node id → outputs.

    Nodes of other types, and everything downstream of them, are skipped."""
    pack = load_pack()
    done: dict[str, tuple | None] = {}
    pending = dict(api)
    while pending:
        for node_id, node in list(pending.items()):
            sources = [v[0] for v in node["inputs"].values() if isinstance(v, list)]
            if any(src not in done for src in sources):
                continue
            del pending[node_id]
            if any(done[src] is None for src in sources):
                done[node_id] = None
                continue
            inputs = {k: done[v[0]][v[1]] if isinstance(v, list) else v for k, v in node["inputs"].items()}
            cls = pack.NODE_CLASS_MAPPINGS.get(node["class_type"])
            if cls is not None:
                out = getattr(cls(), cls.FUNCTION)(**inputs)
                done[node_id] = tuple(out["result"]) if isinstance(out, dict) else tuple(out)
            elif node["class_type"] == "MaskToImage":
                mask = inputs["mask"]
                done[node_id] = (mask[..., None].expand(*mask.shape, 3),)
            else:
                done[node_id] = None
    return done


def _tile(image, label: str):
    """One IMAGE frame [H, W, 3] in 0..1 → a labelled uint8 BGR tile."""
    import cv2
    import numpy as np

    pixels = (image.detach().float().clamp(0, 1) * 255).round().byte().cpu().numpy()
    tile = cv2.resize(cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), THUMB_TILE, interpolation=cv2.INTER_AREA)
    bar = np.full((THUMB_LABEL_HEIGHT, THUMB_TILE[0], 3), 32, np.uint8)
    cv2.putText(bar, label, (8, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (235, 235, 235), 1, cv2.LINE_AA)
    return np.concatenate([bar, tile], axis=0)


def _grid(rows):
    import numpy as np

    return np.concatenate([np.concatenate(row, axis=1) for row in rows], axis=0)


def make_thumbnails(folder: str = WORKFLOW_DIR) -> list[str]:
    """Draw ``<name>.jpg`` for every workflow from the pack's own output on its sample clip.

    The geometry workflow runs in-process on the sample clip and its exact depth; the pictures are
    its input frame, camera-path preview, warped frame and hole mask (the one-image workflow's from
    its own geometry nodes)."""
    import tempfile

    import cv2

    specs = node_specs(load_pack())
    flows = {flow.name: flow for flow in workflows()}
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["INVERSEDVS_INPUT_DIR"] = tmp
        _SAMPLES.install_samples(tmp)
        geometry = flows["inversedvs_geometry_preview"]
        _, api = build(geometry, specs)
        results = run_pack_nodes(api)
        one_image = flows["inversedvs_sd15_novel_view_fusion"]
        _, one_api = build(one_image, specs)
        one_results = run_pack_nodes(one_api)  # its geometry: the pack's nodes before the model
    ids = {item.key: str(i + 1) for i, item in enumerate(geometry.items)}
    one_ids = {item.key: str(i + 1) for i, item in enumerate(one_image.items)}
    one_source = one_results[one_ids["image"]][0][0]
    one_warped, one_mask = one_results[one_ids["warp"]][:2]
    one_holes = one_mask[-1, ..., None].expand(*one_mask.shape[1:], 3)
    video = results[ids["video"]][0]
    warped, mask = results[ids["warp"]][:2]
    path = results[ids["path"]][1]
    middle, last = video.shape[0] // 2, video.shape[0] - 1
    holes = mask[..., None].expand(*mask.shape, 3)
    composition = importlib.import_module(load_pack().__name__ + ".krnr.composition")
    matrix_grid = composition.grid(warped[:6], 2, max_side=THUMB_TILE[0] * 2)[0]  # 2 "views" x 3 frames of the warp
    pictures = {
        "inversedvs_geometry_preview": [
            [_tile(video[last], "input (last frame)"), _tile(path[0], "camera path")],
            [_tile(warped[last], "warped to the new camera"), _tile(holes[last], "holes (white)")]],
        "inversedvs_full_pipeline": [
            [_tile(video[last], "input"), _tile(warped[last], "new camera: warp")],
            [_tile(holes[last], "holes the model fills"), _tile(path[0], "camera path")]],
        "inversedvs_sweep_k_guidance": [
            [_tile(warped[0], "warp, first frame"), _tile(warped[middle], "warp, middle frame")],
            [_tile(warped[last], "warp, last frame"), _tile(holes[last], "holes: one inversion, 3 samplings")]],
        "inversedvs_wan21_i2v_native": [
            [_tile(warped[0], "start image: first warped frame"), _tile(warped[last], "new camera: warp")],
            [_tile(holes[last], "holes Wan 2.1 fills"), _tile(path[0], "camera path")]],
        "inversedvs_sd15_novel_view_fusion": [
            [_tile(one_source, "one source image"), _tile(one_warped[-1], "the path's last camera: warped")],
            [_tile(one_holes, "holes SD 1.5 fills"), _tile(one_results[one_ids["path"]][1][0], "camera path")]],
        "inversedvs_diffusion2_svd_sv3d": [
            [_tile(one_source, "one picture"), _tile(matrix_grid, "order: a row per view, a column per frame")]],
        "inversedvs_long_clip": [
            [_tile(video[0], "input: every frame"), _tile(warped[middle], "warp, middle frame")],
            [_tile(warped[last], "warp, last frame"), _tile(path[0], "camera path as long as the clip")]],
        "inversedvs_wan21_long_clip_native": [
            [_tile(video[0], "input: every frame"), _tile(warped[middle], "warp, middle frame")],
            [_tile(holes[last], "holes Wan fills, window by window"), _tile(path[0], "camera path as long as the clip")]],
    }
    written = []
    for name, rows in pictures.items():
        out = os.path.join(folder, name + ".jpg")
        cv2.imwrite(out, _grid(rows), [cv2.IMWRITE_JPEG_QUALITY, THUMB_QUALITY])
        written.append(out)
    return written


def make_samples() -> list[str]:
    """Render the sample clip and its depth video again into ``samples/`` (about a minute on 2 cores)."""
    import tempfile

    sample = importlib.import_module(load_pack().__name__ + ".warp.sample")
    with tempfile.TemporaryDirectory() as tmp:
        for path in sample.write_sample_videos(tmp, SAMPLE_VIDEO, SAMPLE_DEPTH_VIDEO):
            os.replace(path, os.path.join(_SAMPLES.SAMPLE_DIR, os.path.basename(path)))
    return [os.path.join(_SAMPLES.SAMPLE_DIR, name) for name in _SAMPLES.SAMPLE_FILES]


def dump(data: dict) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def render_all(specs: dict[str, NodeSpec] | None = None) -> dict[str, str]:
    """Relative path → file text for every workflow file (UI and API)."""
    specs = specs or node_specs()
    files = {}
    for flow in workflows():
        ui, api = build(flow, specs)
        files[f"workflows/{flow.name}.json"] = dump(ui)
        files[f"workflows/api/{flow.name}.json"] = dump(api)
    return files


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    parser.add_argument("--thumbnails", action="store_true", help="also redraw workflows/<name>.jpg")
    parser.add_argument("--samples", action="store_true", help="also render samples/ (the sample clips) again")
    args = parser.parse_args(argv)
    files = render_all()
    stale = []
    for rel, text in files.items():
        path = os.path.join(PACK_ROOT, rel)
        current = open(path, encoding="utf-8").read() if os.path.exists(path) else None
        if current == text:
            continue
        stale.append(rel)
        if not args.check:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
    if args.check:
        for rel in stale:
            print(f"stale: {rel} (run python scripts/make_workflows.py)")
        return 1 if stale else 0
    print(f"{len(files)} files, {len(stale)} rewritten")
    if args.samples:
        for path in make_samples():
            print("sample", os.path.relpath(path, PACK_ROOT))
    if args.thumbnails:
        for path in make_thumbnails():
            print("thumbnail", os.path.relpath(path, PACK_ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
