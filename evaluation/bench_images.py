"""Image benchmark: the DP image generators on MedMNIST and HAM10000, with and without public pretraining.

    python evaluation/bench_images.py --profile default --runs pneumoniamnist@10 --pretrained both
    python evaluation/bench_images.py --full-grid      # every set x eps 1, 10 x +-pretraining x seeds 0, 1, 2

``--profile default`` (issue 12) uses the generator's no-config defaults: steps, batch and noise
planned from n, the image size and the budget (dpsynth/privacy/image_schedule.py); ``--profile cpu``
the older configs/<generator>_cpu.yaml. ``--pretrained yes`` starts from
models/pretrained_<generator>_<grey|rgb><size>_for-<dataset> (public MedMNIST sets other than the
private one; see models/README.md). Each run also writes a class-labelled grid
(<run>_labelled.png) and the honest utility block: both CNNs' balanced accuracy and per-class
recall, the majority-class baseline and a PASS/FAIL verdict (dpsynth/metrics/image_verdict.py).

    python evaluation/bench_images.py                 # full: ~30 min per diffusion run on 2 cores
    python evaluation/bench_images.py --quick         # a minute or two: proves the pipeline only
    python evaluation/bench_images.py --generators dp-gan-image --runs breastmnist@1

Runs (default): PneumoniaMNIST at epsilon 10 and 1, BreastMNIST at epsilon 10, each with every
chosen generator's CPU config (configs/<generator>_cpu.yaml). For each run it prints the
accuracy of a CNN trained on synthetic images / the same CNN trained on real ones (both tested
on the real test split), the domain FID, PRDC, the membership-attack AUROCs, wall times, and for
dp-diffusion-image the UNet's DP step time / non-DP step time measured in the same process on
the same physical batch. The downstream scores are means over ``--cnn-repeats`` CNNs per side
(default 3; one CNN's accuracy moves by several points between its own seeds). Results go to
``--out`` as JSON (named after the runs, generators and seed) plus one image grid per run;
``--save-weights`` also writes each fitted generator's weights (safetensors).
Real data is read from ``../shared/data/medmnist`` beside the repo (never committed).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dpsynth.config import build_generator, load_config  # noqa: E402
from dpsynth.data.image_schema import ImageSchema  # noqa: E402
from dpsynth.data.images import load_image_splits  # noqa: E402
from dpsynth.generators.image.diffusion.dp_diffusion_image import build_unet, denoising_loss  # noqa: E402
from dpsynth.metrics.image import evaluate_images  # noqa: E402
from dpsynth.metrics.image_cnn import CNN_MIN_STEPS  # noqa: E402
from dpsynth.metrics.image_grid import save_labelled_grid  # noqa: E402
from dpsynth.privacy.functional_grads import per_example_grads, set_grad_samples  # noqa: E402

DEFAULT_DATA = ROOT / ".." / "shared" / "data" / "medmnist"
QUICK = {  # tiny overrides: prove every stage runs, say nothing about quality
    "dp-diffusion-image": {"epochs": 1, "batch_size": 64, "sample_steps": 5, "max_physical_batch_size": 16},
    "dp-gan-image": {"epochs": 1, "batch_size": 64},
}


def step_times(params: dict, train, *, repeats: int, rng: np.random.Generator) -> dict:
    """Median seconds of one UNet physical step: DP (per-example grads with noise multiplicity,
    clip, noise) vs non-DP (plain backward on the same B x K noisy copies)."""
    from opacus.optimizers import DPOptimizer

    b, k = int(params["max_physical_batch_size"]), int(params["noise_multiplicity"])
    unet = build_unet(train.schema, block_out_channels=tuple(params["block_out_channels"]),
                      layers_per_block=params["layers_per_block"], norm_num_groups=params["norm_num_groups"])
    idx = rng.choice(len(train), b, replace=False)
    x0 = torch.from_numpy(train.images[idx])
    gen = torch.Generator().manual_seed(0)
    t = torch.randint(1000, (b, k), generator=gen)
    eps = torch.randn((b, k, *x0.shape[1:]), generator=gen)
    x_t = 0.7 * x0.unsqueeze(1) + 0.7 * eps
    y = torch.from_numpy(train.labels[idx]).view(b, 1).expand(b, k).contiguous()
    opt = DPOptimizer(torch.optim.Adam(unet.parameters(), lr=1e-4), noise_multiplier=1.0, max_grad_norm=1.0,
                      expected_batch_size=b, generator=gen)
    plain = torch.optim.Adam(unet.parameters(), lr=1e-4)

    def dp_step():
        opt.zero_grad(set_to_none=True)
        grads, _ = per_example_grads(unet, denoising_loss, x_t, t, y, eps)
        set_grad_samples(unet, grads)
        opt.step()

    def plain_step():
        plain.zero_grad(set_to_none=True)
        pred = unet(x_t.flatten(0, 1), t.flatten(), class_labels=y.flatten(), return_dict=False)[0]
        ((pred - eps.flatten(0, 1)) ** 2).mean().backward()
        plain.step()

    timings = {"dp": [], "non_dp": []}
    for i in range(repeats + 1):  # interleaved, first round is warm-up
        for name, fn in (("dp", dp_step), ("non_dp", plain_step)):
            start = time.perf_counter()
            fn()
            if i:
                timings[name].append(time.perf_counter() - start)
    dp, non_dp = statistics.median(timings["dp"]), statistics.median(timings["non_dp"])
    return {"physical_batch": b, "noise_multiplicity": k, "dp_step_s": dp, "non_dp_step_s": non_dp,
            "dp_over_non_dp": dp / non_dp}


HAM = ROOT / ".." / "shared" / "data" / "ham10000"


def load_ham10000(folder: Path = HAM, *, seed: int = 0) -> dict:
    """HAM10000 8x8 grey images with age and sex metadata (schema: evaluation/schemas/
    ham10000_8x8.yaml), split 60/20/20 by lesion (all images of one lesion in one split).
    Sex 'unknown' is a missing value."""
    import pandas as pd

    from dpsynth.data.image_schema import ImageSchema
    from dpsynth.data.images import ImageData

    schema = ImageSchema.load(ROOT / "evaluation" / "schemas" / "ham10000_8x8.yaml")
    pixels = pd.read_csv(folder / "hmnist_8_8_L.csv")
    meta = pd.read_csv(folder / "HAM10000_metadata.csv")
    if len(pixels) != len(meta):
        raise SystemExit(f"{folder}: {len(pixels)} images but {len(meta)} metadata rows")
    images = schema.to_unit(pixels.drop(columns="label").to_numpy().reshape(-1, *schema.shape))
    labels = pixels["label"].to_numpy().astype(np.int64)
    frame = pd.DataFrame({"sex": meta["sex"].where(meta["sex"].isin(["female", "male"])),
                          "age": meta["age"].round().astype("Int64")})
    frame = schema.metadata_schema.prepare(frame, source=str(folder / "HAM10000_metadata.csv"))
    lesions = meta["lesion_id"].unique()
    order = np.random.default_rng(seed).permutation(len(lesions))
    part = pd.Series(np.digitize(np.arange(len(lesions)), [0.6 * len(lesions), 0.8 * len(lesions)]),
                     index=lesions[order])
    which = meta["lesion_id"].map(part).to_numpy()
    data = ImageData(images, labels, schema, frame, str(folder))
    return {name: data.subset(np.flatnonzero(which == k)) for k, name in enumerate(("train", "val", "test"))}


TARGETS = {("pneumoniamnist", 10.0): 0.90, ("breastmnist", 10.0): 0.80, ("pneumoniamnist", 1.0): 0.85}
MODELS = ROOT / "models"


def pretrained_checkpoint(generator: str, dataset: str, schema) -> Path:
    """models/pretrained_<generator>_<grey|rgb><size>_for-<dataset> (built from the OTHER sets);
    dp-merf-image also starts from dp-gan-image's (the same generator network)."""
    from dpsynth.generators.image.pretrain import STARTS_FROM

    kind = "grey" if schema.channels == 1 else "rgb"
    paths = [MODELS / f"pretrained_{g}_{kind}{schema.height}_for-{dataset}" for g in STARTS_FROM.get(generator, (generator,))]
    for path in paths:
        if (path / "pretrain.json").is_file():
            return path
    raise SystemExit(f"no pretrained checkpoint {paths[0]} (build it with `dpsynth pretrain`, see models/README.md)")


