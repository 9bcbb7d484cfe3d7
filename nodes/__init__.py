"""ComfyUI node classes. Each module lists its classes in ``NODES``; ids get the pack prefix."""

from . import camera, depth, diffusion, model, native, output, video, warp

NODE_PREFIX = "InverseDVS_"
_MODULES = (video, depth, camera, warp, model, diffusion, native, output)

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
for _module in _MODULES:
    for _cls in _module.NODES:
        _node_id = NODE_PREFIX + _cls.__name__
        NODE_CLASS_MAPPINGS[_node_id] = _cls
        NODE_DISPLAY_NAME_MAPPINGS[_node_id] = _cls.DISPLAY_NAME
