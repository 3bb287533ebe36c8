"""Haiku side of softtransfer: gate parameters, baselines, initialisation, models, data."""

import math

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from softtransfer import activations as acts
from softtransfer import data, gates, models, transfer

X = jnp.linspace(-3.0, 3.0, 6).reshape(6, 1)


def _mlp(activation="resin_to_sin", **kw):
  kw.setdefault("hidden_sizes", (8, 8))
  return hk.transform_with_state(models.MODELS["mlp"](activation=activation, **kw))


def _init(f, x=X, seed=0):
  return f.init(jax.random.PRNGKey(seed), x, is_training=True, step=jnp.int32(0))


def _apply(f, p, s, step, is_training, seed=1, x=X):
  out, _ = f.apply(p, s, jax.random.PRNGKey(seed), x, is_training=is_training, step=jnp.int32(step))
  return out


def _set_log_alpha(p, value):
  return jax.tree_util.tree_map_with_path(
      lambda k, v: jnp.full_like(v, value) if k[-1].key == "log_alpha" else v, p)


@pytest.mark.parametrize("granularity,num_gates", [("neuron", 16), ("layer", 2), ("shared", 1)])
def test_gate_granularity_and_penalty_scale(granularity, num_gates):
  f = _mlp(granularity=granularity, gamma=0.5)
  p, s = _init(f)
  las = [v for k, v in jax.tree_util.tree_leaves_with_path(p) if k[-1].key == "log_alpha"]
  assert sum(v.size for v in las) == num_gates
  out = _apply(f, p, s, 0, True)
  expected = 0.5 * sum(float(jnp.sum(gates.prob_nonzero(v))) for v in las)
  assert float(out["penalty"]) == pytest.approx(expected, rel=1e-6)
  assert 0 < float(out["penalty"]) <= 0.5 * num_gates
  # log alpha ~ N(8, 1): all test-time gates start at exactly 1.
  assert float(out["stats"]["gate_test_mean"]) == 1.0
  assert float(out["stats"]["gate_zero_fraction"]) == 0.0
  if granularity == "neuron":
    flat = np.concatenate([np.ravel(v) for v in las])
    assert abs(flat.mean() - 8.0) < 1.0 and 0.3 < flat.std() < 2.0


def test_test_gates_deterministic_and_training_gates_random():
  f = _mlp()
  p, s = _init(f)
  p = _set_log_alpha(p, 0.0)
  a, b = _apply(f, p, s, 5, False, seed=1), _apply(f, p, s, 5, False, seed=2)
  np.testing.assert_array_equal(a["output"], b["output"])
  c, d = _apply(f, p, s, 5, True, seed=1), _apply(f, p, s, 5, True, seed=2)
  assert not np.allclose(c["output"], d["output"])
  # Evaluation uses z_bar = 0.5 at log alpha = 0, E[z] matches the quadrature value.
  assert float(a["stats"]["gate_test_mean"]) == pytest.approx(0.5)
  assert float(a["stats"]["gate_expectation"]) == pytest.approx(float(gates.expected_gate(0.0)), rel=1e-5)


def test_gradients_flow_to_log_alpha_through_the_data_loss():
  f = _mlp()
  p, s = _init(f)
  p = _set_log_alpha(p, 0.0)

  def loss(p):
    out = _apply(f, p, s, 0, True)
    return jnp.mean((out["output"] - jnp.sin(X)) ** 2)  # no penalty: the task gradient alone

  g = jax.grad(loss)(p)
  for k, v in jax.tree_util.tree_leaves_with_path(g):
    if k[-1].key == "log_alpha":
      assert float(jnp.sum(jnp.abs(v))) > 0
  # And the penalty pushes every log alpha down (towards sin).
  gp = jax.grad(lambda p: _apply(f, p, s, 0, True)["penalty"])(p)
  las = [v for k, v in jax.tree_util.tree_leaves_with_path(gp) if k[-1].key == "log_alpha"]
  assert las and all(bool(jnp.all(v > 0)) for v in las)


def _fixed_outputs(p, s, step, is_training, seed=1, **kw):
  """Outputs of the same parameters as pure resin and pure sin networks."""
  return [_apply(_mlp(a, **kw), p, s, step, is_training, seed)["output"] for a in ("resin", "sin")]


@pytest.mark.parametrize("is_training", [True, False])
def test_copy_switches_at_half(is_training):
  f = _mlp("copy", train_steps=10)
  p, s = _init(f)
  resin_out, sin_out = _fixed_outputs(p, s, 0, is_training)
  np.testing.assert_allclose(_apply(f, p, s, 4, is_training)["output"], resin_out, rtol=1e-6)
  np.testing.assert_allclose(_apply(f, p, s, 5, is_training)["output"], sin_out, rtol=1e-6)
  assert float(_apply(f, p, s, 4, is_training)["stats"]["gate_expectation"]) == 1.0
  assert float(_apply(f, p, s, 5, is_training)["stats"]["gate_zero_fraction"]) == 1.0


