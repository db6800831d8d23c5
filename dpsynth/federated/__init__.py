"""Federated DP training across sites (hospitals that cannot pool their rows), on Flower.

- :mod:`.models`: per-generator adapters (dp-gan, dp-diffusion, dp-diffusion-image) that turn a
  dpsynth generator into global weights, one local DP-SGD round, and a fitted generator. No flwr.
- :mod:`.site`: one site's round: its own ledger (never reset between rounds), the DP-SGD plan
  fixed for all rounds, and the engine driven for this round's steps. No flwr.
- :mod:`.flower`: the Flower ClientApp / ServerApp and the simulation run (flwr imported there
  only, so the core never needs it; ``pip install -e '.[federated]'``).
- :mod:`.config`, :mod:`.card`, :mod:`.workflow`: the YAML form, the federated privacy card and
  the verb ``federated`` that the CLI and the API call.
"""
