"""Framework tests: configs, data, losses, schedules, training, K-FAC, checkpoints, reproduction."""

import json
import os
import re
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from experiments import config_lib
from experiments import data
from experiments import model_lib
from experiments import reproduce
from experiments import schedules
from experiments import testing
from experiments import train

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TINY = os.path.join(HERE, "tiny_config.py")
# Dropout masks are per device and batch statistics per device slice, so runs
# over different device counts are compared without them.
NO_NOISE = ["--config.model.dropout=0.0", "--config.model.batch_norm=False"]


def load(variant="", **overrides):
  return config_lib.load_config(f"{TINY}:{variant}" if variant else TINY, overrides)


def subprocess_env(devices=2):
  env = dict(os.environ)
  env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
  env["PYTHONPATH"] = os.pathsep.join([HERE, ROOT, env.get("PYTHONPATH", "")])
  env["JAX_PLATFORMS"] = "cpu"
  return env


def launch(workdir, variant="", devices=2, extra=()):
  cmd = [sys.executable, "-m", "experiments.main", f"--config={TINY}{':' + variant if variant else ''}",
         f"--workdir={workdir}", *extra]
  return subprocess.Popen(cmd, cwd=ROOT, env=subprocess_env(devices), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)


# ---------------------------------------------------------------------------
# Configs.


def test_unknown_override_names_close_matches():
  with pytest.raises(KeyError, match="optimizer.learning_rate"):
    load(**{"optimizer.learnig_rate": 0.1})


def test_cli_unknown_key_is_a_clean_error(tmp_path):
  proc = launch(str(tmp_path / "w"), extra=["--config.optimizer.learnig_rate=0.1"])
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == 2
  assert "Did you mean: optimizer.learning_rate" in out
  assert "Traceback" not in out


def test_locked_config_rejects_new_keys():
  c = load()
  with pytest.raises(AttributeError):
    c.optimizer.not_a_key = 1


def test_epochs_convert_to_steps_and_explicit_steps_win():
  c = config_lib.base_config()
  c.train_steps = -1
  c.train_epochs = 2.5
  c.eval_every = -1
  c.eval_every_epochs = 0.5
  c.optimizer.schedule.warmup_steps = -1
  c.optimizer.schedule.warmup_epochs = 1.0
  config_lib.resolve_epochs(c, 40.0)
  assert (c.train_steps, c.eval_every, c.optimizer.schedule.warmup_steps) == (100, 20, 40)
  c2 = config_lib.base_config()
  c2.train_steps = 7  # an explicit override keeps priority over train_epochs
  c2.train_epochs = 90.0
  config_lib.resolve_epochs(c2, 40.0)
  assert c2.train_steps == 7


def test_epoch_conversion_errors_and_references():
  c = config_lib.base_config()
  c.train_steps = -1
  with pytest.raises(ValueError, match="train_epochs"):
    config_lib.resolve_epochs(c, 10.0)
  c = config_lib.base_config()
  c.train_steps = -1
  c.train_epochs = 3.0
  c.model.train_steps = c.get_ref("train_steps")
  config_lib.resolve_epochs(c, 10.0)
  assert c.model.train_steps == 30  # builders linked to train_steps follow the conversion


# ---------------------------------------------------------------------------
# Schedules.


def test_step_schedule_decays_at_fractions():
  c = config_lib.base_config().optimizer
  c.learning_rate = 1.0
  c.schedule.name = "step"
  c.schedule.boundaries = (4 / 9, 7 / 9)
  c.schedule.warmup_steps = 10
  s = schedules.build_schedule(c, 90)
  assert float(s(0)) == 0.0 and float(s(5)) == pytest.approx(0.5)
  assert float(s(39)) == pytest.approx(1.0)
  assert float(s(41)) == pytest.approx(0.1)
  assert float(s(71)) == pytest.approx(0.01)


def test_sgdr_restarts():
  lengths = schedules.sgdr_cycle_lengths(70, 10, 2.0, 4)
  assert lengths == [10, 20, 40]
  c = config_lib.base_config().optimizer
  c.learning_rate = 0.1
  c.schedule.name = "sgdr"
  c.schedule.cycle_steps = 10
  s = schedules.build_schedule(c, 70)
  assert float(s(0)) == pytest.approx(0.1)
  assert float(s(9)) < 0.01
  assert float(s(10)) == pytest.approx(0.1)  # warm restart
  assert float(s(30)) == pytest.approx(0.1)


