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


def _fake_sim_train(mse_of, trained, stop_after=None):
  """A ctx.train stand-in: the MSE of a run is mse_of(name, lr); Stop after n table cells."""

  class Stop(Exception):
    pass

  def train(spec, overrides, name, seed):
    if not name.startswith("select"):
      if stop_after is not None and len(trained) == stop_after:
        raise Stop
      trained.append(name)
    return {"final": {"train_mse": mse_of(name, overrides["optimizer.learning_rate"])}}
  return train, Stop


def test_table2_selection_shares_one_rate_stable_for_every_structure(tmp_path, monkeypatch):
  """The rate minimises the mean over structures, among rates no structure diverged at."""
  from experiments import reproduce, train
  from experiments.tables import optnets as optnets_tables
  ctx = reproduce.Context(id="optnets_table2", out=str(tmp_path), quick=True)
  bracket = (0.001, 0.01, 0.1)
  # gd is best at 0.001 on its own, the others at 0.01; admm diverges at 0.1 where the
  # others would be lowest.
  table = {"gd": (1.0, 1.3, 0.9), "admm": (1.2, 1.1, None), "hb": (1.2, 1.1, 0.8),
           "agd": (1.2, 1.1, 0.8), "agd2": (1.2, 1.1, 0.8)}

  def fake(spec, overrides, name, seed):
    assert seed == 100 and overrides["dataset.kwargs.draw"] == 1 and overrides["depth"] == 20
    v = table[overrides["structure"]][bracket.index(overrides["optimizer.learning_rate"])]
    if v is None:
      raise train.TrainingDiverged("nan", step=3)
    return {"final": {"train_mse": v}}

  monkeypatch.setattr(ctx, "train", fake)
  lr, rows = optnets_tables.select_shared_lr(ctx, "spec", 20, bracket, 2.0, "")
  assert lr == 0.01  # mean 1.14 at 0.01 beats 1.16 at 0.001; 0.1 is out (admm diverged)
  assert rows[-1] == ["mean", "1.16000", "1.14000", "diverged"]
  assert rows[0][0] == "ADMM" and rows[0][3] == "diverged"


def test_table2_writes_a_partial_report_after_every_cell(tmp_path, monkeypatch):
  """A session stopped after two cells leaves a report with those two and '-' elsewhere."""
  from experiments import reproduce
  from experiments.tables import optnets as optnets_tables
  ctx = reproduce.Context(id="optnets_table2", out=str(tmp_path), quick=True)
  trained = []
  fake, stop = _fake_sim_train(lambda name, lr: 1.0 + lr if name.startswith("select")
                               else 0.5 + len(trained) / 1000, trained, stop_after=2)
  monkeypatch.setattr(ctx, "train", fake)
  monkeypatch.setattr(optnets_tables, "training_set_reference",
                      lambda spec: {"zero": 1.0, "constant": 0.9})
  with pytest.raises(stop):
    optnets_tables.run_table2(ctx)
  assert trained == ["admm_d40", "gd_d40"]  # depth 40 first, the paper's comparison point
  report = (tmp_path / "optnets_table2_partial.md").read_text()
  depth40 = next(line for line in report.splitlines() if line.startswith("| 40 "))
  smallest = f"{min(optnets_tables.LR_BRACKET):g}"
  assert depth40.startswith(f"| 40 | {smallest} |")  # lowest mean selection MSE: 1 + lr
  assert "1.07749 / 0.50100" in depth40 and "1.00653 / 0.50200" in depth40
  assert "1.00457 / -" in depth40  # hb not run yet
  assert "measured ADMM" not in report  # no order until all five structures ran
  assert (tmp_path / "optnets_table2_curves.png").exists()


def test_table2_report_orders_and_spreads(tmp_path, monkeypatch):
  """Full run with fake cells: order lines, mean +- std over 3 seeds at depth 40, ablations."""
  from experiments import reproduce
  from experiments.tables import optnets as optnets_tables
  ctx = reproduce.Context(id="optnets_table2", out=str(tmp_path), quick=True)
  trained = []
  cell_mse = {"admm": 1.07, "gd": 1.006, "hb": 1.004, "agd": 1.002, "agd2": 0.9996}

  def mse_of(name, lr):
    if name.startswith("select"):
      return 1.0 + lr
    base = cell_mse[name.split("_")[1] if name.startswith("adam") else name.split("_")[0]]
    seed = int(name.rsplit("seed", 1)[1]) if "seed" in name else 0
    return base + 0.001 * seed + (0.5 if name.startswith("adam") else 0.0)

  fake, _ = _fake_sim_train(mse_of, trained)
  monkeypatch.setattr(ctx, "train", fake)
  monkeypatch.setattr(optnets_tables, "training_set_reference", lambda spec: {"zero": 1.0})
  report = optnets_tables.run_table2(ctx)
  assert len(trained) == 4 * 5 + 5 + 1 + 2 * 5  # cells, Adam, ADMM start, two more seeds
  assert "- depth 40: paper AGD2 < AGD < HB < GD < ADMM / measured AGD2 < AGD < HB < GD < ADMM" \
      in report
  depth40 = next(line for line in report.splitlines() if line.startswith("| 40 "))
  assert "1.00653 / 1.00700 ± 0.00100 (n=3)" in depth40  # gd: 1.006, 1.007, 1.008
  assert "| Adam | 1.57000 |" in report
  assert "depth-10 SGD rate): 1.07000" in report
  assert (tmp_path / "optnets_table2_partial.md").read_text() == report
