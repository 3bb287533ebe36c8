"""DAB bridge, baselines, hard functions and metrics (dab.bridge, dab.hard, dab.metrics)."""

import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dab import bridge
from dab import data
from dab import hard
from dab import metrics
from dab import nets


def _mlp_params(key, d_in, d_hidden, d_out):
  k1, k2 = jax.random.split(key)
  return {"w1": jax.random.normal(k1, (d_in, d_hidden)) / np.sqrt(d_in), "b1": jnp.zeros(d_hidden),
          "w2": jax.random.normal(k2, (d_hidden, d_out)) / np.sqrt(d_hidden), "b2": jnp.zeros(d_out)}


def _mlp(params, x):
  return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


SIGNUM = functools.partial(hard.signum, margin=0.5)


def _setup(d=6, b=4):
  kx, kp, kg = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(kx, (b, d))
  params = _mlp_params(kp, d, 16, d)
  g = jax.random.normal(kg, (b, d))
  return x, params, g


def test_bridge_forward_is_hard_and_gradient_is_approximator_vjp():
  x, params, g = _setup()
  f = bridge.make_bridge(SIGNUM, _mlp)
  np.testing.assert_array_equal(f(x, params), SIGNUM(x))
  grad_x = jax.jit(jax.grad(lambda x_: jnp.sum(f(x_, params) * g)))(x)
  _, vjp = jax.vjp(lambda x_: _mlp(params, x_), x)
  np.testing.assert_allclose(grad_x, vjp(g)[0], rtol=1e-6, atol=1e-6)
  assert float(jnp.abs(grad_x).sum()) > 0  # signum's own derivative would be 0 a.e.


def test_task_loss_gives_no_gradient_to_approximator_params():
  x, params, g = _setup()
  f = bridge.make_bridge(SIGNUM, _mlp)
  grads = jax.jit(jax.grad(lambda p: jnp.sum(f(x, p) * g)))(params)
  for leaf in jax.tree.leaves(grads):
    np.testing.assert_array_equal(leaf, 0.0)


def test_dab_loss_trains_approximator_but_not_encoder():
  x, params, _ = _setup()
  enc = jax.random.normal(jax.random.key(3), (6, 6))

  def penalty(enc_, p):
    z = x @ enc_
    _, pen = bridge.dab(SIGNUM, _mlp, z, p, gamma=10.0)
    return pen

  g_enc, g_p = jax.jit(jax.grad(penalty, argnums=(0, 1)))(enc, params)
  np.testing.assert_array_equal(g_enc, 0.0)
  assert all(float(jnp.abs(l).sum()) > 0 for l in jax.tree.leaves(g_p))
  # gamma * batch mean of the feature-summed squared error (eq. 10).
  z = x @ enc
  expected = 10.0 * jnp.mean(jnp.sum((_mlp(params, z) - SIGNUM(z)) ** 2, axis=1))
  np.testing.assert_allclose(penalty(enc, params), expected, rtol=1e-6)


