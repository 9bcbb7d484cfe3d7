"""The example workflows in workflows/: generated from the live nodes, and valid for ComfyUI on their own.

The checks below read the JSON files directly and re-derive everything from the registered node
classes (and, for the few core ComfyUI nodes allowed, from the spec table the host check compares
with a running ComfyUI), so a hand edit or a node change that breaks a workflow fails here.
"""

import glob
import json
import os

import pytest
import torch

import make_workflows as mw
from conftest import PACK_ROOT

from inversedvs import NODE_CLASS_MAPPINGS
from inversedvs.nodes import _samples

WORKFLOW_DIR = os.path.join(PACK_ROOT, "workflows")
API_DIR = os.path.join(WORKFLOW_DIR, "api")
CORE_ALLOWED = {"PreviewImage", "MaskToImage", "ImageStitch", "CreateVideo", "SaveVideo",
                # core's Wan image-to-video nodes (loaders, text / vision encoders, VAE, image conditioning)
                "UNETLoader", "CLIPLoader", "VAELoader", "CLIPVisionLoader", "CLIPVisionEncode", "CLIPTextEncode",
                "ImageFromBatch", "VAEEncode", "VAEDecode", "WanImageToVideo",
                # core's image-model loader and saver (the SD 1.5 novel-view workflow)
                "CheckpointLoaderSimple", "SaveImage",
                # core's SVD / SV3D loader, conditioning, guidance patch and sampler (the Diffusion² workflow)
                "ImageOnlyCheckpointLoader", "SVD_img2vid_Conditioning", "SV3D_Conditioning", "VideoLinearCFGGuidance",
                "KSampler"}
NOTE_TYPES = {"Note", "MarkdownNote"}
SEED_CONTROLS = {"fixed", "increment", "decrement", "randomize"}
WIDGET_KINDS = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
UPLOAD_FLAGS = ("image_upload", "video_upload", "animated_image_upload")
EXPECTED = {"inversedvs_geometry_preview", "inversedvs_full_pipeline", "inversedvs_sweep_k_guidance",
            "inversedvs_wan21_i2v_native", "inversedvs_long_clip", "inversedvs_sd15_novel_view_fusion",
            "inversedvs_wan21_long_clip_native", "inversedvs_diffusion2_svd_sv3d"}
# The reference's sampling settings (DESIGN §1): what the full workflow must start from.
REFERENCE_SAMPLE = {"steps": 30, "strength": 0.98, "guidance": 10.0, "preservation": 1.0, "seed": 42}
WAN_TEMPLATE_STEPS = 20
WEIGHT_NODES = {"InverseDVS_LoadVideoModel", "InverseDVS_DepthEstimate"}


@pytest.fixture(scope="module", autouse=True)
def host_folders(tmp_path_factory):
    """Empty model folders and an input folder holding the sample clip names, so choice lists are fixed."""
    root = tmp_path_factory.mktemp("host")
    for sub in ("models", "input", "output"):
        os.makedirs(root / sub)
    for name in (mw.SAMPLE_VIDEO, mw.SAMPLE_DEPTH_VIDEO):
        (root / "input" / name).write_bytes(b"")
    saved = {k: os.environ.get(k) for k in ("INVERSEDVS_MODELS_DIR", "INVERSEDVS_INPUT_DIR", "INVERSEDVS_OUTPUT_DIR")}
    os.environ.update(INVERSEDVS_MODELS_DIR=str(root / "models"), INVERSEDVS_INPUT_DIR=str(root / "input"),
                      INVERSEDVS_OUTPUT_DIR=str(root / "output"))
    yield root
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


# ---------------------------------------------------------------------------- an independent validator


def spec_of(node_type):
    """(ordered inputs [(name, kind, options, required, choices)], outputs [(name, type)]) of a node type."""
    if node_type in NODE_CLASS_MAPPINGS:
        cls = NODE_CLASS_MAPPINGS[node_type]
        input_types = cls.INPUT_TYPES()
        outputs = list(cls.RETURN_TYPES)
        names = list(getattr(cls, "RETURN_NAMES", None) or outputs)
    else:
        core = mw.CORE_NODES[node_type]
        input_types, outputs, names = core["input"], core["output"], core["output_name"]
    inputs = []
    for section in ("required", "optional"):
        for name, entry in (input_types.get(section) or {}).items():
            kind = entry[0]
            options = entry[1] if len(entry) > 1 else {}
            choices = None
            if isinstance(kind, (list, tuple)):
                kind, choices = "COMBO", list(kind)
            elif kind == "COMBO":
                choices = list(options["options"])
            inputs.append((name, kind, options, section == "required", choices))
    return inputs, list(zip(names, outputs))


