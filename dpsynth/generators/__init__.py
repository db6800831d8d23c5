"""Generators and their registry. Each generator module is imported explicitly here so that it
registers itself; optional dependencies (mbi, diffusers) are imported inside the modules' fit
and sample paths, so importing this package never needs them.

One folder per family: ``tabular/gan`` (dp-gan), ``tabular/diffusion`` (dp-diffusion),
``tabular/marginal`` (aim, mst, independent), ``image/gan`` (dp-gan-image, dp-merf-image), ``image/diffusion``
(dp-diffusion-image). The DP-SGD generators share one training loop,
:mod:`dpsynth.privacy.dpsgd_loop`: each supplies its networks and a loss."""

from dpsynth.generators.registry import REGISTRY, get_generator_class, register  # noqa: F401
from dpsynth.generators.tabular.marginal import independent  # noqa: F401,E402
from dpsynth.generators.tabular.gan import dp_gan  # noqa: F401,E402
from dpsynth.generators.tabular.diffusion import dp_diffusion  # noqa: F401,E402
from dpsynth.generators.tabular.marginal import aim, mst  # noqa: F401,E402
from dpsynth.generators.image.diffusion import dp_diffusion_image  # noqa: F401,E402
from dpsynth.generators.image.gan import dp_gan_image  # noqa: F401,E402
from dpsynth.generators.image.gan import dp_merf_image  # noqa: F401,E402
from dpsynth.generators import auto  # noqa: F401,E402
