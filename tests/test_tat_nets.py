"""tat networks: initializers, MODELS, and predicted vs empirical c values at init."""

import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tat import arch as tat_arch
from tat import init as tat_init
from tat import kernels
from tat import models


def _init_fn(initializer, shape, seed=0):
  return hk.transform(lambda: initializer(shape, jnp.float32)).apply({}, jax.random.PRNGKey(seed))


def test_suo_and_orthogonal_delta():
  w = np.asarray(_init_fn(tat_init.ScaleCorrectedOrthogonal(), (64, 32)))
  np.testing.assert_allclose(w.T @ w, np.eye(32), atol=1e-5)  # in >= out: isometry
  w = np.asarray(_init_fn(tat_init.ScaleCorrectedOrthogonal(2.0), (16, 64)))
  np.testing.assert_allclose(w @ w.T, 4.0 * (64 / 16) * np.eye(16), atol=1e-4)  # max(sqrt(m/k),1)
  k = np.array(_init_fn(tat_init.OrthogonalDelta(), (3, 3, 8, 8)))
  centre = k[1, 1]
  np.testing.assert_allclose(centre.T @ centre, np.eye(8), atol=1e-5)
  k[1, 1] = 0
  assert np.all(k == 0)
  with pytest.raises(ValueError, match="odd kernel"):
    _init_fn(tat_init.OrthogonalDelta(), (2, 2, 4, 4))
  g = np.asarray(_init_fn(tat_init.GaussianFanIn(), (400, 300)))
  assert abs(g.var() * 400 - 1) < 0.05
  with pytest.raises(ValueError, match="Unknown init"):
    tat_init.weight_init("xavier", 1.0, False)


def _pairs(rng, d0, c0, n):
  """n pairs of inputs with squared norm d0 and cosine similarity exactly c0."""
  out = []
  for _ in range(n):
    u, v = rng.normal(size=(2, d0))
    u /= np.linalg.norm(u)
    v -= (v @ u) * u
    v /= np.linalg.norm(v)
    out.append(np.stack([u, c0 * u + np.sqrt(1 - c0 ** 2) * v]) * np.sqrt(d0))
  return np.concatenate(out)


