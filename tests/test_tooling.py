"""Tooling: kfac-jax/jax compatibility, profiler hook, eval-only mode, quiet startup, CLI help."""

import argparse
import glob
import importlib
import json
import os
import subprocess
import sys

import jax
import jax.extend as jex
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import config_lib
from experiments import evaluate
from experiments import kfac_compat
from experiments import train

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TINY = os.path.join(HERE, "tiny_config.py")


def load(variant="", **overrides):
  return config_lib.load_config(f"{TINY}:{variant}" if variant else TINY, overrides)


def env(devices=2, **extra):
  e = dict(os.environ)
  e["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  e["PYTHONPATH"] = os.pathsep.join([HERE, ROOT, e.get("PYTHONPATH", "")])
  e["JAX_PLATFORMS"] = "cpu"
  e.update(extra)
  return e


# ---------------------------------------------------------------------------
# kfac-jax 0.0.8 on jax >= 0.9.2.


def test_kfac_compat_accepts_both_bind_param_forms_and_applies_only_where_needed():
  assert kfac_compat.split_bind_params({"a": 1}) == ((), {"a": 1})
  assert kfac_compat.split_bind_params((["f"], {"a": 1})) == (["f"], {"a": 1})
  assert not kfac_compat.needed("0.9.1", "0.0.8")
  assert kfac_compat.needed("0.9.2", "0.0.8") and kfac_compat.needed("0.10.2", "0.0.8")
  assert not kfac_compat.needed("0.10.2", "0.0.9")  # a later kfac-jax release is left alone

  import tensorflow  # noqa: F401  (as the TFDS pipeline does, before kfac-jax)
  kfac_jax = kfac_compat.import_kfac_jax()  # needs no tf-keras even so
  from kfac_jax._src import tag_graph_matcher
  patched = kfac_compat.apply()
  assert patched == kfac_compat.needed(jax.__version__, kfac_jax.__version__)
  assert (tag_graph_matcher.eval_jaxpr_eqn is kfac_compat.eval_jaxpr_eqn) == patched

  # The replacement evaluates every equation kind a TAT ResNet traces (conv,
  # custom_jvp activations, pjit, reductions) exactly as jax does.
  def f(w, x):
    y = jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = jax.jit(jax.nn.softplus)(y) + jax.nn.relu(y)
    return jnp.mean(y, axis=(1, 2))
  w = jax.random.normal(jax.random.PRNGKey(0), (3, 3, 2, 4))
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 5, 5, 2))
  closed = jax.make_jaxpr(f)(w, x)
  env_ = dict(zip(closed.jaxpr.invars, (w, x)))
  for eqn in closed.jaxpr.eqns:
    outs = kfac_compat.eval_jaxpr_eqn(eqn, [v.val if isinstance(v, jex.core.Literal) else env_[v]
                                            for v in eqn.invars])
    env_.update(zip(eqn.outvars, outs))
  np.testing.assert_allclose(env_[closed.jaxpr.outvars[0]], f(w, x), rtol=1e-6)


# ---------------------------------------------------------------------------
# Profiler hook.


def test_profile_steps_writes_a_trace_into_the_workdir(tmp_path):
  train.run(load(profile_steps=2, train_steps=5, eval_every=5, checkpoint_every=5), str(tmp_path))
  traces = glob.glob(str(tmp_path / "profile" / "**" / "*.xplane.pb"), recursive=True)
  assert traces and os.path.getsize(traces[0]) > 0  # TensorBoard's profile plugin reads these
  assert glob.glob(str(tmp_path / "profile" / "**" / "*.trace.json.gz"), recursive=True)  # Perfetto


def test_profile_steps_is_validated():
  from experiments import validate
  with pytest.raises(validate.ConfigError, match="profile_steps"):
    validate.check_config(load(profile_steps=-1))


# ---------------------------------------------------------------------------
# Eval-only mode.


def test_evaluate_checkpoint_reproduces_the_runs_evaluations(tmp_path):
  summary = train.run(load(), str(tmp_path))  # checkpoints at steps 6 and 12
  records = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  at6 = next(r for r in records if r["split"] == "test" and r["step"] == 6)

  latest = evaluate.evaluate_checkpoint(str(tmp_path))
  assert latest["step"] == 12
  assert latest["test"]["accuracy"] == pytest.approx(summary["final"]["test_accuracy"], abs=1e-6)
  earlier = evaluate.evaluate_checkpoint(str(tmp_path), 6, ["test", "train"])
  assert earlier["test"]["loss"] == pytest.approx(at6["loss"], rel=1e-5)
  assert set(earlier) >= {"step", "test", "train"}

  with pytest.raises(ValueError, match="no checkpoint for step 7"):
    evaluate.evaluate_checkpoint(str(tmp_path), 7)
  with pytest.raises(ValueError, match="splits"):
    evaluate.evaluate_checkpoint(str(tmp_path), None, ["validation"])

  # A damaged newest checkpoint (manifest mismatch) is skipped, read-only.
  step12 = tmp_path / "checkpoints" / "12"
  victim = max((p for p in step12.rglob("*") if p.is_file() and p.name != "manifest.json"),
               key=os.path.getsize)
  victim.write_bytes(b"\0" * victim.stat().st_size)
  assert evaluate.evaluate_checkpoint(str(tmp_path))["step"] == 6
  assert step12.exists()
  with pytest.raises(ValueError, match="no intact checkpoint"):
    evaluate.evaluate_checkpoint(str(tmp_path), 12)


