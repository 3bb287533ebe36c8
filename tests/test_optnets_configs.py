"""Every optnets config builds and takes real steps (TFDS configs on mock data)."""

import numpy as np
import pytest

from experiments import config_lib, testing
from optnets import data


def test_gaussian_pairs():
  d = data.gaussian_pairs(np.random.default_rng(0), 500, "train", dim=100)
  assert d["inputs"].shape == d["labels"].shape == (500, 100)
  assert abs(d["inputs"].std() - 1) < 0.05 and abs(np.corrcoef(
      d["inputs"].ravel(), d["labels"].ravel())[0, 1]) < 0.05
  with pytest.raises(ValueError, match="positive"):
    data.gaussian_pairs(np.random.default_rng(0), 0, "train")


def test_simulation_config_fields():
  c = config_lib.load_config("configs/optnets/simulation.py", {"structure": "hb", "depth": 20})
  assert c.model.structure == "hb" and c.model.depth == 20
  assert c.eval_splits == ("train",) and c.dataset.num_train == 10_000
  assert c.train_epochs == 1000


@pytest.mark.parametrize("structure", ["agd2"])  # the others: test_optnets_nets.py
def test_simulation_steps(structure):
  s = testing.build_and_step("configs/optnets/simulation.py:quick",
                             overrides={"structure": structure, "depth": 3,
                                        "dataset.kwargs.dim": 8})
  assert np.isfinite(s["final"]["train_mse"])


def test_cifar_config_is_section_7_1():
  c = config_lib.load_config("configs/optnets/cifar.py:agd_net52,c100,aug")
  assert (c.batch_size, c.train_epochs, c.l2, c.optimizer.nesterov) == (64, 300.0, 1e-4, True)
  assert c.optimizer.schedule.boundaries == (0.5, 0.75) and c.dataset.augment == "cifar"
  assert c.model.depth == 52 and c.model.num_classes == 100 and c.model.beta == 0.1
  i = config_lib.load_config("configs/optnets/imagenet.py:densenet121")
  assert (i.batch_size, i.train_epochs) == (256, 100.0)
  assert i.optimizer.schedule.boundaries == (0.3, 0.6, 0.9)
  with pytest.raises(ValueError, match="choose one"):
    config_lib.load_config("configs/optnets/cifar.py:resnet56,hb_net56")


@pytest.mark.parametrize("variant,overrides", [
    ("hb_net56,c100,aug", {"model.n": 1}),
    ("agd_net40,c10", {"model.depth": 7, "model.growth": 2}),
])
def test_cifar_steps(variant, overrides):
  s = testing.build_and_step("configs/optnets/cifar.py:" + variant, overrides=overrides)
  assert 0.0 <= s["final"]["test_accuracy"] <= 1.0


@pytest.mark.slow  # ImageNet-34 has 21M parameters: tens of seconds on the shared CPU
@pytest.mark.parametrize("variant,overrides", [
    ("hb_net34", {}),
    ("agd_net121", {"model.growth": 2}),
])
def test_imagenet_steps(variant, overrides):
  s = testing.build_and_step("configs/optnets/imagenet.py:" + variant, overrides=overrides)
  assert 0.0 <= s["final"]["test_accuracy"] <= 1.0


def test_gaussian_pairs_draw_is_an_independent_instance():
  rng = lambda: np.random.default_rng([5, 7])
  d0, d0b = data.gaussian_pairs(rng(), 50, dim=4), data.gaussian_pairs(rng(), 50, dim=4, draw=0)
  d1 = data.gaussian_pairs(rng(), 50, dim=4, draw=1)
  np.testing.assert_array_equal(d0["inputs"], d0b["inputs"])  # draw 0: the old data
  np.testing.assert_array_equal(d1["inputs"], data.gaussian_pairs(rng(), 50, dim=4, draw=1)["inputs"])
  assert abs(np.corrcoef(d0["inputs"].ravel(), d1["inputs"].ravel())[0, 1]) < 0.3


def test_reference_mse_closed_forms():
  # Two examples, two coordinates: every predictor's MSE by hand.
  x = np.array([[0.0], [1.0]])
  f = np.array([[1.0, -3.0], [3.0, -1.0]])  # coordinate means 2 and -2
  ref = data.reference_mse(x, f)
  assert ref["zero"] == pytest.approx((1 + 9 + 9 + 1) / 4)
  assert ref["constant"] == pytest.approx((1 + 1 + 1 + 1) / 4)
  # Coordinate 2's mean is negative: the non-negative constant predicts 0 there.
  assert ref["nonneg_constant"] == pytest.approx((1 + 9 + 1 + 1) / 4)
  assert ref["linear"] == pytest.approx(0.0, abs=1e-12)  # two points, an affine map fits them


def test_reference_mse_orders_on_the_table2_task():
  d = data.gaussian_pairs(np.random.default_rng(3), 2000, dim=20)
  ref = data.reference_mse(d["inputs"], d["labels"])
  assert ref["linear"] < ref["constant"] <= ref["nonneg_constant"] <= ref["zero"]
  # In-sample least squares removes about (dim + 1) / n of the variance.
  assert ref["linear"] / ref["constant"] == pytest.approx(1 - 21 / 2000, abs=0.004)


def test_table2_report_reference_reads_the_cells_training_set():
  from experiments.tables import optnets as optnets_tables
  ref = optnets_tables.training_set_reference()
  cfg = config_lib.load_config(optnets_tables.SIM)
  assert cfg.dataset.num_train == 10_000 and cfg.dataset.kwargs.draw == 0
  assert ref["linear"] < ref["constant"] <= ref["nonneg_constant"] <= ref["zero"]
  assert abs(ref["zero"] - 1.0) < 0.01  # 1M standard normal targets


def test_table2_writes_a_partial_report_after_every_cell(tmp_path, monkeypatch):
  """A session stopped after two cells leaves a report with those two and '-' elsewhere."""
  from experiments import reproduce
  from experiments.tables import optnets as optnets_tables
  ctx = reproduce.Context(id="optnets_table2", out=str(tmp_path), quick=True)
  trained = []

  class Stop(Exception):
    pass

  def fake_grid(spec, grid, select, overrides, name, seed):
    lrs = grid["optimizer.learning_rate"]
    results = [({"optimizer.learning_rate": v}, {"final": {"train_mse": 1.0 + v}}) for v in lrs]
    return None, {"optimizer.learning_rate": lrs[0]}, results

  def fake_train(spec, overrides, name, seed):
    if len(trained) == 2:
      raise Stop
    trained.append(name)
    return {"final": {"train_mse": 0.5 + len(trained) / 1000}}

  monkeypatch.setattr(ctx, "grid", fake_grid)
  monkeypatch.setattr(ctx, "train", fake_train)
  monkeypatch.setattr(optnets_tables, "training_set_reference",
                      lambda spec: {"zero": 1.0, "constant": 0.9})
  with pytest.raises(Stop):
    optnets_tables.run_table2(ctx)
  assert trained == ["admm_d40", "gd_d40"]  # depth 40 first, the paper's comparison point
  report = (tmp_path / "optnets_table2_partial.md").read_text()
  depth40 = next(line for line in report.splitlines() if line.startswith("| 40 "))
  assert "1.07749 / 0.50100" in depth40 and "1.00653 / 0.50200" in depth40
  assert "1.00457 / -" in depth40  # hb not run yet
  assert "measured admm < gd;" in report
  assert (tmp_path / "optnets_table2_curves.png").exists()
