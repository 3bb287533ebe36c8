"""TFDS end to end, offline: a tiny builder defined here is prepared into a temporary
data_dir by the framework (`dataset.download=True`), then a TAT Wide-ResNet trains
with K-FAC through the framework's own pipeline (per-location statistics, cifar
augmentation, sharding over the 2 simulated devices of conftest.py)."""

import os

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from experiments import config_lib
from experiments import data
from experiments import testing
from experiments import train

NUM_CLASSES = 4
SHAPE = (16, 16, 3)


class TinyPreparedImages(tfds.core.GeneratorBasedBuilder):
  """Class-dependent colour blobs plus noise; everything generated locally."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    # DatasetInfo directly: dataset_info_from_configs would look for metadata files
    # in the builder's package, and a test module is not a package.
    return tfds.core.DatasetInfo(
        builder=self,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=SHAPE),
            "label": tfds.features.ClassLabel(num_classes=NUM_CLASSES)}),
        supervised_keys=("image", "label"))

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    return {"train": self._generate_examples(64, 0), "test": self._generate_examples(24, 1)}

  def _generate_examples(self, num, seed):
    rng = np.random.default_rng(seed)
    for i in range(num):
      label = i % NUM_CLASSES
      image = rng.integers(0, 96, SHAPE)
      image[4 * label:4 * label + 4, :, label % 3] += 150
      yield i, {"image": image.astype(np.uint8), "label": label}


data.register_tfds("tiny_prepared_images", "tiny_prepared_images", "test",
                   mean=(0.3, 0.3, 0.3), std=(0.2, 0.2, 0.2))


def _dataset_config(data_dir, **overrides):
  c = config_lib.base_config()
  c.dataset.name = "tiny_prepared_images"
  c.dataset.data_dir = str(data_dir)
  c.dataset.download = True
  c.dataset.normalization = "per_location"
  c.dataset.augment = "cifar"
  for k, v in overrides.items():
    config_lib.set_by_path(c, k, v)
  return c


def test_prepare_load_per_location_statistics_and_augmentation(tmp_path):
  ds = data.get_dataset(_dataset_config(tmp_path))  # runs download_and_prepare
  prepared = os.path.join(tmp_path, "tiny_prepared_images", "1.0.0")
  assert any(f.startswith("tiny_prepared_images-train") for f in os.listdir(prepared))
  assert ds.num_train == 64 and ds.input_shape == SHAPE

  # Per-location statistics come from the training images: the normalized
  # (unaugmented) training split has mean 0 and std 1 at every pixel.
  train_eval = np.concatenate([b["inputs"][b["mask"] > 0] for b in ds.eval_batches("train", 16)])
  assert train_eval.shape == (64,) + SHAPE
  np.testing.assert_allclose(train_eval.mean(0), 0.0, atol=1e-4)
  np.testing.assert_allclose(train_eval.std(0), 1.0, atol=1e-3)
  test_labels = np.concatenate([b["labels"][b["mask"] > 0] for b in ds.eval_batches("test", 16)])
  assert sorted(test_labels.tolist()) == sorted([i % NUM_CLASSES for i in range(24)])

  # Seeded, resumable, augmented training batches.
  first = next(ds.train_batches(8, 3, 0))
  again = next(ds.train_batches(8, 3, 0))
  np.testing.assert_array_equal(first["inputs"], again["inputs"])
  resumed = next(ds.train_batches(8, 3, 1))
  second = list(zip(range(2), ds.train_batches(8, 3, 0)))[1][1]
  np.testing.assert_array_equal(resumed["inputs"], second["inputs"])
  plain = data.get_dataset(_dataset_config(tmp_path, **{"dataset.augment": "none"}))
  assert not np.allclose(next(plain.train_batches(8, 3, 0))["inputs"], first["inputs"])
  # Two processes each get half of the same global batch.
  halves = [next(ds.train_batches(8, 3, 0, i, 2))["inputs"].shape[0] for i in range(2)]
  assert halves == [4, 4]


def test_prepared_tfds_trains_tat_resnet_with_kfac_on_two_devices(tmp_path):
  assert jax.local_device_count() == 2
  config = config_lib.load_config("configs/tat/cifar_wrn.py")
  overrides = testing.tiny_overrides(config, steps=3, batch_size=8)
  overrides.update({
      "dataset.name": "tiny_prepared_images", "dataset.data_dir": str(tmp_path / "tfds"),
      "dataset.download": True, "dataset.normalization": "per_location",
      # depth 10 reaches C_f(0) <= 0.81 only: a lower TAT target than the config's 0.9.
      "depth": 10, "eta": 0.5, "model.widening_factor": 1, "model.num_classes": NUM_CLASSES})
  for k, v in overrides.items():
    config_lib.set_by_path(config, k, v)
  assert config.optimizer.name == "kfac"
  summary = train.run(config, str(tmp_path / "run"))
  assert summary["step"] == 3
  assert np.isfinite(summary["final"]["test_loss"])
  assert 0.0 <= summary["final"]["test_accuracy"] <= 1.0
  assert sorted(os.listdir(tmp_path / "run" / "checkpoints")) == ["3"]
