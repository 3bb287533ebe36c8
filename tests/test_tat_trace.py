"""tat.trace: kernel maps derived from an ordinary Haiku network's jaxpr."""

import functools

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tat import arch as tat_arch
from tat import figures
from tat import kernels
from tat import models
from tat import solver
from tat import trace


def _haiku_net(arch, norm=None):
  def net(x, act):
    return arch(tat_arch.HaikuOps(act, norm_kind=norm), x)
  return net


SMALL = dict(channels=(4,) * 4, stem_channels=4)
_slow = pytest.mark.slow
ARCHS = [
    ("mlp", dict(depth=6, width=8, num_classes=3), None, (2, 5)),
    ("convnet", dict(depth=5, width=4, num_classes=3, downsample_every=2), None, (2, 8, 8, 3)),
    ("wide_resnet", dict(depth=10, num_classes=3, widening_factor=1), None, (2, 8, 8, 3)),
    ("wide_resnet", dict(depth=16, num_classes=3, widening_factor=1, shortcut_weight=0.6),
     "layer", (2, 8, 8, 3)),
] + [
    pytest.param("resnet_v2", dict(depth=depth, num_classes=3, shortcut_weight=w, **SMALL), norm,
                 (2, 16, 16, 3), id=f"resnet_v2-{depth}-{variant}",
                 marks=() if depth in (18, 50) else _slow)
    for depth in (18, 34, 50, 101, 152, 200)
    for variant, w, norm in (("standard", None, "batch"), ("rescaled", 0.8, None),
                             ("vanilla", 0.0, None))
]


@pytest.mark.parametrize("name, kwargs, norm, shape", ARCHS)
def test_traced_maps_and_solutions_equal_kernel_ops(name, kwargs, norm, shape):
  arch = tat_arch.get_architecture(name, **kwargs)
  traced = trace.from_haiku(_haiku_net(arch, norm), np.zeros(shape, np.float32))
  assert traced.num_nonlinear_layers == tat_arch.count_nonlinear_layers(arch)
  cs = np.linspace(-1.0, 1.0, 41)
  for a in (0.0, 0.4):
    c_fn = functools.partial(kernels.leaky_relu_c_map, negative_slope=a)
    np.testing.assert_allclose(tat_arch.global_map(traced, cs, c_fn),
                               tat_arch.global_map(arch, cs, c_fn), rtol=0, atol=1e-9)
    np.testing.assert_allclose(tat_arch.subnet_max(traced, cs, c_fn),
                               tat_arch.subnet_max(arch, cs, c_fn), rtol=0, atol=1e-9)
  assert solver.max_curvature(traced, 1.0) == pytest.approx(solver.max_curvature(arch, 1.0),
                                                            abs=1e-9)
  assert solver.max_slope(traced, 1.3) == pytest.approx(solver.max_slope(arch, 1.3), rel=1e-12)
  for activation, method in (("softplus", "tat"), ("tanh", "dks"), ("leaky_relu", "tat")):
    try:
      want = solver.get_spec(arch, activation, method, eta=0.6)
    except ValueError as e:  # e.g. eta unreachable: the traced route must say the same
      with pytest.raises(ValueError, match=str(e)[:30]):
        solver.get_spec(traced, activation, method, eta=0.6)
      continue
    got = solver.get_spec(traced, activation, method, eta=0.6)
    for k, v in want.params.items():
      assert got.params[k] == pytest.approx(v, abs=1e-6), (activation, method, k)


def test_issue_example_and_plain_haiku_twin_match_arch():
  """solve_tat_smooth(trace.from_haiku(net, x), ...) on the plain ResNet = on tat.arch."""
  kw = dict(depth=18, num_classes=3, shortcut_weight=0.8, channels=(4, 4, 4, 4), stem_channels=4,
            small_inputs=True)
  net = functools.partial(models.plain_resnet_v2, is_training=True, **kw)
  spec = solver.solve_tat_smooth(trace.from_haiku(net, np.zeros((2, 8, 8, 1))), "softplus",
                                 tau=0.3)
  want = solver.solve_tat_smooth(tat_arch.get_architecture("resnet_v2", **kw), "softplus", tau=0.3)
  for k, v in want.params.items():
    assert spec.params[k] == pytest.approx(v, abs=1e-9)


