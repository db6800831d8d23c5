"""The Generator contract, checked for every registered table generator on real ACTG 175 rows."""

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from dpsynth.artifacts import load_run, save_run
from dpsynth.data.table import TableData
from dpsynth.errors import DpsynthError, MissingExtraError
from dpsynth.generators import REGISTRY
from dpsynth.privacy.artifact_scan import scan_run_for_rows
from dpsynth.privacy.budget import Budget

# the smallest settings that exercise each generator's full training path
TINY = {
    "dp-gan": {"epochs": 2, "batch_size": 64, "generator_hidden": [32], "discriminator_hidden": [32]},
    "dp-diffusion": {"epochs": 2, "batch_size": 64},
    "aim": {"max_iterations": 3},
    "mst": {},
    "auto": {"choice": "aim", "choice_params": {"max_iterations": 3}},  # the explicit-choice path (a saved run)
}
TABLE_GENERATORS = sorted(n for n, cls in REGISTRY.items() if getattr(cls, "modality", "table") == "table")


@pytest.fixture(scope="module")
def small(actg_splits):
    schema, splits = actg_splits
    return schema, splits.train.iloc[:400].reset_index(drop=True)


def _fit(name, schema, frame, *, epsilon=2.0, seed=0):
    cls = REGISTRY[name]
    import inspect

    accepted = set(inspect.signature(cls.__init__).parameters)
    params = {k: v for k, v in TINY.get(name, {}).items() if k in accepted}
    try:
        return cls(**params).fit(TableData(frame, schema), budget=Budget(epsilon=epsilon),
                                 rng=np.random.default_rng(seed))
    except MissingExtraError as exc:
        pytest.skip(str(exc))


@pytest.mark.parametrize("name", TABLE_GENERATORS)
def test_contract(name, small, tmp_path):
    schema, frame = small
    gen = _fit(name, schema, frame)
    # ledger: the composed epsilon stays within the target
    assert 0 < gen.ledger_.epsilon() <= 2.0 + 1e-9
    # sample: shape, columns, domains
    syn = gen.sample(300, rng=np.random.default_rng(1)).frame
    assert list(syn.columns) == schema.names and len(syn) == 300
    schema.prepare(syn, source="synthetic")  # raises if any value is outside the public domain
    # state_dict round trip through safetensors gives the same samples for the same seed
    save_file({k: v.contiguous() for k, v in gen.state_dict().items()}, str(tmp_path / "w.safetensors"))
    again = type(gen)(**gen.get_params()).load_state_dict(load_file(str(tmp_path / "w.safetensors")), schema=schema)
    a = gen.sample(200, rng=np.random.default_rng(7)).frame
    b = again.sample(200, rng=np.random.default_rng(7)).frame
    assert a.equals(b)


@pytest.mark.parametrize("name", TABLE_GENERATORS)
def test_conditional_sampling_honours_condition(name, small):
    schema, frame = small
    gen = _fit(name, schema, frame, epsilon=4.0)
    syn = gen.sample(200, conditions={"race": 1}, rng=np.random.default_rng(2)).frame
    assert len(syn) == 200 and (syn["race"] == 1).all()
    with pytest.raises(DpsynthError, match="race"):
        gen.sample(10, conditions={"race": 7}, rng=np.random.default_rng(2))


@pytest.mark.parametrize("name", TABLE_GENERATORS)
def test_saved_artifact_holds_no_training_row(name, small, tmp_path):
    schema, frame = small
    gen = _fit(name, schema, frame)
    run = save_run(tmp_path / "run", generator=gen, schema=schema, ledger=gen.ledger_, config={}, run={"n_train": 400},
                   secure_mode=False)
    assert scan_run_for_rows(run, frame, schema) == []
    loaded = load_run(run)
    assert loaded.ledger.epsilon() == pytest.approx(gen.ledger_.epsilon())


def test_scan_detects_a_leaky_artifact(small, tmp_path):
    """The scan itself has power: a 'generator' that stores its training rows is caught."""
    import torch

    schema, frame = small
    from dpsynth.data.transform import TableTransformer

    leaked = torch.tensor(TableTransformer(schema).encode(frame.iloc[:5]))
    (tmp_path / "run").mkdir()
    save_file({"rows": leaked}, str(tmp_path / "run" / "weights.safetensors"))
    assert scan_run_for_rows(tmp_path / "run", frame, schema)


@pytest.mark.parametrize("name", TABLE_GENERATORS)
def test_fit_is_reproducible_from_its_seed(name, small):
    import torch

    schema, frame = small
    a = _fit(name, schema, frame, seed=11).state_dict()
    b = _fit(name, schema, frame, seed=11).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
