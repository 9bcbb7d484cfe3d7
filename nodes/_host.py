"""What the nodes need from ComfyUI, with plain fallbacks when the pack runs without the host.

Inside ComfyUI these call ``folder_paths``, ``comfy.model_management`` and ``comfy.utils``.
Outside it (tests, the demo script) folders come from the environment variables
``INVERSEDVS_INPUT_DIR``, ``INVERSEDVS_OUTPUT_DIR`` and ``INVERSEDVS_MODELS_DIR`` (default
``./input``, ``./output``, ``./models``), the device is CUDA when available, and progress and
interrupts are no-ops.
"""

from __future__ import annotations

import logging
import os

import torch

LOG = logging.getLogger(__name__)

try:  # ComfyUI present
    import folder_paths  # type: ignore
    import comfy.model_management as _mm  # type: ignore
    import comfy.utils as _cu  # type: ignore
except ImportError:  # running without the host
    folder_paths = None
    _mm = None
    _cu = None

IN_COMFYUI = folder_paths is not None

# Model folder kinds this pack registers under ComfyUI's models/ directory.
MODEL_FOLDERS = {
    "inversedvs_video": "CogVideoX-5B-I2V style diffusers folders (transformer/, vae/, scheduler/, text_encoder/, tokenizer/)",
    "inversedvs_depth": "Depth Anything V2 folders in transformers layout (config.json + model.safetensors)",
    "inversedvs_lora": "LoRA files (.safetensors) for the video model",
}


def _fallback_dir(env: str, default: str) -> str:
    return os.path.abspath(os.environ.get(env, default))


def models_root() -> str:
    """The models/ directory: ComfyUI's, or ``$INVERSEDVS_MODELS_DIR`` (default ./models)."""
    if IN_COMFYUI:
        return folder_paths.models_dir
    return _fallback_dir("INVERSEDVS_MODELS_DIR", "models")


def register_model_folders() -> None:
    """Register ``models/<kind>/`` for each kind in MODEL_FOLDERS (idempotent; no-op without host)."""
    if not IN_COMFYUI:
        return
    for kind in MODEL_FOLDERS:
        path = os.path.join(folder_paths.models_dir, kind)
        if kind == "inversedvs_lora":
            exts = {".safetensors"}
        else:
            exts = set()  # folders, listed by model_dirs() below
        if kind in folder_paths.folder_names_and_paths:
            paths = folder_paths.folder_names_and_paths[kind][0]
            if path not in paths:
                paths.append(path)
        else:
            folder_paths.folder_names_and_paths[kind] = ([path], exts)


def model_search_paths(kind: str) -> list[str]:
    """Every directory searched for models of ``kind`` (ComfyUI's list includes extra_model_paths.yaml)."""
    if IN_COMFYUI:
        register_model_folders()
        return list(folder_paths.get_folder_paths(kind))
    return [os.path.join(models_root(), kind)]


def model_dirs(kind: str) -> list[str]:
    """Names of the sub-folders found under every search path of ``kind`` (sorted, unique)."""
    names = set()
    for root in model_search_paths(kind):
        if os.path.isdir(root):
            names.update(n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n)))
    return sorted(names)


def model_files(kind: str, exts: tuple[str, ...] = (".safetensors",)) -> list[str]:
    """Names of files with one of ``exts`` under every search path of ``kind`` (sorted, unique)."""
    names = set()
    for root in model_search_paths(kind):
        if os.path.isdir(root):
            for dirpath, _, files in os.walk(root):
                for f in files:
                    if f.lower().endswith(exts):
                        names.add(os.path.relpath(os.path.join(dirpath, f), root))
    return sorted(names)


def resolve_model_path(kind: str, name: str) -> str | None:
    """Absolute path of model ``name`` (a folder or file) of ``kind``, or None when not found."""
    for root in model_search_paths(kind):
        root = os.path.abspath(root)
        path = os.path.abspath(os.path.join(root, name))
        if os.path.commonpath([root, path]) == root and os.path.exists(path):
            return path
    return None


def input_directory() -> str:
    if IN_COMFYUI:
        return folder_paths.get_input_directory()
    return _fallback_dir("INVERSEDVS_INPUT_DIR", "input")


def input_files(keep) -> dict[str, str]:
    """{name: real path} of the files in the input folder whose lower-case name passes ``keep(name)``:
    names relative to the folder with '/' separators, sub-folders included, any character the file
    system allows (':' and '\\' too). Left out, with a line in the log: names that are not valid UTF-8
    (the browser cannot send them back) and links that lead outside the folder."""
    root = os.path.realpath(input_directory())
    found = {}
    if not os.path.isdir(root):
        return found
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not keep(f.lower()):
                continue
            path = os.path.join(dirpath, f)
            name = os.path.relpath(path, root).replace(os.sep, "/")
            try:
                name.encode("utf-8")
            except UnicodeEncodeError:
                LOG.warning("InverseDVS: skipping %r in the input folder: its name is not valid UTF-8; rename it.", name)
                continue
            real = os.path.realpath(path)
            if os.path.commonpath([root, real]) != root:
                LOG.warning("InverseDVS: skipping '%s' in the input folder: it links outside the folder.", name)
                continue
            found[name] = real
    return found


def list_input_files(keep) -> list[str]:
    """Sorted names of ``input_files(keep)`` (what a file dropdown lists)."""
    return sorted(input_files(keep))


def output_directory() -> str:
    if IN_COMFYUI:
        return folder_paths.get_output_directory()
    return _fallback_dir("INVERSEDVS_OUTPUT_DIR", "output")


def torch_device() -> torch.device:
    """The device ComfyUI computes on, else CUDA when available, else CPU."""
    if _mm is not None:
        return _mm.get_torch_device()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def throw_if_interrupted() -> None:
    """Raise ComfyUI's interrupt exception when the user pressed cancel (no-op without host)."""
    if _mm is not None:
        _mm.throw_exception_if_processing_interrupted()


def free_host_memory(bytes_needed: int = 0) -> None:
    """Ask ComfyUI for ``bytes_needed`` bytes of device room (it evicts only as many of its models as
    that takes, never all of them), on top of the room the user reserves for other programs
    (``--reserve-vram``), as core's own loader asks; empty the CUDA cache either way."""
    if _mm is not None:
        if bytes_needed > 0:
            reserved = getattr(_mm, "extra_reserved_memory", lambda: 0)()
            _mm.free_memory(bytes_needed + reserved, _mm.get_torch_device())
        _mm.soft_empty_cache()
    elif torch.cuda.is_available():
        torch.cuda.empty_cache()


class Progress:
    """A progress bar over ``total`` steps: ComfyUI's when present, silent otherwise."""

    def __init__(self, total: int):
        self.total = int(total)
        self.done = 0
        self._bar = _cu.ProgressBar(self.total) if _cu is not None else None

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)


def metadata_disabled() -> bool:
    """True when ComfyUI runs with --disable-metadata (saved files then carry no workflow)."""
    if not IN_COMFYUI:
        return False
    try:
        from comfy.cli_args import args  # type: ignore
    except ImportError:
        return False
    return bool(getattr(args, "disable_metadata", False))