def test_line_decreases_linearly():
  f = _mlp("line", train_steps=8)
  p, s = _init(f)
  for step, z in [(0, 1.0), (2, 0.75), (6, 0.25), (8, 0.0), (12, 0.0)]:
    out = _apply(f, p, s, step, True)
    assert float(out["stats"]["gate_expectation"]) == pytest.approx(z)
    if z in (0.0, 1.0):
      np.testing.assert_allclose(out["output"], _fixed_outputs(p, s, step, True)[0 if z else 1],
                                 rtol=1e-6)


def test_bern_samples_binary_gates_with_linear_mean():
  f = _mlp("bern", train_steps=8, hidden_sizes=(64,))
  p, s = _init(f)
  resin_out, sin_out = _fixed_outputs(p, s, 0, True, hidden_sizes=(64,))
  np.testing.assert_allclose(_apply(f, p, s, 0, True)["output"], resin_out, rtol=1e-6)
  np.testing.assert_allclose(_apply(f, p, s, 8, True)["output"], sin_out, rtol=1e-6)
  # Halfway: training samples differ between keys; evaluation mixes with the mean 0.5.
  a, b = _apply(f, p, s, 4, True, seed=1), _apply(f, p, s, 4, True, seed=2)
  assert not np.allclose(a["output"], b["output"])
  e = _apply(f, p, s, 4, False)
  assert float(e["stats"]["gate_expectation"]) == pytest.approx(0.5)
  np.testing.assert_array_equal(e["output"], _apply(f, p, s, 4, False, seed=7)["output"])


def test_initialisation_sin_vs_kaiming():
  f_sin, f_relu = _mlp("sin", hidden_sizes=(512, 512)), _mlp("relu", hidden_sizes=(512, 512))
  p_sin, _ = _init(f_sin)
  p_relu, _ = _init(f_relu)
  w = np.asarray(p_sin["linear_1"]["w"])
  assert w.std() == pytest.approx(0.1, rel=0.03)  # N(0, 0.1): standard deviation 0.1
  b = np.asarray(p_sin["linear_1"]["b"])
  assert b.min() >= -math.pi and b.max() <= math.pi and b.std() == pytest.approx(math.pi / math.sqrt(3), rel=0.1)
  assert np.asarray(p_relu["linear_1"]["w"]).std() == pytest.approx(math.sqrt(2 / 512), rel=0.03)
  assert np.all(np.asarray(p_relu["linear_1"]["b"]) == 0)


def test_one_neuron_model():
  f = hk.transform_with_state(models.MODELS["one_neuron"](activation="resin_to_sin"))
  p, s = _init(f)
  out = _apply(f, p, s, 0, False)
  assert float(out["stats"]["weight"]) == 6.0
  np.testing.assert_allclose(out["output"], acts.resin(6.0 * X), rtol=1e-6)  # gate starts at 1
  assert set(p) == {"~", "gate"} and "weight" in p["~"]


def _shapes(f, x, is_training=True):
  """(param shapes, output shapes) without compiling or running anything."""
  def run():
    p, st = f.init(jax.random.PRNGKey(0), x, is_training=True, step=jnp.int32(0))
    return p, f.apply(p, st, jax.random.PRNGKey(1), x, is_training=is_training, step=jnp.int32(0))[0]
  return jax.eval_shape(run)


def _count(shapes, leaf=None):
  return sum(v.size for k, v in jax.tree_util.tree_leaves_with_path(shapes)
             if leaf is None or k[-1].key == leaf)


def test_image_models_shapes():
  p, out = _shapes(hk.transform_with_state(models.MODELS["lenet5"](activation="relu_to_sin")),
                   jnp.zeros((2, 28, 28, 1)))
  assert out["output"].shape == (2, 10)
  assert _count(p, "log_alpha") == 6 + 16 + 120 + 84  # one gate per channel / unit
  assert _count(p) - _count(p, "log_alpha") == 61706  # LeNet-5 with 28x28 'same' first conv
  # ResNet-20 has the published 0.27M parameters.
  p, out = _shapes(hk.transform_with_state(models.MODELS["resnet20"](activation="relu")),
                   jnp.zeros((2, 32, 32, 3)))
  assert 0.26e6 < _count(p) < 0.28e6 and out["output"].shape == (2, 10)
  p, out = _shapes(hk.transform_with_state(models.MODELS["resnet110"](activation="relu_to_sin",
                                                                     granularity="layer")),
                   jnp.zeros((2, 32, 32, 3)), is_training=False)
  assert _count(p, "log_alpha") == 1 + 2 * 54  # every activation gated
  assert 1.7e6 < _count(p) < 1.75e6


