"""Camera Trajectory node: a camera path from a preset or typed keyframes, with a preview picture."""

from __future__ import annotations

from ..errors import InverseDVSError
from ..warp import camera as cam
from ..warp import trajectory as traj
from ..warp.path_preview import path_preview
from . import _validate
from ._choices import Choices

CAMERA_PATH_TYPE = "INVDVS_CAMERA_PATH"
PRESETS = Choices.for_names(traj.PRESET_NAMES)  # orbit_right, reference_loop2, custom_keyframes, …
DEFAULT_PRESET = "orbit_right"
DEFAULT_FRAMES = 49
MAX_FRAMES = 1024
MIN_RADIUS_SCALE = 0.01
MAX_RADIUS_SCALE = 10.0
MAX_AMOUNT = 5.0
# Bounds of typed keyframes: a turn and a half either way, and ten orbit radii of travel.
MAX_KEYFRAME_DEG = 540.0
MAX_KEYFRAME_RADIUS = 10.0


class CameraTrajectory:
    """A camera path over the clip: orbit/arc/dolly/truck/pedestal/zoom presets, the reference's
    loop and wave shapes, or keyframes typed in the reference's 3-line format (θ, φ, r)."""

    DISPLAY_NAME = "Camera Trajectory (InverseDVS)"
    CATEGORY = "InverseDVS/geometry"
    FUNCTION = "build"
    RETURN_TYPES = (CAMERA_PATH_TYPE, "IMAGE")
    RETURN_NAMES = ("camera_path", "preview")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "preset": (PRESETS, {
                    "default": DEFAULT_PRESET,
                    "tooltip": "The camera move. orbit_left, orbit_right, arc_up, arc_down turn about the pivot "
                               "(the point at the centre of the anchor frame); dolly_in, dolly_out move toward / away "
                               "from it, truck_left, truck_right sideways, pedestal_up, pedestal_down up / down; "
                               "zoom_in, zoom_out change the focal length. reference_loop1, reference_loop2, "
                               "reference_loop3, reference_loop4, reference_oscillating_wave, reference_wave1 are the "
                               "paper's path files. still keeps the input camera. custom_keyframes uses the text "
                               "below."}),
                "keyframes": ("STRING", {
                    "multiline": True, "default": traj.REFERENCE_SHAPES["loop2"],
                    "tooltip": "Used when preset is custom_keyframes. Three lines of numbers separated by spaces "
                               "(the reference's path file format): elevation θ in degrees (+ = camera up), azimuth φ "
                               "in degrees (+ = camera right), radius offset r in orbit radii (+ = toward the pivot). "
                               "Each line needs at least 2 values, spread evenly over the clip; more than 3 values are "
                               "joined by a smooth cubic spline."}),
                "frames": ("INT", {
                    "default": DEFAULT_FRAMES, "min": 1, "max": MAX_FRAMES,
                    "tooltip": "Number of frames of the path; must equal the video's frame count (49 for CogVideoX)."}),
                "radius_scale": ("FLOAT", {
                    "default": 1.0, "min": MIN_RADIUS_SCALE, "max": MAX_RADIUS_SCALE, "step": 0.05,
                    "tooltip": "The orbit radius is the depth at the centre of the anchor frame times this, capped at "
                               f"{cam.MAX_ORBIT_RADIUS:g}. Forward Warp resolves it from the depth it receives; the preview "
                               "here is drawn in units of that radius."}),
                "anchor_frame": ("INT", {
                    "default": 0, "min": 0, "max": MAX_FRAMES - 1,
                    "tooltip": "The frame whose camera filmed the input (0 = first). Every frame is warped from this "
                               "camera's position to the path's camera of the same frame."}),
                "fov_x_deg": ("FLOAT", {
                    "default": round(cam.DEFAULT_FOV_X_DEG, 2), "min": cam.MIN_FOV_X_DEG, "max": cam.MAX_FOV_X_DEG,
                    "step": 0.5,
                    "tooltip": "Horizontal field of view of the input camera in degrees (the reference's f = 500 px at "
                               "1024 px wide ≈ 91.4°). Independent of resolution."}),
                "amount": ("FLOAT", {
                    "default": 1.0, "min": -MAX_AMOUNT, "max": MAX_AMOUNT, "step": 0.05,
                    "tooltip": "Scales the preset's move (2 = twice as far, -1 = the opposite direction; zoom scales "
                               "as a power). Not applied to custom keyframes."}),
            },
        }

    def build(self, preset, keyframes, frames, radius_scale, anchor_frame, fov_x_deg, amount=1.0):
        node = self.DISPLAY_NAME
        _validate.check_range(radius_scale, MIN_RADIUS_SCALE, MAX_RADIUS_SCALE, "radius_scale", node)
        _validate.check_range(fov_x_deg, cam.MIN_FOV_X_DEG, cam.MAX_FOV_X_DEG, "fov_x_deg", node)
        _validate.check_range(amount, -MAX_AMOUNT, MAX_AMOUNT, "amount", node)
        if int(frames) != frames or frames < 1:
            raise InverseDVSError(f"{node}: frames = {frames}; at least 1 frame is needed (49 for CogVideoX).")
        if preset not in PRESETS:
            raise InverseDVSError(f"{node}: preset '{preset}' is unknown; use one of {', '.join(PRESETS)}.")
        preset = PRESETS.library_name(preset)
        if preset == traj.CUSTOM:
            keys, label = traj.parse_keyframes(keyframes, f"{node}: keyframes"), "keyframes"
            _validate.check_values_within(keys.theta + keys.phi, MAX_KEYFRAME_DEG, "the angle keyframes (lines 1-2)", node)
            _validate.check_values_within(keys.forward, MAX_KEYFRAME_RADIUS, "the radius offsets (line 3)", node,
                                          "1 puts the camera on the pivot; -1 doubles its distance.")
        else:
            keys, label = traj.preset_keyframes(preset, amount), preset
        try:
            path = traj.camera_path(keys, int(frames), fov_x_deg, radius_scale, int(anchor_frame), label)
        except InverseDVSError as err:
            raise InverseDVSError(f"{node}: {err}") from None
        return (path, path_preview(path))


NODES = (CameraTrajectory,)
