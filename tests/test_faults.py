"""Fault injection: preemption at many moments, kills mid-write, damaged checkpoints,
changed configs, disk full, bad launches. Every interrupted run is resumed and must
end with exactly the evaluations and summary of an uninterrupted run.

In-process signals are sent at chosen host-side moments (a chosen call of the
host copy `train._unreplicate`, which the metrics flush, the evaluation and the
checkpoint save go through), so the moments are deterministic; real kills run
`experiments.main` in a subprocess.
"""

import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys

import pytest

from experiments import checkpoint
from experiments import config_lib
from experiments import optimizers
from experiments import train
from experiments import validate

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TINY = os.path.join(HERE, "tiny_config.py")
PREEMPTED = re.compile(r"Preempted: checkpoint at step (\d+) in (\S+);")


def load(**overrides):
  return config_lib.load_config(TINY, overrides)


def env(devices=2):
  e = dict(os.environ)
  e["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  e["PYTHONPATH"] = os.pathsep.join([HERE, ROOT, e.get("PYTHONPATH", "")])
  e["JAX_PLATFORMS"] = "cpu"
  return e


def evals(workdir):
  """metrics.jsonl without the train_step lines (whose averaging windows and timings
  depend on where a run was interrupted)."""
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [r for r in map(json.loads, f) if r["split"] != train.TRAIN_STEP_SPLIT]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """The uninterrupted tiny run (12 steps; log every 3, eval and checkpoint every 6)."""
  workdir = str(tmp_path_factory.mktemp("reference"))
  summary = train.run(load(), workdir)
  return workdir, summary, evals(workdir)


def assert_same_as_reference(workdir, summary, reference):
  assert summary == reference[1]
  assert evals(workdir) == reference[2]


# ---------------------------------------------------------------------------
# SIGTERM at many moments: the checkpoint the exit message names exists, and the
# resume ends exactly like the uninterrupted run.

# (name, which host copy (0-based call of train._unreplicate) receives SIGTERM, step of the
# preemption checkpoint). In the tiny run calls 0-2 are the metrics flush at step 3, 3-5 the
# flush at step 6, 6-8 the evaluation at 6, 9-11 the save at 6, 12-14 the flush at 9,
# 18-20 the final evaluation at 12.
HOST_SYNC_MOMENTS = [
    ("metrics host sync at step 3", 1, 4),
    ("metrics host sync before the step-6 checkpoint", 4, 7),
    ("evaluation at step 6", 7, 7),
    ("checkpoint save at step 6", 10, 7),
    ("metrics host sync at step 9", 13, 10),
    ("final evaluation at step 12", 19, None),  # training is over: the run finishes normally
]


def run_preempted(workdir, caplog, code=143):
  """Runs the tiny config; returns the step of the preemption checkpoint (None: finished)."""
  caplog.clear()
  try:
    train.run(load(), workdir)
  except SystemExit as e:
    assert e.code == code
    claims = PREEMPTED.findall(caplog.text)
    assert len(claims) == 1, caplog.text
    step, path = int(claims[0][0]), claims[0][1]
    assert path == os.path.join(workdir, "checkpoints", str(step))
    assert os.path.isdir(path), "the exit message names a checkpoint that was not written"
    assert checkpoint.verify(path) is None and os.path.exists(os.path.join(path, checkpoint.MANIFEST))
    assert checkpoint.steps_on_disk(os.path.dirname(path))[-1] == step
    return step
  return None


def resume(workdir, caplog, expect_step):
  caplog.clear()
  summary = train.run(load(), workdir)
  if expect_step is not None:
    assert f"from step {expect_step} " in caplog.text
  return summary


@pytest.mark.parametrize("moment,call,expect", HOST_SYNC_MOMENTS, ids=[m[0] for m in HOST_SYNC_MOMENTS])
def test_sigterm_during_host_syncs(tmp_path, monkeypatch, caplog, reference, moment, call, expect):
  caplog.set_level(logging.INFO, logger="experiments")
  workdir = str(tmp_path)
  calls = []
  unreplicate = train._unreplicate

  def signalling_unreplicate(tree):
    calls.append(None)
    if len(calls) - 1 == call:
      os.kill(os.getpid(), signal.SIGTERM)
    return unreplicate(tree)

  monkeypatch.setattr(train, "_unreplicate", signalling_unreplicate)
  step = run_preempted(workdir, caplog)
  monkeypatch.undo()
  assert step == expect, moment
  summary = resume(workdir, caplog, step)
  assert_same_as_reference(workdir, summary, reference)


def test_ctrl_c_saves_like_sigterm(tmp_path, monkeypatch, caplog, reference):
  """SIGINT (Ctrl-C) during the metrics host sync at step 3: checkpoint at 4, exit 130."""
  caplog.set_level(logging.INFO, logger="experiments")
  calls = []
  unreplicate = train._unreplicate

  def signalling_unreplicate(tree):
    calls.append(None)
    if len(calls) == 2:
      os.kill(os.getpid(), signal.SIGINT)
    return unreplicate(tree)

  monkeypatch.setattr(train, "_unreplicate", signalling_unreplicate)
  assert run_preempted(str(tmp_path), caplog, code=130) == 4
  assert "SIGINT received: saving a checkpoint" in caplog.text
  monkeypatch.undo()
  summary = resume(str(tmp_path), caplog, 4)
  assert_same_as_reference(str(tmp_path), summary, reference)


@pytest.mark.parametrize("at_update,expect", [(0, 1), (4, 5), (11, None)],
                         ids=["first step", "step between syncs", "last step"])
def test_sigterm_during_a_train_step(tmp_path, monkeypatch, caplog, reference, at_update, expect):
  """The signal arrives while step `at_update` is dispatched (no host sync near)."""
  caplog.set_level(logging.INFO, logger="experiments")
  build_updater = optimizers.build_updater

  def signalling_build_updater(*args, **kwargs):
    updater = build_updater(*args, **kwargs)
    update = updater.update

    def signalling_update(params, state, opt_state, rng, batch, step):
      if step == at_update:
        os.kill(os.getpid(), signal.SIGTERM)
      return update(params, state, opt_state, rng, batch, step)

    updater.update = signalling_update
    return updater

  monkeypatch.setattr(optimizers, "build_updater", signalling_build_updater)
  step = run_preempted(str(tmp_path), caplog)
  monkeypatch.undo()
  assert step == expect
  summary = resume(str(tmp_path), caplog, step)
  assert_same_as_reference(str(tmp_path), summary, reference)


def test_real_sigterm_to_a_subprocess(tmp_path, caplog, reference):
  """A real SIGTERM from outside, sent when the first progress line appears."""
  caplog.set_level(logging.INFO, logger="experiments")
  workdir = str(tmp_path / "w")
  proc = subprocess.Popen([sys.executable, "-m", "experiments.main", f"--config={TINY}",
                           f"--workdir={workdir}"], cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
  lines = []
  for line in proc.stdout:
    lines.append(line)
    if "Model test.mlp" in line or "step 3/12" in line:
      proc.send_signal(signal.SIGTERM)
  proc.wait(timeout=120)
  out = "".join(lines)
  assert proc.returncode in (0, 143), out
  if proc.returncode == 143:
    step, path = PREEMPTED.search(out).groups()
    assert os.path.isdir(path) and checkpoint.verify(path) is None
  summary = train.run(load(), workdir)
  assert_same_as_reference(workdir, summary, reference)


# ---------------------------------------------------------------------------
# SIGKILL during a checkpoint write; disk full during a save.


def drive(fault, step, workdir, *flags):
  return subprocess.run([sys.executable, os.path.join(HERE, "fault_driver.py"), fault, str(step),
                         f"--config={TINY}", f"--workdir={workdir}", *flags], cwd=ROOT, env=env(),
                        capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("fault,resume_step", [("kill_before_commit", 6), ("kill_before_manifest", 12)])
def test_sigkill_during_checkpoint_write(tmp_path, caplog, reference, fault, resume_step):
  caplog.set_level(logging.INFO, logger="experiments")
  workdir = str(tmp_path)
  out = drive(fault, 12, workdir)
  assert out.returncode == -signal.SIGKILL, out.stdout + out.stderr
  names = os.listdir(os.path.join(workdir, "checkpoints"))
  if fault == "kill_before_commit":
    assert any(checkpoint.TMP_MARKER in n for n in names), names  # orbax left its temporary dir
  else:
    assert not os.path.exists(os.path.join(workdir, "checkpoints", "12", checkpoint.MANIFEST))
  caplog.clear()
  summary = train.run(load(), workdir)
  assert not any(checkpoint.TMP_MARKER in n for n in os.listdir(os.path.join(workdir, "checkpoints")))
  if fault == "kill_before_commit":
    assert "Removed 1 unfinished checkpoint write" in caplog.text
    assert f"from step {resume_step} " in caplog.text
    assert_same_as_reference(workdir, summary, reference)
  else:  # complete but unverified (orbax committed it): a finished run, nothing lost
    assert summary == reference[1]


def test_disk_full_keeps_previous_checkpoint_and_ends_with_the_cause(tmp_path, reference):
  workdir = str(tmp_path)
  out = drive("disk_full", 12, workdir)
  assert out.returncode == 1
  last = out.stderr.strip().splitlines()[-1]
  assert last.startswith("error: could not write checkpoint step 12") and "No space left on device" in last
  assert "previous checkpoint (step 6) is intact" in last
  assert "Traceback" not in out.stderr and "Event loop is closed" not in out.stderr
  ckpts = os.path.join(workdir, "checkpoints")
  assert os.listdir(ckpts) == ["6"] and checkpoint.verify(os.path.join(ckpts, "6")) is None
  summary = train.run(load(), workdir)
  assert_same_as_reference(workdir, summary, reference)


# ---------------------------------------------------------------------------
# A damaged newest checkpoint: detected by its manifest, skipped with a warning.


def _largest_file(directory):
  files = [os.path.join(r, n) for r, _, ns in os.walk(directory) for n in ns if n != checkpoint.MANIFEST]
  return max(files, key=os.path.getsize)


@pytest.mark.parametrize("damage", ["truncate", "flip_bytes", "delete_file"])
def test_damaged_newest_checkpoint_falls_back(tmp_path, caplog, reference, damage):
  caplog.set_level(logging.INFO, logger="experiments")
  workdir = str(tmp_path)
  train.run(load(train_steps=9, checkpoint_every=3), workdir)  # checkpoints 3, 6, 9
  newest = os.path.join(workdir, "checkpoints", "9")
  victim = _largest_file(newest)
  if damage == "truncate":
    with open(victim, "r+b") as f:
      f.truncate(os.path.getsize(victim) // 2)
  elif damage == "flip_bytes":
    with open(victim, "r+b") as f:
      f.seek(os.path.getsize(victim) // 2)
      chunk = f.read(4)
      f.seek(os.path.getsize(victim) // 2)
      f.write(bytes(b ^ 0xFF for b in chunk))
  else:
    os.remove(victim)
  assert checkpoint.verify(newest) is not None
  caplog.clear()
  summary = train.run(load(checkpoint_every=3), workdir)  # and extend to 12 steps
  assert re.search(r"Checkpoint step 9 in \S+ is damaged", caplog.text)
  assert "from step 6 " in caplog.text
  assert os.path.isdir(os.path.join(workdir, "damaged_checkpoints", "9"))
  assert_same_as_reference(workdir, summary, reference)
  with open(os.path.join(workdir, "config_history.jsonl")) as f:
    history = [json.loads(l) for l in f]
  assert [h["resumed_at_step"] for h in history] == [6]  # the intact step, not the damaged 9


def test_keep_every_keeps_periodic_checkpoints(tmp_path):
  train.run(load(checkpoint_every=2, keep_checkpoints=2, keep_checkpoint_every=4), str(tmp_path))
  assert checkpoint.steps_on_disk(str(tmp_path / "checkpoints")) == [4, 8, 10, 12]
  for step in (4, 8, 10, 12):
    assert checkpoint.verify(str(tmp_path / "checkpoints" / str(step))) is None


# ---------------------------------------------------------------------------
# Re-launching with a changed config.


def test_changed_config_is_refused_naming_every_key(reference):
  workdir = reference[0]
  before = {n: open(os.path.join(workdir, n), "rb").read() for n in ("config.json", "metrics.jsonl")}
  with pytest.raises(config_lib.ConfigChanged) as info:
    train.run(load(**{"model.width": 64, "optimizer.learning_rate": 0.1}), workdir)
  message = str(info.value)
  assert "model.width: 32 -> 64" in message and "optimizer.learning_rate: 0.05 -> 0.1" in message
  with pytest.raises(config_lib.ConfigChanged, match="optimizer.name: 'sgd' -> 'adam'"):
    train.run(load(**{"optimizer.name": "adam"}), workdir)
  with pytest.raises(config_lib.ConfigChanged, match=r"checkpoint at step 12.*\n  train_steps: 12 -> 3"):
    train.run(load(train_steps=3), workdir)  # shorter than what is already trained
  after = {n: open(os.path.join(workdir, n), "rb").read() for n in before}
  assert after == before
  assert not os.path.exists(os.path.join(workdir, "config_history.jsonl"))


def test_finished_run_is_read_from_summary(reference, monkeypatch):
  # Validation constructs the model (cheap: no parameters); training would
  # initialize it, restore the checkpoint and compile. None of that may happen.
  def no_training(*args):
    raise AssertionError("a finished unchanged run must not initialize, restore or compile")
  monkeypatch.setattr(train, "_run", no_training)
  assert train.run(load(), reference[0]) == reference[1]


def test_extending_a_run_is_recorded_in_config_history(tmp_path, reference):
  workdir = str(tmp_path)
  train.run(load(train_steps=6), workdir)
  summary = train.run(load(log_every=2), workdir)  # 6 -> 12 steps, another log cadence
  assert_same_as_reference(workdir, summary, reference)
  with open(tmp_path / "config_history.jsonl") as f:
    history = [json.loads(l) for l in f]
  assert len(history) == 1 and history[0]["resumed_at_step"] == 6
  assert history[0]["changes"] == {"train_steps": {"old": 6, "new": 12}, "log_every": {"old": 3, "new": 2}}
  assert json.load(open(tmp_path / "config.json"))["train_steps"] == 12


def test_extending_a_run_with_a_length_dependent_schedule_is_refused(tmp_path):
  cosine = {"optimizer.schedule.name": "cosine"}
  train.run(load(train_steps=6, **cosine), str(tmp_path))
  with pytest.raises(config_lib.ConfigChanged, match=r"'cosine' learning-rate schedule depends on "
                     r"train_steps[\s\S]*train_steps: 6 -> 12"):
    train.run(load(**cosine), str(tmp_path))


def test_cli_refusal_is_short_and_names_the_keys(reference):
  out = subprocess.run([sys.executable, "-m", "experiments.main", f"--config={TINY}",
                        f"--workdir={reference[0]}", "--config.model.width=64",
                        "--config.optimizer.learning_rate=0.1"],
                       cwd=ROOT, env=env(), capture_output=True, text=True, timeout=300)
  lines = (out.stdout + out.stderr).strip().splitlines()
  assert out.returncode == 2 and len(lines) < 15, lines
  assert "model.width: 32 -> 64" in lines[-2] + lines[-1] and "learning_rate" in lines[-1]
  assert "Traceback" not in out.stderr


# ---------------------------------------------------------------------------
# Bad launches: short errors naming the key, nothing written.

BAD_LAUNCHES = [
    (["--config=configs/does/not/exist.py"], "No such file or directory"),
    (["--config.train_steps=abc"], "train_steps"),
    (["--config.batch_size=0"], "config.batch_size: must be > 0"),
    (["--config.batch_size=-8"], "config.batch_size: must be > 0"),
    (["--config.optimizer.learning_rate=-0.1"], "config.optimizer.learning_rate: must be >= 0"),
    (["--config.optimizer.schedule.name=step", "--config.optimizer.schedule.boundaries=(0.5,1.5)"],
     "config.optimizer.schedule.boundaries"),
    (["--config.optimizer.name=sgdd"], "config.optimizer.name: unknown name 'sgdd'"),
    (["--config.dataset.name=mnits"], "config.dataset.name: unknown name 'mnits'"),
    (["--config.model.name=tat.mpl"], "config.model.name"),
    (["--config.eval_splits=('valid',)"], "config.eval_splits"),
    (["--config=configs/quickstart.py", "--config.model.activation=reluu"],
     "config.model.activation: Unknown activation 'reluu'"),  # rejected by the model's builder
]


@pytest.mark.parametrize("flags,expected", BAD_LAUNCHES, ids=[" ".join(f) for f, _ in BAD_LAUNCHES])
def test_bad_launch_is_a_short_error_before_anything_is_written(tmp_path, flags, expected):
  workdir = tmp_path / "w"
  config = [] if flags[0].startswith("--config=") else [f"--config={TINY}"]
  out = subprocess.run([sys.executable, "-m", "experiments.main", *config, *flags,
                        f"--workdir={workdir}"], cwd=ROOT, env=env(), capture_output=True, text=True,
                       timeout=300)
  lines = (out.stdout + out.stderr).strip().splitlines()
  assert out.returncode in (1, 2) and len(lines) < 15, lines
  assert expected in lines[-1]
  assert "Traceback" not in out.stderr
  assert not workdir.exists()


def test_validation_in_process():
  assert validate.check_config(load(**{"optimizer.learning_rate": 0.0})) == [
      "config.optimizer.learning_rate is 0: the parameters will not change."]
  with pytest.raises(validate.ConfigError, match="config.keep_checkpoints"):
    validate.check_config(load(keep_checkpoints=0))
  with pytest.raises(validate.ConfigError, match="config.optimizer.schedule.boundaries: must be increasing"):
    validate.check_config(load(**{"optimizer.schedule.name": "step",
                                  "optimizer.schedule.boundaries": (0.75, 0.5)}))
  assert validate.check_config(load()) == []