def test_traced_model_builds_like_its_arch_twin():
  kw = dict(depth=18, num_classes=3, variant="rescaled", shortcut_weight=0.8, small_inputs=True,
            stem_channels=4, channels=(4, 8, 8, 8), activation="leaky_relu", eta=0.8,
            init="gaussian")
  traced = models.MODELS["traced_resnet_v2"](trace_input_shape=(8, 8, 1), **kw)
  twin = models.MODELS["resnet_v2"](**kw)
  assert traced.spec.params == pytest.approx(twin.spec.params, abs=1e-12)
  net = hk.transform_with_state(lambda x: traced(x, is_training=True))
  x = jnp.ones((2, 8, 8, 1))
  params, state = jax.eval_shape(net.init, jax.random.PRNGKey(0), x)
  out, _ = jax.eval_shape(net.apply, params, state, None, x)  # (compiling it takes a minute)
  assert out.shape == (2, 3)
  twin_net = hk.transform_with_state(lambda x: twin(x, is_training=True))
  twin_params, _ = jax.eval_shape(twin_net.init, jax.random.PRNGKey(0), x)
  assert jax.tree.map(jnp.shape, twin_params) == jax.tree.map(jnp.shape, params)


def test_weights_concatenation_and_pooling_follow_the_kernel_rules():
  """a x + b f(x): one weighted sum; concat of d1 and d2 features: w_i^2 = d_i / (d1 + d2)."""
  c_fn = functools.partial(kernels.leaky_relu_c_map, negative_slope=0.2)

  def weighted(x, act):
    h = hk.Linear(6)(x)
    return 0.3 * h - 0.7 * hk.Linear(6)(act(h)) + 0.1 * act(h)

  got = tat_arch.global_map(trace.from_haiku(weighted, np.zeros((2, 4))), 0.2, c_fn)
  want = (0.09 * 0.2 + 0.49 * c_fn(0.2) + 0.01 * c_fn(0.2)) / 0.59
  assert got == pytest.approx(want, abs=1e-12)

  def concat(x, act):
    h = hk.Conv2D(4, 3)(x)
    u = hk.Conv2D(2, 3)(act(h))
    v = hk.Conv2D(6, 1)(act(hk.Conv2D(5, 1)(act(h))))
    y = hk.avg_pool(jnp.concatenate([u, v], -1), (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    return hk.Linear(3)(hk.max_pool(y, (1, 2, 2, 1), (1, 1, 1, 1), "SAME").reshape(2, -1))

  got = tat_arch.global_map(trace.from_haiku(concat, np.zeros((2, 4, 4, 3))), 0.2, c_fn)
  assert got == pytest.approx((2 * c_fn(0.2) + 6 * c_fn(c_fn(0.2))) / 8, abs=1e-12)
  # Every merging branch enters the subnetwork maximizing function (appendix B).
  traced = trace.from_haiku(concat, np.zeros((2, 4, 4, 3)))
  assert tat_arch.subnet_max(traced, 0.0, lambda y: y + 1.0) == pytest.approx(2.0)


def test_qc_map_uses_each_layers_weight_variance():
  arch = tat_arch.get_architecture("mlp", depth=2, width=16, num_classes=16)
  traced = trace.from_haiku(
      lambda x, act: arch(tat_arch.HaikuOps(act, sigma_w=1.3), x), np.zeros((2, 16)))
  q_fn = lambda q: 0.5 * q
  c_fn = lambda c, q: kernels.relu_c_map(c)
  want = tat_arch.KernelOps.run(tat_arch.qc_ops(q_fn, c_fn, sigma_w=1.3), arch,
                                tat_arch.QC(1.0, 0.3))
  q, c = traced.qc_map(q_fn, c_fn, 1.0, 0.3)
  assert q == pytest.approx(want.v.q, rel=1e-5) and c == pytest.approx(want.v.c, abs=1e-12)


def _refused(net, shape=(2, 12)):
  with pytest.raises(trace.TraceError) as info:
    trace.from_haiku(net, np.zeros(shape))
  return str(info.value)


def test_unmappable_operations_are_refused_with_their_location():
  def max_over_channels(x, act):
    h = act(hk.Linear(8)(x))
    return hk.Linear(3)(jnp.max(h, axis=-1, keepdims=True))

  def softmax(x, act):
    return hk.Linear(3)(jax.nn.softmax(act(hk.Linear(8)(x))))

  def gather(x, act):
    h = act(hk.Linear(8)(x))
    return jnp.take_along_axis(h, jnp.argmax(h, axis=-1)[:, None], axis=-1)

  def inline_relu(x, act):
    return hk.Linear(3)(jax.nn.relu(hk.Linear(8)(x)))

  def attention(x, act):
    x = x.reshape(2, 3, 4)
    return act(hk.MultiHeadAttention(2, 4, w_init=hk.initializers.VarianceScaling())(x, x, x))

  def mixes_batch(x, act):
    return act(hk.Linear(8)(x)).T

  for net, what in ((max_over_channels, "reduce_max over the feature axis"),
                    (softmax, "exp"), (gather, "gather"), (inline_relu, "max (in relu"),
                    (attention, "dot_general of two data-dependent tensors"),
                    (mixes_batch, "transpose that moves or mixes the batch axis")):
    msg = _refused(net)
    assert what in msg and "test_tat_trace.py:" in msg and net.__name__ in msg, msg
  assert "module 'multi_head_attention" in _refused(attention)


def test_unused_statistics_and_state_updates_are_not_refused():
  def net(x, act):
    h = act(hk.Linear(8)(x))
    del_me = jnp.max(h, axis=-1)  # dead code: never reaches the output
    del del_me
    h = hk.BatchNorm(True, True, 0.9)(h, is_training=True)  # updates its moving averages
    return hk.Linear(3)(act(h))

  traced = trace.from_haiku(net, np.zeros((2, 5)))
  assert traced.summary()["norm"] == 1 and traced.num_nonlinear_layers == 2


def test_bad_input_is_a_clear_error():
  with pytest.raises(ValueError, match="batch axis"):
    trace.from_haiku(lambda x, act: act(x), np.float32(1.0))
  with pytest.raises(trace.TraceError, match="does not depend"):
    trace.from_haiku(lambda x, act: hk.get_parameter("b", [3], init=jnp.zeros), np.zeros((2, 3)))


def test_plain_haiku_net_c_map_matches_wide_random_networks():
  """Traced C map within 0.02 of width-1024 networks at 5 depths (the MLP here).

  Several initializations are needed: a random readout shifts one network's
  output cosines by about 0.01 for every input pair alike.
  """
  rows = figures.traced_vs_empirical("mlp", 0.1, c0=0.0, pairs=4, nets=8)
  assert [r[0] for r in rows] == list(figures.TRACE_DEPTHS)
  for depth, pred, emp, _ in rows:
    assert abs(pred - emp) < 0.02, (depth, pred, emp)
  assert rows[-1][1] - rows[0][1] > 0.1  # the map moves with depth: the check is not trivial


@pytest.mark.slow
@pytest.mark.parametrize("name", list(figures.PLAIN_NETS))
@pytest.mark.parametrize("c0", [0.0, 0.6])
def test_plain_haiku_nets_c_maps_match_wide_random_networks(name, c0):
  for depth, pred, emp, _ in figures.traced_vs_empirical(name, 0.1, c0=c0, pairs=8, nets=8):
    assert abs(pred - emp) < 0.02, (name, c0, depth, pred, emp)


def test_bench_runs_and_agrees():
  rows = trace.bench(("mlp-5",), ("softplus",), repeats=1)
  assert rows[0]["max_param_diff"] < 1e-9 and rows[0]["trace_s"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["quick", "quick,arch"])
def test_traced_resnet_config_builds_and_steps(variant):
  from experiments import testing
  summary = testing.build_and_step(f"configs/tat/mnist_traced_resnet.py:{variant}", steps=2)
  assert 0.0 <= summary["final"]["test_accuracy"] <= 1.0
