"""Training of the pack's small CogVideoX-I2V on procedural scenes (see README.md); not imported by ComfyUI."""