def test_cosine_and_unknown_schedule():
  c = config_lib.base_config().optimizer
  c.learning_rate = 1.0
  c.schedule.name = "cosine"
  s = schedules.build_schedule(c, 100)
  assert float(s(50)) == pytest.approx(0.5, abs=1e-6) and float(s(100)) == pytest.approx(0.0, abs=1e-6)
  c.schedule.name = "linear_nope"
  with pytest.raises(ValueError, match="constant, cosine, step or sgdr"):
    schedules.build_schedule(c, 100)


# ---------------------------------------------------------------------------
# Losses and L2.


def test_softmax_xent_positions_all_or_none_and_smoothing():
  cfg = ml_collections.ConfigDict({"name": "softmax_xent", "label_smoothing": 0.0, "sum_over_features": False})
  logits = jnp.array([[[5.0, 0, 0], [0, 5.0, 0]], [[5.0, 0, 0], [5.0, 0, 0]]])  # [B=2, T=2, C=3]
  labels = jnp.array([[0, 1], [0, 1]])
  per = model_lib.per_example_loss(cfg, logits, {"labels": labels})
  single = -jax.nn.log_softmax(jnp.array([5.0, 0, 0]))[0]
  np.testing.assert_allclose(per.loss[0], 2 * single, rtol=1e-6)  # summed over positions
  np.testing.assert_allclose(per.metrics["accuracy"], [1.0, 0.5])
  np.testing.assert_allclose(per.metrics["all_or_none_accuracy"], [1.0, 0.0])
  cfg.label_smoothing = 0.3
  smoothed = model_lib.per_example_loss(cfg, logits[:, 0], {"labels": labels[:, 0]})
  logp = jax.nn.log_softmax(jnp.array([5.0, 0, 0]))
  expected = -(0.8 * logp[0] + 0.1 * logp[1] + 0.1 * logp[2])
  np.testing.assert_allclose(smoothed.loss[0], expected, rtol=1e-6)
  with pytest.raises(ValueError, match="do not match labels"):
    model_lib.per_example_loss(cfg, logits, {"labels": labels[:, 0]})


def test_l2_only_on_weights():
  params = {"linear": {"w": jnp.ones((2, 3)), "b": jnp.ones(3)}, "bn": {"scale": jnp.ones(3)},
            "gate": {"log_alpha": jnp.ones(3)}}
  assert float(model_lib.l2_penalty(params, ("w",))) == pytest.approx(3.0)


# ---------------------------------------------------------------------------
# Data.


def test_batches_depend_only_on_seed_and_step():
  c = load()
  ds = data.get_dataset(c)
  full = [next(ds.train_batches(64, 3, s)) for s in (0, 5, 30)]
  resumed = ds.train_batches(64, 3, 5)
  np.testing.assert_array_equal(next(resumed)["inputs"], full[1]["inputs"])
  np.testing.assert_array_equal(next(ds.train_batches(64, 3, 30))["labels"], full[2]["labels"])
  # Two processes see the two halves of the same global batch.
  halves = [next(ds.train_batches(64, 3, 5, p, 2))["inputs"] for p in range(2)]
  np.testing.assert_array_equal(np.concatenate(halves), full[1]["inputs"])
  other_seed = next(ds.train_batches(64, 4, 5))["inputs"]
  assert not np.array_equal(other_seed, full[1]["inputs"])


def test_offline_datasets_and_normalization():
  c = load()
  c.dataset.name = "mnist_5k"
  ds = data.get_dataset(c)
  assert ds.num_train == 4000 and ds.input_shape == (28, 28, 1)
  x = next(ds.train_batches(500, 0, 0))["inputs"]
  assert abs(float(x.mean())) < 0.2 and 0.7 < float(x.std()) < 1.3
  eval_batches = list(ds.eval_batches("test", 300))
  assert sum(b["mask"].sum() for b in eval_batches) == 1000
  c.dataset.normalization = "per_location"
  ds = data.get_dataset(c)
  x = np.concatenate([b["inputs"] for b in [next(ds.train_batches(4000, 0, 0))]])
  centre = x[:, 14, 14, 0]
  assert abs(centre.mean()) < 0.05 and abs(centre.std() - 1) < 0.05


