"""The federated mst protocol as it was at commit b54f610 (2 rounds, votes on the uncompressed codes,
no target weight, no site column) on the SAME validation splits as ``bench_federated.py --validation``:
the 'before' rows of evaluation/results/federated_validation.md.

    git archive b54f610 dpsynth | tar -x -C /tmp/old_dpsynth
    OMP_NUM_THREADS=1 python evaluation/bench_federated_before.py /tmp/old_dpsynth [mst|aim] > before.jsonl
"""

import json
import os
import sys
import tempfile
from pathlib import Path

old = sys.argv[1]
generator = sys.argv[2] if len(sys.argv) > 2 else "mst"
bins = {"mst": 16, "aim": 8}[generator]  # the b54f610 defaults
sys.path.insert(0, old)
sys.path.insert(1, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import dpsynth  # noqa: E402

assert dpsynth.__file__.startswith(old), dpsynth.__file__
from bench_federated import DATA, split_site, tstr  # noqa: E402
from uci_heart import SCHEMA, SITES, read_site  # noqa: E402

from dpsynth.data.schema import Schema  # noqa: E402
from dpsynth.federated.marginal import MarginalJob, ServerState, fit_generator, sum_measurements  # noqa: E402
from dpsynth.federated.marginal_site import site_marginal_round  # noqa: E402
from dpsynth.generators.tabular.marginal.discretize import Discretizer  # noqa: E402

schema = Schema.load(SCHEMA)
folder = DATA / "ehr" / "uci_heart_disease"
for seed in (0, 1, 2):
    outer = {s: split_site(schema.prepare(read_site(folder, s), source=s), seed=seed) for s in SITES}
    parts = {s: split_site(tr, seed=1000 + seed) for s, (tr, _) in outer.items()}
    tmp = Path(tempfile.mkdtemp())
    for s, (tr, _) in parts.items():
        tr.to_csv(tmp / f"{s}.csv", index=False)
    for eps in (1.0, 4.0):
        job = MarginalJob(generator=generator, bins=bins, schema_path=str(SCHEMA), epsilon=eps, delta=None, accountant="rdp",
                          secure_mode=False, seed=seed, sites=tuple((s, str(tmp / f"{s}.csv")) for s in SITES))
        server = ServerState(sizes=tuple(Discretizer(schema, bins=bins).sizes))
        states, payload = [None] * len(SITES), [np.zeros(1)]
        for rnd in (1, 2):
            out = [site_marginal_round(job=job, site_index=i, server_round=rnd, arrays=payload, state=states[i])
                   for i in range(len(SITES))]
            states = [o[1] for o in out]
            arrays, sigmas, metrics = [o[0] for o in out], [o[2]["sigma"] for o in out], [o[2] for o in out]
            if rnd == 1:
                votes = [[tuple(v) for v in json.loads(m["votes"])] for m in metrics]
                server.after_oneways(job, arrays, sigmas, votes, schema.names.index(schema.target))
                payload = server.payload()
            else:
                server.pairs = sum_measurements(arrays, sigmas, server.cliques)
        gen = fit_generator(job, server, schema)
        syn = gen.sample(sum(len(p[0]) for p in parts.values()), rng=np.random.default_rng(seed + 1)).frame
        scores = {s: tstr(tr, syn, val, schema, seed=seed)[0] for s, (tr, val) in parts.items()}
        print(json.dumps({"generator": generator, "epsilon": eps, "seed": seed,
                          "setting": f"before (b54f610): 2 rounds, vote on uncompressed codes, no site column, w1, {bins} bins",
                          "site_column": None, "target_weight": 1.0, "bins": bins, "validation_auroc": scores,
                          "load": os.getloadavg()[0]}), flush=True)
