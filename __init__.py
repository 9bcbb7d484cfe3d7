"""InverseDVS for ComfyUI: dynamic view synthesis as an inverse problem, as ComfyUI nodes.

ComfyUI imports this folder as a package and reads the two mappings below. Importing it loads
torch (which ComfyUI has already loaded) and the node classes; diffusers, transformers and the
video codecs are imported only when a node runs.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