def test_cifar_augment_crops_and_flips():
  rng = np.random.default_rng(0)
  images = rng.random((16, 32, 32, 3)).astype(np.float32)
  out = data.cifar_augment(images, np.random.default_rng(1))
  assert out.shape == images.shape
  assert not np.array_equal(out, images)
  # Every output is a shifted (and maybe flipped) window of the zero-padded input.
  padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
  for i in range(4):
    found = any(np.array_equal(out[i], win) or np.array_equal(out[i], win[:, ::-1])
                for dy in range(9) for dx in range(9) for win in [padded[i, dy:dy + 32, dx:dx + 32]])
    assert found


def test_generated_dataset_fresh_batches_per_step():
  c = load("generated")
  ds = data.get_dataset(c)
  a, b = next(ds.train_batches(8, 0, 0)), next(ds.train_batches(8, 0, 1))
  assert not np.array_equal(a["inputs"], b["inputs"])
  np.testing.assert_array_equal(next(ds.train_batches(8, 0, 1))["inputs"], b["inputs"])
  with pytest.raises(ValueError, match="no fixed epoch"):
    ds.steps_per_epoch(8)


def test_unknown_dataset_and_missing_tfds_data(tmp_path):
  c = load()
  c.dataset.name = "mnits"
  with pytest.raises(ValueError, match="registered: .*mnist"):
    data.get_dataset(c)
  c.dataset.name = "cifar10"
  c.dataset.data_dir = str(tmp_path)
  ds = data.get_dataset(c)
  with pytest.raises(FileNotFoundError, match="download_and_prepare"):
    next(ds.train_batches(8, 0, 0))


# ---------------------------------------------------------------------------
# Training.


def test_train_writes_workdir_contract(tmp_path):
  summary = train.run(load(eval_splits=("train", "test")), str(tmp_path))
  for name in ("config.json", "metrics.jsonl", "summary.json", "checkpoints", "tensorboard"):
    assert os.path.exists(tmp_path / name), name
  records = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  assert all("step" in r and "split" in r for r in records)
  assert {r["split"] for r in records} == {"train_step", "train", "test", "stats"}
  assert summary["final"]["step_seen"] == 12  # models see the global step at evaluation
  assert set(summary) == {"step", "final", "best"}
  assert summary["best"]["test_accuracy"] >= summary["final"]["test_accuracy"]
  assert not any("per_sec" in k for k in summary["final"])  # timings stay out of summary.json
  train_losses = [r["loss"] for r in records if r["split"] == "train_step"]
  assert train_losses[-1] < train_losses[0]
  assert "train_accuracy" in summary["final"]  # the evaluation on the train split
  assert sorted(os.listdir(tmp_path / "checkpoints")) == ["12", "6"]
  # Re-launching a finished run trains nothing and reports the same summary.
  assert train.run(load(eval_splits=("train", "test")), str(tmp_path)) == summary
  assert [json.loads(l) for l in open(tmp_path / "metrics.jsonl")] == records


def test_step_timings_show_an_input_bound_run(tmp_path, monkeypatch):
  """Each batch takes 50 ms to produce, far more than the tiny step: the metrics lines
  say the run waits for its input, and timings stay out of summary.json."""
  get_dataset = data.get_dataset

  def slow_dataset(config):
    dataset = get_dataset(config)
    batches = dataset.train_batches

    def slow_batches(*args, **kwargs):
      for batch in batches(*args, **kwargs):
        time.sleep(0.05)
        yield batch

    dataset.train_batches = slow_batches
    return dataset

  monkeypatch.setattr(data, "get_dataset", slow_dataset)
  summary = train.run(load(eval_every=0, checkpoint_every=0), str(tmp_path))
  lines = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  steps = [r for r in lines if r["split"] == train.TRAIN_STEP_SPLIT]
  assert [r["step"] for r in steps] == [3, 6, 9, 12]
  for r in steps[2:]:  # after the compilation and the batches prefetched meanwhile
    assert 0.04 < r["data_wait_s"] <= r["step_time_s"] == pytest.approx(1 / r["steps_per_sec"])
    assert r["data_wait_fraction"] > 0.5 and 0 <= r["device_utilization"] < 0.5
  assert not any(k.startswith(("data_wait", "device_util", "step_time")) for k in summary["final"])