def test_bad_arguments_raise_value_errors():
  with pytest.raises(ValueError, match="accepted"):
    models.MODELS["mlp"](activation="swish")
  with pytest.raises(ValueError, match="train_steps"):
    models.MODELS["mlp"](activation="line")
  with pytest.raises(ValueError, match="granularity"):
    models.MODELS["mlp"](activation="resin_to_sin", granularity="channel")
  with pytest.raises(ValueError, match="6n\\+2"):
    models.MODELS["resnet"](depth=21)
  with pytest.raises(ValueError, match="unknown model arguments"):
    models.MODELS["lenet5"](activation="sin", dropout=0.5)
  assert transfer.parse_variant("relu_to_tanh") == ("soft", "relu", "tanh")


def test_bessel_data():
  rng = np.random.default_rng(0)
  tr, te = data.bessel(rng, 200, "train"), data.bessel(rng, 200, "test")
  assert tr["inputs"].shape == te["inputs"].shape == (200, 1)
  allx = np.concatenate([tr["inputs"], te["inputs"]])[:, 0]
  np.testing.assert_allclose(np.sort(allx), np.linspace(-80, 80, 400), atol=1e-4)  # disjoint halves
  import scipy.special
  np.testing.assert_allclose(te["labels"][:, 0], scipy.special.j0(te["inputs"][:, 0]), atol=1e-6)
  noise = tr["labels"][:, 0] - scipy.special.j0(tr["inputs"][:, 0])
  assert 0.06 < noise.std() < 0.10 and abs(noise.mean()) < 0.02
  np.testing.assert_array_equal(data.bessel(np.random.default_rng(5), 200, "test")["inputs"], te["inputs"])
  with pytest.raises(ValueError, match="num_examples"):
    data.bessel(rng, 201, "train")
  with pytest.raises(ValueError, match="split"):
    data.bessel(rng, 10, "validation")


def test_sin2x_data():
  d = data.sin2x(np.random.default_rng(0), 64, "train")
  assert d["inputs"].min() == pytest.approx(-2 * math.pi) and d["inputs"].max() == pytest.approx(2 * math.pi)
  np.testing.assert_allclose(d["labels"], np.sin(2 * d["inputs"]), atol=1e-6)


def test_bessel_validation_holds_out_noisy_training_points():
  rng = np.random.default_rng(0)
  full_train = data.bessel(rng, 200, "train")["inputs"][:, 0]
  tr = data.bessel(rng, 150, "train", validation=50)
  va = data.bessel(rng, 50, "test", validation=50)
  assert tr["inputs"].shape == (150, 1) and va["inputs"].shape == (50, 1)
  both = np.sort(np.concatenate([tr["inputs"], va["inputs"]])[:, 0])
  np.testing.assert_allclose(both, np.sort(full_train))  # a partition of the training half only
  import scipy.special
  noise = va["labels"][:, 0] - scipy.special.j0(va["inputs"][:, 0])
  assert 0.04 < noise.std() < 0.12  # validation labels are noisy like the training labels
  # Held out evenly over x: the training rest never loses more than one neighbour in a row.
  assert np.diff(np.sort(va["inputs"][:, 0])).min() > 2 * np.diff(np.sort(full_train)).min()
  assert np.diff(np.sort(tr["inputs"][:, 0])).max() <= 2 * np.diff(np.sort(full_train)).max()
  with pytest.raises(ValueError, match="validation"):
    data.bessel(rng, 10, "train", validation=200)


def test_gate_init_space_alpha_reads_n81_as_alpha():
  def init_log_alpha(space, seed):
    f = hk.transform_with_state(models.MODELS["mlp"](activation="resin_to_sin", hidden_sizes=(256,),
                                                     gate_init_space=space))
    params, _ = f.init(jax.random.PRNGKey(seed), jnp.zeros((2, 1)), is_training=True, step=0)
    return np.asarray(params["gate"]["log_alpha"])
  la = init_log_alpha("alpha", 0)
  assert abs(la.mean() - np.log(8.0)) < 0.03 and 0.09 < la.std() < 0.16  # log N(8, 1) ~ 2.08 +- 1/8
  la = init_log_alpha("log_alpha", 0)
  assert abs(la.mean() - 8.0) < 0.2 and 0.85 < la.std() < 1.15
  with pytest.raises(ValueError, match="init_space"):
    models.MODELS["mlp"](activation="resin_to_sin", gate_init_space="logit")


