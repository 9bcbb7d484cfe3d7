"""ComfyUI node classes. Each module lists its classes in ``NODES``; ids get the pack prefix.

Every node's choice inputs accept the values earlier versions saved (``_choices``). Loaded inside
ComfyUI, the pack also puts its sample clips into the input folder (``_samples``).
"""

from . import (_choices, _host, _samples, camera, camera_import, depth, diffusion, diffusion2, fusion,
               gaussians4d, model, native, output, video, warp)

NODE_PREFIX = "InverseDVS_"
_MODULES = (video, depth, camera, camera_import, warp, model, diffusion, native, fusion, diffusion2, gaussians4d,
            output)

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
for _module in _MODULES:
    for _cls in _module.NODES:
        _node_id = NODE_PREFIX + _cls.__name__
        NODE_CLASS_MAPPINGS[_node_id] = _cls
        NODE_DISPLAY_NAME_MAPPINGS[_node_id] = _cls.DISPLAY_NAME
        _choices.translate_renamed(_cls)

if _host.IN_COMFYUI:
    _samples.install_samples(_host.input_directory())
