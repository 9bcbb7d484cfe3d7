"""Import a repository script (scripts/demo.py, training/train.py, ...) as a module, by its path."""

import importlib.util
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_script(relative_path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, relative_path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses (and pickling) look their module up by name
    spec.loader.exec_module(module)
    return module
