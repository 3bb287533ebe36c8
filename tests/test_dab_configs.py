"""Every dab config builds and takes real steps (tiny shapes, mock TFDS / offline data).

On the shared 2-core CPU the autoencoder and ResNet-18 configs take 70 s to 4 min each to
compile and step, so they are marked slow: run them with `pytest -m slow tests/test_dab_configs.py`.
"""

import pytest

from experiments import testing

TINY_AE = {"model.hidden": (16,), "model.approx_hidden": (8,), "eval_batch_size": 500}  # 1,000 test digits
TINY_RESNET = {"model.width": 2, "model.blocks": (1, 1, 1, 1), "model.approx_hidden": (4,)}


@pytest.mark.parametrize("gradient", [
    "dab", pytest.param("ste", marks=pytest.mark.slow), pytest.param("none", marks=pytest.mark.slow)])
def test_sort_dense_steps(gradient):
  s = testing.build_and_step("configs/dab/sort.py:quick", {"gradient": gradient, "seq_len": 4})
  assert 0.0 <= s["final"]["test_all_or_none_accuracy"] <= s["final"]["test_accuracy"] <= 1.0
  assert (s["final"]["test_dab_penalty"] > 0) == (gradient == "dab")


@pytest.mark.slow
def test_sort_lstm_steps():
  s = testing.build_and_step("configs/dab/sort.py:lstm", {"model.lstm_size": 8, "model.dense": 8,
                                                        "model.approx_hidden": (8,),
                                                        "model.ponder_steps": 2})
  assert "test_all_or_none_accuracy" in s["final"]


@pytest.mark.parametrize("variant", [
    pytest.param("dab_signum", marks=pytest.mark.slow),  # ~70 s on the shared CPU
    pytest.param("gumbel_vae", marks=pytest.mark.slow),
    pytest.param("dab_binary", marks=pytest.mark.slow),
    pytest.param("dab_bernoulli", marks=pytest.mark.slow),
    pytest.param("bernoulli_vae", marks=pytest.mark.slow),
    pytest.param("threshold", marks=pytest.mark.slow)])
def test_autoencoder_offline_steps(variant):
  s = testing.build_and_step("configs/dab/autoencoder.py:offline,quick",
                             {"model.variant": variant, **TINY_AE})
  assert 0.0 <= s["final"]["test_ms_ssim"] <= 1.0 and s["final"]["latent_bits"] == 78


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["", ":cifar10"])
def test_autoencoder_tfds_steps(variant):
  s = testing.build_and_step("configs/dab/autoencoder.py" + variant, TINY_AE)
  assert "test_ms_ssim" in s["final"]


@pytest.mark.parametrize("hard,gradient,placement", [
    pytest.param("sort", "dab", 4, marks=pytest.mark.slow),  # ~4 min: ResNet-18 compile on CPU
    pytest.param("sort_1d", "ste", 3, marks=pytest.mark.slow),
    pytest.param("signum", "dab", 1, marks=pytest.mark.slow),
    pytest.param("kmeans", "dab", 4, marks=pytest.mark.slow),
    pytest.param("sort", "smooth", 4, marks=pytest.mark.slow)])
def test_cifar_resnet_steps(hard, gradient, placement):
  s = testing.build_and_step("configs/dab/cifar_resnet.py:quick",
                             {"model.hard": hard, "model.gradient": gradient,
                              "model.placement": placement, **TINY_RESNET})
  assert "test_accuracy" in s["final"] and s["final"]["test_emd"] >= 0


@pytest.mark.slow
def test_cifar_ste_refuses_dimension_changing_sort():
  with pytest.raises(ValueError, match="straight-through"):
    testing.build_and_step("configs/dab/cifar_resnet.py:quick",
                           {"model.hard": "sort", "model.gradient": "ste", **TINY_RESNET})
