"""Marginal-based DP generators (AIM, MST): discretise on the public domain, measure noisy
marginals (every release charged to the ledger), fit a graphical model, sample from it.

Modules, in reading order: ``discretize`` (public bins), ``measure`` (the only reader of the
private table), ``junction`` (the fitted model: sampling, marginals), ``estimate`` (mirror
descent), ``structure`` (junction trees and model size), ``mbi_glue`` (the optional mbi
extra), ``fitting``, ``mst``, ``aim``, ``generator`` (the shared Generator plumbing).
"""
