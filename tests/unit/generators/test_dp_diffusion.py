"""dp-diffusion: DP-SGD TabDDPM-style generator on a small slice of real ACTG 175 rows."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from opacus import GradSampleModule
from opacus.accountants import RDPAccountant
from opacus.data_loader import DPDataLoader
from opacus.validators import ModuleValidator
from safetensors.torch import load_file, save_file

from dpsynth.data.table import TableData
from dpsynth.data.transform import TableTransformer
from dpsynth.errors import DpsynthError
from dpsynth.generators import get_generator_class
from dpsynth.generators.tabular.diffusion.dp_diffusion import DPDiffusion
from dpsynth.privacy.accountants import RDP_ORDERS
from dpsynth.privacy.budget import Budget
from dpsynth.privacy.engine import DPSGDEngine

TINY = dict(width=32, depth=1, time_dim=16, epochs=3, batch_size=64, noise_multiplicity=2, sampling_steps=8)
EPS = 3.0


@pytest.fixture(scope="module")
def small(actg_splits):
    schema, splits = actg_splits
    return schema, splits.train.iloc[:300].reset_index(drop=True)


@pytest.fixture(scope="module")
def fitted(small):
    """A fitted tiny model, and the loaders its DP-SGD engine handed out."""
    schema, frame = small
    loaders = []
    original = DPSGDEngine.make_private

    def spy(self, **kwargs):
        out = original(self, **kwargs)
        loaders.append(out[2])
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(DPSGDEngine, "make_private", spy)
        gen = DPDiffusion(**TINY).fit(TableData(frame, schema), budget=Budget(epsilon=EPS),
                                      rng=np.random.default_rng(0))
    return gen, loaders


def test_registered_with_exact_conditioning():
    assert get_generator_class("dp-diffusion") is DPDiffusion
    assert DPDiffusion.exact_conditioning is True


def test_denoiser_passes_opacus_validation(fitted):
    gen, _ = fitted
    module = gen._new_denoiser().train()  # what DP-SGD trains (the fitted one is in eval mode)
    assert ModuleValidator.validate(module, strict=False) == []
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules())


def test_sample_shape_types_and_domain(fitted, small):
    gen, _ = fitted
    schema, _ = small
    syn = gen.sample(400, rng=np.random.default_rng(1)).frame
    assert list(syn.columns) == schema.names and len(syn) == 400
    for col in schema.columns:
        values = syn[col.name]
        if col.is_numeric:
            present = values.dropna().astype(float)
            assert present.between(col.low, col.high).all(), col.name
            if col.kind == "integer":
                assert (present == np.round(present)).all(), col.name
            if not col.nullable:
                assert values.notna().all(), col.name
        else:
            assert set(values.dropna().tolist()) <= set(col.categories), col.name
    schema.prepare(syn, source="synthetic")  # the schema's own domain check


def test_state_dict_round_trip_through_safetensors(fitted, small, tmp_path):
    gen, _ = fitted
    schema, _ = small
    state = gen.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    save_file(state, str(tmp_path / "weights.safetensors"))
    again = DPDiffusion(**gen.get_params()).load_state_dict(load_file(str(tmp_path / "weights.safetensors")),
                                                              schema=schema)
    a = gen.sample(300, rng=np.random.default_rng(7)).frame
    b = again.sample(300, rng=np.random.default_rng(7)).frame
    pd.testing.assert_frame_equal(a, b)
    c = again.sample(100, conditions={"race": 1}, rng=np.random.default_rng(8)).frame
    pd.testing.assert_frame_equal(c, gen.sample(100, conditions={"race": 1}, rng=np.random.default_rng(8)).frame)


def test_ledger_within_target_and_matches_independent_accounting(fitted, small):
    gen, _ = fitted
    ledger = gen.ledger_
    eps = ledger.epsilon()
    assert 0 < eps <= EPS * (1 + 1e-9)
    assert eps > 0.9 * EPS  # the noise was calibrated to the target, not far below it
    (entry,) = [e for e in ledger.entries if e.mechanism == "dp-sgd"]
    assert entry.steps == gen.plan_steps(len(small[1])) == gen.dp_plan_["steps"]
    assert entry.noise_multiplier == gen.dp_plan_["noise_multiplier"]
    # every entry (no preprocessing release is made by this generator) recomposed by opacus itself
    history = [e.gaussian_triple() for e in ledger.entries]
    assert len(history) == 1
    accountant = RDPAccountant()
    accountant.history = list(history)
    assert accountant.get_epsilon(delta=ledger.delta, alphas=list(RDP_ORDERS)) == pytest.approx(eps, rel=1e-9)


def test_poisson_loader_is_used(fitted, small):
    gen, loaders = fitted
    (loader,) = loaders
    assert isinstance(loader, DPDataLoader)
    assert loader.sample_rate == pytest.approx(gen.dp_plan_["sample_rate"])
    assert loader.sample_rate == pytest.approx(1.0 / math.ceil(len(small[1]) / TINY["batch_size"]))


def test_conditional_sampling_is_exact(fitted):
    gen, _ = fitted
    syn = gen.sample(200, conditions={"race": 1, "arms": 3}, rng=np.random.default_rng(2)).frame
    assert len(syn) == 200 and (syn["race"] == 1).all() and (syn["arms"] == 3).all()
    syn = gen.sample(50, conditions={"age": 40, "cd496": 500}, rng=np.random.default_rng(3)).frame
    assert (syn["age"] == 40).all() and (syn["cd496"] == 500).all()
    with pytest.raises(DpsynthError, match="race"):
        gen.sample(10, conditions={"race": 7}, rng=np.random.default_rng(2))
    with pytest.raises(DpsynthError, match="unknown column"):
        gen.sample(10, conditions={"nope": 1}, rng=np.random.default_rng(2))
    with pytest.raises(DpsynthError, match="domain"):
        gen.sample(10, conditions={"age": 200}, rng=np.random.default_rng(2))


def test_no_training_row_in_the_fitted_generator_or_its_artifact(fitted, small):
    gen, _ = fitted
    schema, frame = small
    n = len(frame)
    # nothing of the row count's shape, and no DataFrame / array / tensor of the rows, is held
    for name, value in vars(gen).items():
        assert not isinstance(value, (pd.DataFrame, pd.Series, np.ndarray)), name
        if isinstance(value, torch.Tensor):
            assert n not in value.shape, name
    state = gen.state_dict()
    assert all(n not in v.shape for v in state.values())
    # no tensor in the artifact contains an encoded training row (exactly or almost)
    encoded = torch.from_numpy(TableTransformer(schema).encode(frame))
    for key, value in state.items():
        for axis, size in enumerate(value.shape):
            if size == encoded.shape[1]:
                rows = value.movedim(axis, -1).reshape(-1, size).float()
                assert torch.cdist(rows, encoded).min() > 1e-3, key


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_noise_multiplicity_keeps_one_gradient_per_example():
    """opacus' per-sample gradient of example i (its k noisy copies run as [B, k, d]) equals
    the plain autograd gradient of example i's own loss, the mean over its copies."""
    from dpsynth.generators.tabular.diffusion.denoiser import MLPDenoiser
    from dpsynth.generators.tabular.diffusion.process import Layout, make_schedules, per_example_loss
    from dpsynth.data.transform import Span

    spans = (Span("a", "tanh", 0, 1), Span("b", "softmax", 1, 3), Span("c", "tanh", 4, 1))
    layout = Layout(spans, sigma_data=0.5)
    schedules = make_schedules(num_train_timesteps=100, beta_schedule="squaredcos_cap_v2", sampling_steps=5)
    torch.manual_seed(0)
    model = MLPDenoiser(data_dim=5, cond_dim=3, width=8, depth=1, time_dim=8)
    plain = MLPDenoiser(data_dim=5, cond_dim=3, width=8, depth=1, time_dim=8)
    plain.load_state_dict(model.state_dict())
    x0 = torch.tensor([[0.1, 1.0, -1.0, -1.0, -0.5], [-0.7, -1.0, 1.0, -1.0, 0.9], [0.4, -1.0, -1.0, 1.0, 0.0]])
    cond = torch.rand(3, 4, 3)
    wrapped = GradSampleModule(model)
    losses = per_example_loss(wrapped, x0, cond, schedules, layout, copies=4, gen=torch.Generator().manual_seed(1))
    assert losses.shape == (3,)
    (losses.sum() / 3).backward()  # opacus' loss_reduction="mean"
    ref = per_example_loss(plain, x0, cond, schedules, layout, copies=4, gen=torch.Generator().manual_seed(1))
    assert torch.allclose(ref, losses.detach())
    for i in range(3):
        grads = torch.autograd.grad(ref[i], list(plain.parameters()), retain_graph=True)
        for p, g in zip(model.parameters(), grads):
            assert torch.allclose(p.grad_sample[i], g, atol=1e-6), (i, p.shape)
