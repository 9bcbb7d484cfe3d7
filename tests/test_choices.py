"""Choice inputs: saved values are snake_case identifiers explained in the tooltips, and the labels the
first version saved still validate (as ComfyUI checks them) and reach the node as the identifiers."""

import re

import pytest
import torch

from comfy_host_check import FOLDER_CHOICES, SAVED_BY_0_1

from inversedvs import NODE_CLASS_MAPPINGS
from inversedvs.nodes._choices import Choices, snake_case, translate_renamed
from inversedvs.nodes.camera import CameraTrajectory
from inversedvs.nodes.warp import ForwardWarp
from inversedvs.warp.camera import DEFAULT_FOV_X_DEG

IDENTIFIER = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)*$")
USER_FILES = {key for key in FOLDER_CHOICES} | {("InverseDVS_LoadVideoModel", "lora"),
                                                 ("InverseDVS_LoadCameraPath", "file"),
                                                 ("InverseDVS_LoadDynamicGaussians", "file")}


def choice_inputs():
    for node_type, cls in NODE_CLASS_MAPPINGS.items():
        for section in ("required", "optional"):
            for name, spec in cls.INPUT_TYPES().get(section, {}).items():
                if isinstance(spec[0], list) and (node_type, name) not in USER_FILES:
                    yield node_type, name, spec[0], spec[1]


def test_every_choice_is_an_identifier_the_tooltip_explains():
    seen = 0
    for node_type, name, choices, options in choice_inputs():
        seen += 1
        for value in choices:
            assert IDENTIFIER.match(value), f"{node_type}.{name}: {value!r} is not a snake_case identifier"
            assert re.search(rf"(?<![\w]){value}(?![\w])", options["tooltip"]), \
                f"{node_type}.{name}: the tooltip does not explain {value!r}"
        assert options.get("default", choices[0]) in list(choices)
    assert seen >= 10


@pytest.mark.parametrize("key", sorted(SAVED_BY_0_1), ids=lambda k: f"{k[0]}.{k[1]}")
def test_values_the_first_version_saved_still_validate_and_map_to_identifiers(key):
    node_type, name = key
    inputs = NODE_CLASS_MAPPINGS[node_type].INPUT_TYPES()
    choices = {**inputs["required"], **inputs.get("optional", {})}[name][0]
    for old, new in SAVED_BY_0_1[key].items():
        assert old in choices, f"ComfyUI would refuse the saved value {old!r}"  # the test ComfyUI runs
        assert old not in list(choices), f"{old!r} is offered in the menu beside {new!r}"
        assert new in list(choices) and choices.identifier(old) == new
    assert "not a value" not in choices and 3 not in choices


def test_translate_renamed_hands_the_function_identifiers_however_it_is_called():
    class Node:
        FUNCTION = "run"
        MODES = Choices(("fast", "exact"), renamed={"exact (slow)": "exact"})
        calls = []

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"mode": (cls.MODES, {})}, "optional": {"count": ("INT", {})}}

        def run(self, mode, count=1):
            self.calls.append((mode, count))
            return (mode,)

    translate_renamed(Node)
    assert Node().run("exact (slow)") == ("exact",)
    assert Node().run(mode="exact (slow)", count=2) == ("exact",)
    assert Node().run("fast", 3) == ("fast",)
    assert Node.calls == [("exact", 1), ("exact", 2), ("fast", 3)]
    with pytest.raises(ValueError, match="unknown identifiers"):
        Choices(("a",), renamed={"old": "b"})
    assert snake_case("relative (white = near)") == "relative" and snake_case("first frame") == "first_frame"


def test_old_and_new_values_give_the_same_result_in_the_nodes():
    node = CameraTrajectory()
    new_path, new_preview = node.build("orbit_right", "", 9, 1.0, 0, DEFAULT_FOV_X_DEG)
    old_path, old_preview = node.build("orbit right", "", 9, 1.0, 0, DEFAULT_FOV_X_DEG)
    assert torch.equal(new_preview, old_preview) and new_path.label == old_path.label == "orbit right"
    assert not torch.equal(node.build("still (identity)", "", 9, 1.0, 0, DEFAULT_FOV_X_DEG)[1], new_preview)
    images = torch.rand(9, 32, 48, 3, generator=torch.Generator().manual_seed(0))
    depth = torch.linspace(0.2, 1.0, 48).expand(9, 32, 48).unsqueeze(-1).expand(9, 32, 48, 3)
    warped_new, mask_new = ForwardWarp().warp(images, depth, new_path, "relative", 0, "cpu")
    warped_old, mask_old = ForwardWarp().warp(images, depth, new_path, "relative (white = near)", 0, "cpu")
    assert torch.equal(warped_new, warped_old) and torch.equal(mask_new, mask_old)
    assert mask_new.sum() > 0  # the path moves the camera: something is unseen
