"""Peer runner for synthcity 0.2.12 DP plugins: dpgan, pategan, aim, privbayes (synthcity virtualenv).

Preprocessing: dpgan/pategan get the raw peer frame (numerics as floats, categoricals as strings);
synthcity's TabularEncoder then fits its scalers / category lists on the training data (a leak of
the peer, not charged to epsilon). aim/privbayes get every column as integer codes: numerics cut into
BINS equal-width bins over the *public* bounds (synthcity's aim on raw continuous columns does not
finish, privbayes on raw columns asks for ~1 TB), categoricals coded by their public category list;
the sampled bin is mapped back to a uniform value inside it. Note: dpgan's default early stopping
(patience on a validation metric) looks at the training data without charging it.
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
    import pandas as pd

    seed_peer_libraries(args.seed)
    from synthcity.plugins.core.dataloader import GenericDataLoader

    frame, spec = read_inputs(args)
    n = len(frame)
    global BINS
    if "-b" in args.method:  # e.g. aim-b5: the same plugin with 5 bins per numeric column
        args.method, bins = args.method.split("-b")
        BINS = int(bins)
    delta = min(1e-5, 1.0 / (10 * n))  # the same delta dpsynth uses
    ws = Path(args.out) / "workspace"
    common = {"epsilon": args.epsilon, "random_state": args.seed, "workspace": ws}
    edges = None
    if args.method in ("aim", "privbayes"):
        binned, edges = bin_frame(frame, spec, BINS)
        codes = {}
        data = pd.DataFrame(index=frame.index)
        for c in spec["columns"]:
            cats = [f"b{i}" for i in range(BINS)] if c["kind"] == "numeric" else c["categories"]
            codes[c["name"]] = cats
            data[c["name"]] = binned[c["name"]].map({v: i for i, v in enumerate(cats)}).astype(int)
    else:
        data = frame
    if args.method == "dpgan":
        from synthcity.plugins.privacy.plugin_dpgan import plugin

        model = plugin(**common, delta=delta, n_iter=20 if args.quick else 2000)
    elif args.method == "pategan":
        from synthcity.plugins.privacy.plugin_pategan import plugin

        model = plugin(**common, delta=delta, n_iter=5 if args.quick else 200)
    elif args.method == "aim":
        from synthcity.plugins.privacy.plugin_aim import plugin

        model = plugin(**common, delta=delta)
    elif args.method == "privbayes":
        from synthcity.plugins.privacy.plugin_privbayes import plugin

        model = plugin(**common)  # privbayes is pure epsilon-DP (no delta parameter)
    else:
        raise SystemExit(f"unknown synthcity method {args.method}")
    with Timer() as fit:
        model.fit(GenericDataLoader(data, target_column=spec["target"]))
    with Timer() as smp:
        syn = model.generate(count=args.n).dataframe()
    if edges is not None:
        dec = pd.DataFrame(index=syn.index)
        for name, cats in codes.items():
            idx = pd.to_numeric(syn[name], errors="coerce").fillna(0).round().astype(int).clip(0, len(cats) - 1)
            dec[name] = [cats[i] for i in idx]
        syn = unbin_frame(dec, edges, np.random.default_rng(args.seed))
    note = f"synthcity {args.method}; delta={delta:g}" + (f"; numerics in {BINS} public-bound bins" if edges else "")
    write_outputs(args, syn, fit.s, smp.s, note)


if __name__ == "__main__":
    main()
