"""The table-1 report reads finished and unfinished sorting runs (no training here)."""

import json
import os

from experiments.tables import dab as dab_table


def _fake_run(run_dir, name, accs, final=None):
  wd = os.path.join(run_dir, name)
  os.makedirs(wd)
  with open(os.path.join(wd, "metrics.jsonl"), "w") as f:
    for i, a in enumerate(accs):
      f.write(json.dumps({"split": "test", "step": 5000 * (i + 1), "all_or_none_accuracy": a}) + "\n")
  if final is not None:
    with open(os.path.join(wd, "summary.json"), "w") as f:
      json.dump({"final": {"test_all_or_none_accuracy": final}}, f)


def test_table1_report_mean_std_over_finished_seeds_and_lists_running(tmp_path):
  run_dir = str(tmp_path / "dab_table1")
  _fake_run(run_dir, "T5_signum_dense_s0", [0.5, 0.9], final=0.9)
  _fake_run(run_dir, "T5_signum_dense_s1", [0.6, 0.95, 0.8], final=0.8)
  _fake_run(run_dir, "T10_elu_dense_s0", [0.1])  # still running, trained past its last test
  with open(os.path.join(run_dir, "T10_elu_dense_s0", "metrics.jsonl"), "a") as f:
    f.write(json.dumps({"split": "train_step", "step": 7300, "loss": 0.4}) + "\n")
  runs = ((5, "signum_dense", 0), (5, "signum_dense", 1), (10, "elu_dense", 0), (10, "signum_dense", 0))
  text = dab_table.table1_report(run_dir, str(tmp_path), runs, steps=10_000)
  # final step: mean and sample std of 90% and 80%; max over evaluations: 90% and 95%
  assert "| 85.00 +- 7.07 (2 seeds) | 92.50 +- 3.54 (2 seeds) |" in text
  assert "running / stopped at step 7,300 of 10,000 (last test evaluation at 5,000)" in text
  assert "| 10 | ELU-Dense (no hard fn) | 0 +- 0% | - | - |" in text  # no finished seed yet
  assert os.path.exists(tmp_path / "dab_table1_curves.png")


def test_quick_runs_have_their_own_workdirs(tmp_path):
  """A --quick report reads only the *_quick workdirs, never a full run in the same --out."""
  run_dir = str(tmp_path / "dab_table1")
  _fake_run(run_dir, "T5_signum_dense_s0", [0.97], final=0.97)  # a full run
  _fake_run(run_dir, "T5_signum_dense_s0_quick", [0.88], final=0.88)
  runs = ((5, "signum_dense", 0),)
  quick = dab_table.table1_report(run_dir, str(tmp_path), runs, steps=6000, suffix="_quick")
  assert "88.00 (1 seed)" in quick and "97.00" not in quick
  assert os.path.exists(tmp_path / "dab_table1_quick_curves.png")