class _StopTiming(Exception):
    """Raised from the progress callback once ``--time-steps`` DP steps have been timed."""


def time_default_steps(model, train, budget, *, n_steps: int, rng: np.random.Generator) -> dict:
    """Time the first ``n_steps`` optimizer steps of ``model``'s own planned schedule (the real fit,
    stopped early: nothing is released) and project the whole fit. A projection, not a measurement:
    steps 2..n are assumed to represent every later step; set-up (first step included) is counted once."""
    stamps: list[float] = []

    def progress(info: dict) -> None:
        stamps.append(time.perf_counter())
        if len(stamps) >= n_steps:
            raise _StopTiming

    start = time.perf_counter()
    try:
        model.fit(train, budget=budget, rng=rng, progress=progress)
    except _StopTiming:
        pass
    sched = model.schedule_
    per_step = [b - a for a, b in zip(stamps, stamps[1:])]
    median = statistics.median(per_step) if per_step else float("nan")
    first = stamps[0] - start if stamps else float("nan")
    return {"planned_steps": sched.steps, "planned_batch_size": sched.batch_size, "rule": sched.rule,
            "planning_noise_multiplier": sched.planning_noise_multiplier, "timed_steps": len(stamps),
            "setup_and_first_step_s": first, "step_s": per_step, "median_step_s": median,
            "projected_fit_s": first + median * (sched.steps - 1)}


