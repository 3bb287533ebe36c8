"""Shared pieces of the optnets configs (loaded with runpy.run_path by each config file)."""

from experiments import config_lib


def parse_args(arg: str, allowed) -> set:
  args = {a for a in arg.split(",") if a}
  bad = args - set(allowed)
  if bad:
    raise ValueError(f"unknown config variant(s) {sorted(bad)}; accepted: {sorted(allowed)}")
  return args


def one_of(args: set, choices, default: str, what: str) -> str:
  picked = [a for a in args if a in choices]
  if len(picked) > 1:
    raise ValueError(f"choose one {what} of {sorted(choices)}, got {sorted(picked)}")
  return picked[0] if picked else default


def image_classification(dataset: str, augment: bool, epochs: float, batch_size: int,
                         boundaries, num_classes: int):
  """Section 7.1: SGD with Nesterov 0.9, weight decay 1e-4, lr 0.1 divided by 10 at `boundaries`."""
  c = config_lib.base_config()
  c.dataset.name = dataset
  c.dataset.augment = ("imagenet" if dataset == "imagenet2012" else "cifar") if augment else "none"
  c.dataset.normalization = "per_channel"  # subtract the mean, divide by the std (section 7.1)
  c.batch_size = batch_size
  c.eval_batch_size = 500
  c.train_steps = -1
  c.train_epochs = epochs
  c.eval_every = -1
  c.eval_every_epochs = 1.0
  c.checkpoint_every = -1
  c.checkpoint_every_epochs = 5.0
  c.log_every = 100
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 0.1
  c.optimizer.momentum = 0.9
  c.optimizer.nesterov = True
  c.l2 = 1e-4  # loss += l2/2 |w|^2 on conv/linear weights = weight decay 1e-4
  c.optimizer.schedule.name = "step"
  c.optimizer.schedule.boundaries = tuple(boundaries)
  c.optimizer.schedule.decay_factor = 0.1
  c.loss.name = "softmax_xent"
  c.model.num_classes = num_classes
  return c
