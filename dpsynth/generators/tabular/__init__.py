"""Table generators, one folder per family: ``gan``, ``diffusion``, ``marginal``."""
