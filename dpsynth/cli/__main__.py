"""``python -m dpsynth.cli ...`` (also what torchrun starts for ``dpsynth train --devices N``)."""

from dpsynth.cli import main

main()
