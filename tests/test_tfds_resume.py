"""TFDS resume: the batches after a resume are those of an uninterrupted run, and opening the
stream at a late step costs what opening it at step 0 costs (the tiny builder of
test_tfds_prepare.py, prepared offline into a temporary data_dir).

Benchmark (prints the seconds to the first batch at each step, median of 5):
  python tests/test_tfds_resume.py [0,1000000]
"""

import json
import os
import sys
import tempfile

import numpy as np
import pytest
import tensorflow_datasets as tfds

from experiments import bench
from experiments import data

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_tfds_prepare  # noqa: E402  (registers and builds tiny_prepared_images)

NUM_TRAIN = 64  # examples of the tiny builder's train split
BATCH = 24  # does not divide 64: batches span epoch boundaries


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="module")
def dataset(data_dir):
  return data.get_dataset(test_tfds_prepare._dataset_config(data_dir, **{"dataset.shuffle_buffer": 16}))


def batches(ds, start, count, process_index=0, process_count=1):
  stream = ds.train_batches(BATCH, 3, start, process_index, process_count)
  out = [next(stream) for _ in range(count)]
  stream.close()
  return out


def assert_same(a, b):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    np.testing.assert_array_equal(x["inputs"], y["inputs"])
    np.testing.assert_array_equal(x["labels"], y["labels"])


@pytest.mark.parametrize("process_index,process_count", [(0, 1), (1, 2)], ids=["one process", "process 1 of 2"])
def test_resumed_batches_equal_uninterrupted(dataset, process_index, process_count):
  uninterrupted = batches(dataset, 0, 12, process_index, process_count)  # 4.5 epochs of one process
  assert uninterrupted[0]["inputs"].shape[0] == BATCH // process_count
  for start in (1, 2, 5, 8, 10):  # inside an epoch, and at batches that span two epochs
    assert_same(batches(dataset, start, 2, process_index, process_count), uninterrupted[start:start + 2])
  # Every epoch holds every example once: the labels of one epoch's worth are balanced.
  if process_count == 1:
    labels = np.concatenate([b["labels"] for b in uninterrupted])[:NUM_TRAIN]
    assert np.bincount(labels).tolist() == [NUM_TRAIN // 4] * 4
  # Epochs are shuffled differently.
  first, second = (np.concatenate([b["inputs"] for b in uninterrupted])[i * 32:(i + 1) * 32]
                   for i in range(2))
  assert not np.array_equal(first, second)


def test_a_late_resume_opens_one_epoch(dataset, monkeypatch):
  """At step 10**6 (375,000 epochs in) the stream opens the epoch of that step, reads it
  undecoded up to the step's examples, and continues exactly as from the step before."""
  opened = []
  as_dataset = tfds.core.DatasetBuilder.as_dataset

  def counting_as_dataset(self, *args, **kwargs):
    opened.append(kwargs.get("split"))
    return as_dataset(self, *args, **kwargs)

  monkeypatch.setattr(tfds.core.DatasetBuilder, "as_dataset", counting_as_dataset)
  late = 10**6
  resumed = batches(dataset, late, 2)
  assert len(opened) <= 2, opened  # the epoch of the step (and the next one it spans into)
  assert_same(resumed[:1], batches(dataset, late - 1, 2)[1:])


def test_benchmark_reports_every_step(data_dir):
  config = test_tfds_prepare._dataset_config(data_dir)
  config.batch_size = BATCH
  result = bench.resume_time(config, ["0", "1000000"], repeats=1)
  assert set(result["seconds_to_first_batch"]) == {"0", "1000000"}
  assert result["examples_per_epoch"] == NUM_TRAIN


if __name__ == "__main__":
  steps = sys.argv[1].split(",") if len(sys.argv) > 1 else ["0", "1000000"]
  with tempfile.TemporaryDirectory() as tmp:
    config = test_tfds_prepare._dataset_config(tmp)
    config.batch_size = BATCH
    print(json.dumps(bench.resume_time(config, steps, repeats=5), indent=2))