def _empirical_c(forward, inputs, seeds):
  net = hk.transform_with_state(lambda x: forward(x, is_training=False))
  init, apply = jax.jit(net.init), jax.jit(net.apply)
  cs = []
  for seed in seeds:
    params, state = init(jax.random.PRNGKey(seed), inputs)
    out, _ = apply(params, state, None, inputs)
    out = np.asarray(out).reshape(len(inputs) // 2, 2, -1)
    cs += [a @ b / np.linalg.norm(a) / np.linalg.norm(b) for a, b in out]
  return float(np.mean(cs))


@pytest.mark.parametrize("name, kwargs, shape", [
    ("mlp", dict(depth=20, width=256, num_classes=512), (256,)),
    pytest.param("resnet_v2", dict(depth=18, variant="vanilla", channels=(256,) * 4,
                                   stem_channels=256, small_inputs=True, num_classes=512),
                 (1, 1, 256), marks=pytest.mark.slow),
    pytest.param("resnet_v2", dict(depth=18, variant="rescaled", shortcut_weight=0.8,
                                   channels=(256,) * 4, stem_channels=256, small_inputs=True,
                                   num_classes=512), (1, 1, 256), marks=pytest.mark.slow),
])
def test_predicted_c_matches_empirical_cosine_similarity(name, kwargs, shape):
  """Appendix E.1: c values predicted by the kernel interpretation of the same definition."""
  fwd = models.MODELS[name](activation="leaky_relu", method="tat", eta=0.8, **kwargs)
  a = fwd.spec.params["negative_slope"]
  local = lambda c: kernels.leaky_relu_c_map(c, a)
  rng = np.random.default_rng(0)
  for c0 in (0.0, 0.6):
    x = _pairs(rng, int(np.prod(shape)), c0, 8).reshape((-1,) + shape).astype(np.float32)
    emp = _empirical_c(fwd, jnp.asarray(x), seeds=(0, 1))
    pred = float(tat_arch.global_map(fwd.arch, c0, local))
    assert abs(emp - pred) < 0.03, (c0, emp, pred)
  # The untransformed ReLU with sigma_w = 1 shrinks q; EOC keeps it (sanity of sigma_w wiring).
  assert abs(float(tat_arch.global_map(fwd.arch, 0.0, local)) - 0.8) < 1e-9 or name != "mlp"


@pytest.mark.parametrize("name, kwargs, shape", [
    ("mlp", dict(depth=14, width=16, method="tat", activation="relu"), (4, 4, 1)),
    ("mlp", dict(depth=6, width=16, method="dks", activation="softplus", dropout_rate=0.2),
     (4, 4, 1)),
    ("mlp", dict(depth=6, width=16, method="eoc", activation="tanh", init="gaussian"), (8,)),
    ("mlp", dict(depth=6, width=16, method="prelu", activation="relu"), (8,)),
    pytest.param("convnet", dict(depth=14, width=4, method="tat", activation="leaky_relu",
                                 downsample_every=5), (8, 8, 3), marks=pytest.mark.slow),
    ("resnet_v2", dict(depth=18, variant="standard", method="untransformed",
                       width_multiplier=0.0625), (16, 16, 3)),
    ("resnet_v2", dict(depth=18, variant="rescaled", shortcut_weight=0.8, method="tat",
                       activation="softplus", width_multiplier=0.0625), (16, 16, 3)),
    pytest.param("resnet_v2", dict(depth=18, variant="vanilla", norm="layer", method="tat",
                                   activation="relu", eta=0.5, width_multiplier=0.0625),
                 (16, 16, 3), marks=pytest.mark.slow),
    pytest.param("wide_resnet", dict(depth=16, widening_factor=1, method="eoc",
                                     activation="relu"), (8, 8, 3), marks=pytest.mark.slow),
])
def test_models_build_and_run(name, kwargs, shape):
  fwd = models.MODELS[name](num_classes=5, **kwargs)
  net = hk.transform_with_state(lambda x, t: fwd(x, is_training=t, step=jnp.int32(0)))
  x = jnp.ones((2,) + shape) * jnp.arange(2.0)[:, None, None, None][..., : len(shape)].reshape(
      (2,) + (1,) * len(shape)) + 0.1
  params, state = jax.jit(net.init, static_argnums=2)(jax.random.PRNGKey(0), x, True)
  out, _ = jax.jit(net.apply, static_argnums=4)(params, state, jax.random.PRNGKey(1), x, True)
  assert out.shape == (2, 5) and bool(jnp.all(jnp.isfinite(out)))
  names = {k.split("/")[-1] for k in params}
  if kwargs.get("method") == "prelu":
    slopes = [v["negative_slope"] for v in params.values() if "negative_slope" in v]
    assert len(slopes) == 6 and float(slopes[0]) == 0.25
  if kwargs.get("variant") == "standard":
    assert any("norm" in k for k in state) and any("norm" in k for k in params)
  del names


def test_bad_model_arguments_raise():
  with pytest.raises(ValueError, match="variant"):
    models.MODELS["resnet_v2"](variant="wide")
  with pytest.raises(ValueError, match="depth must be one of"):
    models.MODELS["resnet_v2"](depth=42, variant="vanilla")
  with pytest.raises(ValueError, match="shortcut_weight must be in"):
    models.MODELS["resnet_v2"](depth=18, variant="rescaled", shortcut_weight=1.5)
  with pytest.raises(ValueError, match="6n"):
    models.MODELS["wide_resnet"](depth=20)
  with pytest.raises(ValueError, match="method='untransformed'"):
    models.MODELS["resnet_v2"](depth=18, variant="standard", method="tat")
