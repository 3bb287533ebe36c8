"""A tiny test-only config (and model) for the framework tests.

Variants: "" (SGD), "kfac", "adam", "bf16", "nan" (a learning rate that diverges),
"generated" (a fresh regression batch every step), "slow" (a larger MLP so a
subprocess can be interrupted mid-run).
"""

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from experiments import config_lib
from experiments import model_lib


def tiny_mlp(width: int = 32, num_outputs: int = 10, depth: int = 1, dropout: float = 0.0,
             batch_norm: bool = True):
  def forward(x, *, is_training, step):
    x = x.reshape(x.shape[0], -1)
    for _ in range(depth):
      x = jax.nn.relu(hk.Linear(width)(x))
      if dropout and is_training:
        x = hk.dropout(hk.next_rng_key(), dropout, x)
    if batch_norm:  # per-device statistics: differ between device counts
      x = hk.BatchNorm(True, True, 0.9)(x, is_training)
    out = hk.Linear(num_outputs)(x)
    return {"output": out, "stats": {"step_seen": step.astype(jnp.float32)}}
  return forward


model_lib.register_model("test.mlp", tiny_mlp)


def regression_task(rng: np.random.Generator, num_examples: int, split: str, dim: int = 4):
  x = rng.standard_normal((num_examples, dim)).astype(np.float32)
  return {"inputs": x, "labels": np.sin(x).astype(np.float32)}


def get_config(arg: str = ""):
  c = config_lib.base_config()
  c.model.name = "test.mlp"
  c.model.width = 32
  c.model.num_outputs = 10
  c.model.depth = 1
  c.model.dropout = 0.1
  c.model.batch_norm = True
  c.dataset.name = "digits"
  c.batch_size = 64
  c.eval_batch_size = 200
  c.train_steps = 12
  c.eval_every = 6
  c.log_every = 3
  c.checkpoint_every = 6
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 0.05
  c.l2 = 1e-4
  for variant in filter(None, arg.split(",")):
    if variant == "kfac":
      c.optimizer.name = "kfac"
      c.optimizer.learning_rate = 0.01
      c.optimizer.kfac.num_burnin_steps = 2
      c.optimizer.kfac.inverse_update_period = 2
    elif variant == "adam":
      c.optimizer.name = "adam"
      c.optimizer.learning_rate = 1e-3
    elif variant == "bf16":
      c.precision = "bfloat16"
    elif variant == "nan":
      c.optimizer.learning_rate = 1e30
      c.optimizer.momentum = 0.0
      c.checkpoint_every = 1
      c.log_every = 1
    elif variant == "generated":
      c.dataset.name = "generated"
      c.dataset.generator = "tiny_config.regression_task"
      c.dataset.kwargs = {"dim": 4}
      c.dataset.num_eval = 64
      c.model.num_outputs = 4
      c.loss.name = "mse"
    elif variant == "slow":
      c.model.width = 1024
      c.model.depth = 4
      c.train_steps = 120
      c.eval_every = 60
      c.checkpoint_every = 10
      c.log_every = 10
    else:
      raise ValueError(f"unknown variant {variant!r}")
  return c
