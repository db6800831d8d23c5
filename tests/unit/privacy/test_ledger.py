"""The ledger's epsilon equals independent accountants' on the same expenses."""

import math

import pytest
from opacus.accountants import RDPAccountant

from dpsynth.errors import PrivacyError
from dpsynth.privacy.accountants import calibrate_noise
from dpsynth.privacy.budget import Budget, default_delta, zcdp_rho_for
from dpsynth.privacy.ledger import Ledger
from tests.conftest import dp_accounting_epsilon


def test_dp_sgd_only_matches_opacus_accountant():
    ledger = Ledger(delta=1e-5)
    entry = ledger.open_dp_sgd(purpose="sgd", noise_multiplier=1.1, sample_rate=0.01)
    for _ in range(500):
        ledger.record_step(entry)
    opacus = RDPAccountant()
    for _ in range(500):
        opacus.step(noise_multiplier=1.1, sample_rate=0.01)
    assert ledger.epsilon() == pytest.approx(opacus.get_epsilon(delta=1e-5), rel=2e-3)


def test_composed_ledger_matches_dp_accounting():
    ledger = Ledger(delta=1e-6)
    ledger.record_gaussian(purpose="category counts", noise_multiplier=8.0)
    ledger.record_gaussian(purpose="bounds", noise_multiplier=12.0)
    ledger.record_zcdp(purpose="selection", rho=0.002)
    entry = ledger.open_dp_sgd(purpose="sgd", noise_multiplier=1.3, sample_rate=0.05)
    entry.steps = 800
    expected = dp_accounting_epsilon([(8.0, 1.0, 1), (12.0, 1.0, 1), (1.3, 0.05, 800)], 1e-6, rho=0.002)
    assert ledger.epsilon() == pytest.approx(expected, rel=0.01)
    assert 0 < ledger.preprocessing_epsilon() < ledger.epsilon()


def test_prv_accountant_is_selectable_and_tighter():
    rdp = Ledger(delta=1e-5, accountant="rdp")
    prv = Ledger(delta=1e-5, accountant="prv")
    for ledger in (rdp, prv):
        e = ledger.open_dp_sgd(purpose="sgd", noise_multiplier=1.0, sample_rate=0.02)
        e.steps = 1000
    assert prv.epsilon() < rdp.epsilon()
    assert prv.epsilon() == pytest.approx(rdp.epsilon(), rel=0.35)
    prv.record_zcdp(purpose="exponential mechanism", rho=0.01)
    with pytest.raises(PrivacyError, match="PRV accountant cannot compose zCDP"):
        prv.epsilon()


def test_calibration_accounts_for_preprocessing():
    ledger = Ledger(delta=1e-5, target_epsilon=1.0)
    ledger.record_gaussian(purpose="counts", noise_multiplier=20.0)
    sigma = calibrate_noise(base=ledger.gaussian_history(), base_rho=0.0, sample_rate=0.1, steps=300,
                            target_epsilon=1.0, delta=1e-5, accountant="rdp")
    total = dp_accounting_epsilon([(20.0, 1.0, 1), (sigma, 0.1, 300)], 1e-5)
    assert 0.97 <= total <= 1.0 + 1e-3
    without = calibrate_noise(base=[], base_rho=0.0, sample_rate=0.1, steps=300, target_epsilon=1.0, delta=1e-5,
                              accountant="rdp")
    assert sigma > without  # what preprocessing spent is taken out of the training budget


def test_ledger_refuses_to_cross_target():
    ledger = Ledger(delta=1e-5, target_epsilon=0.5)
    with pytest.raises(PrivacyError, match="cross the target"):
        ledger.record_gaussian(purpose="too much", noise_multiplier=0.5)
    assert ledger.entries == []


def test_budget_rules():
    with pytest.raises(PrivacyError, match="epsilon must be > 0"):
        Budget(epsilon=0)
    with pytest.raises(PrivacyError, match="epsilon must be > 0"):
        Budget(epsilon=-1)
    with pytest.raises(PrivacyError, match="non-private"):
        Budget(epsilon=math.inf)
    with pytest.raises(PrivacyError, match=">= 1/n"):
        Budget(epsilon=1, delta=0.01).resolve_delta(100)
    assert Budget(epsilon=1).resolve_delta(1000) == default_delta(1000) == 1e-5
    assert Budget(epsilon=1).resolve_delta(50_000) == pytest.approx(1 / 500_000)
    assert Budget.non_private_reference().non_private


def test_zcdp_split_inverts_standard_conversion():
    rho = zcdp_rho_for(1.0, 1e-5)
    assert rho + 2 * math.sqrt(rho * math.log(1e5)) == pytest.approx(1.0)


def test_ledger_json_round_trip(tmp_path):
    ledger = Ledger(delta=1e-5, target_epsilon=3.0)
    ledger.record_gaussian(purpose="counts", noise_multiplier=10.0, params={"histograms": 3})
    e = ledger.open_dp_sgd(purpose="sgd", noise_multiplier=1.5, sample_rate=0.1)
    e.steps = 42
    ledger.save(tmp_path / "ledger.json")
    again = Ledger.load(tmp_path / "ledger.json")
    assert again.epsilon() == pytest.approx(ledger.epsilon())
    assert [x.to_dict() for x in again.entries] == [x.to_dict() for x in ledger.entries]
