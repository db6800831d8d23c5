"""The workflows: one module per verb (train, generate, evaluate, audit, release, sweep, federated),
each written once for every modality (:mod:`dpsynth.modalities`). :mod:`dpsynth.api` re-exports
them; the CLI calls :mod:`dpsynth.api` and nothing deeper."""
