"""Forward Warp node: frames + depth + camera path → warped frames and the hole mask."""

from __future__ import annotations

import torch

from ..errors import InverseDVSError
from ..warp import depth as dep
from ..warp.camera import CameraPath
from ..warp.splat import forward_warp
from . import _host, _validate
from ._choices import Choices
from .camera import CAMERA_PATH_TYPE

DEPTH_KIND_CHOICES = Choices(dep.DEPTH_KINDS, renamed={"relative (white = near)": dep.RELATIVE})
DEVICE_CHOICES = ("auto", "cpu")
MAX_DILATE = 64
FAR_PATH_HINT = ("The camera path moves the camera absurdly far (e.g. a radius offset of thousands of orbit radii); "
                 "use radius offsets below 1 (1 puts the camera on the pivot) and moderate moves.")
# Peak memory of the warp in units of one float32 RGB video of the same size, above the inputs it is given.
# On a GPU, the most any measurement gave: an earlier mesh warp took 9.42 GiB above what was allocated before at
# 81x480x832 on one H200, 26 such videos; the current one takes 6.0 GiB there, 16 videos
# (benchmarks/results/native_wan_24gib.json); 26 is kept as the bound asked for. On the CPU it works in slices
# of a frame: 8.5 videos at 49x480x720, 81x480x832 and 25x576x1024 (benchmarks/results/warp_cpu_memory.json),
# so 10 there.
WARP_MEMORY_COPIES = 26
WARP_MEMORY_COPIES_CPU = 10


def check_depth_kind(depth_kind: str, node: str) -> str:
    """One of DEPTH_KIND_CHOICES."""
    if depth_kind not in DEPTH_KIND_CHOICES:
        raise InverseDVSError(f"{node}: depth_kind '{depth_kind}' is unknown; use one of {', '.join(DEPTH_KIND_CHOICES)}.")
    return depth_kind


def check_camera_path(camera_path, node: str) -> CameraPath:
    """A CameraPath from this pack's camera nodes."""
    if not isinstance(camera_path, CameraPath):
        raise InverseDVSError(f"{node}: camera_path must come from Camera Trajectory or Load Camera Path (InverseDVS).")
    return camera_path


def path_transforms(camera_path: CameraPath, z: torch.Tensor, node: str) -> torch.Tensor:
    """Anchor camera → every path camera [F, 4, 4] for the depth z [F, H, W] (its orbit radius)."""
    radius = camera_path.orbit_radius(z)
    if radius.item() <= 0:
        raise InverseDVSError(
            f"{node}: the depth at the centre of anchor frame {camera_path.anchor} is not positive, so the "
            "orbit radius is undefined; use a depth map with a valid centre pixel (metric depth > 0)."
        )
    return camera_path.anchor_to_frame(radius)


class ForwardWarp:
    """Re-render every frame from its camera on the path: the depth map drawn as a surface (a triangle mesh, torn at occlusion edges), holes where the source never saw."""

    DISPLAY_NAME = "Forward Warp (InverseDVS)"
    CATEGORY = "InverseDVS/geometry"
    FUNCTION = "warp"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("warped", "mask")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The video frames [frames, height, width, 3], e.g. from Load Video."}),
                "depth": ("IMAGE", {"tooltip": "Depth of every frame, same frame count and size as the images: this "
                                               "pack's Depth Estimate or any depth node's IMAGE (grey, or the channel "
                                               "mean is used)."}),
                "camera_path": (CAMERA_PATH_TYPE, {"tooltip": "The new camera path from Camera Trajectory or Load "
                                                              "Camera Path; its frame count must match the video's "
                                                              "(one image with one depth map is seen from every camera "
                                                              "of the path)."}),
                "depth_kind": (DEPTH_KIND_CHOICES, {
                    "default": DEPTH_KIND_CHOICES[0],
                    "tooltip": "relative: disparity-like maps where white = near (Depth Anything and most depth "
                               "nodes); normalised over the clip and turned into depth as the reference does. "
                               "metric: values are distances along the camera axis (any unit)."}),
                "dilate_holes": ("INT", {
                    "default": 0, "min": 0, "max": MAX_DILATE,
                    "tooltip": "Grow the holes by this many pixels (and blank them in the warped video) to drop "
                               "unreliable pixels at depth edges. 0 = exact holes."}),
            },
            "optional": {
                "device": (list(DEVICE_CHOICES), {
                    "default": "auto",
                    "tooltip": "auto: the GPU ComfyUI uses when there is one, else the CPU. cpu: always the CPU."}),
            },
        }

    def warp(self, images, depth, camera_path, depth_kind, dilate_holes, device="auto"):
        node = self.DISPLAY_NAME
        images = _validate.check_image(images, "images", node)
        check_camera_path(camera_path, node)
        _validate.check_depth_image(depth, node)
        check_depth_kind(depth_kind, node)
        if not 0 <= int(dilate_holes) <= MAX_DILATE:
            raise InverseDVSError(f"{node}: dilate_holes = {dilate_holes}; use 0 to {MAX_DILATE} pixels.")
        if images.shape[0] == 1 and depth.shape[0] == 1 and camera_path.frames > 1:  # one image, every camera
            images = images.expand(camera_path.frames, *images.shape[1:])
            depth = depth.expand(camera_path.frames, *depth.shape[1:])
        frames, height, width = images.shape[:3]
        _validate.check_frame_counts(node, images=frames, depth=depth.shape[0], camera_path=camera_path.frames)
        _validate.check_same_size(node, images=(height, width), depth=tuple(depth.shape[1:3]))
        depth_map = dep.check_depth_map(dep.image_to_map(depth), depth_kind, node)
        target = _host.torch_device() if device == "auto" else torch.device("cpu")
        copies = WARP_MEMORY_COPIES_CPU if target.type == "cpu" else WARP_MEMORY_COPIES
        _validate.check_video_memory(frames, height, width, node, copies=copies, device=target)
        with _validate.out_of_memory_as_error(node, "warping", "device = cpu on this node", device=target):
            z = dep.depth_for_warp(depth_map.to(target), depth_kind)
            warped, mask = forward_warp(images.to(target), z, path_transforms(camera_path, z, node),
                                        camera_path.source_intrinsics(height, width),
                                        camera_path.target_intrinsics(height, width), int(dilate_holes))
            _validate.check_finite_result(warped, "the warped video", node, FAR_PATH_HINT)
            empty = (mask >= 0.5).flatten(1).all(1).nonzero().flatten().tolist()
            if empty:
                raise InverseDVSError(
                    f"{node}: nothing of the video is visible from the path's camera at frame {empty[0]} "
                    f"({len(empty)} frame(s) are all holes): the camera moved behind the scene or far away from it. "
                    + FAR_PATH_HINT)
        return (warped.to(images.device), mask.to(images.device))


NODES = (ForwardWarp,)
