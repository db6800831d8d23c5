"""Peer runner for smartnoise-synth 1.0.8: mst, aim, dpctgan, patectgan (smartnoise virtualenv).

mst/aim: numerics cut into BINS equal-width bins over the public bounds (by us), every column passed as
categorical; snsynth's transformer then builds each column's category list from the values present
(a leak of which categories occur; not charged). dpctgan/patectgan: numerics passed as continuous
columns with the public bounds given to snsynth's MinMaxTransformer (with preprocessor_eps = 0.1 eps snsynth
could not find DP bounds on ACTG: "MinMaxTransformer could not find bounds"); categories as above.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_io import Timer, bin_frame, parse_args, read_inputs, seed_peer_libraries, unbin_frame, write_outputs  # noqa: E402

BINS = 10


def main() -> None:
    args = parse_args()
    warnings.filterwarnings("ignore")
    import numpy as np

    seed_peer_libraries(args.seed)
    from snsynth import Synthesizer

    frame, spec = read_inputs(args)
    n = len(frame)
    delta = min(1e-5, 1.0 / (10 * n))
    cats = [c["name"] for c in spec["columns"] if c["kind"] == "categorical"]
    nums = [c["name"] for c in spec["columns"] if c["kind"] == "numeric"]
    edges = None
    if args.method in ("mst", "aim"):
        data, edges = bin_frame(frame, spec, BINS)
        synth = Synthesizer.create(args.method, epsilon=args.epsilon, delta=delta, verbose=False)
        fit_kw = {"categorical_columns": cats + nums, "preprocessor_eps": 0.0}
        note = f"numerics in {BINS} public-bound bins"
    elif args.method in ("dpctgan", "patectgan"):
        data = frame
        extra = {"epochs": 2} if args.quick else {}
        synth = Synthesizer.create(args.method, epsilon=args.epsilon, delta=delta, verbose=False, **extra)
        from snsynth.transform import MinMaxTransformer, TableTransformer

        bounds = {c["name"]: (c["low"], c["high"]) for c in spec["columns"] if c["kind"] == "numeric"}
        transformer = TableTransformer.create(
            data, style="gan", categorical_columns=cats, continuous_columns=nums,
            constraints={k: MinMaxTransformer(lower=lo, upper=hi, negative=True) for k, (lo, hi) in bounds.items()})
        fit_kw = {"transformer": transformer, "preprocessor_eps": 0.0}
        note = "public bounds given to MinMaxTransformer; category lists from the data"
    else:
        raise SystemExit(f"unknown smartnoise method {args.method}")
    with Timer() as fit:
        synth.fit(data, **fit_kw)
    with Timer() as smp:
        syn = synth.sample(args.n)
    if edges is not None:
        syn = unbin_frame(syn, edges, np.random.default_rng(args.seed))
    write_outputs(args, syn, fit.s, smp.s, f"smartnoise {args.method}; delta={delta:g}; {note}")


if __name__ == "__main__":
    main()
