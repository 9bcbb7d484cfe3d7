"""The pack as ComfyUI loads it: from a folder named ComfyUI-InverseDVS, in a fresh interpreter."""

import json
import os
import subprocess
import sys

import pytest

from conftest import PACK_ROOT

PACK_FOLDER = "ComfyUI-InverseDVS"
HEAVY = ("diffusers", "transformers", "cv2", "av")
PREFIX = "InverseDVS_"
CORE_IDS = ("LoadVideo", "SaveVideo", "CreateVideo", "GetVideoComponents")

# Run in a subprocess: import the pack the way ComfyUI's nodes.load_custom_node does (module name =
# the folder path, spec from __init__.py) and describe every registered node as JSON.
LOADER = r"""
import importlib.util, json, os, sys
folder = sys.argv[1]
name = os.path.basename(folder)  # ComfyUI names the module after the folder
spec = importlib.util.spec_from_file_location(name, os.path.join(folder, "__init__.py"))
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
spec.loader.exec_module(module)
nodes = {}
for node_id, cls in module.NODE_CLASS_MAPPINGS.items():
    inputs = cls.INPUT_TYPES()
    nodes[node_id] = {
        "class": cls.__name__,
        "display": module.NODE_DISPLAY_NAME_MAPPINGS.get(node_id),
        "input_sections": sorted(inputs),
        "inputs": {sec: {k: (v[1] if len(v) > 1 else None) for k, v in inputs[sec].items()}
                   for sec in inputs},
        "input_types": {sec: {k: (v[0] if isinstance(v[0], str) else "choice") for k, v in inputs[sec].items()}
                        for sec in inputs},
        "return_types": list(cls.RETURN_TYPES),
        "return_names": list(getattr(cls, "RETURN_NAMES", ())),
        "function": cls.FUNCTION,
        "has_function": callable(getattr(cls, cls.FUNCTION, None)),
        "category": cls.CATEGORY,
        "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
    }
heavy = [m for m in %r if m in sys.modules]
import traceback
error = sys.modules[name + ".errors"].InverseDVSError
title = error.__qualname__ if error.__module__ == "builtins" else error.__module__ + "." + error.__qualname__
line = traceback.format_exception_only(error("Sample: bad input."))[0]
print(json.dumps({"module": name, "nodes": nodes, "heavy": heavy, "error_title": title, "error_line": line}))
""" % (HEAVY,)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    custom_nodes = tmp_path_factory.mktemp("custom_nodes")
    folder = custom_nodes / PACK_FOLDER
    os.symlink(PACK_ROOT, folder, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("INVERSEDVS_")}
    env["INVERSEDVS_INPUT_DIR"] = str(tmp_path_factory.mktemp("input"))
    env["INVERSEDVS_MODELS_DIR"] = str(tmp_path_factory.mktemp("models"))
    done = subprocess.run([sys.executable, "-c", LOADER, str(folder)], capture_output=True, text=True, env=env,
                          cwd=str(custom_nodes), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_imports_from_a_hyphenated_folder_without_heavy_libraries(loaded):
    assert loaded["module"] == PACK_FOLDER
    assert loaded["heavy"] == [], f"imported at load time: {loaded['heavy']}"


def test_the_geometry_nodes_are_registered(loaded):
    for name in ("LoadVideo", "DepthEstimate", "CameraTrajectory", "ForwardWarp"):
        assert PREFIX + name in loaded["nodes"]


def test_no_id_collides_with_comfyui_core(loaded):
    for node_id in loaded["nodes"]:
        assert node_id.startswith(PREFIX) and node_id not in CORE_IDS


def test_every_node_honours_the_classic_contract(loaded):
    problems = []
    for node_id, node in loaded["nodes"].items():
        def bad(what):
            problems.append(f"{node_id}: {what}")

        if node_id != PREFIX + node["class"]:
            bad("id is not the prefix + class name")
        if not node["display"] or not isinstance(node["display"], str):
            bad("no display name")
        if "required" not in node["input_sections"] or not set(node["input_sections"]) <= {"required", "optional", "hidden"}:
            bad(f"input sections {node['input_sections']}")
        for section in ("required", "optional"):
            for name, options in node["inputs"].get(section, {}).items():
                if not isinstance(options, dict) or not str(options.get("tooltip", "")).strip():
                    bad(f"input '{name}' has no tooltip")
        if not node["return_names"] and node["return_types"]:
            bad("RETURN_NAMES missing")
        if len(node["return_types"]) != len(node["return_names"]):
            bad("RETURN_TYPES and RETURN_NAMES differ in length")
        if not node["has_function"]:
            bad(f"FUNCTION '{node['function']}' is not a method")
        if not node["category"].startswith("InverseDVS"):
            bad(f"category {node['category']}")
        if not node["return_types"] and not node["output_node"]:
            bad("returns nothing and is not an output node")
    assert not problems, "\n".join(problems)


def test_geometry_node_interfaces(loaded):
    """The sockets other nodes and the workflows connect to."""
    n = loaded["nodes"]
    assert n[PREFIX + "LoadVideo"]["return_types"] == ["IMAGE", "FLOAT", "INT"]
    assert n[PREFIX + "LoadVideo"]["inputs"]["required"]["video"]["video_upload"] is True
    assert n[PREFIX + "DepthEstimate"]["return_types"] == ["IMAGE"]
    assert n[PREFIX + "CameraTrajectory"]["return_types"] == ["INVDVS_CAMERA_PATH", "IMAGE"]
    warp = n[PREFIX + "ForwardWarp"]
    assert warp["return_types"] == ["IMAGE", "MASK"] and warp["return_names"] == ["warped", "mask"]
    assert warp["input_types"]["required"]["camera_path"] == "INVDVS_CAMERA_PATH"
    assert json.dumps(loaded)  # everything ComfyUI serves in /object_info is JSON-serialisable


# ---------------------------------------------------------------------------- packaging: requirements, licence, registry

PRODUCT = ("__init__.py", "errors.py", "nodes", "backend", "gaussians", "krnr", "slm", "warp")  # what ComfyUI loads
HOST_PROVIDED = {"torch", "comfy", "comfy_extras", "folder_paths", "latent_preview"}  # ComfyUI's own Python has them; never installed by the pack
OPTIONAL = {"flash_attn"}  # the FlashAttention-4 extra (README), imported only when present
# Requirements no module imports by name, each needed at run time through another one:
USED_THROUGH_DEPENDENCIES = {
    "accelerate",     # diffusers/transformers load weights without a second copy in RAM when it is there
    "sentencepiece",  # transformers reads CogVideoX's spiece.model with it
    "protobuf",       # ... and with this
}


def _canonical(name):
    return name.lower().replace("_", "-")


def _requirement_names(lines):
    import re

    return {_canonical(re.split(r"[<>=!~;\[ ]", line.split("#")[0].strip())[0])
            for line in lines if line.split("#")[0].strip() and not line.startswith("-")}


def _imported_top_modules():
    import ast

    found = {}
    for top in PRODUCT:
        root = os.path.join(PACK_ROOT, top)
        paths = [root] if top.endswith(".py") else [os.path.join(d, f) for d, _, fs in os.walk(root)
                                                    for f in fs if f.endswith(".py")]
        for path in paths:
            with open(path, encoding="utf-8") as f:
                tree = ast.parse(f.read())
            for node in ast.walk(tree):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                    [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 else [])
                for name in names:
                    found.setdefault(name.split(".")[0], os.path.relpath(path, PACK_ROOT))
    return {m: p for m, p in found.items() if m not in sys.stdlib_module_names}


def test_requirements_are_what_the_pack_imports():
    from importlib.metadata import packages_distributions

    with open(os.path.join(PACK_ROOT, "requirements.txt"), encoding="utf-8") as f:
        required = _requirement_names(f.read().splitlines())
    distributions = packages_distributions()
    imported = {}
    for module, path in _imported_top_modules().items():
        if module in HOST_PROVIDED or module in OPTIONAL:
            continue
        assert module in distributions, f"{path} imports {module}, which no installed distribution provides"
        imported[_canonical(distributions[module][0])] = path
    missing = {d: p for d, p in imported.items() if d not in required}
    assert not missing, f"imported but not in requirements.txt: {missing}"
    assert required - set(imported) == USED_THROUGH_DEPENDENCIES, "requirements.txt lists what nothing needs"
    assert not required & {"torch", "opencv-python-headless", "opencv-python", "einops"}


def test_pyproject_declares_the_requirements_licence_and_icon():
    import tomllib

    with open(os.path.join(PACK_ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)
    with open(os.path.join(PACK_ROOT, "requirements.txt"), encoding="utf-8") as f:
        lines = [line.split("#")[0].strip() for line in f if line.split("#")[0].strip()]
    assert project["project"]["dependencies"] == lines
    with open(os.path.join(PACK_ROOT, project["project"]["license"]["file"]), encoding="utf-8") as f:
        licence = f.read()
    assert "GNU GENERAL PUBLIC LICENSE" in licence and "Version 3, 29 June 2007" in licence
    assert "END OF TERMS AND CONDITIONS" in licence
    repository = project["project"]["urls"]["Repository"]
    icon = project["tool"]["comfy"]["Icon"]
    owner_name = repository.removeprefix("https://github.com/")
    prefix = f"https://raw.githubusercontent.com/{owner_name}/main/"
    assert icon.startswith(prefix), icon
    from PIL import Image

    with Image.open(os.path.join(PACK_ROOT, icon.removeprefix(prefix))) as image:
        assert image.format == "PNG" and image.width == image.height >= 128
    with open(os.path.join(PACK_ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    assert "<this repository>" not in readme
    assert f"git clone {repository} ComfyUI-InverseDVS" in readme


def test_the_error_reads_as_its_title_where_comfyui_shows_it(loaded):
    """ComfyUI's dialog shows ``module.qualname`` of the exception (``builtins`` left out), and a traceback
    prints the same; loaded from a custom_nodes folder, the pack's error still reads as 'InverseDVS error'."""
    assert loaded["error_title"] == "InverseDVS error"
    assert loaded["error_line"] == "InverseDVS error: Sample: bad input.\n"
