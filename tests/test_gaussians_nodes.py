"""The 4D nodes outside ComfyUI: a fit through the node on a small matrix, its PLY files, and the reloadable
object file (round trip; damaged and hostile files give the pack's error, nothing else)."""

from __future__ import annotations

import os
import random
import shutil

import pytest
import torch

from _gaussian_scene import matrix
from inversedvs.errors import InverseDVSError
from inversedvs.gaussians import fit, store
from inversedvs.nodes import gaussians4d as nodes

VIEWS, FRAMES, SIZE = 4, 2, 32


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    base = tmp_path_factory.mktemp("comfy")
    saved = {k: os.environ.get(k) for k in ("INVERSEDVS_INPUT_DIR", "INVERSEDVS_OUTPUT_DIR")}
    os.environ["INVERSEDVS_INPUT_DIR"], os.environ["INVERSEDVS_OUTPUT_DIR"] = str(base / "input"), str(base / "output")
    os.makedirs(base / "input")
    yield base
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def fitted(folders):
    torch.set_num_threads(2)
    targets, az, el = matrix(VIEWS, FRAMES, SIZE)
    conditioning = [[torch.zeros(1, FRAMES, 1024), {"concat_latent_image": torch.zeros(FRAMES, 4, 4, 4),
                                                    "elevation": el.tolist(), "azimuth": az.tolist()}]]
    images = targets.reshape(VIEWS * FRAMES, SIZE, SIZE, 3)
    result, renders = nodes.FitDynamicGaussians().fit(images, conditioning, 60, 30, 200, "right", 33.8, "white",
                                                      "auto", 0)
    return result, renders, images


def test_the_fit_node_gives_the_object_and_its_renders_of_the_matrix(fitted):
    result, renders, images = fitted
    assert renders.shape == images.shape and 0 <= float(renders.min()) and float(renders.max()) <= 1
    assert result.frames == FRAMES and (result.height, result.width) == (SIZE, SIZE) and result.direction == "right"
    # the renders are the object seen from the conditioning's cameras, view-major like the matrix
    again, _ = fit.render_fitted(result, result.azimuth_deg[1:2], result.elevation_deg[1:2], torch.tensor([1.0]),
                                 SIZE, SIZE)
    assert torch.allclose(renders[1 * FRAMES + 1], again[0].clamp(0, 1), atol=1e-6)


def test_render_node_follows_the_orbit_and_time_it_is_given(fitted):
    result = fitted[0]
    images, mask = nodes.RenderDynamicGaussians().render(result, 3, 0.0, 90.0, 10.0, 0.0, 1.0, 24, 40, "auto")
    assert images.shape == (3, 40, 24, 3) and mask.shape == (3, 40, 24)
    want, alpha = fit.render_fitted(result, torch.tensor([45.0], dtype=torch.float64),
                                    torch.tensor([10.0], dtype=torch.float64), torch.tensor([0.5]), 40, 24)
    assert torch.allclose(images[1], want[0].clamp(0, 1), atol=1e-6) and torch.allclose(mask[1], alpha[0], atol=1e-6)


def test_ply_node_writes_one_file_per_frame_with_the_deformed_gaussians(fitted, folders):
    plyfile = pytest.importorskip("plyfile")
    result = fitted[0]
    out = nodes.SaveDynamicGaussians().save(result, "plys/object")
    files = out["result"][0].splitlines()
    assert files == [f"plys/object_f{f:03}_00001_.ply" for f in range(FRAMES)]
    for f, name in enumerate(files):
        vertex = plyfile.PlyData.read(os.path.join(folders, "output", name))["vertex"]
        moved = fit.deformed_at(result, f)
        assert vertex.count == len(result.gaussians)
        assert torch.equal(torch.tensor(vertex["x"]), moved.means[:, 0].float())
    again = nodes.SaveDynamicGaussians().save(result, "plys/object")["result"][0].splitlines()
    assert again == [f"plys/object_f{f:03}_00002_.ply" for f in range(FRAMES)]  # nothing overwritten


def _saved_file(result, folders) -> str:
    name = nodes.SaveDynamicGaussiansFile().save(result, "objects/fitted")["result"][0]
    shutil.copy(os.path.join(folders, "output", name), os.path.join(folders, "input"))
    return os.path.basename(name)


