"""Dynamic 3D Gaussians fitted to a multi-view video matrix (Diffusion²'s second stage), as pure torch.

``cameras``: the orbit the matrix was sampled on; ``render``: projection and alpha compositing of 3D Gaussians
(the pack's torch rasteriser, and gsplat's CUDA one when it is installed); ``deform``: the time-conditioned
deformation field; ``losses``: the photometric loss; ``fit``: the optimisation; ``ply``: the standard 3D Gaussian
splatting file. No ComfyUI imports here.
"""
