"""Federated DP training on Flower: each site's ledger composes every step of every round in one
accountant, the released epsilon is the maximum over sites, and the run samples like any other.

The ledger-continuity tests drive the site rounds directly (no flwr needed). The end-to-end test
runs a 2-site x 2-round Flower simulation (flwr[simulation], in the dev extra) and is skipped
with a reason when flwr is not installed.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from dpsynth.cli import main
from dpsynth.data.embedded import get_embedded
from dpsynth.federated.config import FederatedConfig, SiteLevelDP, sites_from
from dpsynth.federated.models import federated_model, steps_per_round
from dpsynth.federated.site import FederatedJob, load_schema, run_site_round
from tests.conftest import dp_accounting_epsilon

TINY = {
    "dp-diffusion": {"epochs": 1.0, "batch_size": 64, "width": 16, "depth": 1, "time_dim": 16, "noise_multiplicity": 2,
                     "sampling_steps": 5},
    "dp-gan": {"epochs": 1.0, "batch_size": 64, "generator_hidden": [16], "discriminator_hidden": [16],
               "noise_dim": 8},
}
ROUNDS = 2


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    """Two sites of unequal size from the embedded ACTG 175 table, and its public schema."""
    folder = tmp_path_factory.mktemp("sites")
    ds = get_embedded("actg175")
    schema = ds.schema()
    frame = schema.prepare(ds.load())
    order = np.random.default_rng(0).permutation(len(frame))
    (folder / "north.csv").write_text(frame.iloc[order[:300]].to_csv(index=False))
    (folder / "south.csv").write_text(frame.iloc[order[300:480]].to_csv(index=False))
    schema.save(folder / "schema.yaml")
    return folder


def _job(folder, generator, epsilon=2.0):
    return FederatedJob(generator=generator, params=TINY[generator], schema_path=str(folder / "schema.yaml"),
                        rounds=ROUNDS, epsilon=epsilon, seed=0,
                        sites=(("north", str(folder / "north.csv")), ("south", str(folder / "south.csv"))))


@pytest.mark.parametrize("generator", ["dp-gan", "dp-diffusion"])
def test_site_ledger_composes_every_round_in_one_accountant(sites, generator):
    job = _job(sites, generator)
    model = federated_model(generator, TINY[generator], load_schema(job.schema_path))
    arrays = model.to_arrays(model.initial_state(np.random.default_rng(0)))
    state, eps_by_round = None, []
    for server_round in range(1, ROUNDS + 1):
        result = run_site_round(job=job, site_index=1, arrays=arrays, server_round=server_round, state=state)
        state, arrays = json.loads(json.dumps(result.state)), result.arrays  # as Flower's Context.state carries it
        eps_by_round.append(result.metrics["epsilon"])
    ledger = result.state["ledger"]
    sgd = [e for e in ledger["entries"] if e["mechanism"] == "dp-sgd"]
    assert len(sgd) == 1, "one DP-SGD entry for all rounds"
    k = steps_per_round(model.plan_steps(180), ROUNDS)
    assert sgd[0]["steps"] == k * ROUNDS == result.metrics["steps"]
    assert eps_by_round[0] < eps_by_round[1] <= 2.0 * (1 + 1e-9)  # never reset: round 2 adds to round 1
    priced = [e for e in ledger["entries"] if e["mechanism"] in ("gaussian", "dp-sgd")]
    history = [(e["noise_multiplier"], e["sample_rate"], e["steps"]) for e in priced]
    assert eps_by_round[1] == pytest.approx(dp_accounting_epsilon(history, ledger["delta"]), rel=1e-3)
    # a fresh accountant per round (Flower's opacus example) would report only one round's steps
    one_round = [(e["noise_multiplier"], e["sample_rate"], k if e["mechanism"] == "dp-sgd" else e["steps"])
                 for e in priced]
    assert dp_accounting_epsilon(one_round, ledger["delta"]) < eps_by_round[1]


def test_federated_cli_rejects_bad_requests_in_one_line(sites, tmp_path):
    pytest.importorskip("flwr", reason="flwr is not installed (pip install -e '.[federated]')")
    runner = CliRunner()
    schema = str(sites / "schema.yaml")
    one = runner.invoke(main, ["federated", "--sites", str(sites / "north.csv"), "--schema", schema,
                               "--out", str(tmp_path / "r1")])
    assert one.exit_code == 2 and "at least 2 sites" in one.output
    bad = tmp_path / "bad.csv"
    lines = (sites / "north.csv").read_text().splitlines()
    lines[1] = "banana," + lines[1].split(",", 1)[1]
    bad.write_text("\n".join(lines) + "\n")
    res = runner.invoke(main, ["federated", "--sites", str(sites / "north.csv"), str(bad), "--schema", schema,
                               "--out", str(tmp_path / "r2")])
    assert res.exit_code == 2 and "bad.csv" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r2").exists()
    other = runner.invoke(main, ["federated", "--sites", str(sites / "north.csv"), str(sites / "south.csv"),
                                 "--schema", schema, "--generator", "dp-gan-image", "--out", str(tmp_path / "r3")])
    assert other.exit_code == 2
    # the marginal path (mst/aim/independent): same one-line refusals, before any round
    for extra, says in ((["--site-level-epsilon", "1"], "site-level DP"), (["--accountant", "prv"], "rdp")):
        res = runner.invoke(main, ["federated", "--sites", str(sites / "north.csv"), str(sites / "south.csv"),
                                   "--schema", schema, "--generator", "mst", "--out", str(tmp_path / "r4"), *extra])
        assert res.exit_code == 2 and says in res.output and len(res.output.strip().splitlines()) == 1, res.output
    res = runner.invoke(main, ["federated", "--sites", str(sites / "north.csv"), str(bad), "--schema", schema,
                               "--generator", "mst", "--out", str(tmp_path / "r5")])
    assert res.exit_code == 2 and "bad.csv" in res.output and not (tmp_path / "r5").exists()
    mine = tmp_path / "mine"  # a folder dpsynth did not write: --overwrite must not replace it
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    res = runner.invoke(main, ["federated", "--sites", str(sites / "north.csv"), str(sites / "south.csv"),
                               "--schema", schema, "--generator", "mst", "--out", str(mine), "--overwrite"])
    assert res.exit_code == 2 and "not a dpsynth run directory" in res.output, res.output
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_flower_two_sites_two_rounds_end_to_end(sites, tmp_path):
    pytest.importorskip("flwr", reason="flwr is not installed (pip install -e '.[federated]')")
    pytest.importorskip("ray", reason="flwr[simulation] (ray) is not installed")
    config_file = tmp_path / "fed.yaml"
    config_file.write_text(yaml.safe_dump({"generator": "dp-diffusion", "params": TINY["dp-diffusion"],
                                           "privacy": {"epsilon": 2.0}, "rounds": ROUNDS}))
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["federated", "--config", str(config_file), "--sites", str(sites / "north.csv"),
                                    str(sites / "south.csv"), "--schema", str(sites / "schema.yaml"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    card = json.loads((out / "privacy_card.json").read_text())
    fed = card["federated"]
    assert [s["site"] for s in fed["sites"]] == ["north", "south"]
    site_eps = {s["site"]: s["epsilon"] for s in fed["sites"]}
    assert card["epsilon"] == fed["released_epsilon"] == max(site_eps.values()) <= 2.0
    assert "user's declaration" in fed["patient_at_two_sites"]
    for s in fed["sites"]:
        ledger = json.loads((out / "site_ledgers" / f"{s['site']}.json").read_text())
        sgd = [e for e in ledger["entries"] if e["mechanism"] == "dp-sgd"]
        k = steps_per_round(math.ceil(TINY["dp-diffusion"]["epochs"] * s["rows"] / 64), ROUNDS)
        assert len(sgd) == 1 and sgd[0]["steps"] == k * ROUNDS  # every local step of both rounds
        expected = dp_accounting_epsilon([(sgd[0]["noise_multiplier"], sgd[0]["sample_rate"], sgd[0]["steps"])],
                                         ledger["delta"])
        assert s["epsilon"] == pytest.approx(expected, rel=1e-3)
    assert "A patient at two sites" in (out / "privacy_card.md").read_text()
    gen = CliRunner().invoke(main, ["generate", "--model", str(out), "-n", "50", "-o", str(tmp_path / "syn.csv")])
    assert gen.exit_code == 0, gen.output
    assert len((tmp_path / "syn.csv").read_text().strip().splitlines()) == 51


@pytest.mark.slow
def test_site_level_dp_with_secure_aggregation_runs_in_simulation(sites, tmp_path):
    """Flower's client-side fixed clipping + server noise under SecAgg+, reported as a second guarantee."""
    pytest.importorskip("flwr", reason="flwr is not installed (pip install -e '.[federated]')")
    pytest.importorskip("ray", reason="flwr[simulation] (ray) is not installed")
    config_file = tmp_path / "fed.yaml"
    config_file.write_text(yaml.safe_dump({"generator": "dp-diffusion", "params": TINY["dp-diffusion"],
                                           "privacy": {"epsilon": 2.0}, "rounds": 1,
                                           "site_level_dp": {"epsilon": 20.0, "clip_norm": 0.1}}))
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["federated", "--config", str(config_file), "--sites", str(sites / "north.csv"),
                                    str(sites / "south.csv"), "--schema", str(sites / "schema.yaml"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    card = json.loads((out / "privacy_card.json").read_text())
    site_level = card["federated"]["site_level_dp"]
    assert site_level["secure_aggregation"] is True and site_level["sites"] == 2
    assert site_level["epsilon"] <= 20.0
    assert site_level["epsilon"] == pytest.approx(
        dp_accounting_epsilon([(site_level["noise_multiplier"], 1.0, 1)], site_level["delta"]), rel=1e-3)
    assert card["epsilon"] <= 2.0  # the sample-level guarantee is unchanged and separate
    assert "Site-level guarantee (separate)" in (out / "privacy_card.md").read_text()
    assert "site-level guarantee (separate)" in res.output


def test_site_level_noise_is_calibrated_by_the_accountant():
    from dpsynth.federated.workflow import site_level_plan

    plan = site_level_plan(SiteLevelDP(epsilon=8.0, clip_norm=0.5), n_sites=4, rounds=5, accountant="rdp")
    assert plan["epsilon"] <= 8.0 and plan["epsilon"] == pytest.approx(8.0, rel=0.02)
    assert plan["epsilon"] == pytest.approx(dp_accounting_epsilon([(plan["noise_multiplier"], 1.0, 5)], plan["delta"]),
                                            rel=1e-3)
    assert plan["noise_std_on_average"] == pytest.approx(plan["noise_multiplier"] * 0.5 / 4)


def test_config_yaml_form_and_duplicate_site_names(tmp_path):
    from dpsynth.errors import ConfigError
    from dpsynth.federated.config import load_federated_config

    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump({"sites": {"a": "x.csv", "b": "y.csv"}, "schema": "s.yaml", "rounds": 4,
                                 "site_level_dp": {"epsilon": 5.0, "secure_aggregation": False}}))
    cfg = load_federated_config(f)
    assert cfg.sites == (("a", "x.csv"), ("b", "y.csv")) and cfg.rounds == 4
    assert cfg.site_level_dp == SiteLevelDP(epsilon=5.0, secure_aggregation=False)
    with pytest.raises(ConfigError, match="duplicate site name"):
        sites_from(["a/x.csv", "b/x.csv"])
    with pytest.raises(ConfigError, match="site name"):
        sites_from({"../evil": "x.csv", "b": "y.csv"})
    f.write_text(yaml.safe_dump({"sites": ["x.csv"], "epochs": 3}))
    with pytest.raises(ConfigError, match="unknown key"):
        load_federated_config(f)
    assert isinstance(FederatedConfig().with_overrides(rounds=7).rounds, int)


def test_image_site_rounds_continue_one_ledger(tmp_path):
    """dp-diffusion-image at a site: class counts charged once, DP-SGD steps of both rounds in one entry."""
    pytest.importorskip("diffusers", reason="diffusers is not installed")
    from dpsynth.data.image_schema import ImageSchema

    rng = np.random.default_rng(0)
    schema = ImageSchema.from_dict({"name": "tiny", "modality": "image", "height": 8, "width": 8, "channels": 1,
                                    "label": "label", "classes": [0, 1], "low": 0, "high": 255})
    schema.save(tmp_path / "schema.yaml")
    for name in ("a", "b"):  # random pixels: this checks the mechanics, not image quality
        np.savez(tmp_path / f"{name}.npz", train_images=rng.integers(0, 256, (40, 8, 8), dtype=np.uint8),
                 train_labels=rng.integers(0, 2, (40, 1)))
    params = {"block_out_channels": [8, 8], "layers_per_block": 1, "norm_num_groups": 8, "noise_multiplicity": 1,
              "batch_size": 16, "epochs": 0.5, "sample_steps": 2, "device": "cpu"}
    job = FederatedJob(generator="dp-diffusion-image", params=params, schema_path=str(tmp_path / "schema.yaml"),
                       rounds=2, epsilon=5.0, sites=(("a", str(tmp_path / "a.npz")), ("b", str(tmp_path / "b.npz"))))
    model = federated_model(job.generator, params, load_schema(job.schema_path))
    arrays = model.to_arrays(model.initial_state(np.random.default_rng(0)))
    state = None
    for server_round in (1, 2):
        result = run_site_round(job=job, site_index=1, arrays=arrays, server_round=server_round, state=state)
        state, arrays = json.loads(json.dumps(result.state)), result.arrays
    entries = result.state["ledger"]["entries"]
    assert [e["mechanism"] for e in entries] == ["gaussian", "dp-sgd"]
    k = steps_per_round(model.plan_steps(40), 2)
    assert entries[1]["steps"] == 2 * k
    history = [(e["noise_multiplier"], e["sample_rate"], e["steps"]) for e in entries]
    assert result.metrics["epsilon"] == pytest.approx(dp_accounting_epsilon(history, result.state["ledger"]["delta"]),
                                                      rel=1e-3)
    fitted = model.finalize(model.from_arrays(arrays), [json.loads(result.metrics["released"])] * 2)
    assert fitted.sample(3, rng=np.random.default_rng(1)).images.shape[0] == 3


def test_site_level_noise_on_batchnorm_variances_cannot_break_sampling(sites):
    """Server noise can make an averaged BatchNorm variance negative; the model still samples."""
    model = federated_model("dp-gan", TINY["dp-gan"], load_schema(sites / "schema.yaml"))
    state = model.initial_state(np.random.default_rng(0))
    noisy = {k: (v - 2.0 if k.endswith("running_var") else v) for k, v in state.items()}
    assert min(float(v.min()) for k, v in noisy.items() if k.endswith("running_var")) < 0
    counts = [[5.0] * span.dim for span in model.generator.cond_.spans]
    fitted = model.finalize(noisy, [{"category_counts": counts}])
    frame = fitted.sample(50, rng=np.random.default_rng(0)).frame
    assert len(frame) == 50
