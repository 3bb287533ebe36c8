"""Every tat config builds and takes real steps (mock TFDS data / real mnist_5k)."""

import pytest

from experiments import testing

CASES = [
    pytest.param("configs/tat/mnist_vanilla.py:kfac,quick", {"depth": 14, "model.width": 16},
                 marks=pytest.mark.slow),  # K-FAC compilation: ~30 s idle, minutes under load
    ("configs/tat/mnist_vanilla.py:sgd,quick", {"depth": 14, "method": "eoc", "model.width": 16}),
    ("configs/tat/mnist_vanilla.py:sgd,quick", {"depth": 4, "method": "dks", "model.width": 16}),
    ("configs/tat/imagenet_resnet.py:standard,sgd",
     {"depth": 18, "model.width_multiplier": 0.0625, "model.num_classes": 10}),
    pytest.param("configs/tat/imagenet_resnet.py:vanilla,kfac,e180",
                 {"depth": 18, "model.width_multiplier": 0.0625, "model.num_classes": 10},
                 marks=pytest.mark.slow),
    ("configs/tat/imagenet_resnet.py:rescaled,lars",
     {"depth": 18, "model.width_multiplier": 0.0625, "model.num_classes": 10,
                  "method": "dks", "activation": "softplus", "model.norm": "layer"}),
    ("configs/tat/cifar_wrn.py:quick", {"depth": 10, "model.widening_factor": 1, "method": "eoc"}),
]


@pytest.mark.parametrize("spec, overrides", CASES)
def test_config_builds_and_steps(spec, overrides):
  summary = testing.build_and_step(spec, overrides=overrides, steps=2, batch_size=4)
  final = summary["final"]
  acc = [v for k, v in final.items() if k.endswith("accuracy")]
  assert acc and all(0.0 <= a <= 1.0 for a in acc)


def test_config_variants_and_paper_settings():
  from experiments import config_lib
  c = config_lib.load_config("configs/tat/imagenet_resnet.py:vanilla,sgd,e180")
  assert c.batch_size == 1024 and c.loss.label_smoothing == 0.1 and c.train_epochs == 180
  assert c.optimizer.schedule.boundaries == (4 / 9, 7 / 9) and c.optimizer.schedule.warmup_epochs == 5
  k = config_lib.load_config("configs/tat/imagenet_resnet.py:kfac")
  assert (k.optimizer.kfac.damping, k.optimizer.kfac.norm_constraint,
          k.optimizer.kfac.inverse_update_period) == (0.001, 0.001, 50)
  assert k.model.dropout_rate == 0.2 and k.eta == 0.9
  with pytest.raises(ValueError, match="unknown config variant"):
    config_lib.load_config("configs/tat/imagenet_resnet.py:adam")