def is_widget(kind, options):
    return kind in WIDGET_KINDS and not options.get("forceInput")


def widget_problems(where, kind, options, choices, value):
    if kind == "COMBO":
        return [] if value in choices else [f"{where}: {value!r} not among {choices}"]
    if kind == "BOOLEAN":
        ok = type(value) is bool
    elif kind == "INT":
        ok = type(value) is int
    elif kind == "FLOAT":
        ok = type(value) in (int, float)
    else:
        ok = type(value) is str
    if not ok:
        return [f"{where}: {value!r} is not {kind}"]
    lo, hi = options.get("min"), options.get("max")
    if kind in ("INT", "FLOAT") and ((lo is not None and value < lo) or (hi is not None and value > hi)):
        return [f"{where}: {value} outside [{lo}, {hi}]"]
    return []


def validate(ui):
    """Every problem of a UI-format workflow (empty when ComfyUI can load and run it) and its API form."""
    problems = []
    nodes = {n["id"]: n for n in ui["nodes"]}
    links = {link[0]: link for link in ui["links"]}
    if len(nodes) != len(ui["nodes"]) or len(links) != len(ui["links"]):
        problems.append("duplicate node or link ids")
    if ui.get("last_node_id", 0) < max(nodes) or ui.get("last_link_id", 0) < max(links, default=0):
        problems.append("last_node_id / last_link_id below the ids used")
    api = {}
    for node in ui["nodes"]:
        where = f"node {node['id']} ({node['type']})"
        if node["type"] in NOTE_TYPES:
            if not (node.get("widgets_values") or [""])[0].strip():
                problems.append(f"{where}: empty note")
            continue
        if node["type"] not in NODE_CLASS_MAPPINGS and node["type"] not in CORE_ALLOWED:
            problems.append(f"{where}: unknown node type")
            continue
        inputs, outputs = spec_of(node["type"])
        by_name = {i[0]: i for i in inputs}
        linked = {}
        for slot, entry in enumerate(node.get("inputs", [])):
            spec = by_name.get(entry["name"])
            if spec is None:
                problems.append(f"{where}: input '{entry['name']}' does not exist")
                continue
            if entry["type"] != spec[1]:
                problems.append(f"{where}.{entry['name']}: type {entry['type']} != {spec[1]}")
            if is_widget(spec[1], spec[2]) and entry.get("widget", {}).get("name") != entry["name"]:
                problems.append(f"{where}.{entry['name']}: a widget input needs its 'widget' entry")
            if entry["link"] is None:
                continue
            link = links.get(entry["link"])
            if link is None or link[3] != node["id"] or link[4] != slot:
                problems.append(f"{where}.{entry['name']}: link {entry['link']} does not end here")
                continue
            source = nodes.get(link[1])
            if source is None or (source["type"] not in NODE_CLASS_MAPPINGS and source["type"] not in CORE_ALLOWED):
                problems.append(f"{where}.{entry['name']}: link from a missing or unknown node")
                continue
            _, source_outputs = spec_of(source["type"])
            if link[2] >= len(source_outputs):
                problems.append(f"{where}.{entry['name']}: source slot {link[2]} does not exist")
                continue
            out_type = source_outputs[link[2]][1]
            if not (out_type == spec[1] == link[5]):
                problems.append(f"{where}.{entry['name']}: {spec[1]} input linked to {out_type} (link says {link[5]})")
            if entry["link"] not in (source["outputs"][link[2]].get("links") or []):
                problems.append(f"{where}.{entry['name']}: source output does not list link {entry['link']}")
            linked[entry["name"]] = [str(link[1]), link[2]]
        for name, kind, options, required, _ in inputs:
            if required and not is_widget(kind, options) and name not in linked:
                problems.append(f"{where}: required input '{name}' is not connected")
        if [(o["name"], o["type"]) for o in node.get("outputs", [])] != outputs:
            problems.append(f"{where}: outputs {[(o['name'], o['type']) for o in node.get('outputs', [])]} != {outputs}")
        values = list(node.get("widgets_values", []))
        api_inputs = {}
        upload = any(i[3] and i[1] == "COMBO" and any(i[2].get(f) for f in UPLOAD_FLAGS) for i in inputs)
        last_required = [i[0] for i in inputs if i[3] and is_widget(i[1], i[2])][-1:]
        for name, kind, options, required, choices in inputs:
            if not is_widget(kind, options):
                if name in linked:
                    api_inputs[name] = linked[name]
                continue
            if not values:
                problems.append(f"{where}: no value for widget '{name}'")
                break
            value = values.pop(0)
            if upload and [name] == last_required:  # the frontend's upload button follows the required inputs
                if not values or values.pop(0) != "image":
                    problems.append(f"{where}: the upload widget's value is missing after '{name}'")
            if kind == "INT" and (options.get("control_after_generate") or name in ("seed", "noise_seed")):
                if not values or values.pop(0) not in SEED_CONTROLS:
                    problems.append(f"{where}.{name}: the control_after_generate value is missing")
            problems += widget_problems(f"{where}.{name}", kind, options, choices, value)
            api_inputs[name] = linked.get(name, value)
        if values:
            problems.append(f"{where}: {len(values)} widget value(s) too many: {values}")
        api[str(node["id"])] = {"inputs": api_inputs, "class_type": node["type"],
                                "_meta": {"title": node.get("title", node["type"])}}
    for link_id, link in links.items():
        target = nodes.get(link[3])
        if target is None or link[4] >= len(target.get("inputs", [])) or target["inputs"][link[4]]["link"] != link_id:
            problems.append(f"link {link_id}: its target slot does not point back")
    return problems, api


