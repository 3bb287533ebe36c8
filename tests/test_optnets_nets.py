"""optnets structures: algorithm forms, relaxed forms, and the table-3 special cases."""

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from optnets import kernels, models, nets

DIM, DEPTH = 6, 5


def _fc(structure, shared=True, **kw):
  f = hk.transform(lambda x: nets.fc_structure(x, structure=structure, depth=DEPTH,
                                               shared=shared, **kw))
  x = jnp.asarray(np.random.default_rng(0).standard_normal((3, DIM)), jnp.float32)
  params = f.init(jax.random.PRNGKey(1), x)
  return f, params, x


def _manual(params, x, rule):
  w = params["w"]["w"]
  t = lambda v: jax.nn.sigmoid(v @ w)
  return rule(t, x)


def test_gd_hb_agd_match_their_iterations():
  nb = np.asarray(kernels.nesterov_betas(DEPTH))

  def gd(t, x):
    for _ in range(DEPTH):
      x = t(x)
    return x

  def hb(t, x, beta=0.3):
    xp = x
    for _ in range(DEPTH):
      xp, x = x, t(x) + beta * (x - xp)
    return x

  def agd(t, x):
    xp = x
    for k in range(DEPTH):
      xp, x = x, t(x + nb[k] * (x - xp))
    return x

  for name, rule in [("gd", gd), ("hb", hb), ("agd", agd)]:
    f, p, x = _fc(name)
    np.testing.assert_allclose(f.apply(p, None, x), _manual(p, x, rule), rtol=1e-5, atol=1e-6)


