"""Latent-grid visibility masks and Stochastic Latent Modulation (pure torch, no ComfyUI)."""
