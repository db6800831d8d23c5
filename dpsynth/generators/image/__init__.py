"""Image generators, one folder per family (``gan``, ``diffusion``) over the shared :mod:`.base`."""
