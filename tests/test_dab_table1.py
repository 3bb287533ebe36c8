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



def test_every_ablation_arm_config_loads_and_changes_one_thing():
  from experiments import config_lib
  reference = {key: config_lib.flatten(config_lib.as_json_dict(config_lib.load_config(
      *dab_table.ablation_config(key, {}, 100, 50)))) for key in dab_table.TABLE1_VARIANTS}
  for _, key, overrides, _ in dab_table.ABLATION_ARMS:
    cfg = config_lib.flatten(config_lib.as_json_dict(config_lib.load_config(
        *dab_table.ablation_config(key, overrides, 100, 50))))
    changed = {k for k in cfg if cfg[k] != reference[key][k]}
    assert changed == set(overrides)
    assert cfg["seq_len"] == 10 and cfg["train_steps"] == 100


def test_table1_ablations_run_end_to_end_at_toy_size(tmp_path):
  """Four arms (fixed pool, PyTorch init, a width, the reference) train at toy size (4 steps)
  and land in the table and the figure."""
  from experiments import reproduce

  class ToyContext(reproduce.Context):
    def train(self, config, overrides=None, name=None, seed=None):
      toy = {"seq_len": 3, "batch_size": 16, "eval_batch_size": 50, "dataset.num_eval": 100,
             "train_steps": 4, "eval_every": 2, "checkpoint_every": 2, "log_every": 2,
             "model.approx_hidden": (4,)}
      if "dataset.num_train" in overrides:
        toy["dataset.num_train"] = 64
      if "model.hidden" not in overrides:
        toy["model.hidden"] = (8, 8, 8)
      return super().train(config, {**overrides, **toy}, name, seed)

  arms = [arm for arm in dab_table.ABLATION_ARMS
          if arm[0] in ("dab_pool2M", "dab_torchinit", "elu_w16", "dab_ref")]
  ctx = ToyContext(id="dab_table1_ablations", out=str(tmp_path), quick=True)
  text = dab_table.run_table1_ablations(ctx, arms)
  configs = {r["name"]: json.load(open(os.path.join(r["workdir"], "config.json"))) for r in ctx.runs}
  assert configs["T10_dab_pool2M_s0_quick"]["dataset"]["num_train"] == 64
  assert configs["T10_dab_ref_s0_quick"]["dataset"]["num_train"] == 0
  assert configs["T10_dab_torchinit_s0_quick"]["model"]["init"] == "pytorch"
  assert configs["T10_elu_w16_s0_quick"]["model"]["hidden"] == [16, 16, 32]
  rows = [line for line in text.splitlines() if "| finished |" in line]
  assert len(rows) == 4 and all(len(r.split("|")) == 6 for r in rows)  # arm, status, steps 2, 4
  assert os.path.exists(tmp_path / "dab_table1_ablations_quick_curves.png")
  assert os.path.exists(tmp_path / "dab_table1_ablations_quick_partial.md")
