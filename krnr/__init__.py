"""Noise schedules, DDIM sampling/inversion for v-prediction, and K-order Recursive Noise Representation.

Pure torch: nothing here imports ComfyUI or a model library.
"""