def test_dry_run_builds_and_steps_without_a_workdir(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  for variant, optimizer in (("", "sgd"), ("kfac", "kfac")):
    report = train.dry_run(load(variant))
    assert report["optimizer"] == optimizer and np.isfinite(report["loss"])
    assert report["per_device_batch_shapes"] == {"inputs": [32, 8, 8, 1], "labels": [32]}
    assert report["parameters"] == 8 * 8 * 32 + 32 + 32 * 10 + 10 + 2 * 32  # linear, linear, BN scale/offset
    assert set(report["memory_per_device"]) == {str(d) for d in jax.local_devices()}
  assert report["compiled_step_memory_bytes"] is None  # K-FAC compiles its own step
  assert os.listdir(tmp_path) == []
  with pytest.raises(train.validate.ConfigError, match="config.batch_size"):
    train.dry_run(load(batch_size=0))


def test_pmap_two_devices_equals_one_device(tmp_path):
  """Same global batch on 1 and 2 devices gives the same model (up to float reassociation)."""
  assert jax.local_device_count() == 2
  two = train.run(load(**{"model.dropout": 0.0, "model.batch_norm": False}), str(tmp_path / "two"))
  proc = launch(str(tmp_path / "one"), devices=1, extra=NO_NOISE)
  out, _ = proc.communicate(timeout=300)
  assert proc.returncode == 0, out
  one = json.load(open(tmp_path / "one" / "summary.json"))
  for k, v in two["final"].items():
    assert one["final"][k] == pytest.approx(v, rel=2e-4, abs=1e-5), k


def test_mesh_and_pmap_layouts_run_the_same_per_device_step():
  """The jit+shard_map layout (optax) and the pmap layout (K-FAC) agree on 2 devices."""
  from experiments import parallel

  def per_device(w, rng, x):  # one device's slice; mean gradient over all devices
    g = jax.grad(lambda w: jnp.mean((x @ w + jax.random.normal(rng, ())) ** 2))(w)
    return w - 0.1 * jax.lax.pmean(g, "i"), jax.lax.psum(jnp.sum(x), "i")

  w = np.arange(6, dtype=np.float32).reshape(3, 2) / 6
  x = np.arange(24, dtype=np.float32).reshape(2, 4, 3) / 24  # [devices, per-device batch, ...]
  keys = np.asarray(jax.random.split(jax.random.PRNGKey(0), 2))
  outs = []
  for layout in (parallel.MeshLayout("i"), parallel.PmapLayout("i")):
    step = layout.compile(per_device, num_replicated=1, num_args=3, donate_argnums=(0,))
    new_w, total = step(layout.replicate(w), layout.put(keys), layout.put(x))
    outs.append(parallel.host_copy((new_w, total)))
  assert outs[0][0].shape == w.shape and float(outs[0][1]) == pytest.approx(float(x.sum()))
  np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-6)
  assert not np.allclose(outs[0][0], w)


def test_kfac_trains_on_two_devices(tmp_path):
  summary = train.run(load("kfac"), str(tmp_path))
  records = [json.loads(l) for l in open(tmp_path / "metrics.jsonl")]
  losses = [r["loss"] for r in records if r["split"] == "train_step"]
  assert losses[-1] < losses[0]
  assert summary["final"]["test_accuracy"] > 0.5


def test_kfac_resume_is_exact(tmp_path):
  full = train.run(load("kfac"), str(tmp_path / "full"))
  train.run(load("kfac", train_steps=6), str(tmp_path / "resumed"))
  resumed = train.run(load("kfac"), str(tmp_path / "resumed"))
  assert resumed == full


def test_kfac_on_one_device_trains_and_resumes_exactly(tmp_path):
  """One device: K-FAC's jitted step (no pmap) trains, and its checkpoints resume exactly."""
  def run(workdir, *extra):
    proc = launch(str(workdir), "kfac", devices=1, extra=extra)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return json.load(open(workdir / "summary.json"))

  full = run(tmp_path / "full")
  run(tmp_path / "resumed", "--config.train_steps=6")
  assert run(tmp_path / "resumed") == full
  records = [json.loads(l) for l in open(tmp_path / "full" / "metrics.jsonl")]
  losses = [r["loss"] for r in records if r["split"] == "train_step"]
  assert losses[-1] < losses[0]


