"""Building blocks of the ``dp-diffusion`` tabular generator (TabDDPM-style).

- :mod:`.denoiser`: the MLP that predicts the noise (or the clean row) from a noisy row, its
  timestep and an optional condition vector; DP-SGD compatible (Linear, LayerNorm, SiLU).
- :mod:`.conditioning`: the condition vector (revealed one-hot blocks of categorical columns).
- :mod:`.process`: the Gaussian diffusion around diffusers' schedulers: the per-example
  training loss with noise multiplicity, and the sampling loop with inpainting and guidance.
"""