def test_undetached_penalty_gives_encoder_zero_gradient_like_the_stop_gradient_form():
  """The appendix-7.1 style penalty ||approx(x) - bridge(x)||^2 without stop-gradients: its
  two paths into x (through the approximator, and through the bridge whose backward is the
  approximator's VJP) cancel, so the encoder update equals that of the detached form."""
  x, params, _ = _setup()
  enc = jax.random.normal(jax.random.key(3), (6, 6))
  f = bridge.make_bridge(SIGNUM, _mlp)

  def undetached(enc_, p):
    z = x @ enc_
    return 10.0 * jnp.mean(jnp.sum((_mlp(p, z) - f(z, p)) ** 2, axis=1))

  def detached(enc_, p):
    return bridge.dab(SIGNUM, _mlp, x @ enc_, p, gamma=10.0)[1]

  g_enc, g_p = jax.jit(jax.grad(undetached, argnums=(0, 1)))(enc, params)
  np.testing.assert_allclose(g_enc, 0.0, atol=1e-5)
  _, g_p_detached = jax.jit(jax.grad(detached, argnums=(0, 1)))(enc, params)
  for a, b in zip(jax.tree.leaves(g_p), jax.tree.leaves(g_p_detached)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_gamma_does_not_change_adam_updates():
  """The penalty trains only the approximator and the task loss only the encoder, so under
  Adam (invariant to a constant gradient scale, up to eps) gamma changes no update."""
  x, approx0, g = _setup()
  params0 = {"enc": jax.random.normal(jax.random.key(3), (6, 6)), "approx": approx0}

  def loss(p, gamma):
    y, pen = bridge.dab(SIGNUM, _mlp, x @ p["enc"], p["approx"], gamma=gamma)
    return jnp.sum(y * g) + pen

  def train(gamma):
    opt = optax.adam(1e-2)
    p, state = params0, opt.init(params0)
    for _ in range(3):
      updates, state = opt.update(jax.grad(loss)(p, gamma), state)
      p = optax.apply_updates(p, updates)
    return p

  a, b = train(10.0), train(1000.0)
  for la, lb, l0 in zip(jax.tree.leaves(a), jax.tree.leaves(b), jax.tree.leaves(params0)):
    assert float(jnp.abs(la - l0).max()) > 1e-3  # both parts moved
    np.testing.assert_allclose(la, lb, rtol=1e-5, atol=1e-6)


def test_dimension_changing_hard_function_with_dab():
  x = jax.random.normal(jax.random.key(1), (2, 3, 4, 2))
  out_dim = 3 * 4 * 4
  p = _mlp_params(jax.random.key(2), 24, 8, out_dim)
  approx = lambda p_, z: _mlp(p_, z.reshape(2, -1)).reshape(2, 3, 4, 4)
  f = bridge.make_bridge(hard.sort_rows_cols, approx)
  y = f(x, p)
  assert y.shape == (2, 3, 4, 4)
  gx = jax.jit(jax.grad(lambda x_: jnp.sum(f(x_, p) ** 2)))(x)
  assert gx.shape == x.shape and float(jnp.abs(gx).sum()) > 0
  with pytest.raises(ValueError, match="approximator output"):
    bridge.make_bridge(hard.sort_rows_cols, lambda p_, z: z)(x, p)


def test_straight_through_is_identity_and_refuses_dimension_changes():
  x, _, g = _setup()
  y = bridge.straight_through(SIGNUM, x)
  np.testing.assert_array_equal(y, SIGNUM(x))
  gx = jax.grad(lambda x_: jnp.sum(bridge.straight_through(SIGNUM, x_) * g))(x)
  np.testing.assert_allclose(gx, g)
  with pytest.raises(ValueError, match="straight-through"):
    bridge.straight_through(functools.partial(hard.topk, k=2), x)
  with pytest.raises(ValueError, match="straight-through"):
    bridge.straight_through(hard.sort_rows_cols, jnp.zeros((1, 2, 2, 1)))


def test_no_gradient_blocks():
  x, _, g = _setup()
  gx = jax.grad(lambda x_: jnp.sum(bridge.no_gradient(SIGNUM, x_) * g))(x)
  np.testing.assert_array_equal(gx, 0.0)


def test_bernoulli_noise_gets_zero_cotangent():
  x, params, g = _setup()
  u = jax.random.uniform(jax.random.key(5), x.shape)
  f = bridge.make_bridge(hard.bernoulli, lambda p, z: jax.nn.sigmoid(_mlp(p, z)))
  gx, gu = jax.grad(lambda x_, u_: jnp.sum(f(x_, params, u_) * g), argnums=(0, 1))(x, u)
  np.testing.assert_array_equal(gu, 0.0)
  assert float(jnp.abs(gx).sum()) > 0


def _grad_fn():
  f = bridge.make_bridge(SIGNUM, _mlp)

  def loss(x, p, g):
    y, pen = bridge.dab(SIGNUM, _mlp, x, p)
    return jnp.sum(f(x, p) * g) + pen
  return jax.grad(loss, argnums=(0, 1))


def test_jit_vmap_and_scan_agree_with_eager():
  x, params, g = _setup()
  eager = _grad_fn()(x, params, g)
  jitted = jax.jit(_grad_fn())(x, params, g)
  for a, b in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # vmap over a leading axis of independent problems.
  vm = jax.vmap(_grad_fn(), in_axes=(0, None, 0))(x[None], params, g[None])
  np.testing.assert_allclose(vm[0][0], eager[0], rtol=1e-5, atol=1e-6)
  # lax.scan: the bridge applied twice in a recurrence; compare with the unrolled loop.
  f = bridge.make_bridge(SIGNUM, _mlp)

  def scanned(x_):
    h, _ = jax.lax.scan(lambda h, _: (f(h * 2.0, params), None), x_, None, length=2)
    return jnp.sum(h * g)

  unrolled = lambda x_: jnp.sum(f(f(x_ * 2.0, params) * 2.0, params) * g)
  np.testing.assert_allclose(jax.grad(scanned)(x), jax.grad(unrolled)(x), rtol=1e-5, atol=1e-6)


def test_pmap_on_two_devices():
  assert jax.local_device_count() >= 2
  x, params, g = _setup(b=4)
  grad = _grad_fn()

  def per_device(x_, p, g_):
    gx, gp = grad(x_, p, g_)
    return gx, jax.lax.pmean(gp, "i")

  gx, gp = jax.pmap(per_device, axis_name="i", in_axes=(0, None, 0))(
      x.reshape(2, 2, -1), params, g.reshape(2, 2, -1))
  ref_x = jnp.concatenate([grad(x[:2], params, g[:2])[0], grad(x[2:], params, g[2:])[0]])
  np.testing.assert_allclose(gx.reshape(4, -1), ref_x, rtol=1e-5, atol=1e-6)
  ref_p = jax.tree.map(lambda a, b: (a + b) / 2, grad(x[:2], params, g[:2])[1],
                       grad(x[2:], params, g[2:])[1])
  for a, b in zip(jax.tree.leaves(gp), jax.tree.leaves(ref_p)):
    np.testing.assert_allclose(a[0], b, rtol=1e-5, atol=1e-6)


def test_haiku_model_gradients_split_between_task_and_penalty():
  """In a Haiku model: task loss -> no approximator grads; penalty -> no encoder grads."""
  x = jax.random.uniform(jax.random.key(0), (8, 5))
  model = hk.transform_with_state(
      lambda z: nets.sort_dense(5, hidden=(8, 8, 16), approx_hidden=(8,))(z, is_training=True))
  params, state = jax.jit(model.init)(jax.random.key(1), x)
  approx = [k for k in params if "approximator" in k]
  assert approx

  def part(p, which):
    out, _ = model.apply(p, state, None, x)
    return jnp.sum(out["output"] ** 2) if which == "task" else out["penalty"]

  grad = jax.jit(jax.grad(part), static_argnums=1)
  g_task = grad(params, "task")
  g_pen = grad(params, "penalty")
  for name, leaves in g_task.items():
    total = sum(float(jnp.abs(v).sum()) for v in leaves.values())
    assert (total == 0.0) == (name in approx), name
  for name, leaves in g_pen.items():
    total = sum(float(jnp.abs(v).sum()) for v in leaves.values())
    assert (total > 0.0) == (name in approx), name


# ---------------------------------------------------------------------------
# Hard functions on known inputs.


def test_signum_margin():
  x = jnp.array([[-1.0, -0.5, -0.2, 0.0, 0.5, 0.51]])
  np.testing.assert_array_equal(hard.signum(x, 0.5), [[-1, 0, 0, 0, 0, 1]])
  np.testing.assert_array_equal(hard.signum(x, 0.1), [[-1, -1, -1, 0, 1, 1]])
  with pytest.raises(ValueError, match="margin"):
    hard.signum(x, -1.0)


def test_binary_bernoulli():
  x = jnp.array([[1.0, 2.0, 3.0, 6.0], [0.0, 0.0, 0.0, 0.0]])
  np.testing.assert_array_equal(hard.binary(x), [[0, 0, 1, 1], [1, 1, 1, 1]])
  logits = jnp.array([[0.0, 0.0, 10.0, -10.0]])
  u = jnp.array([[0.4, 0.6, 0.99, 0.01]])
  np.testing.assert_array_equal(hard.bernoulli(logits, u), [[1, 0, 1, 0]])
  with pytest.raises(ValueError, match="noise shape"):
    hard.bernoulli(logits, u[:, :2])


def test_sorts_and_topk():
  x = jnp.array([[[3.0, 1.0], [0.0, 2.0]]])[..., None]  # [1, 2, 2, 1]
  y = hard.sort_rows_cols(x)
  assert y.shape == (1, 2, 2, 2)
  np.testing.assert_array_equal(y[0, :, :, 0], [[1, 3], [0, 2]])  # rows sorted
  np.testing.assert_array_equal(y[0, :, :, 1], [[0, 1], [3, 2]])  # columns sorted
  np.testing.assert_array_equal(hard.sort_1d(x)[0, ..., 0], [[0, 1], [2, 3]])
  np.testing.assert_array_equal(hard.topk(jnp.array([[4.0, 1.0, 9.0, 2.0]]), 2), [[9, 4]])
  assert hard.topk(x, 3).shape == (1, 3)
  np.testing.assert_array_equal(hard.topk(x, 3), [[3, 3, 2]])
  with pytest.raises(ValueError, match="exceeds"):
    hard.topk(jnp.zeros((1, 3)), 4)
  with pytest.raises(ValueError, match="feature maps"):
    hard.sort_rows_cols(jnp.zeros((2, 3)))


def test_kmeans_recovers_clusters():
  x = jnp.array([[0.0, 0.1, 5.0, 5.2, 10.0, 9.9]])
  v = jax.jit(functools.partial(hard.kmeans, k=3, iterations=5))(x)
  np.testing.assert_allclose(v, [[0.05, 0.05, 5.1, 5.1, 9.95, 9.95]], rtol=1e-5)
  a = hard.kmeans(x, k=3, iterations=5, output="assignments")
  assert a[0, 0] == a[0, 1] != a[0, 2] == a[0, 3] != a[0, 4] == a[0, 5]
  maps = jnp.concatenate([jnp.zeros((1, 2, 2, 2)), jnp.ones((1, 2, 2, 2))], axis=1)
  np.testing.assert_allclose(hard.kmeans(maps, k=2, iterations=3), maps)
  with pytest.raises(ValueError, match="exceeds"):
    hard.kmeans(x, k=7)


def test_get_hard_fn_rejects_unknown():
  with pytest.raises(ValueError, match="unknown hard function"):
    hard.get_hard_fn("median")


def test_approximator_losses():
  p = jnp.array([[1.0, 2.0]])
  t = jnp.array([[0.0, 4.0]])
  np.testing.assert_allclose(bridge.approximator_loss(p, t, "l2"), [5.0])
  np.testing.assert_allclose(bridge.approximator_loss(p, t, "l1"), [3.0])
  np.testing.assert_allclose(bridge.approximator_loss(p, t, "huber"), [0.5 + 1.5])
  np.testing.assert_allclose(bridge.approximator_loss(t, 2 * t, "cosine"), [0.0], atol=1e-6)
  with pytest.raises(ValueError, match="unknown approximator loss"):
    bridge.approximator_loss(p, t, "kl")


def test_hard_layer_ste_refuses_sort_and_dab_accepts_it():
  x = jnp.ones((2, 2, 2, 3))
  ste = hk.transform(lambda z: nets.hard_layer(z, "sort", gradient="ste"))
  with pytest.raises(ValueError, match="straight-through"):
    ste.init(jax.random.key(0), x)
  dab_layer = hk.transform(lambda z: nets.hard_layer(z, "sort", approximator="per_element",
                                                     approx_hidden=(4,)))
  params = dab_layer.init(jax.random.key(0), x)
  y, penalty = dab_layer.apply(params, None, x)
  assert y.shape == (2, 2, 2, 6) and float(penalty) > 0


def test_per_element_approximator_checks_positions():
  with pytest.raises(ValueError, match="keeps positions"):
    nets.approximator_fn("per_element", (4,), (2,))
  with pytest.raises(ValueError, match="unknown approximator"):
    nets.approximator_fn("conv", (4,), (4,))


# ---------------------------------------------------------------------------
# Metrics and data.


def test_ms_ssim():
  x = jax.random.uniform(jax.random.key(0), (2, 28, 28, 1))
  noisy = jnp.clip(x + 0.3 * jax.random.normal(jax.random.key(1), x.shape), 0, 1)
  ms = jax.jit(jax.vmap(metrics.ms_ssim, in_axes=(None, 0)))(x, jnp.stack([x, noisy, 0.5 * x + 0.5 * noisy]))
  np.testing.assert_allclose(ms[0], [1.0, 1.0], rtol=1e-5)
  assert bool(jnp.all(ms[1] < 0.9)) and bool(jnp.all(ms[1] >= 0))
  assert bool(jnp.all(ms[2] > ms[1]))


def test_emd_1d():
  emd = jax.jit(metrics.emd_1d)
  np.testing.assert_allclose(emd(jnp.array([[0.0, 1.0]]), jnp.array([[0.5, 0.5]])), [0.5])
  # Different sizes: {0, 1} vs {0, 0, 1, 1} are the same distribution.
  np.testing.assert_allclose(emd(jnp.array([[0.0, 1.0]]), jnp.array([[1.0, 0, 0, 1]])), [0.0])
  np.testing.assert_allclose(emd(jnp.array([[0.0]]), jnp.array([[1.0, 3.0]])), [2.0])


def test_linear_probe():
  rng = np.random.default_rng(0)
  y = rng.integers(0, 3, 300)
  z = np.eye(3)[y] * 2 + 0.1 * rng.normal(size=(300, 3))
  assert float(metrics.linear_probe_accuracy(z[:200], y[:200], z[200:], y[200:], 3)) == 1.0
  noise = rng.normal(size=(300, 3))
  assert float(metrics.linear_probe_accuracy(noise[:200], y[:200], noise[200:], y[200:], 3)) < 0.6


def test_sort_data():
  b = data.sort_sequences(np.random.default_rng(0), 16, "train", seq_len=7)
  assert b["inputs"].shape == (16, 7) and b["labels"].dtype == np.int32
  srt = np.take_along_axis(b["inputs"], b["labels"], axis=1)
  assert np.all(np.diff(srt, axis=1) > 0)
  with pytest.raises(ValueError, match="seq_len"):
    data.sort_sequences(np.random.default_rng(0), 4, seq_len=1)


def _sort_params(init, **kw):
  fwd = nets.sort_dense(seq_len=10, hidden=(128, 256, 256), approx_hidden=(256,), init=init, **kw)
  f = hk.transform(lambda x: fwd(x, is_training=True))
  return f.init(jax.random.key(0), jnp.zeros((2, 10)))


def test_pytorch_init_matches_torch_linear_default_and_haiku_is_1_5x_wider():
  """PyTorch: w, b ~ U(+-1/sqrt(fan_in)), std 1/sqrt(3 fan_in); Haiku: truncated normal
  (std 0.88/sqrt(fan_in)), zero bias. Every linear layer, the approximator's included."""
  torch_params, haiku_params = _sort_params("pytorch"), _sort_params("haiku")
  layers = [m for m in torch_params if "w" in torch_params[m]]
  assert any("approximator" in m for m in layers) and any("logits" in m for m in layers)
  for module in layers:
    w, b = np.asarray(torch_params[module]["w"]), np.asarray(torch_params[module]["b"])
    bound = 1 / np.sqrt(w.shape[0])
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert np.abs(b).max() > 0.5 * bound  # nonzero, spread over the interval
    if w.size >= 256 * 128:  # enough entries for a 2% check of the std
      assert abs(w.std() * np.sqrt(3 * w.shape[0]) - 1) < 0.02
      w_haiku = np.asarray(haiku_params[module]["w"])
      assert abs(w_haiku.std() * np.sqrt(w.shape[0]) - 0.8796) < 0.02
      assert 1.45 < w_haiku.std() / w.std() < 1.6
    assert not np.asarray(haiku_params[module]["b"]).any()


def test_unknown_init_is_refused():
  with pytest.raises(ValueError, match="model.init 'xavier'.*haiku.*pytorch"):
    _sort_params("xavier")
  with pytest.raises(ValueError, match="arch='dense' only"):
    nets.sort_model("lstm", seq_len=4, init="pytorch")
