"""The video diffusion model behind one small interface (``base.VideoModel``); CogVideoX via diffusers first."""
