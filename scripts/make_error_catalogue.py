"""Write docs/errors.md: every bad input in tests/test_bad_inputs.py with the exact message its node gives.

    python scripts/make_error_catalogue.py           # rewrite docs/errors.md
    python scripts/make_error_catalogue.py --check   # exit 1 when docs/errors.md is stale

The cases are run (each in a throw-away ComfyUI folder layout), so the document always shows what
the code says, and tests/test_bad_inputs.py fails when the committed file differs.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys

SCRIPTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(SCRIPTS)
DOC = os.path.join(ROOT, "docs", "errors.md")
CASES_FILE = os.path.join(ROOT, "tests", "test_bad_inputs.py")

HEADER = """# Errors: what each bad input gives

Every InverseDVS node checks its inputs before doing anything heavy and stops with one clear
message (an `InverseDVSError`, shown in ComfyUI's error dialog) that says what was wrong and what
to do. This page lists the bad inputs the test suite feeds to the nodes and the exact message
each one gives. It is generated from `tests/test_bad_inputs.py` by
`python scripts/make_error_catalogue.py`; a test fails when it is out of date. Paths read
`ComfyUI/...` where the message names your ComfyUI folder. The model cases run the test suite's
tiny CogVideoX (4 latent channels, T5 width 32); with the real CogVideoX-5B-I2V the same messages
name its sizes (16 latent channels, T5 width 4096).

"""

BEHAVIOUR = """
## Cancelling, memory and safety

- **Cancel** (ComfyUI's *Cancel* / *Interrupt*): every loop of the pack (frames, depth batches,
  inversion and sampling steps, saving) checks for it, so a run stops within one step. Nothing is
  left half-written: *Save Video* encodes to a hidden temporary file and gives it its final name
  only when the video is complete. On a GPU the memory the run held is handed back
  (`tests/test_interrupt.py`).
- **Out of memory** during sampling or inversion does not crash with a CUDA traceback: the node
  stops, frees what the failed step held and names the low-VRAM memory policy to choose on the
  model loader and the memory the run needs.
- **Repeated runs** do not grow memory (`tests/test_memory.py` runs the tiny pipeline five times).
- **Safety on a shared server**: nothing is unpickled (weights are read only from `.safetensors`;
  there is no `pickle`, `eval` or `exec` and no `torch.load` without `weights_only=True` in the
  pack); videos are read only from ComfyUI's input folder and models only from its model folders,
  and a name with `..`, an absolute path or a drive letter is refused; files are written only
  inside the output folder; nothing is downloaded and no network connection is opened at run time
  (`tests/test_safety.py`).

## Determinism

On the CPU the same inputs, settings and seed give bit-identical frames, run after run
(`tests/test_determinism.py` runs the tiny pipeline twice and compares every bit). Random draws
(the VAE posterior sample, Stochastic Latent Modulation) come from generators seeded by the
node's `seed`, never from the global random state. The frames *Save Video* receives are
identical; the mp4 file's bytes may still differ slightly, because the H.264 encoder (x264) is not
bit-reproducible from run to run.

On a GPU the result is repeatable to within a few levels of the last bit, not bit for bit:

- cuDNN and PyTorch's scaled-dot-product attention pick their kernels at run time by GPU model,
  driver and free memory (flash, memory-efficient, cuDNN attention); different kernels sum in a
  different order.
- A compiled transformer (`torch.compile`) fuses operations differently from eager mode and
  between compiler versions, so compiled and eager runs differ within bf16 noise.
- bf16 and fp16 results differ from fp32 ones, and from one GPU architecture to another.

These differences are far below what the eye can see; for bit-exact comparisons run on the CPU
in fp32.
"""


# Nodes in the order a graph runs them; nodes not listed follow in the order their cases appear.
NODE_ORDER = (
    "Load Video", "Depth Estimate", "Camera Trajectory", "Forward Warp", "Load Video Model", "Encode Text",
    "VAE Encode Video", "K-RNR Invert", "Stochastic Latent Modulation", "Sample", "VAE Decode Video", "Save Video",
)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(cases, messages: dict[str, str], accepted=()) -> str:
    """The catalogue's markdown: one table row per case, grouped by node in pipeline order, then the
    unusual inputs accepted on purpose (``accepted``: cases whose ``expect`` is the behaviour)."""
    lines = [HEADER]
    lines.append(f"{len(cases)} bad inputs across {len({c.node for c in cases})} nodes.\n")
    nodes = [n for n in NODE_ORDER if any(c.node == n for c in cases)]
    for c in cases:
        if c.node not in nodes:
            nodes.append(c.node)
    number = 0
    for node in nodes:
        lines.append(f"\n## {node}\n")
        lines.append("| # | Bad input | Message | Test |")
        lines.append("| --- | --- | --- | --- |")
        for c in cases:
            if c.node != node:
                continue
            number += 1
            lines.append(
                f"| {number} | {_cell(c.bad_input)} | {_cell(messages[c.id])} | `test_bad_input_gives_clear_error[{c.id}]` |"
            )
    if accepted:
        lines.append("\n## Accepted on purpose\n")
        lines.append("| Node | Input | Behaviour | Test |")
        lines.append("| --- | --- | --- | --- |")
        for c in accepted:
            lines.append(f"| {c.node} | {_cell(c.bad_input)} | {_cell(c.expect)} | "
                         f"`test_unusual_input_is_accepted_as_documented[{c.id}]` |")
    lines.append(BEHAVIOUR)
    return "\n".join(lines)


def _load_cases():
    sys.path.insert(0, SCRIPTS)
    from pack import load_pack

    load_pack("inversedvs")
    spec = importlib.util.spec_from_file_location("test_bad_inputs", CASES_FILE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/errors.md is stale")
    args = parser.parse_args()
    module = _load_cases()
    text = render(module.CASES, {c.id: module.provoke(c) for c in module.CASES}, module.ACCEPTED)
    if args.check:
        with open(DOC, encoding="utf-8") as f:
            stale = f.read() != text
        print("docs/errors.md is stale" if stale else "docs/errors.md is current")
        return int(stale)
    os.makedirs(os.path.dirname(DOC), exist_ok=True)
    with open(DOC, "w", encoding="utf-8") as f:
        f.write(text)
    print(f"wrote {DOC}: {len(module.CASES)} cases")
    return 0


if __name__ == "__main__":
    sys.exit(main())