def test_adam_and_bfloat16_and_generated_mse(tmp_path):
  s = train.run(load("adam,bf16"), str(tmp_path / "a"))
  assert np.isfinite(s["final"]["test_loss"])
  g = train.run(load("generated"), str(tmp_path / "g"))
  assert 0 < g["final"]["test_mse"] < 2


def test_nan_loss_stops_with_step_and_checkpoint(tmp_path):
  with pytest.raises(train.TrainingDiverged, match=r"at step \d+.*last good checkpoint") as info:
    train.run(load("nan"), str(tmp_path))
  assert f"at step {info.value.step} " in str(info.value)  # the field names the step the message names


def test_kill_and_resume_equals_uninterrupted(tmp_path):
  """SIGKILL mid-run, then the same command resumes: final metrics equal exactly.

  While the first run lives, a second run in its workdir is refused."""
  work = tmp_path / "killed"
  proc = launch(str(work), "slow")
  deadline = time.time() + 240
  while not os.path.exists(work / "checkpoints" / "20") and time.time() < deadline:
    if proc.poll() is not None:
      break
    time.sleep(0.05)
  # A second run in the same live workdir is refused, naming the holder.
  with pytest.raises(train.WorkdirInUse, match=f"in use by another run \\(pid {proc.pid}\\)"):
    train.run(load("slow"), str(work))
  proc.kill()
  proc.communicate()
  assert proc.returncode == -9, "the run finished before it could be killed"
  resumed = train.run(load("slow"), str(work))  # the lock died with the killed process
  full = train.run(load("slow"), str(tmp_path / "full"))
  assert resumed == full


def test_sigterm_saves_checkpoint_and_resumes(tmp_path):
  work = tmp_path / "preempted"
  proc = launch(str(work), "slow")
  deadline = time.time() + 240
  while not os.path.exists(work / "checkpoints" / "10") and time.time() < deadline:
    time.sleep(0.05)
  proc.terminate()
  out, _ = proc.communicate(timeout=120)
  assert proc.returncode == 143, out
  saved = sorted(int(s) for s in os.listdir(work / "checkpoints") if s.isdigit())
  claimed = int(re.search(r"Preempted: checkpoint at step (\d+) in", out).group(1))
  assert saved[-1] == claimed < 120  # the checkpoint the message names exists
  resumed = train.run(load("slow"), str(work))
  assert resumed["step"] == 120


# ---------------------------------------------------------------------------
# Multi-host: two processes x two devices == one process x four devices.


def test_two_processes_equal_single_process(tmp_path):
  port = 20000 + os.getpid() % 20000
  procs = [launch(str(tmp_path / "multi"), devices=2,
                  extra=[*NO_NOISE, f"--coordinator_address=127.0.0.1:{port}",
                         "--num_processes=2", f"--process_id={i}"]) for i in range(2)]
  single = launch(str(tmp_path / "single"), devices=4, extra=NO_NOISE)
  outs = [p.communicate(timeout=400)[0] for p in procs + [single]]
  assert all(p.returncode == 0 for p in procs + [single]), outs
  multi = json.load(open(tmp_path / "multi" / "summary.json"))
  one = json.load(open(tmp_path / "single" / "summary.json"))
  for k, v in one["final"].items():
    assert multi["final"][k] == pytest.approx(v, rel=2e-4, abs=1e-5), k
  # Only process 0 writes the metrics: one line per event, not two.
  lines = [json.loads(l) for l in open(tmp_path / "multi" / "metrics.jsonl")]
  assert len([r for r in lines if r["split"] == "test"]) == 2


# ---------------------------------------------------------------------------
# Reproduction mechanism and the test helper.


