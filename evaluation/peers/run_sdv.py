"""Peer runner for SDV 2.0 (non-private reference, epsilon = infinity): ctgan, gaussiancopula.

Bounds: SDV learns min/max and category lists from the training data (enforce_min_max_values);
that is a privacy leak by design here, acceptable only because this is the non-private reference.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_io import Timer, parse_args, read_inputs, seed_peer_libraries, write_outputs  # noqa: E402


def main() -> None:
    args = parse_args()
    seed_peer_libraries(args.seed)
    from sdv.metadata import Metadata
    from sdv.single_table import CTGANSynthesizer, GaussianCopulaSynthesizer

    frame, spec = read_inputs(args)
    metadata = Metadata.detect_from_dataframes({"train": frame})
    for c in spec["columns"]:
        metadata.update_column(table_name="train", column_name=c["name"],
                               sdtype="categorical" if c["kind"] == "categorical" else "numerical")
    if args.method == "ctgan":
        synth = CTGANSynthesizer(metadata, epochs=5 if args.quick else 300, enforce_min_max_values=True)
    elif args.method == "gaussiancopula":
        synth = GaussianCopulaSynthesizer(metadata, enforce_min_max_values=True)
    else:
        raise SystemExit(f"unknown sdv method {args.method}")
    with Timer() as fit:
        synth.fit({"train": frame})
    with Timer() as smp:
        syn = synth.sample(num_rows=args.n)
    if isinstance(syn, dict):  # sdv 2.0 returns {table_name: frame}
        syn = next(iter(syn.values()))
    write_outputs(args, syn, fit.s, smp.s, "bounds and categories read from the training data (non-private)")


if __name__ == "__main__":
    main()