def load(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def ui_files():
    return sorted(glob.glob(os.path.join(WORKFLOW_DIR, "*.json")))


def by_type(ui, node_type):
    return [n for n in ui["nodes"] if n["type"] == node_type]


def widget_dict(node):
    """Widget name → value of a node, from its widgets_values (seed controls and upload values skipped)."""
    inputs, _ = spec_of(node["type"])
    values, result = list(node["widgets_values"]), {}
    upload = any(i[3] and i[1] == "COMBO" and any(i[2].get(f) for f in UPLOAD_FLAGS) for i in inputs)
    last_required = [i[0] for i in inputs if i[3] and is_widget(i[1], i[2])][-1:]
    for name, kind, options, _, _ in inputs:
        if is_widget(kind, options):
            result[name] = values.pop(0)
            if upload and [name] == last_required:
                values.pop(0)
            if kind == "INT" and (options.get("control_after_generate") or name in ("seed", "noise_seed")):
                values.pop(0)
    return result


# ---------------------------------------------------------------------------- the tests


def test_the_expected_workflows_are_there_with_thumbnails_and_api_twins():
    import cv2

    names = {os.path.splitext(os.path.basename(p))[0] for p in ui_files()}
    assert EXPECTED <= names
    for name in names:
        image = cv2.imread(os.path.join(WORKFLOW_DIR, name + ".jpg"))
        assert image is not None, f"{name}.jpg is missing or not an image"
        assert image.shape[0] >= 128 and image.shape[1] >= 128
        assert image.std() > 10, f"{name}.jpg is blank"
        assert os.path.isfile(os.path.join(API_DIR, name + ".json"))
    # ComfyUI lists every *.json directly in workflows/ as a template: nothing else may sit there.
    for path in glob.glob(os.path.join(WORKFLOW_DIR, "*")):
        assert os.path.isdir(path) or path.endswith((".json", ".jpg")), path


def test_committed_files_equal_the_generator_output():
    files = mw.render_all()
    assert {f"workflows/{n}.json" for n in EXPECTED} <= set(files)
    for rel, text in files.items():
        with open(os.path.join(PACK_ROOT, rel), encoding="utf-8") as f:
            assert f.read() == text, f"{rel} is stale: run python scripts/make_workflows.py"


@pytest.mark.parametrize("path", ui_files(), ids=os.path.basename)
def test_workflow_is_valid_and_its_api_twin_matches(path):
    ui = load(path)
    assert "nodes" in ui and "links" in ui, "UI format expected at the top level of workflows/"
    problems, api = validate(ui)
    assert problems == []
    assert load(os.path.join(API_DIR, os.path.basename(path))) == api
    titles = [n.get("title", "") for n in ui["nodes"] if n["type"] not in NOTE_TYPES]
    assert all(t and not t.startswith("InverseDVS_") for t in titles), "every node needs a readable title"
    assert any(n["type"] in NOTE_TYPES for n in ui["nodes"]), "every workflow explains itself in a note"
    for group in ui["groups"]:
        x, y, w, h = group["bounding"]
        assert w > 0 and h > 0 and group["title"]


def test_full_pipeline_has_every_stage_and_the_reference_defaults():
    ui = load(os.path.join(WORKFLOW_DIR, "inversedvs_full_pipeline.json"))
    types = {n["type"] for n in ui["nodes"]}
    for stage in ("LoadVideo", "DepthEstimate", "CameraTrajectory", "ForwardWarp", "LoadVideoModel", "EncodeText",
                  "VAEEncode", "KRNRInvert", "StochasticLatentModulate", "Sample", "VAEDecode"):
        assert "InverseDVS_" + stage in types
    assert {"MaskToImage", "PreviewImage", "CreateVideo", "SaveVideo"} <= types
    assert len(by_type(ui, "PreviewImage")) >= 3  # warp, mask and path previews
    (sample,) = by_type(ui, "InverseDVS_Sample")
    values = widget_dict(sample)
    for name, value in REFERENCE_SAMPLE.items():
        assert values[name] == pytest.approx(value), name
    (invert,) = by_type(ui, "InverseDVS_KRNRInvert")
    assert widget_dict(invert)["steps"] == values["steps"]
    assert widget_dict(invert)["strength"] == pytest.approx(values["strength"])


def test_geometry_preview_needs_no_weights_and_saves_its_videos():
    ui = load(os.path.join(WORKFLOW_DIR, "inversedvs_geometry_preview.json"))
    types = [n["type"] for n in ui["nodes"]]
    assert not WEIGHT_NODES & set(types)
    assert "InverseDVS_ForwardWarp" in types and "InverseDVS_CameraTrajectory" in types
    assert types.count("SaveVideo") == 2  # warped video and hole mask


def test_sweep_reuses_one_inversion_for_distinct_settings():
    ui = load(os.path.join(WORKFLOW_DIR, "inversedvs_sweep_k_guidance.json"))
    links = {link[0]: link for link in ui["links"]}
    (invert,) = by_type(ui, "InverseDVS_KRNRInvert")
    samples = by_type(ui, "InverseDVS_Sample")
    assert len(samples) >= 3
    settings = {(widget_dict(s)["k"], widget_dict(s)["guidance"]) for s in samples}
    assert len(settings) == len(samples)
    noise_sources = {links[i["link"]][1] for s in samples for i in s["inputs"] if i["name"] == "noise"}
    assert len(noise_sources) == 1  # one inversion (through one SLM) feeds every Sample
    saves = by_type(ui, "SaveVideo")
    assert len(saves) == len(samples) + 1
    assert len({widget_dict(s)["filename_prefix"] for s in saves}) == len(saves)


def _inputs_from(ui, node):
    """Input name → (source node, source output name) of a node's linked inputs."""
    nodes = {n["id"]: n for n in ui["nodes"]}
    links = {link[0]: link for link in ui["links"]}
    found = {}
    for entry in node["inputs"]:
        if entry["link"] is not None:
            link = links[entry["link"]]
            source = nodes[link[1]]
            found[entry["name"]] = (source, source["outputs"][link[2]]["name"])
    return found


def test_long_clip_workflow_keeps_every_frame_and_sizes_the_path_by_the_clip():
    ui = load(os.path.join(WORKFLOW_DIR, "inversedvs_long_clip.json"))
    (video,) = [n for n in by_type(ui, "InverseDVS_LoadVideo")]
    assert widget_dict(video)["frame_load_cap"] == 0  # every frame of the file
    (path,) = by_type(ui, "InverseDVS_CameraTrajectory")
    source, output = _inputs_from(ui, path)["frames"]
    assert source["id"] == video["id"] and output == "frame_count"
    (invert,) = by_type(ui, "InverseDVS_KRNRInvert")
    overlap = widget_dict(invert)["window_overlap"]
    assert overlap == NODE_CLASS_MAPPINGS["InverseDVS_KRNRInvert"].INPUT_TYPES()["optional"]["window_overlap"][1][
        "default"] and overlap % 4 == 0
    (decode,) = by_type(ui, "InverseDVS_VAEDecode")
    (stitch,) = by_type(ui, "ImageStitch")  # input and result side by side: the same frame count
    assert {name: src["id"] for name, (src, _) in _inputs_from(ui, stitch).items()} == {
        "image1": video["id"], "image2": decode["id"]}


def test_native_long_clip_workflow_pads_for_core_s_vae_and_drops_the_padding_after_decoding():
    ui = load(os.path.join(WORKFLOW_DIR, "inversedvs_wan21_long_clip_native.json"))
    video = _node(ui, "InverseDVS_LoadVideo")
    assert widget_dict(video)["frame_load_cap"] == 0  # every frame of the file
    path = _node(ui, "InverseDVS_CameraTrajectory")
    assert _inputs_from(ui, path)["frames"] == (video, "frame_count")
    pad, warp = _node(ui, "InverseDVS_NativePadFrames"), _node(ui, "InverseDVS_ForwardWarp")
    assert {name: (src["id"], out) for name, (src, out) in _inputs_from(ui, pad).items()} == {
        "images": (warp["id"], "warped"), "mask": (warp["id"], "mask"), "vae": (_node(ui, "VAELoader")["id"], "VAE")}
    encode = _node(ui, "VAEEncode")
    assert _inputs_from(ui, encode)["pixels"] == (pad, "images")
    sample, invert = _node(ui, "InverseDVS_NativeSample"), _node(ui, "InverseDVS_NativeInvert")
    assert _inputs_from(ui, sample)["mask"] == (pad, "mask")
    overlap = widget_dict(invert)["window_overlap"]
    assert overlap == NODE_CLASS_MAPPINGS["InverseDVS_NativeInvert"].INPUT_TYPES()["optional"]["window_overlap"][1][
        "default"] and overlap % 4 == 0
    for i2v in by_type(ui, "WanImageToVideo"):
        assert widget_dict(i2v)["length"] == 81  # one window's image condition; each window gets its own
    trims = [n for n in by_type(ui, "ImageFromBatch") if _inputs_from(ui, n)["image"][0]["type"] == "VAEDecode"]
    assert len(trims) == 1 and widget_dict(trims[0])["batch_index"] == 0
    assert _inputs_from(ui, trims[0])["length"] == (pad, "frame_count")
    (save,) = by_type(ui, "InverseDVS_SaveVideo")
    assert _inputs_from(ui, save)["images"][0] is trims[0]


def test_wan_workflow_uses_core_loaders_and_conditions_on_the_first_warped_frame():
    ui = load(os.path.join(WORKFLOW_DIR, "inversedvs_wan21_i2v_native.json"))
    types = [n["type"] for n in ui["nodes"]]
    assert not {"InverseDVS_LoadVideoModel", "InverseDVS_EncodeText", "InverseDVS_KRNRInvert"} & set(types)
    for loader, folder in mw.CORE_FOLDER_INPUTS.items():
        if folder not in mw.WAN_FILES:
            continue
        (node,) = by_type(ui, loader[0])
        assert widget_dict(node)[loader[1]] == mw.WAN_FILES[folder]
    assert widget_dict(_node(ui, "CLIPLoader"))["type"] == "wan"
    assert "fp8" in widget_dict(_node(ui, "UNETLoader"))["unet_name"]
    # 81 frames of 832x480 from the loader through the path to both WanImageToVideo nodes
    video = widget_dict(_node(ui, "InverseDVS_LoadVideo"))
    assert (video["frame_load_cap"], video["width"], video["height"]) == (81, 832, 480)
    assert widget_dict(_node(ui, "InverseDVS_CameraTrajectory"))["frames"] == 81
    i2vs = by_type(ui, "WanImageToVideo")
    assert len(i2vs) == 2
    prompts = set()
    for i2v in i2vs:
        assert {k: widget_dict(i2v)[k] for k in ("width", "height", "length")} == {
            "width": 832, "height": 480, "length": 81}
        linked = _inputs_from(ui, i2v)
        start, _ = linked["start_image"]
        assert start["type"] == "ImageFromBatch" and widget_dict(start) == {"batch_index": 0, "length": 1}
        assert _inputs_from(ui, start)["image"][1] == "warped"
        assert linked["clip_vision_output"][0]["type"] == "CLIPVisionEncode"
        prompts.add(widget_dict(linked["positive"][0])["text"])
        assert widget_dict(linked["negative"][0])["text"] == mw.WAN_NEGATIVE
    assert prompts == {"", mw.PROMPT}  # the inversion's empty prompt and the sampling prompt
    invert, sample = _node(ui, "InverseDVS_NativeInvert"), _node(ui, "InverseDVS_NativeSample")
    inverted_with = _inputs_from(ui, invert)["positive"][0]
    assert widget_dict(_inputs_from(ui, inverted_with)["positive"][0])["text"] == ""
    sampled_with = _inputs_from(ui, sample)
    assert widget_dict(_inputs_from(ui, sampled_with["positive"][0])["positive"][0])["text"] == mw.PROMPT
    assert sampled_with["negative"][0] is sampled_with["positive"][0]
    assert sampled_with["noise"][0] is invert and _inputs_from(ui, invert)["latent"][0]["type"] == "VAEEncode"
    assert sampled_with["clean"][0]["type"] == "VAEEncode" and sampled_with["mask"][1] == "mask"
    values = widget_dict(sample)
    # the reference's sampling settings, at the step count of core's Wan template
    for name, value in dict(REFERENCE_SAMPLE, steps=WAN_TEMPLATE_STEPS).items():
        assert values[name] == pytest.approx(value), name
    assert (widget_dict(invert)["steps"], widget_dict(invert)["strength"]) == (values["steps"], values["strength"])
    (save,) = by_type(ui, "InverseDVS_SaveVideo")
    assert _inputs_from(ui, save)["images"][0]["type"] == "VAEDecode"
    assert widget_dict(save)["fps"] == 16.0


def _full_ui():
    return load(os.path.join(WORKFLOW_DIR, "inversedvs_full_pipeline.json"))


def _node(ui, node_type):
    return by_type(ui, node_type)[0]


def test_fusion_workflow_inverts_the_one_image_with_the_empty_prompt_and_samples_with_the_prompt():
    ui = load(os.path.join(WORKFLOW_DIR, "inversedvs_sd15_novel_view_fusion.json"))
    types = [n["type"] for n in ui["nodes"]]
    assert not WEIGHT_NODES & set(types)  # core's loader; depth from the sample's depth video
    (ckpt,) = by_type(ui, "CheckpointLoaderSimple")
    assert widget_dict(ckpt)["ckpt_name"] == mw.SD15_FILES["checkpoints"]
    for loader in by_type(ui, "InverseDVS_LoadVideo"):
        values = widget_dict(loader)
        assert (values["frame_load_cap"], values["width"] % 8, values["height"] % 8) == (1, 0, 0)
    invert, fuse, sample = (_node(ui, P) for P in ("InverseDVS_ImageInvert", "InverseDVS_NovelViewFusion",
                                                     "InverseDVS_NovelViewSample"))
    assert (widget_dict(invert)["steps"], widget_dict(invert)["timestep"]) == (30, 600)  # the method's defaults
    assert _inputs_from(ui, invert)["latent"][0]["type"] == "VAEEncode"
    for node in (invert, fuse):
        assert widget_dict(_inputs_from(ui, node)["positive"][0])["text"] == ""
    assert _inputs_from(ui, fuse)["inversion"][0] is invert
    assert widget_dict(fuse)["strategy"] in ("a_noise_term", "b_inverted_latent")
    sampled = _inputs_from(ui, sample)
    assert widget_dict(sampled["positive"][0])["text"] == mw.PROMPT and sampled["start"][0] is fuse
    (save,) = by_type(ui, "SaveImage")
    assert _inputs_from(ui, save)["images"][0]["type"] == "VAEDecode"


def test_diffusion2_workflow_conditions_rows_on_the_orbit_and_columns_on_the_video():
    ui = load(os.path.join(WORKFLOW_DIR, "inversedvs_diffusion2_svd_sv3d.json"))
    assert not WEIGHT_NODES & set(n["type"] for n in ui["nodes"])
    loaders = {widget_dict(n)["ckpt_name"]: n for n in by_type(ui, "ImageOnlyCheckpointLoader")}
    assert sorted(loaders) == sorted(mw.SVD_FILES["checkpoints"])
    sample = _node(ui, "InverseDVS_Diffusion2Sample")
    wired = _inputs_from(ui, sample)
    rows, columns = wired["video_positive"][0], wired["multiview_positive"][0]
    assert rows["type"] == "SVD_img2vid_Conditioning" and columns["type"] == "SV3D_Conditioning"
    assert wired["video_negative"][0] is rows and wired["multiview_negative"][0] is columns
    # rows: SVD conditioned on the decoded SV3D orbit; columns: SV3D on the decoded SVD video, for 21 views
    orbit = _inputs_from(ui, rows)["init_image"][0]
    video = _inputs_from(ui, columns)["init_image"][0]
    assert _inputs_from(ui, _inputs_from(ui, orbit)["samples"][0])["model"][0] is loaders["sv3d_p.safetensors"]
    video_model = _inputs_from(ui, _inputs_from(ui, video)["samples"][0])["model"][0]
    assert _inputs_from(ui, video_model)["model"][0] is loaders["svd_xt.safetensors"]
    assert widget_dict(columns)["video_frames"] == 21 and widget_dict(rows)["video_frames"] == 25
    for node in (rows, columns):
        assert (widget_dict(node)["width"], widget_dict(node)["height"]) == (576, 576)
    assert wired["multiview_model"][0] is loaders["sv3d_p.safetensors"]
    values = widget_dict(sample)
    assert (values["steps"], values["s"], values["vrs_steps"]) == (50, 0.5, 5)  # the paper's
    pick = _node(ui, "InverseDVS_Diffusion2Pick")
    assert _inputs_from(ui, pick)["views"] == (sample, "views")
    assert _inputs_from(ui, pick)["images"] == (sample, "images")
    # group 4: dynamic Gaussians fitted to the matrix from the columns' cameras, an orbit video and the PLY files
    fit = _node(ui, "InverseDVS_FitDynamicGaussians")
    assert _inputs_from(ui, fit) == {"images": (sample, "images"), "multiview_positive": (columns, "positive")}
    render = _node(ui, "InverseDVS_RenderDynamicGaussians")
    plys = _node(ui, "InverseDVS_SaveDynamicGaussians")
    assert _inputs_from(ui, render)["gaussians"] == (fit, "gaussians") == _inputs_from(ui, plys)["gaussians"]
    assert widget_dict(plys)["filename_prefix"] == "InverseDVS/diffusion2_4d"
    videos = {_inputs_from(ui, n)["video"][0]["id"]: widget_dict(n)["filename_prefix"]
              for n in by_type(ui, "SaveVideo")}
    (orbit_video,) = [n for n in by_type(ui, "CreateVideo") if _inputs_from(ui, n)["images"] == (render, "images")]
    assert videos[orbit_video["id"]] == "InverseDVS/diffusion2_4d_orbit"
    assert any(g["title"].startswith("4 · 4D") for g in ui["groups"])


@pytest.mark.parametrize("breakage, expected", [
    ("unknown type", "unknown node type"),
    ("out of range", "outside"),
    ("bad choice", "not among"),
    ("wrong link type", "linked to"),
    ("unconnected", "is not connected"),
    ("missing seed control", "control_after_generate"),
    ("extra value", "too many"),
])
def test_validator_catches_broken_workflows(breakage, expected):
    ui = _full_ui()
    sample = _node(ui, "InverseDVS_Sample")
    inputs, _ = spec_of("InverseDVS_Sample")
    widget_names = [i[0] for i in inputs if is_widget(i[1], i[2])]
    if breakage == "unknown type":
        ui["nodes"][1]["type"] = "VHS_LoadVideo"
    elif breakage == "out of range":
        sample["widgets_values"][widget_names.index("strength")] = 1.5
    elif breakage == "bad choice":
        sample["widgets_values"][widget_names.index("mode")] = "fast"
    elif breakage == "wrong link type":
        mask_link = next(i["link"] for i in sample["inputs"] if i["name"] == "mask")
        positive_link = next(i["link"] for i in sample["inputs"] if i["name"] == "positive")
        for link in ui["links"]:
            if link[0] == mask_link:
                link[1:3] = next(l[1:3] for l in ui["links"] if l[0] == positive_link)
    elif breakage == "unconnected":
        for entry in sample["inputs"]:
            if entry["name"] == "negative":
                entry["link"] = None
    elif breakage == "missing seed control":
        sample["widgets_values"].remove("fixed")
    elif breakage == "extra value":
        sample["widgets_values"].append(1)
    problems, _ = validate(ui)
    assert any(expected in p for p in problems), problems


def test_api_twin_comparison_sees_a_changed_value():
    ui = _full_ui()
    _, api = validate(ui)
    sample_id = str(_node(ui, "InverseDVS_Sample")["id"])
    twin = load(os.path.join(API_DIR, "inversedvs_full_pipeline.json"))
    assert twin == api
    twin[sample_id]["inputs"]["guidance"] = 12.0
    assert twin != api


# ---------------------------------------------------------------------------- the sample clips they load


def _decode(path):
    import av

    with av.open(path) as container:
        frames = [torch.from_numpy(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
        fps = float(container.streams.video[0].average_rate)
    return torch.stack(frames).float() / 255.0, fps


def test_every_clip_a_workflow_loads_is_a_shipped_sample():
    for path in glob.glob(os.path.join(API_DIR, "*.json")):
        loaded = [n["inputs"]["video"] for n in load(path).values() if n["class_type"] == "InverseDVS_LoadVideo"]
        assert loaded, path
        for name in loaded:
            assert name in _samples.SAMPLE_FILES, f"{os.path.basename(path)} loads {name}, which the pack does not ship"
            assert os.path.getsize(os.path.join(_samples.SAMPLE_DIR, name)) > 10_000


def test_shipped_samples_are_the_pack_sample_render():
    """samples/ holds the sample scene as warp.sample renders it: the first and last frame re-rendered
    here match the decoded clip, and the depth video is an affine map of the exact disparity."""
    from inversedvs.warp import sample
    from inversedvs.warp.camera import DEFAULT_FOV_X_DEG, intrinsics
    from inversedvs.warp.synthetic import render

    clip, fps = _decode(os.path.join(_samples.SAMPLE_DIR, _samples.SAMPLE_VIDEO))
    depth_video, depth_fps = _decode(os.path.join(_samples.SAMPLE_DIR, _samples.SAMPLE_DEPTH_VIDEO))
    shape = (sample.SAMPLE_FRAMES, sample.SAMPLE_HEIGHT, sample.SAMPLE_WIDTH, 3)
    assert tuple(clip.shape) == shape and tuple(depth_video.shape) == shape
    assert fps == depth_fps == sample.SAMPLE_FPS
    ends = [0, sample.SAMPLE_FRAMES - 1]
    times = sample.clip_times(sample.SAMPLE_FRAMES)[ends]
    poses = torch.eye(4, dtype=torch.float64).expand(2, 4, 4)
    K = intrinsics(sample.SAMPLE_HEIGHT, sample.SAMPLE_WIDTH, DEFAULT_FOV_X_DEG)[0]
    out = render(sample.SAMPLE_SCENE, poses, K, sample.SAMPLE_HEIGHT, sample.SAMPLE_WIDTH, times)
    error = (clip[ends] - out["image"].float()).abs().mean(dim=(1, 2, 3))
    assert error.max() < 0.02, f"mean absolute error per end frame {error.tolist()}"
    assert (clip[0] - clip[-1]).abs().mean() > 0.01  # a moving subject: the two ends differ
    disparity = (1.0 / out["depth"]).flatten()
    grey = depth_video[ends].mean(-1).flatten().double()
    design = torch.stack([disparity, torch.ones_like(disparity)], 1)
    fit = torch.linalg.lstsq(design, grey[:, None]).solution
    residual = (design @ fit).squeeze(1) - grey
    assert fit[0, 0] > 0 and residual.abs().mean() < 0.01, (fit.tolist(), residual.abs().mean().item())


def test_install_samples_fills_the_input_folder_and_keeps_the_users_files(tmp_path, capsys):
    mine = tmp_path / "input" / _samples.SAMPLE_VIDEO
    mine.parent.mkdir()
    mine.write_bytes(b"the user's own clip")
    assert _samples.install_samples(str(mine.parent)) == [_samples.SAMPLE_DEPTH_VIDEO]
    assert mine.read_bytes() == b"the user's own clip"
    with open(os.path.join(_samples.SAMPLE_DIR, _samples.SAMPLE_DEPTH_VIDEO), "rb") as f:
        assert (mine.parent / _samples.SAMPLE_DEPTH_VIDEO).read_bytes() == f.read()
    assert _samples.SAMPLE_DEPTH_VIDEO in capsys.readouterr().out
    assert _samples.install_samples(str(mine.parent)) == []  # the next start copies nothing
    (mine.parent / _samples.SAMPLE_DEPTH_VIDEO).unlink()
    assert _samples.install_samples(str(mine.parent)) == [_samples.SAMPLE_DEPTH_VIDEO]  # a deleted one returns

    blocked = tmp_path / "a_file"
    blocked.write_bytes(b"")
    assert _samples.install_samples(str(blocked)) == []  # the pack still loads; it says why
    assert "could not make the input folder" in capsys.readouterr().out
    assert _samples.install_samples(str(blocked / "input")) == []
    assert str(blocked) in capsys.readouterr().out