def test_saved_object_loads_back_and_renders_the_same(fitted, folders):
    result = fitted[0]
    name = _saved_file(result, folders)
    assert name in nodes.LoadDynamicGaussians.INPUT_TYPES()["required"]["file"][0]
    assert nodes.LoadDynamicGaussians.VALIDATE_INPUTS(name) is True
    loaded, = nodes.LoadDynamicGaussians().load(name)
    args = (torch.tensor([30.0, 200.0]), torch.tensor([5.0, -5.0]), torch.tensor([0.3, 1.0]), SIZE, SIZE)
    assert torch.equal(fit.render_fitted(loaded, *args)[0], fit.render_fitted(result, *args)[0])
    assert (loaded.direction, loaded.frames, loaded.fov_deg) == (result.direction, result.frames, result.fov_deg)
    assert isinstance(nodes.LoadDynamicGaussians.VALIDATE_INPUTS("missing.gaussians4d.safetensors"), str)


def _write(folders, name, tensors, metadata):
    import safetensors.torch

    safetensors.torch.save_file(tensors, os.path.join(folders, "input", name), metadata)
    return name


@pytest.mark.parametrize("damage, expect", [
    (lambda t, m: (t, dict(m, format="something-else")), "not a dynamic Gaussians file"),
    (lambda t, m: (t, dict(m, version="9")), "version '9'"),
    (lambda t, m: (t, dict(m, field_depth="100000")), "field_depth"),
    (lambda t, m: (t, dict(m, direction="up")), "direction"),
    (lambda t, m: (t, dict(m, frames="0")), "frames"),
    (lambda t, m: (dict(t, **{"gaussians.means": t["gaussians.means"][:-1].clone()}), m), "has shape"),
    (lambda t, m: (dict(t, **{"gaussians.sh0": torch.full_like(t["gaussians.sh0"], float("nan"))}), m), "NaN"),
    (lambda t, m: ({k: v for k, v in t.items() if k != "background"}, m), "missing ['background']"),
    (lambda t, m: (dict(t, extra=torch.zeros(1)), m), "unexpected ['extra']"),
    (lambda t, m: (dict(t, **{"field.head.bias": torch.zeros(3)}), m), "field weight 'head.bias'"),
])
def test_a_damaged_object_file_is_refused_with_what_is_wrong(fitted, folders, damage, expect):
    tensors, metadata = damage(*store.to_state(fitted[0]))
    name = _write(folders, "damaged.gaussians4d.safetensors", tensors, metadata)
    with pytest.raises(InverseDVSError, match=r"Load Dynamic Gaussians: 'damaged.gaussians4d.safetensors' cannot be "
                                               r"loaded: .*" + expect.replace("[", r"\[").replace("(", r"\(")):
        nodes.LoadDynamicGaussians().load(name)


def test_mutated_object_files_only_ever_raise_the_packs_error(fitted, folders):
    """200 seeded byte mutations (flips, cuts, insertions) of a saved file: each loads or raises InverseDVSError."""
    name = _saved_file(fitted[0], folders)
    with open(os.path.join(folders, "input", name), "rb") as f:
        good = f.read()
    rng = random.Random(7)
    header = int.from_bytes(good[:8], "little") + 8
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(200):
        data = bytearray(good)
        where = rng.randrange(header + 64) if rng.random() < 0.7 else rng.randrange(len(data))
        kind = rng.choice(("flip", "cut", "insert"))
        if kind == "flip":
            data[where] ^= 1 << rng.randrange(8)
        elif kind == "cut":
            del data[where:where + rng.randrange(1, 64)]
        else:
            data[where:where] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 16)))
        path = os.path.join(folders, "input", "mutated.gaussians4d.safetensors")
        with open(path, "wb") as f:
            f.write(bytes(data))
        try:
            loaded, = nodes.LoadDynamicGaussians().load("mutated.gaussians4d.safetensors")
        except InverseDVSError:
            outcomes["refused"] += 1
            continue
        assert isinstance(loaded, fit.Fitted)
        outcomes["loaded"] += 1
    assert outcomes["refused"] > 100  # measured: 175 refused, 25 loaded (flips inside the weights)
