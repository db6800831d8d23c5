"""``dp-gan-image``: :mod:`.dp_gan_image` (networks, loss and the generator in one file)."""