def test_agd2_is_agd_in_y_coordinates():
  """(13) iterates the y_k of (3): y_depth = x_depth + beta_depth (x_depth - x_{depth-1})."""
  nb = np.asarray(kernels.nesterov_betas(DEPTH))
  f, p, x = _fc("agd2")

  def agd_y(t, x):
    xp = x
    for k in range(DEPTH):
      xp, x = x, t(x + nb[k] * (x - xp))
    return x + nb[DEPTH] * (x - xp)

  np.testing.assert_allclose(f.apply(p, None, x), _manual(p, x, agd_y), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("start", nets.ADMM_STARTS)
def test_admm_matches_eq14(start):
  f, p, x = _fc("admm", admm_start=start)

  def admm(t, x):
    xps, xs = [x if start == "input" else jnp.zeros_like(x)], [x]
    for k in range(DEPTH):
      lam = sum((xps[i] - xs[i] for i in range(1, k + 1)), jnp.zeros_like(x))
      xp = 0.5 * (t(xps[k]) + xs[k] - lam)
      xn = 0.5 * (t(xs[k]) + xp + lam)
      xps.append(xp)
      xs.append(xn)
    return xs[-1]

  np.testing.assert_allclose(f.apply(p, None, x), _manual(p, x, admm), rtol=1e-5, atol=1e-6)


def test_admm_start_is_forgotten_with_depth():
  """x'_0 (not given by the paper) changes a shallow ADMM net's output, not a deep one's."""
  x = jnp.asarray(np.random.default_rng(0).standard_normal((50, 100)), jnp.float32)

  def gap(depth):
    outs = []
    for start in nets.ADMM_STARTS:
      f = hk.transform(lambda v: nets.fc_structure(v, structure="admm", depth=depth,
                                                   admm_start=start))
      outs.append(f.apply(f.init(jax.random.PRNGKey(0), x), None, x))
    return float(jnp.max(jnp.abs(outs[0] - outs[1])))

  assert gap(1) > 0.05 and gap(10) > 1e-5
  assert gap(20) < 1e-5
  with pytest.raises(ValueError, match="admm_start"):
    nets.fc_structure(x, structure="admm", depth=2, admm_start="ones")


@pytest.mark.parametrize("exact,relaxed", [("hb", "hb_relaxed"), ("agd", "agd_relaxed"),
                                           ("agd2", "agd2_relaxed")])
def test_relaxed_forms_with_algorithm_coefficients(exact, relaxed):
  f, p, x = _fc(exact, shared=False)
  for mode in ("algorithm", "learned"):
    g = hk.transform(lambda v: nets.fc_structure(v, structure=relaxed, depth=DEPTH,
                                                 coefficients=mode))
    pr = g.init(jax.random.PRNGKey(1), x)
    np.testing.assert_allclose(g.apply(pr, None, x), f.apply(p, None, x), rtol=1e-5, atol=1e-6)
    n_coef = sum(v.size for k, d in pr.items() if k != "layers" for v in d.values())
    assert (n_coef > 0) == (mode == "learned")


def test_relaxed_constants_and_errors():
  f, p, x = _fc("gd", shared=False)
  g = hk.transform(lambda v: nets.fc_structure(v, structure="hb_relaxed", depth=DEPTH,
                                               coefficients="constant", beta1=0.0, beta2=0.0))
  np.testing.assert_allclose(g.apply(p, None, x), f.apply(p, None, x), rtol=1e-6)
  with pytest.raises(ValueError, match="structure"):
    nets.fc_structure(x, structure="nag", depth=2)
  with pytest.raises(ValueError, match="admm_relaxed"):
    hk.transform(lambda v: nets.fc_structure(v, structure="admm_relaxed", depth=2,
                                             coefficients="algorithm")).init(None, x)


def _init_apply(fn, inputs, params=None, state=None):
  f = hk.transform_with_state(fn)
  if params is None:
    params, state = f.init(jax.random.PRNGKey(0), inputs)
  out, _ = f.apply(params, state, None, inputs)
  return out, params, state


IMG = jnp.asarray(np.random.default_rng(3).standard_normal((4, 8, 8, 3)), jnp.float32)


def _resnet_reference(images, is_training=True):
  """ResNet written directly: x_{k+1} = relu(T(x_k) + shortcut(x_k))."""
  x = jax.nn.relu(nets._bn("stem_bn")(nets._conv(4, 3, name="stem_conv")(images), is_training))
  layer = 0
  for s, ch in enumerate((4, 8, 16)):
    stride = 2 if s else 1
    with hk.experimental.name_scope(f"layer_{layer}"):
      t = nets.BasicT(ch, stride, name="t")(x, is_training)
    sc = x[:, ::stride, ::stride, :]
    pad = ch - sc.shape[-1]
    sc = jnp.pad(sc, ((0, 0), (0, 0), (0, 0), (pad // 2, pad - pad // 2)))
    x = jax.nn.relu(t + sc)
    layer += 1
  return nets._head(x, 5)


def _hb(beta2, coefficients="constant"):
  return lambda im: nets.hb_net(im, True, stage_blocks=(1, 1, 1), stage_channels=(4, 8, 16),
                                num_classes=5, beta2=beta2, coefficients=coefficients)


def test_hb_with_beta2_zero_is_resnet():
  ref, params, state = _init_apply(_resnet_reference, IMG)
  out, _, _ = _init_apply(_hb(0.0), IMG, params, state)
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
  hb_out, _, _ = _init_apply(_hb(-1.0), IMG, params, state)
  assert np.abs(hb_out - ref).max() > 1e-3  # the momentum path really changes the output
  # learned coefficients: extra scalars per layer, same output at initialisation.
  lo, lp, _ = _init_apply(_hb(-1.0, "learned"), IMG)
  assert "layer_1" in lp and set(lp["layer_1"]) == {"beta1", "beta2"}


def _densenet_params_to_agd(p_dense, s_dense, zs_channels):
  """Splits each concat-layer's BN and conv kernel into per-part (z_j) pieces."""
  p_agd, s_agd = {}, {}
  for name, d in p_dense.items():
    if "/t/bn1" in name or "/t/conv1" in name:
      layer_scope = name.split("/t/")[0]
      b, k = layer_scope.replace("block", "").split("_layer")
      chans = zs_channels[int(b)][:int(k) + 1]
      cuts = np.cumsum(chans)[:-1]
      for leaf, v in d.items():
        axis = 2 if leaf == "w" else 3
        for j, piece in enumerate(np.split(np.asarray(v), cuts, axis=axis)):
          p_agd.setdefault(name.replace("bn1", f"bn1_{j}").replace("conv1", f"conv1_{j}"),
                           {})[leaf] = jnp.asarray(piece)
    else:
      p_agd[name] = d
  for name, d in s_dense.items():
    if "/t/bn1" in name:
      layer_scope = name.split("/t/")[0]
      b, k = layer_scope.replace("block", "").split("_layer")
      chans = zs_channels[int(b)][:int(k) + 1]
      cuts = np.cumsum(chans)[:-1]
      for leaf, v in d.items():
        parts = np.split(np.asarray(v), cuts, axis=3) if np.ndim(v) == 4 else [v] * len(chans)
        for j, piece in enumerate(parts):
          s_agd.setdefault(name.replace("bn1", f"bn1_{j}"), {})[leaf] = jnp.asarray(piece)
    else:
      s_agd[name] = d
  return p_agd, s_agd


@pytest.mark.parametrize("bottleneck", [False, True])
def test_agd_with_alpha1_beta0_is_densenet(bottleneck):
  g, layers, stem = 3, (2, 3), 5
  kw = dict(block_layers=layers, growth=g, num_classes=5, bottleneck=bottleneck,
            compression=0.5, stem_channels=stem)
  dense = lambda im: nets.agd_net(im, True, combine="concat", beta=0.0, **kw)
  agd = lambda im, beta=0.0: nets.agd_net(im, True, combine="sum", beta=beta,
                                          alpha_mode="constant", **kw)
  ref, pd, sd = _init_apply(dense, IMG)
  c1 = int(np.floor((stem + layers[0] * g) * 0.5))
  zs_channels = [[stem] + [g] * layers[0], [c1] + [g] * layers[1]]
  pa, sa = _densenet_params_to_agd(pd, sd, zs_channels)
  out, _, _ = _init_apply(agd, IMG, pa, sa)
  np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
  out_b, _, _ = _init_apply(lambda im: agd(im, beta=0.1), IMG, pa, sa)
  assert np.abs(out_b - ref).max() > 1e-4  # AGD-Net's beta term is live


def _dmrnet_reference(images, is_training=True):
  """DMRNet written directly: x'_{k+1} = relu(T'(x'_k) + x'_k/2 + x_k/2), same for x."""
  x = jax.nn.relu(nets._bn("stem_bn")(nets._conv(4, 3, name="stem_conv")(images), is_training))
  xp = x
  for s, ch in enumerate((4, 8, 16)):
    stride = 2 if s else 1
    with hk.experimental.name_scope(f"layer_{s}"):
      tp = nets.BasicT(ch, stride, name="t_prime")(xp, is_training)
      tx = nets.BasicT(ch, stride, name="t")(x, is_training)
    sc = lambda v: jnp.pad(v[:, ::stride, ::stride, :],
                           ((0, 0), (0, 0), (0, 0), ((ch - v.shape[-1]) // 2,
                                                     ch - v.shape[-1] - (ch - v.shape[-1]) // 2)))
    mix = 0.5 * sc(xp) + 0.5 * sc(x)
    xp, x = jax.nn.relu(tp + mix), jax.nn.relu(tx + mix)
  return nets._head(0.5 * (x + xp), 5)


def test_admm_with_half_is_dmrnet():
  ref, params, state = _init_apply(_dmrnet_reference, IMG)
  admm = lambda im, a=0.5: nets.admm_net(im, True, stage_blocks=(1, 1, 1),
                                         stage_channels=(4, 8, 16), num_classes=5,
                                         alpha=a, beta=a)
  out, _, _ = _init_apply(admm, IMG, params, state)
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
  other, _, _ = _init_apply(lambda im: admm(im, 0.3), IMG, params, state)
  assert np.abs(other - ref).max() > 1e-4


def test_model_registry_and_errors():
  assert set(models.MODELS) >= {"fc", "hb_net", "resnet", "agd_net", "densenet", "dmrnet"}
  with pytest.raises(ValueError, match="depth"):
    models.MODELS["densenet"](depth=41)
  with pytest.raises(ValueError, match="variant"):
    models.MODELS["resnet"](variant="imagenet50")
  with pytest.raises(ValueError, match="structure"):
    models.MODELS["fc"](structure="sgd")


def test_scan_structures_equal_unrolled_eqs_13_14_at_depth_40():
  """The scanned agd2 (eq. 5 recurrence) and admm equal (13)/(14) written out layer by layer,
  with per-layer W_k, in value and in gradient."""
  depth, dim = 40, 8
  x = jnp.asarray(np.random.default_rng(0).standard_normal((4, dim)), jnp.float32)
  h = np.asarray(kernels.agd_h(depth))
  ws = jnp.asarray(np.random.default_rng(1).standard_normal((depth, dim, dim)) * 0.5, jnp.float32)
  t = lambda v, k, w: jax.nn.sigmoid(v @ w[k])

  def agd2(w):  # eq. (13), explicit h-sums
    xs, ts = [x], []
    for k in range(depth):
      ts.append(t(xs[k], k, w))
      xs.append(sum(h[k + 1, j] * (ts[j] - xs[j]) for j in range(k + 1)) + xs[k])
    return xs[-1]

  def admm(w):  # eq. (14), explicit multiplier sums
    xps, xs = [x], [x]
    for k in range(depth):
      lam = sum((xps[i] - xs[i] for i in range(1, k + 1)), jnp.zeros_like(x))
      xps.append(0.5 * (t(xps[k], k, w) + xs[k] - lam))
      xs.append(0.5 * (t(xs[k], k, w) + xps[-1] + lam))
    return xs[-1]

  for name, ref in [("agd2", agd2), ("admm", admm)]:
    f = hk.transform(lambda v: nets.fc_structure(v, structure=name, depth=depth))
    p = {"layers": {"w": ws}}
    np.testing.assert_allclose(f.apply(p, None, x), ref(ws), rtol=1e-5, atol=1e-5)
    g_new = jax.grad(lambda w: jnp.sum(f.apply({"layers": {"w": w}}, None, x) ** 2))(ws)
    g_ref = jax.grad(lambda w: jnp.sum(ref(w) ** 2))(ws)
    np.testing.assert_allclose(g_new, g_ref, rtol=1e-4, atol=1e-5 * float(jnp.abs(g_ref).max()))
