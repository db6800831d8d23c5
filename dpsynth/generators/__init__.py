"""Generators and their registry. Each generator module is imported explicitly here so that it
registers itself; optional dependencies (mbi, diffusers) are imported inside the modules' fit
and sample paths, so importing this package never needs them."""

from dpsynth.generators.registry import REGISTRY, get_generator_class, register  # noqa: F401
from dpsynth.generators import marginals  # noqa: F401,E402
from dpsynth.generators import dp_gan  # noqa: F401,E402
from dpsynth.generators import dp_diffusion  # noqa: F401,E402
from dpsynth.generators import aim, mst  # noqa: F401,E402
from dpsynth.generators import dp_diffusion_image  # noqa: F401,E402
from dpsynth.generators import dp_gan_image  # noqa: F401,E402
from dpsynth.generators import auto  # noqa: F401,E402