def test_evaluate_cli_writes_json_and_reports_user_errors(tmp_path):
  run = subprocess.run([sys.executable, "-m", "experiments.main", "--config=configs/quickstart.py",
                        f"--workdir={tmp_path}", "--config.train_steps=2", "--config.batch_size=8",
                        "--config.eval_batch_size=8", "--config.eval_every=2",
                        "--config.checkpoint_every=2"],
                       cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
  assert run.returncode == 0, run.stderr[-2000:]
  out = subprocess.run([sys.executable, "-m", "experiments.evaluate", f"--workdir={tmp_path}",
                        "--splits=test"], cwd=ROOT, env=env(), capture_output=True, text=True,
                       timeout=600)
  assert out.returncode == 0, out.stderr[-2000:]
  result = json.loads(out.stdout.strip().splitlines()[-1])
  assert result["step"] == 2 and 0.0 <= result["test"]["accuracy"] <= 1.0
  assert json.load(open(tmp_path / "eval" / "step_2.json")) == result
  bad = subprocess.run([sys.executable, "-m", "experiments.evaluate", f"--workdir={tmp_path / 'nope'}"],
                       cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600)
  assert bad.returncode == 2 and "config.json not found" in bad.stderr
  assert "Traceback" not in bad.stderr


# ---------------------------------------------------------------------------
# Quiet startup.


BANNER_MODULE = r'''
import os
os.write(2, b"I0000 00:00:1764045000.1 123 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use oneDNN\n")
os.write(2, b"I0000 00:00:1764045000.2 123 cudart_stub.cc:31] Could not find cuda drivers on your machine\n")
os.write(2, b"W0000 00:00:1764045000.3 123 real.cc:1] a real warning\n")
'''


def test_import_quietly_drops_only_info_banners(tmp_path):
  (tmp_path / "bannermod.py").write_text(BANNER_MODULE)
  code = "from experiments import log; log.import_quietly('bannermod'); print('imported')"
  e = env(PYTHONPATH=os.pathsep.join([str(tmp_path), ROOT]))
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=e, capture_output=True,
                       text=True, timeout=120)
  assert out.returncode == 0 and "imported" in out.stdout
  assert "a real warning" in out.stderr
  assert "oneDNN" not in out.stderr and "cuda drivers" not in out.stderr


def test_quiet_startup_defaults_respect_the_users_environment():
  code = ("import os, experiments; print(os.environ['TF_CPP_MIN_LOG_LEVEL'], "
          "os.environ['TPU_MIN_LOG_LEVEL'])")
  e = env()
  for k in ("TF_CPP_MIN_LOG_LEVEL", "TPU_MIN_LOG_LEVEL"):
    e.pop(k, None)
  quiet = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=e, capture_output=True,
                         text=True, timeout=120)
  assert quiet.stdout.split() == ["1", "1"]  # INFO hidden, warnings and errors kept
  e["TF_CPP_MIN_LOG_LEVEL"] = "0"
  user = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=e, capture_output=True,
                        text=True, timeout=120)
  assert user.stdout.split() == ["0", "1"]


# ---------------------------------------------------------------------------
# Every flag of every command line has help text.


ABSL_CLIS = ("experiments.main", "experiments.reproduce", "experiments.bench", "experiments.evaluate")
ARGPARSE_CLIS = ("tat.solve", "tat.bench", "tat.figures", "tat.trace")


def test_every_cli_is_covered():
  mains = set()
  for path in glob.glob(os.path.join(ROOT, "*", "*.py")):
    if "tests" in path:
      continue
    if 'if __name__ == "__main__"' in open(path).read():
      rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
      mains.add(rel)
  assert mains == set(ABSL_CLIS) | set(ARGPARSE_CLIS)


@pytest.mark.parametrize("module", ABSL_CLIS)
def test_absl_flags_have_help(module):
  out = subprocess.run([sys.executable, "-m", module, "--helpfull"], cwd=ROOT, env=env(),
                       capture_output=True, text=True, timeout=300)
  assert "Traceback" not in out.stderr, out.stderr[-2000:]  # absl exits 1 after --helpfull
  # Sections of the listing are headed by the defining module ("experiments.x:" or
  # its path); only the project's own flags are checked, not absl's or jax's.
  flag_lines, ours = [], False
  for line in out.stdout.split("\nflags:\n", 1)[-1].splitlines():
    if line and not line.startswith(" ") and line.endswith(":"):
      ours = any(m in line.replace(os.sep, ".") for m in ("experiments.", "tat."))
    elif ours and line.lstrip().startswith("--"):
      flag_lines.append(line)
  assert flag_lines, out.stdout
  for line in flag_lines:
    name, _, help_text = line.strip().partition(":")
    assert help_text.strip(), f"{module} {name} has no help text"


@pytest.mark.parametrize("module", ARGPARSE_CLIS)
def test_argparse_flags_have_help(module, monkeypatch):
  seen = []
  original = argparse.ArgumentParser.add_argument

  def record(self, *args, **kwargs):
    seen.append((args, kwargs.get("help")))
    return original(self, *args, **kwargs)

  monkeypatch.setattr(argparse.ArgumentParser, "add_argument", record)
  mod = importlib.import_module(module)
  with pytest.raises(SystemExit):
    mod.main(["--help"])
  flags_ = [(a, h) for a, h in seen if a and a[0].startswith("--") and a[0] != "--help"]
  assert flags_
  for args, help_text in flags_:
    assert help_text and help_text.strip(), f"{module} {args[0]} has no help text"