def test_reproduce_entry_runs_grid_and_writes_markdown(tmp_path):
  def table(ctx):
    best, point, results = ctx.grid(TINY, {"optimizer.learning_rate": [0.01, 0.1, 1e30]},
                                    select="best.test_accuracy", overrides={"train_steps": 6})
    assert results[2][1] is None and point["optimizer.learning_rate"] != 1e30  # diverged: not selected
    rows = [[p["optimizer.learning_rate"], "-", reproduce.fmt(s["final"]["test_accuracy"], percent=True)]
            for p, s in results if s is not None]
    return reproduce.markdown_table(["lr", "paper", "measured"], rows) + f"\nbest: {point}\n"

  reproduce.register("test_table", "A test table", "none", table)
  text = reproduce.run_entry(reproduce._REGISTRY["test_table"], str(tmp_path), quick=True)
  assert "| lr | paper | measured |" in text
  assert os.path.exists(tmp_path / "test_table.md")
  assert len(os.listdir(tmp_path / "test_table")) == 3  # one workdir per grid point
  # Re-running reuses the finished runs instead of training again.
  text2 = reproduce.run_entry(reproduce._REGISTRY["test_table"], str(tmp_path), quick=True)
  assert text2.split("\n")[4:8] == text.split("\n")[4:8]


def test_build_and_step_on_mock_tfds():
  summary = testing.build_and_step(TINY, {"dataset.name": "cifar10", "dataset.augment": "cifar"})
  assert summary["step"] == 2 and np.isfinite(summary["final"]["test_loss"])
  # ImageNet crops, with per-location statistics computed from the (mock) training images.
  summary = testing.build_and_step(TINY, {"dataset.name": "imagenet2012", "model.num_outputs": 1000,
                                          "dataset.normalization": "per_location"})
  assert summary["step"] == 2 and np.isfinite(summary["final"]["test_loss"])


def test_quickstart_config_builds_and_steps():
  summary = testing.build_and_step(os.path.join(ROOT, "configs/quickstart.py:quick"),
                                   {"model.depth": 16, "model.width": 16})
  assert summary["step"] == 2 and 0 <= summary["final"]["test_accuracy"] <= 1


def test_reproduce_cli_lists_registered_tables():
  out = subprocess.run([sys.executable, "-m", "experiments.reproduce", "--list"], cwd=ROOT,
                       env=subprocess_env(), capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr
  assert "quickstart" in out.stdout
  bad = subprocess.run([sys.executable, "-m", "experiments.reproduce", "quickstrat", "--out", "/tmp/x"],
                       cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
  assert bad.returncode != 0 and "quickstart" in bad.stderr


def test_bench_overhead_and_throughput_report(tmp_path):
  """Functional check of the benchmark commands (timings are measured by the command, not here)."""
  from experiments import bench
  c = bench.default_config()
  c.model.width = 32
  c.batch_size = 8
  result = bench.overhead(c, steps=2, repeats=1)
  assert result["framework_step_ms"] > 0 and result["handwritten_step_ms"] > 0
  assert result["ratio"] == pytest.approx(result["framework_step_ms"] / result["handwritten_step_ms"])
  # The donated step updates params and optimizer state in place like a hand-written
  # jitted step (a pmapped step copied all of them).
  assert result["large_copies"]["framework"] <= result["large_copies"]["handwritten_donated"]
  t = bench.throughput(c, steps=2, repeats=1)
  assert t["examples_per_sec"] > 0 and t["flops_per_step"] > 2 * 8 * 784 * 32  # >= the first layer


def test_bench_gpu_table_small_runs_on_cpu():
  """`python -m experiments.bench gpu --small`'s code path on the CPU (one network, one round)."""
  from experiments import bench
  r = bench.gpu_table(steps=1, repeats=1, small=True, curvature_period=1, inverse_period=2,
                      pipeline_batches=2, networks=("vanilla",))
  assert [(row["network"], row["method"], row["optimizer"]) for row in r["rows"]] == [
      ("vanilla", "tat", "sgd"), ("vanilla", "tat", "kfac")]
  assert all(row["images_per_sec"] > 0 and row["model_tflops"] > 0 for row in r["rows"])
  fastest = max(row["images_per_sec"] for row in r["rows"])
  assert r["input_pipeline_ok"] == (r["input_pipeline_images_per_sec"] >= 2 * fastest)
  text = bench.format_gpu_table(r)
  assert "ResNet-18 v2, 32x32, batch 8, bfloat16" in text and "| vanilla | tat | kfac |" in text
  assert "input pipeline (TFDS mock data" in text
