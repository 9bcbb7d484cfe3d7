"""Load the pack as package ``inversedvs`` so tests can ``from inversedvs.warp import ...``."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))
from pack import PACK_ROOT, load_pack  # noqa: E402

load_pack("inversedvs")

SHARED_DATA = os.path.join(os.path.dirname(PACK_ROOT), "shared", "data")