def load_benchmark_splits(dataset: str, data_dir, *, eval_split: str = "test"):
    """(train, holdout, scored split) of a benchmark set; ``eval_split`` 'val' scores on the
    validation split (tuning) and never reads the test split."""
    if dataset == "ham10000":  # beside the MedMNIST folder (../shared/data/{medmnist,ham10000})
        splits = load_ham10000(Path(data_dir).resolve().parent / "ham10000")
    else:  # a resized set (evaluation/resize_medmnist.py) carries its schema beside it: <name>.yaml
        path = Path(data_dir) / f"{dataset}.npz"
        schema_path = path.with_suffix(".yaml")
        splits = load_image_splits(path, schema=ImageSchema.load(schema_path) if schema_path.is_file() else None)
    train, holdout = splits["train"], splits["val"]
    return train, holdout, holdout if eval_split == "val" else splits["test"]


def run_one(dataset: str, epsilon: float, generator: str, args, pretrained: bool = False) -> dict:
    train, holdout, test = load_benchmark_splits(dataset, args.data_dir, eval_split=args.eval_split)
    rng = np.random.default_rng(args.seed)
    if args.quick:
        train = train.subset(rng.choice(len(train), min(len(train), 256), replace=False))
    cfg = load_config(ROOT / "configs" / f"{generator.replace('-', '_')}_cpu.yaml")
    base = dict(cfg.params) if args.profile == "cpu" else {"device": "cpu"}
    params = {**base, **(QUICK.get(generator, {}) if args.quick else {}), **json.loads(args.params or "{}")}
    if pretrained:
        params["init"] = str(pretrained_checkpoint(generator, dataset, train.schema))
    budget = replace(cfg.privacy, epsilon=epsilon).budget()
    out: dict = {"dataset": dataset, "generator": generator, "epsilon_target": epsilon, "n_train": len(train),
                 "quick": args.quick, "params": params, "pretrained": bool(pretrained), "profile": args.profile,
                 "seed": args.seed, "eval_split": args.eval_split}
    if generator == "dp-diffusion-image" and args.step_times:
        # timed with the profile's own physical batch and multiplicity, also under --quick
        out["step_time"] = step_times(dict(cfg.params), train, repeats=2 if args.quick else 5, rng=rng)
    model = build_generator(generator, params)
    if args.time_steps:
        out["timing"] = time_default_steps(model, train, budget, n_steps=args.time_steps, rng=rng)
        return out
    start = time.perf_counter()
    model.fit(train, budget=budget, rng=rng)
    out["fit_s"] = time.perf_counter() - start
    out["epsilon"] = model.ledger_.epsilon()
    if args.save_weights:  # the fitted generator's weights (safetensors), to re-sample without refitting
        from safetensors.torch import save_file

        weights = Path(args.out) / f"{dataset}_eps{epsilon:g}_{generator}_seed{args.seed}.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
        out["weights"] = str(weights)
    out["ledger"] = model.ledger_.to_dict()
    out["schedule"] = getattr(model, "dp_plan_", None)
    n_syn = args.n_synthetic or (64 if args.quick else min(len(train), 2000))
    start = time.perf_counter()
    syn = model.sample(n_syn, rng=rng, balanced=args.balanced_labels)
    out["labels"] = "balanced" if args.balanced_labels else "released"
    out["sample_s"] = time.perf_counter() - start
    tag = (f"{dataset}_eps{epsilon:g}_{generator}_{'pre' if pretrained else 'scratch'}_seed{args.seed}"
           f"{'_val' if args.eval_split == 'val' else ''}{'_' + args.tag if args.tag else ''}")
    if args.save_synthetic:  # DP output (post-processing): lets evaluation/rescore_images.py re-score without refitting
        synthetic_file = Path(args.out) / f"{tag}{'_quick' if args.quick else ''}_synthetic.npz"
        np.savez_compressed(synthetic_file, images=syn.to_image_data().images.astype(np.float16), labels=syn.labels)
        out["synthetic_file"] = str(synthetic_file)
    start = time.perf_counter()
    results = evaluate_images(train, holdout, test, syn.to_image_data(), classes=train.schema.classes, rng=rng,
                              cnn_epochs=1 if args.quick else 10, cnn_repeats=1 if args.quick else args.cnn_repeats,
                              cnn_min_steps=0 if args.quick else args.cnn_min_steps,
                              inception_weights=args.inception, target=TARGETS.get((dataset, epsilon)))
    out["eval_s"] = time.perf_counter() - start
    out["metrics"] = {k: v.to_dict() for k, v in results.items()}
    out["wall_s"] = out["fit_s"] + out["sample_s"] + out["eval_s"]
    grid = Path(args.out) / f"{tag}{'_quick' if args.quick else ''}_labelled.png"
    save_labelled_grid(syn.to_image_data().images, syn.labels, train.schema.classes, grid,
                       title=f"{dataset} eps {epsilon:g} {generator} {'pretrained' if pretrained else 'scratch'}"
                             f" seed {args.seed}")
    out["grid"] = str(grid.relative_to(ROOT)) if grid.is_relative_to(ROOT) else str(grid)
    return out


