"""The 3D Gaussian splatting PLY file: what splat viewers and editors open.

Binary little-endian, one ``vertex`` element per Gaussian with float32 properties x y z, nx ny nz (0), f_dc_0..2
(the degree-0 SH colour), opacity (the logit), scale_0..2 (log-scales) and rot_0..3 (the quaternion w, x, y, z):
exactly the unconstrained tensors of ``model.Gaussians``.
"""

from __future__ import annotations

import numpy as np
import torch

from .model import Gaussians

PROPERTIES = ("x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
              "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3")


def ply_bytes(g: Gaussians) -> bytes:
    """The PLY file of ``g`` (N Gaussians) as bytes."""
    columns = torch.cat([g.means, torch.zeros_like(g.means), g.sh0, g.opacity_logits[:, None], g.log_scales,
                         g.quats], dim=1).detach().to("cpu", torch.float32).numpy()
    records = np.empty(len(g), dtype=[(name, "<f4") for name in PROPERTIES])
    for i, name in enumerate(PROPERTIES):
        records[name] = columns[:, i]
    header = "ply\nformat binary_little_endian 1.0\nelement vertex {}\n{}end_header\n".format(
        len(g), "".join(f"property float {name}\n" for name in PROPERTIES))
    return header.encode("ascii") + records.tobytes()
