"""Marginal-based DP generators (AIM, MST, independent): discretise on the public domain, measure noisy
marginals (every release charged to the ledger), fit a graphical model, sample from it.

Modules, in reading order: ``discretize`` (public bins), ``measure`` (the only reader of the
private table), ``junction`` (the fitted model: sampling, marginals), ``estimate`` (mirror
descent), ``structure`` (junction trees and model size), ``mbi_glue`` (the optional mbi
extra), ``fitting``, ``generator`` (the shared Generator plumbing); then one public module per
generator: ``aim``, ``mst`` (algorithm and generator class each) and ``independent``.
"""