def summary_line(r: dict) -> str:
    m = r["metrics"]
    util = m["image_downstream_accuracy"]["breakdown"]
    prdc = m["image_prdc_coverage"]["breakdown"]
    h = util["honest"]
    recall = lambda side: "/".join(f"{v:.2f}" for v in h[side]["per_class_recall"].values())  # noqa: E731
    line = (f"{r['dataset']:<15} {r['generator']:<19} {'pre' if r.get('pretrained') else 'scratch':<7}"
            f" eps={r['epsilon']:.3g}/{r['epsilon_target']:g}"
            f"  bal.acc syn/real/maj={h['synthetic']['balanced_accuracy']:.3f}/{h['real']['balanced_accuracy']:.3f}"
            f"/{h['majority']['balanced_accuracy']:.3f} (ratio {h['balanced_accuracy_ratio']:.3f}) {h['verdict']}"
            f"{'' if h.get('meets_target') is None else (' target met' if h['meets_target'] else ' target missed')}"
            f"  recall syn [{recall('synthetic')}] real [{recall('real')}]"
            f"  maj.acc={h['majority']['accuracy']:.3f}"
            + (f"  QWK syn/real={h['synthetic']['quadratic_weighted_kappa']:.3f}/{h['real']['quadratic_weighted_kappa']:.3f}"
               if h.get("ordinal") else "") +
            f"  acc syn/real={util['synthetic_accuracy']:.3f}/{util['real_accuracy']:.3f}"
            f"  auroc syn/real={_f(util['synthetic_auroc'])}/{_f(util['real_auroc'])}"
            f"  dFID={m['image_domain_fid']['value']:.3g}"
            f"  P/R/D/C={prdc['precision']:.2f}/{prdc['recall']:.2f}/{prdc['density']:.2f}/{prdc['coverage']:.2f}"
            f"  MIA dcr/domias={_f(m['image_dcr_attack_auroc']['value'])}/{_f(m['image_domias_attack_auroc']['value'])}"
            f"  wall={r['wall_s']:.0f}s (fit {r['fit_s']:.0f}s)")
    if "image_worst_group_accuracy_gap" in m:
        w = m["image_worst_group_accuracy_gap"]
        line += (f"  worst-group acc gap={w['value']:.3f} [{w['breakdown']['group']}]"
                 f" (overall {w['breakdown']['overall_gap']:.3f})")
    if "step_time" in r:
        st = r["step_time"]
        line += f"  step DP/nonDP={st['dp_step_s']:.2f}s/{st['non_dp_step_s']:.2f}s={st['dp_over_non_dp']:.2f}x"
    return line


def timing_line(r: dict) -> str:
    t = r["timing"]
    return (f"{r['dataset']:<15} {r['generator']:<19} eps={r['epsilon_target']:g} planned {t['planned_steps']} steps x"
            f" batch {t['planned_batch_size']} ({t['rule']}); timed {t['timed_steps']} steps: set-up + first step"
            f" {t['setup_and_first_step_s']:.1f}s, then " + ", ".join(f"{s:.2f}" for s in t["step_s"]) +
            f" s/step (median {t['median_step_s']:.2f}s) -> PROJECTED fit {t['projected_fit_s']:.0f}s"
            f" ({t['projected_fit_s'] / 60:.1f} min)")


