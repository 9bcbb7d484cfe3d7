"""Load the pack the way ComfyUI does: as a package from its folder path, whatever the folder is named.

Used by the tests, the demo and the benchmarks, so all of them run the exact code ComfyUI runs.
"""

import importlib.util
import os
import sys

PACK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_pack(name: str = "inversedvs", root: str = PACK_ROOT):
    """Import ``root/__init__.py`` as package ``name`` (once) and return the module."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(
        name, os.path.join(root, "__init__.py"), submodule_search_locations=[root]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module
