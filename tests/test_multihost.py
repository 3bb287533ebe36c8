"""Two processes on localhost (gloo CPU collectives, two simulated devices each), as on a pod.

A SIGTERM that reaches only process 1, at several moments (a metrics host sync, a
train step, an evaluation, a checkpoint save): both processes stop after the same
step, one checkpoint is written, both exit 143, and the re-launch ends exactly
like an uninterrupted two-process run. A SIGKILL of process 1: process 0 ends
at once with a short message naming it and the intact last checkpoint.

Signals are sent by process 1 itself at chosen host-side moments
(tests/fault_driver.py), so the moments are deterministic.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from experiments import checkpoint
from experiments import train

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TINY = os.path.join(HERE, "tiny_config.py")
PREEMPTED = re.compile(r"Preempted: checkpoint at step (\d+) in (\S+); .*\((.*)\)\.")


def free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def env():
  e = dict(os.environ)
  e["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
  e["PYTHONPATH"] = os.pathsep.join([HERE, ROOT, e.get("PYTHONPATH", "")])
  e["JAX_PLATFORMS"] = "cpu"
  return e


def start_pair(workdir, fault=None, at=None):
  """Both processes of a two-process run; process 1 under `fault` (fault_driver.py)."""
  port = free_port()
  procs = []
  for i in range(2):
    flags = [f"--config={TINY}", f"--workdir={workdir}", f"--coordinator_address=127.0.0.1:{port}",
             "--num_processes=2", f"--process_id={i}"]
    cmd = ([sys.executable, os.path.join(HERE, "fault_driver.py"), fault, str(at)] if fault and i == 1
           else [sys.executable, "-m", "experiments.main"])
    procs.append(subprocess.Popen(cmd + flags, cwd=ROOT, env=env(), stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True))
  return procs


def run_pair(workdir, fault=None, at=None):
  """[(returncode, output)] of processes 0 and 1 (the timeout only turns a hang into a failure)."""
  procs = start_pair(workdir, fault, at)
  outs = [p.communicate(timeout=600)[0] for p in procs]
  return [(p.returncode, out) for p, out in zip(procs, outs)]


def evals(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [r for r in map(json.loads, f) if r["split"] != train.TRAIN_STEP_SPLIT]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
  """The uninterrupted two-process tiny run (12 steps; eval and checkpoint every 6)."""
  workdir = str(tmp_path_factory.mktemp("reference"))
  outs = run_pair(workdir)
  assert [rc for rc, _ in outs] == [0, 0], outs
  with open(os.path.join(workdir, "summary.json")) as f:
    return json.load(f), evals(workdir)


def assert_resumes_like_reference(workdir, reference, from_step):
  outs = run_pair(workdir)
  assert [rc for rc, _ in outs] == [0, 0], outs
  assert f"from step {from_step} " in outs[0][1]
  with open(os.path.join(workdir, "summary.json")) as f:
    assert json.load(f) == reference[0]
  assert evals(workdir) == reference[1]


# (moment, fault, argument, the agreed step). The signal is seen by the next step's
# agreement, read two steps later. Host copies (train._unreplicate) of process 1 in the
# tiny run: 0-2 the metrics flush at step 3, 3-5 the flush at step 6, 6-10 the evaluation
# at step 6 (four batches of each process's share, and the model statistics), 11-13 the
# save at step 6, 14-16 the flush at step 9.
MOMENTS = [
    ("metrics host sync at step 3", "sigterm_at_host_copy", 1, 6),
    ("train step 4", "sigterm_at_update", 4, 7),
    ("evaluation at step 6", "sigterm_at_host_copy", 8, 9),
    ("checkpoint save at step 6", "sigterm_at_host_copy", 12, 9),
]


@pytest.mark.parametrize("moment,fault,at,expect", MOMENTS, ids=[m[0] for m in MOMENTS])
def test_sigterm_to_one_process_stops_all_at_the_same_step(tmp_path, reference, moment, fault, at,
                                                           expect):
  workdir = str(tmp_path)
  outs = run_pair(workdir, fault, at)
  assert [rc for rc, _ in outs] == [143, 143], outs
  claims = [PREEMPTED.findall(out) for _, out in outs]
  assert all(len(c) == 1 for c in claims), outs
  (step0, path0, why0), (step1, path1, why1) = claims[0][0], claims[1][0]
  assert step0 == step1 == str(expect), moment
  assert path0 == path1 == os.path.join(workdir, "checkpoints", str(expect))
  assert why0 == why1 == "SIGTERM reached process 1"
  assert "SIGTERM received by process 1" in outs[1][1]
  ckpts = os.path.join(workdir, "checkpoints")
  assert checkpoint.steps_on_disk(ckpts) == sorted({6, expect} if expect > 6 else {expect})
  assert checkpoint.verify(path0) is None
  assert_resumes_like_reference(workdir, reference, expect)


def test_sigkill_of_one_process_ends_the_other_with_a_short_message(tmp_path, reference):
  """Process 1 is killed at the metrics host sync at step 9, after the step-6 checkpoint."""
  workdir = str(tmp_path)
  first, second = start_pair(workdir, "sigkill_at_host_copy", 15)
  second.communicate(timeout=600)
  assert second.returncode == -signal.SIGKILL
  killed = time.monotonic()
  out0 = first.communicate(timeout=600)[0]
  # Well inside the coordination service's heartbeat timeout (100 s), which would
  # otherwise abort process 0 with its fatal log.
  assert time.monotonic() - killed < 30, out0
  assert first.returncode == 1, out0
  last = out0.strip().splitlines()[-1]
  ckpt6 = os.path.join(workdir, "checkpoints", "6")
  assert last == (f"error: process 1 was killed or lost its connection; process 0 stops too. Last "
                  f"complete checkpoint: {ckpt6} (step 6); re-launch every process with the same "
                  "command to resume."), out0
  assert "Terminating process" not in out0 and "Traceback" not in out0
  assert checkpoint.verify(ckpt6) is None
  assert_resumes_like_reference(workdir, reference, 6)
