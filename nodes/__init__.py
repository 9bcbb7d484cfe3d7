"""ComfyUI node classes. Each module lists its classes in ``NODES``; ids get the pack prefix."""

from . import camera, camera_import, depth, diffusion, model, output, video, warp

NODE_PREFIX = "InverseDVS_"
_MODULES = (video, depth, camera, camera_import, warp, model, diffusion, output)

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
for _module in _MODULES:
    for _cls in _module.NODES:
        _node_id = NODE_PREFIX + _cls.__name__
        NODE_CLASS_MAPPINGS[_node_id] = _cls
        NODE_DISPLAY_NAME_MAPPINGS[_node_id] = _cls.DISPLAY_NAME
