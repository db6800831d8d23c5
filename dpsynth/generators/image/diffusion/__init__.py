"""``dp-diffusion-image``: :mod:`.dp_diffusion_image` (the UNet, its loss and the generator in one file)."""