def test_init_schemes_phase_and_torch():
  hidden = (300, 300)
  p_phase, _ = _init(_mlp("resin", hidden_sizes=hidden, init_scheme="phase"))
  p_paper, _ = _init(_mlp("resin", hidden_sizes=hidden))
  b = np.asarray(p_phase["linear_1"]["b"])
  assert b.min() >= -math.pi and b.max() <= math.pi and b.std() == pytest.approx(math.pi / math.sqrt(3), rel=0.1)
  assert np.all(np.asarray(p_paper["linear_1"]["b"]) == 0)
  for p in (p_phase, p_paper):  # the same (Kaiming) weights
    assert np.asarray(p["linear_1"]["w"]).std() == pytest.approx(math.sqrt(2 / 300), rel=0.03)
  assert np.all(np.asarray(p_phase["readout"]["b"]) == 0)  # the read-out's bias is no phase
  for variant in ("sin", "resin_to_sin"):  # torch: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) everywhere
    p, _ = _init(_mlp(variant, hidden_sizes=hidden, init_scheme="torch"))
    for layer, fan_in in (("linear_0", 1), ("linear_1", 300), ("readout", 300)):
      for leaf in ("w", "b"):
        v = np.asarray(p[layer][leaf])
        assert np.abs(v).max() <= 1 / math.sqrt(fan_in) + 1e-7
        if v.size > 100:
          assert v.std() == pytest.approx(1 / math.sqrt(3 * fan_in), rel=0.1)
  with pytest.raises(ValueError, match="init_scheme"):
    models.MODELS["mlp"](activation="sin", init_scheme="kaiming")


def test_gate_lr_multiplier_scales_the_gate_gradient_and_weight_decay_adds_to_penalty():
  def grads(**kw):
    f = _mlp(gamma=0.3, **kw)
    p, s = _init(f)
    p = _set_log_alpha(p, 1.5)

    def loss(p):
      out = _apply(f, p, s, 0, True)
      return jnp.mean((out["output"] - jnp.sin(X)) ** 2) + out["penalty"]
    return loss(p), jax.grad(loss)(p)

  (l1, g1), (l4, g4) = grads(), grads(gate_lr_multiplier=4.0)
  assert float(l1) == pytest.approx(float(l4), rel=1e-6)  # the forward pass is unchanged
  for (k, a), (_, b) in zip(jax.tree_util.tree_leaves_with_path(g1), jax.tree_util.tree_leaves_with_path(g4)):
    np.testing.assert_allclose(b, 4.0 * a if k[-1].key == "log_alpha" else a, rtol=1e-5, atol=1e-8)
  f, f_wd = _mlp(gamma=0.3), _mlp(gamma=0.3, gate_weight_decay=0.01)
  p, s = _init(f)
  p = _set_log_alpha(p, 1.5)
  extra = float(_apply(f_wd, p, s, 0, True)["penalty"]) - float(_apply(f, p, s, 0, True)["penalty"])
  assert extra == pytest.approx(0.5 * 0.01 * 16 * 1.5 ** 2, rel=1e-5)  # 16 gates at log alpha 1.5
  for key, bad in (("gate_lr_multiplier", -1.0), ("gate_weight_decay", -1e-4), ("gate_weight_decay", math.inf)):
    with pytest.raises(ValueError, match=key):
      models.MODELS["mlp"](activation="resin_to_sin", **{key: bad})


def test_one_neuron_copies_are_independent_neurons():
  ws, las = jnp.array([6.0, 2.0, 3.5]), jnp.array([8.0, -8.0, 0.3])
  many = hk.transform_with_state(models.MODELS["one_neuron"](copies=3))
  p, s = _init(many)
  assert p["~"]["weight"].shape == (3,) and p["gate"]["log_alpha"].shape == (3,)
  p = {"~": {"weight": ws}, "gate": {"log_alpha": las}}
  out = _apply(many, p, s, 0, False)
  assert out["output"].shape == (6, 3) and float(out["stats"]["weight"]) == pytest.approx(float(ws.mean()))
  one = hk.transform_with_state(models.MODELS["one_neuron"]())
  p1, s1 = _init(one)
  for k in range(3):
    single = _apply(one, {"~": {"weight": ws[k]}, "gate": {"log_alpha": las[k:k + 1]}}, s1, 0, False)
    np.testing.assert_allclose(out["output"][:, k], single["output"][:, 0], rtol=1e-6)
  # Summed over copies, the penalty is each copy's; per-example gate noise is drawn per copy.
  assert float(out["penalty"]) == pytest.approx(1e-2 * float(jnp.sum(gates.prob_nonzero(las))), rel=1e-6)
  with pytest.raises(ValueError, match="copies"):
    models.MODELS["one_neuron"](copies=0)
  with pytest.raises(ValueError, match="granularity"):
    models.MODELS["one_neuron"](copies=2, granularity="layer")
  d = data.sin2x(np.random.default_rng(0), 8, "train", copies=3)
  assert d["labels"].shape == (8, 3) and np.all(d["labels"] == d["labels"][:, :1])
  with pytest.raises(ValueError, match="input_scale"):
    data.bessel(np.random.default_rng(0), 10, "train", input_scale=0.0)
