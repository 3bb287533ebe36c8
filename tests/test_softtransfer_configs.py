"""Every softtransfer config builds and takes real steps (tiny shapes, mock TFDS data)."""

import jax
import jax.numpy as jnp
import pytest

from experiments import config_lib
from experiments import model_lib
from experiments import testing
from softtransfer import transfer

TINY_MLP = {"model.hidden_sizes": (8, 8)}
TINY_RESNET = {"model.depth": 8, "model.width": 4}


@pytest.mark.parametrize("activation", ["resin", "sin", "resin_to_sin"])
def test_sin2x_steps_and_reports_weight(activation):
  s = testing.build_and_step("configs/softtransfer/sin2x.py:quick", {"activation": activation},
                             batch_size=8)
  assert 5.0 < s["final"]["weight"] < 7.0 and "test_mse" in s["final"]


FAST = ("copy", "relu_to_sin")  # a baseline and a soft transfer; the rest are marked slow


@pytest.mark.parametrize("activation", [
    a if a in FAST else pytest.param(a, marks=pytest.mark.slow) for a in transfer.VARIANTS])
def test_bessel_every_variant_steps(activation):
  s = testing.build_and_step("configs/softtransfer/bessel.py", {"activation": activation, **TINY_MLP})
  assert s["final"]["test_mse"] >= 0
  if activation in ("copy", "line", "bern") or "_to_" in activation:
    assert 0.0 <= s["final"]["gate_expectation"] <= 1.0


IMAGE_SPECS = [("configs/softtransfer/mnist_lenet5.py:offline,quick", (28, 28, 1)),
               ("configs/softtransfer/mnist_lenet5.py", (28, 28, 1)),
               ("configs/softtransfer/cifar_resnet.py", (32, 32, 3)),
               ("configs/softtransfer/cifar_resnet.py:resnet110", (32, 32, 3))]


@pytest.mark.parametrize("spec,shape,activation", [
    (spec, shape, a) for spec, shape in IMAGE_SPECS[:3] for a in ("relu", "copy", "resin_to_sin")]
    + [pytest.param(*IMAGE_SPECS[3], "relu_to_sin", marks=pytest.mark.slow)])  # ResNet-110: 6-14 s
def test_image_configs_build_their_models(spec, shape, activation):
  """Shapes only (no compile): every image config's model builds with its own model fields."""
  c = config_lib.load_config(spec, {"activation": activation, "train_steps": 100})
  model = model_lib.build_model(c.model)
  x = jnp.zeros((2,) + shape)
  def run():
    p, st = model.init(jax.random.PRNGKey(0), x, is_training=True, step=jnp.int32(0))
    return model.apply(p, st, jax.random.PRNGKey(1), x, is_training=True, step=jnp.int32(3))[0]
  out = jax.eval_shape(run)
  assert out["output"].shape == (2, 10) and out["penalty"].shape == ()


# Stepping the image configs compiles a LeNet / ResNet (40-100 s each on the shared CPU): slow.
@pytest.mark.slow
@pytest.mark.parametrize("spec,activation", [
    ("configs/softtransfer/mnist_lenet5.py:offline,quick", "relu_to_sin"),
    ("configs/softtransfer/mnist_lenet5.py", "copy"),
    ("configs/softtransfer/cifar_resnet.py:quick", "relu_to_sin"),
    ("configs/softtransfer/cifar_resnet.py:resnet110", "bern"),
])
def test_table1_configs_step(spec, activation):
  overrides = {"activation": activation}
  if "cifar" in spec:
    overrides.update(TINY_RESNET)
  s = testing.build_and_step(spec, overrides)
  assert 0.0 <= s["final"]["test_accuracy"] <= 1.0


def test_table1_config_values_are_the_papers():
  c = config_lib.load_config("configs/softtransfer/cifar_resnet.py:resnet110")
  assert c.model.depth == 110 and c.batch_size == 128 and c.l2 == 1e-4
  o = c.optimizer
  assert (o.name, o.learning_rate, o.momentum, o.nesterov, o.schedule.name) == ("sgd", 0.1, 0.9, True, "sgdr")
  assert (c.model.beta, c.model.xi, c.model.zeta) == pytest.approx((2 / 3, -0.1, 1.1))
  c = config_lib.load_config("configs/softtransfer/bessel.py", {"train_steps": 77})
  assert c.model.train_steps == 77  # linked for copy / line / bern
  with pytest.raises(ValueError, match="accepted"):
    config_lib.load_config("configs/softtransfer/cifar_resnet.py:resnet21")


def test_figure_configs_expose_the_ablation_keys_with_clear_errors():
  from experiments import data
  c = config_lib.load_config("configs/softtransfer/bessel.py", {
      "dataset.kwargs.input_scale": 0.0125, "model.init_scheme": "torch", "model.gate_lr_multiplier": 10.0,
      "model.gate_weight_decay": 1e-4, "model.gate_noise": "batch"})
  model_lib.build_model(c.model)
  batch = next(data.get_dataset(c).eval_batches("test", 200))
  assert abs(batch["inputs"]).max() <= 1.0 + 1e-6  # x / 80
  for key, bad, match in (("model.init_scheme", "kaiming", "init_scheme"),
                          ("model.gate_lr_multiplier", -2.0, "gate_lr_multiplier"),
                          ("model.gate_weight_decay", -1.0, "gate_weight_decay"),
                          ("model.gate_noise", "step", "noise")):
    with pytest.raises(ValueError, match=match):
      model_lib.build_model(config_lib.load_config("configs/softtransfer/bessel.py", {key: bad}).model)
  with pytest.raises(ValueError, match="input_scale"):
    data.get_dataset(config_lib.load_config("configs/softtransfer/bessel.py", {"dataset.kwargs.input_scale": -1.0}))
  c = config_lib.load_config("configs/softtransfer/sin2x.py", {"model.copies": 7})
  assert c.dataset.kwargs.copies == 7 and c.loss.sum_over_features
  with pytest.raises(ValueError, match="copies"):
    model_lib.build_model(config_lib.load_config("configs/softtransfer/sin2x.py", {"model.copies": 0}).model)
