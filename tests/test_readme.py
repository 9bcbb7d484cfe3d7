"""The README's node reference is generated from the live node classes and must be current."""

import os
import subprocess
import sys

from conftest import PACK_ROOT


def test_readme_node_reference_is_current():
    script = os.path.join(PACK_ROOT, "scripts", "make_node_reference.py")
    result = subprocess.run([sys.executable, script, "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_lists_every_node_and_the_two_commands():
    sys.path.insert(0, os.path.join(PACK_ROOT, "scripts"))
    from pack import load_pack

    pack = load_pack()
    with open(os.path.join(PACK_ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    for node_id in pack.NODE_CLASS_MAPPINGS:
        assert f"`{node_id}`" in readme, node_id
    assert "make demo" in readme and "make test" in readme
    with open(os.path.join(PACK_ROOT, ".ci", "run"), encoding="utf-8") as f:
        assert "make test" in f.read()