def _f(value) -> str:
    return "nan" if value is None else f"{float(value):.3f}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny subsets and steps; proves the pipeline only")
    parser.add_argument("--data-dir", default=str(DEFAULT_DATA))
    parser.add_argument("--out", default=str(ROOT / "evaluation" / "results" / "images"))
    parser.add_argument("--generators", default="dp-diffusion-image,dp-gan-image")
    parser.add_argument("--params", help='JSON overrides of the CPU profile, e.g. \'{"guidance_scale": 2}\'')
    parser.add_argument("--runs", default="pneumoniamnist@10,pneumoniamnist@1,breastmnist@10,retinamnist@10,ham10000@10",
                        help="comma-separated dataset@epsilon")
    parser.add_argument("--profile", choices=["default", "cpu"], default="default",
                        help="default: the generator's no-config defaults (planned schedule); cpu: configs/*_cpu.yaml")
    parser.add_argument("--pretrained", choices=["no", "yes", "both"], default="both",
                        help="start from the public pretrained checkpoint under models/ (both: one run each)")
    parser.add_argument("--full-grid", action="store_true",
                        help="every set at epsilon 1 and 10, with and without pretraining, seeds 0, 1, 2")
    parser.add_argument("--time-steps", type=int, default=0, metavar="N",
                        help="only time the first N DP steps of each run's planned fit and project the whole fit"
                             " (stops the fit early; no sampling or evaluation; writes *_timing.json)")
    parser.add_argument("--step-times", action="store_true", help="also time one DP vs non-DP UNet step")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: fastest on a shared 2-core box)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-split", choices=["test", "val"], default="test",
                        help="val: tuning runs score on the validation split (also the MIA holdout, so their"
                             " attack AUROCs mean nothing); the test split is not read")
    parser.add_argument("--tag", default="", help="suffix of the JSON file name")
    parser.add_argument("--n-synthetic", type=int, default=None)
    parser.add_argument("--cnn-repeats", type=int, default=3,
                        help="CNNs trained per side for the downstream scores (their mean is reported)")
    parser.add_argument("--save-synthetic", action="store_true",
                        help="save each run's synthetic images (npz, float16) to --out, to re-score them later")
    parser.add_argument("--cnn-min-steps", type=int, default=CNN_MIN_STEPS,
                        help="minimum optimizer steps of each downstream CNN (dpsynth/metrics/image_cnn.py)")
    parser.add_argument("--save-weights", action="store_true", help="save each fitted generator's weights to --out")
    parser.add_argument("--balanced-labels", action="store_true",
                        help="sample equal counts per class (dpsynth generate --balance label) instead of the DP frequencies")
    parser.add_argument("--inception", default=None, help="local TorchScript Inception file for the Inception FID")
    args = parser.parse_args(argv)
    if not Path(args.data_dir).is_dir():
        print(f"no data at {args.data_dir} (expected shared/data/medmnist beside the repo)", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    results = []
    runs = args.runs.split(",")
    seeds = [args.seed]
    if args.full_grid:
        runs = [f"{d}@{e}" for d in ("pneumoniamnist", "breastmnist", "retinamnist", "ham10000") for e in (10, 1)]
        seeds, args.pretrained = [0, 1, 2], "both"
    pre = {"no": [False], "yes": [True], "both": [False, True]}[args.pretrained]
    for seed in seeds:
        args.seed = seed
        for run in runs:
            dataset, eps = run.split("@")
            for generator in args.generators.split(","):
                for pretrained in pre:
                    r = run_one(dataset, float(eps), generator, args, pretrained=pretrained)
                    print(summary_line(r) if "timing" not in r else timing_line(r), flush=True)
                    results.append(r)
                    _write(args, results)  # after every run: a cut-short grid keeps what finished
    print(f"wrote {_write(args, results)}")
    return 0


def _write(args, results: list) -> Path:
    tag = f"{'full-grid' if args.full_grid else args.runs}_{args.generators}_{args.profile}_pre-{args.pretrained}" \
          f"_seed{'0-2' if args.full_grid else args.seed}{'_val' if args.eval_split == 'val' else ''}" \
          f"{'_' + args.tag if args.tag else ''}{'_timing' if args.time_steps else ''}".replace(",", "+").replace("@", "_eps")
    name = f"bench_images_{tag}{'_quick' if args.quick else ''}.json"  # parallel runs do not overwrite each other
    path = Path(args.out) / name
    path.write_text(json.dumps(results, indent=2, default=str))
    return path


if __name__ == "__main__":
    raise SystemExit(main())
