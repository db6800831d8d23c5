"""dpsynth: differentially private synthetic medical data.

Importing this package has no side effects; the public API lives in :mod:`dpsynth.api`.
"""

__version__ = "0.1.0"
