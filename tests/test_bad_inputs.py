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
import os
import re
import shutil
import sys
import tempfile

import pytest
import torch

from inversedvs.errors import InverseDVSError
from inversedvs.nodes import _validate
from inversedvs.nodes.output import SaveVideo

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
PACK_ROOT = os.path.dirname(TESTS_DIR)
DOC_PATH = os.path.join(PACK_ROOT, "docs", "errors.md")
# Messages longer than this are not read by anyone; they must stay a few sentences.
MAX_MESSAGE_CHARS = 600
# Free memory the sandbox reports, so memory messages read the same on every machine.
SANDBOX_FREE_BYTES = 16 * 1024**3


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


def case(node: str, bad_input: str, expect: str):
    """Register the decorated ``run(sandbox)`` as a catalogue case."""

    def register(run):
        CASES.append(Case(node, bad_input, expect, run))
        return run

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
        for obj, name, old in reversed(self._patches):
            setattr(obj, name, old)
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(self.tmp, ignore_errors=True)

    def patch(self, obj, name, value):
        self._patches.append((obj, name, getattr(obj, name)))
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


def _generator():
    path = os.path.join(PACK_ROOT, "scripts", "make_error_catalogue.py")
    spec = importlib.util.spec_from_file_location("make_error_catalogue", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_catalogue_doc_matches_the_code():
    """docs/errors.md holds exactly the messages the nodes give now (regenerate with the script)."""
    expected = _generator().render(CASES, {c.id: message_of(c) for c in CASES})
    with open(DOC_PATH, encoding="utf-8") as f:
        committed = f.read()
    assert committed == expected, "docs/errors.md is stale: run `python scripts/make_error_catalogue.py`"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
