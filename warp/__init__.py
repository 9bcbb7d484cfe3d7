"""Geometry for InverseDVS: cameras and paths, depth conversion, the forward warp (a triangle mesh of the depth map), procedural scenes.

Pure torch (and the standard library); nothing here imports ComfyUI, so every function can be
used and tested on its own. Images are float [F, H, W, 3] in 0..1, depth is [F, H, W] along the
camera's z axis, cameras use the pinhole model with x right, y down, z forward (OpenCV).
"""
