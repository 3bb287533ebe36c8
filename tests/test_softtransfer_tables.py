"""Reproduction entries of figures 1 and 2: reference predictors, rates, per-neuron outcomes, files."""

import os

import numpy as np
import pytest
import scipy.interpolate
import scipy.special
import scipy.stats

from experiments import config_lib
from experiments import reproduce
from experiments import train
from experiments.tables import softtransfer as tables
from softtransfer import data

BESSEL = "configs/softtransfer/bessel.py"


def test_reference_baselines_against_independent_computations():
  rows, values = tables.reference_baselines(BESSEL, BESSEL + ":validation")
  x_test = data.bessel_split()["test"]
  assert values["constant"] == pytest.approx(np.var(scipy.special.j0(x_test)), rel=1e-5)
  x_tr, y_tr = tables._split_arrays(BESSEL, "train")
  x_te, y_te = tables._split_arrays(BESSEL, "test")
  np.testing.assert_allclose(x_tr, data.bessel_split()["train"], atol=1e-4)  # sorted, unscaled
  assert 0.06 < np.std(y_tr - scipy.special.j0(x_tr)) < 0.1  # the runs' noisy labels
  def interp(x, y, xq):  # constant beyond the ends, like np.interp
    ends = (y[np.argmin(x)], y[np.argmax(x)])
    return scipy.interpolate.interp1d(x, y, bounds_error=False, fill_value=ends)(xq)
  assert values["interpolation"] == pytest.approx(np.mean((interp(x_tr, y_tr, x_te) - y_te) ** 2), rel=1e-5)
  from sklearn.kernel_ridge import KernelRidge
  xv, yv = tables._split_arrays(BESSEL + ":validation", "train")
  xh, yh = tables._split_arrays(BESSEL + ":validation", "test")
  assert len(xv) == 150 and len(xh) == 50
  def sk(x, y, xq, ls, ridge):
    m = KernelRidge(alpha=ridge, kernel="rbf", gamma=1 / (2 * ls ** 2)).fit(x[:, None], y - y.mean())
    return m.predict(xq[:, None]) + y.mean()
  scores = {(ls, r): np.mean((sk(xv, yv, xh, ls, r) - yh) ** 2)
            for ls in tables.KRR_LENGTH_SCALES for r in tables.KRR_RIDGES}
  ls, ridge = min(scores, key=scores.get)
  krr_test = np.mean((sk(x_tr, y_tr, x_te, ls, ridge) - y_te) ** 2)
  assert values["kernel_ridge"] == pytest.approx(krr_test, rel=1e-4)
  assert f"length scale {ls}, ridge {ridge}" in rows[2][1]
  assert values["valid_kernel_ridge"] == pytest.approx(scores[(ls, ridge)], rel=1e-4)
  assert values["valid_constant"] == pytest.approx(np.var(yh), rel=1e-6)
  assert values["valid_interpolation"] == pytest.approx(np.mean((interp(xv, yv, xh) - yh) ** 2), rel=1e-5)
  # The data allow a good fit: both references are far below the constant predictor.
  assert values["kernel_ridge"] < values["interpolation"] < 0.5 * values["constant"]


def test_wilson_interval_matches_scipy():
  for k, n in ((0, 20), (9, 20), (12, 20), (100, 100)):
    ci = scipy.stats.binomtest(k, n).proportion_ci(method="wilson")
    assert tables.wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-6)
  with pytest.raises(ValueError):
    tables.wilson_interval(3, 2)


def test_toy_outcomes_per_neuron_from_a_real_run(tmp_path):
  """A 3-copy run at lr 0: its final parameters are the initial ones the table recomputes."""
  config = config_lib.load_config("configs/softtransfer/sin2x.py:quick", {
      "model.copies": 3, "train_steps": 2, "optimizer.learning_rate": 0.0, "seed": 4,
      "model.log_alpha_init_mean": 0.0})
  summary = train.run(config, str(tmp_path))
  o = tables.toy_outcomes(str(tmp_path))
  np.testing.assert_allclose(o["weight"], 6.0)
  _, params, _ = tables._restore(str(tmp_path))
  np.testing.assert_allclose(o["log_alpha_init"], tables._leaves(params, "log_alpha"), rtol=1e-6)
  assert np.ptp(o["log_alpha_init"]) > 0.1  # three different draws
  # The framework's test mse is the mean over copies of the per-neuron mse the table computes.
  assert np.mean(o["mse"]) == pytest.approx(summary["final"]["test_mse"], rel=1e-4)
  assert not o["reached"].any()


@pytest.fixture
def tiny_runs(monkeypatch):
  """Every run of an entry shrunk to a few steps (and the Bessel network to 8x8)."""
  original = reproduce.Context.train

  def train_tiny(self, config, overrides=None, name=None, seed=None):
    overrides = dict(overrides or {}, train_steps=6, eval_every=3)
    if "bessel" in config:
      overrides["model.hidden_sizes"] = (8, 8)
    return original(self, config, overrides, name, seed)

  monkeypatch.setattr(reproduce.Context, "train", train_tiny)


@pytest.mark.slow  # 1-4 min: every run of the entry compiles
@pytest.mark.parametrize("entry,files", [
    ("softtransfer_fig1", ("softtransfer_fig1.md", "softtransfer_fig1.png")),
    ("softtransfer_fig2", ("softtransfer_fig2.md", "softtransfer_fig2.png"))])
def test_quick_entries_write_their_table_and_figure(tiny_runs, tmp_path, entry, files):
  text = reproduce.run_entry(reproduce.load_all()[entry], str(tmp_path), quick=True)
  for f in files:
    assert os.path.getsize(tmp_path / f) > 0
  if entry == "softtransfer_fig1":
    assert "success rate [95% CI]" in text and "batch" in text and "example" in text
  else:
    assert "constant predictor (test targets' variance)" in text and "kernel ridge" in text
    assert "train mse" in text and "Criterion" in text
