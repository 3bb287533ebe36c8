"""Every tat config builds and takes real steps (mock TFDS data / real mnist_5k)."""

import pytest

from experiments import testing

CASES = [
    pytest.param("configs/tat/mnist_vanilla.py:kfac,quick", {"depth": 14, "model.width": 16},
                 marks=pytest.mark.slow),  # K-FAC compilation: ~30 s idle, minutes under load
    ("configs/tat/mnist_vanilla.py:sgd,quick", {"depth": 14, "method": "eoc", "model.width": 16}),
    ("configs/tat/mnist_vanilla.py:sgd,quick", {"depth": 4, "method": "dks", "model.width": 16}),
    ("configs/tat/imagenet_resnet.py:standard,sgd",
     {"depth": 18, "model.width_multiplier": 0.0625, "model.num_classes": 10}),
    pytest.param("configs/tat/imagenet_resnet.py:vanilla,kfac,e180",
                 {"depth": 18, "model.width_multiplier": 0.0625, "model.num_classes": 10},
                 marks=pytest.mark.slow),
    ("configs/tat/imagenet_resnet.py:rescaled,lars",
     {"depth": 18, "model.width_multiplier": 0.0625, "model.num_classes": 10,
                  "method": "dks", "activation": "softplus", "model.norm": "layer"}),
    ("configs/tat/cifar_wrn.py:quick", {"depth": 10, "model.widening_factor": 1, "method": "eoc"}),
]


@pytest.mark.parametrize("spec, overrides", CASES)
def test_config_builds_and_steps(spec, overrides):
  summary = testing.build_and_step(spec, overrides=overrides, steps=2, batch_size=4)
  final = summary["final"]
  acc = [v for k, v in final.items() if k.endswith("accuracy")]
  assert acc and all(0.0 <= a <= 1.0 for a in acc)


def test_config_variants_and_paper_settings():
  from experiments import config_lib
  c = config_lib.load_config("configs/tat/imagenet_resnet.py:vanilla,sgd,e180")
  assert c.batch_size == 1024 and c.loss.label_smoothing == 0.1 and c.train_epochs == 180
  assert c.optimizer.schedule.boundaries == (4 / 9, 7 / 9) and c.optimizer.schedule.warmup_epochs == 5
  k = config_lib.load_config("configs/tat/imagenet_resnet.py:kfac")
  assert (k.optimizer.kfac.damping, k.optimizer.kfac.norm_constraint,
          k.optimizer.kfac.inverse_update_period) == (0.001, 0.001, 50)
  assert k.model.dropout_rate == 0.2 and k.eta == 0.9
  with pytest.raises(ValueError, match="unknown config variant"):
    config_lib.load_config("configs/tat/imagenet_resnet.py:adam")


def test_mnist_vanilla_table_selects_per_cell_and_reports_divergence(tmp_path):
  """The reproduction entry's grid logic: best lr per cell, NaN points, all-diverged cells.

  `Context.train` is replaced by a fake (no training): accuracy peaks at the smallest
  K-FAC lr, SGD lr 0.01 diverges for dks, and every SGD lr diverges for eoc at depth 100.
  """
  from experiments import reproduce
  from experiments import train
  from experiments.tables import tat as tat_tables

  class FakeContext(reproduce.Context):
    def train(self, config, overrides=None, name=None, seed=None):
      lr, method, depth = overrides["optimizer.learning_rate"], overrides["method"], overrides["depth"]
      if ":sgd" in config and method == "dks" and lr == 0.01:
        raise train.TrainingDiverged("loss became nan at step 37", step=37)
      if ":sgd" in config and method == "eoc" and depth == 100:
        raise train.TrainingDiverged("loss became nan", step=int(lr * 1000))
      acc = 0.5 + 0.1 * (lr == min(tat_tables.MNIST_LR_GRID["kfac" if ":kfac" in config else "sgd"]))
      return {"final": {"train_accuracy": acc, "test_accuracy": acc - 0.05},
              "best": {"test_accuracy": acc - 0.04}}

  text = tat_tables.run_mnist_vanilla(FakeContext(id="tat_mnist_vanilla", out=str(tmp_path), quick=True))
  rows = [r.split(" | ") for r in text.splitlines() if r.startswith("| kfac") or r.startswith("| sgd")]
  assert len(rows) == 2 * len(tat_tables.MNIST_DEPTHS) * len(tat_tables.MNIST_METHODS)
  smallest_kfac = f"{min(tat_tables.MNIST_LR_GRID['kfac']):g}"
  kfac_row = next(r for r in rows if r[:3] == ["| kfac", "50", "tat"])
  assert kfac_row[3].startswith(smallest_kfac + " (") and kfac_row[4:6] == ["60.00", "55.00"]
  dks_row = next(r for r in rows if r[:3] == ["| sgd", "20", "dks"])
  assert "0.01: NaN" in dks_row[3] and dks_row[3].startswith("0.003 (")
  eoc_row = next(r for r in rows if r[:3] == ["| sgd", "100", "eoc"])
  assert eoc_row[3] == "all diverged" and eoc_row[4] == "diverged (at step 3)"
