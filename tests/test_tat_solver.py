"""tat solvers vs dks.base reference numbers, error messages and the CLI.

Reference values were produced with dks 0.1.2 (`dks.base.activation_transform.
_get_activations_params(names, method, dks_params/tat_params,
subnet_max_func=F)`) on this machine, where F is
  * MLP of depth L:  f(x, r) = r applied L times to x;
  * ResNet v2 (depth 50/101, shortcut weight w): the paper's appendix F.1
    global_cmap_fn with r in place of the local C map (projection shortcut
    r(c) in the first block of each group, final r), and for w != 0 the
    maximum with the residual branch r(r(r(x))) as in dks's example ResNet.
"""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from tat import arch as tat_arch
from tat import kernels
from tat import solve as tat_solve
from tat import solver

DKS_REFERENCE = {
    # (architecture, kwargs, activation, method, target): dks params
    ("mlp", 20, None, "leaky_relu", "tat", 0.9): {
        "negative_slope": 0.1813802719116211, "output_scale": 1.3915092920492702},
    ("mlp", 20, None, "softplus", "tat", 0.3): {
        "input_scale": 0.34112733218855534, "input_shift": 0.5476787531947147,
        "output_shift": -0.9986475297271453, "output_scale": 4.617027770474954},
    ("mlp", 20, None, "swish", "tat", 0.3): {
        "input_scale": 0.19693590283974574, "input_shift": 0.44879116161392646,
        "output_shift": -0.2703798198193453, "output_scale": 7.065864347678912},
    ("mlp", 20, None, "softplus", "dks", 1.5): {
        "input_scale": 0.5367370696662791, "input_shift": 0.4140100016591113,
        "output_shift": -0.9549253690167574, "output_scale": 3.0949791854064075},
    ("mlp", 20, None, "leaky_relu", "dks", 1.5): {
        "negative_slope": 0.6943150153128794, "input_shift": -1.9613891404420293e-12,
        "output_shift": -0.12195066537704238, "output_scale": 1.17349821055123},
    ("mlp", 100, None, "tanh", "dks", 10.0): {
        "input_scale": 0.21973831517766695, "input_shift": 0.6091297616022064,
        "output_shift": -0.5259707023127992, "output_scale": 6.43323757991112},
    ("resnet_v2", 101, 0.0, "leaky_relu", "tat", 0.9): {
        "negative_slope": 0.5704395323991776, "output_scale": 1.2284042441106242},
    ("resnet_v2", 50, 0.8, "leaky_relu", "tat", 0.9): {
        "negative_slope": 0.15410053730010986, "output_scale": 1.3977151802242178},
    ("resnet_v2", 50, 0.8, "softplus", "tat", 0.3): {
        "input_scale": 0.3338003931493431, "input_shift": 0.5471710256133182,
        "output_shift": -0.9985450136932399, "output_scale": 4.719628560870457},
    # TAT (tau 0.3) on MLPs, dks 0.1.2 get_transformed_activations (`python -m tat.bench`).
    ("mlp", 10, None, "tanh", "tat", 0.3): {  # the root with a negative input shift
        "input_scale": 0.18463840373808432, "input_shift": -0.557366582720163,
        "output_shift": 0.5105445077049406, "output_scale": 7.234956476484034},
    ("mlp", 10, None, "sigmoid", "tat", 0.3): {  # every root has a*g >= 2: dks's fallback
        "input_scale": 0.3692768074845688, "input_shift": -1.1147331655438435,
        "output_shift": -0.24472774613147197, "output_scale": 14.46991295339356},
    ("mlp", 10, None, "erf", "tat", 0.3): {
        "input_scale": 0.1623121949282666, "input_shift": -0.5645539862358487,
        "output_shift": 0.5798595172043387, "output_scale": 7.469551898706992},
    ("mlp", 50, None, "gelu", "tat", 0.3): {
        "input_scale": 0.08165973825976378, "input_shift": 0.3259648522288233,
        "output_shift": -0.20364915938165729, "output_scale": 16.290841366399203},
    ("mlp", 50, None, "sigmoid", "tat", 0.3): {  # a negative input scale
        "input_scale": -0.1633104698761885, "input_shift": -1.051697889519315,
        "output_shift": -0.25840552251390725, "output_scale": 31.883267371308403},
    ("mlp", 50, None, "erf", "tat", 0.3): {
        "input_scale": 0.07178785624102557, "input_shift": 0.5458282520251203,
        "output_shift": -0.5607899001881548, "output_scale": 16.614400875151254},
    ("mlp", 100, None, "tanh", "tat", 0.3): {
        "input_scale": 0.05764083499196705, "input_shift": 0.521810657606351,
        "output_shift": -0.4795954872851225, "output_scale": 22.50694667106781},
    ("mlp", 100, None, "sigmoid", "tat", 0.3): {
        "input_scale": -0.11528166968842607, "input_shift": -1.0436213140900392,
        "output_shift": -0.2602022566093652, "output_scale": 45.01389343640956},
    ("mlp", 100, None, "erf", "tat", 0.3): {
        "input_scale": 0.05068321361443059, "input_shift": -0.5435090645259414,
        "output_shift": 0.5583715924699076, "output_scale": 23.484288687181188},
}


def _spec_for(key):
  name, depth, w, act, method, target = key
  arch = tat_solve.build_arch(name, depth, w or 0.0)
  kw = {"tat": {"eta": target, "tau": target}, "dks": {"zeta": target}}[method]
  return solver.get_spec(arch, act, method, **kw)


def _dks_fn(act, params):
  p = dict(params)
  if "negative_slope" in p:
    return solver.ActivationSpec(act, "ref", p).fn()
  return kernels.transform(kernels.get_activation(act), p["input_scale"], p["input_shift"],
                           p["output_shift"], p["output_scale"])


# ELU's second derivative jumps at the kink; dks.base integrates across the jump
# with an unsplit Gauss-Legendre rule. Its solution misses C''(1) by 2.3e-7, and
# its solve from the first starting point fails, so it returns the root found from
# the second one; our (exact) solve converges from the first starting point to a
# different valid root. Both are checked against the conditions below.
ELU_REFERENCE = {  # dks: MLP depth 20, TAT, c_curve_target 0.3
    "input_scale": 0.13006941654747695, "input_shift": -0.18258924983819813,
    "output_shift": 0.16925351493555352, "output_scale": 9.140896849252117}
TOLERANCE = {}


@pytest.mark.parametrize("key", list(DKS_REFERENCE), ids=lambda k: "_".join(map(str, k)))
@pytest.mark.filterwarnings("ignore:every solution")
def test_solver_agrees_with_dks(key):
  spec = _spec_for(key)
  ref = DKS_REFERENCE[key]
  tol = TOLERANCE.get(key[3], 1e-6)
  for k, v in ref.items():
    # dks stops its searches at |value - target| < 1e-8, hence 1e-6 on parameters.
    assert abs(spec.params[k] - v) < tol * max(1.0, abs(v)), (k, spec.params[k], v)
  with kernels.x64():
    xs = jnp.linspace(-5.0, 5.0, 1001)
    diff = np.max(np.abs(np.asarray(spec.fn()(xs)) - np.asarray(_dks_fn(key[3], ref)(xs))))
  assert diff < tol


def test_elu_dks_reference_misses_curvature_target_while_ours_hits_it():
  arch = tat_solve.build_arch("mlp", 20, 0.0)
  k = solver.local_curvature_target(arch, 0.3)
  ours = solver.solve_tat_smooth(arch, "elu", 0.3).params
  ref = ELU_REFERENCE
  with kernels.x64():
    errs = []
    for p in (ours, ref):
      phi = kernels.transform(kernels.get_activation("elu"), **p)
      kink = float(kernels.transformed_kink(0.0, p["input_scale"], p["input_shift"]))
      errs.append(abs(float(kernels.c_curv_1(phi, 1.0, kink)) - k))
  assert errs[0] < 1e-12 and 1e-7 < errs[1] < 1e-5


def test_tat_smooth_conditions_hold():
  arch = tat_solve.build_arch("mlp", 10, 0.0)
  spec = solver.solve_tat_smooth(arch, "tanh", tau=0.5)
  phi = spec.fn()
  with kernels.x64():
    assert abs(float(kernels.q_map(phi, 1.0, kink=None or 0.0)) - 1) < 1e-9
    assert abs(float(kernels.q_slope_1(phi)) - 1) < 1e-8
    assert abs(float(kernels.c_slope_1(phi)) - 1) < 1e-8
    assert abs(10 * float(kernels.c_curv_1(phi)) - 0.5) < 1e-8


def test_custom_callable_activation():
  arch = tat_solve.build_arch("mlp", 5, 0.0)
  spec = solver.solve_tat_smooth(arch, lambda x: jnp.log1p(jnp.exp(x)), tau=0.3)
  ref = solver.solve_tat_smooth(arch, "softplus", tau=0.3)
  for k in ref.params:
    assert abs(spec.params[k] - ref.params[k]) < 1e-7


def test_dks_conditions_and_eoc_settings():
  arch = tat_solve.build_arch("mlp", 4, 0.0)
  spec = solver.solve_dks(arch, "softplus", zeta=2.0)
  with kernels.x64():
    phi = spec.fn()
    assert abs(float(kernels.c_value_0(phi))) < 1e-12
    assert abs(float(kernels.c_slope_1(phi)) ** 4 - 2.0) < 1e-8
  eoc = solver.solve_eoc("relu")
  assert eoc.sigma_w == pytest.approx(np.sqrt(2)) and eoc.sigma_b == 0
  assert solver.solve_eoc("tanh").sigma_w == 1.302 and solver.solve_eoc("tanh").sigma_b == 0.02


@pytest.mark.parametrize("kwargs, match", [
    (dict(activation="leaky_relu", method="tat", eta=1.2), "0 < eta < 1"),
    (dict(activation="leaky_relu", method="tat", eta=0.99), r"unreachable.*\[0, 0\.87"),
    (dict(activation="softplus", method="tat", tau=0.0), "tau > 0"),
    (dict(activation="softplus", method="dks", zeta=1.0), "zeta > 1"),
    (dict(activation="relu", method="dks"), "leaky_relu"),
    (dict(activation="nope", method="tat"), "Unknown activation 'nope'"),
    (dict(activation="softplus", method="magic"), "Unknown method"),
    (dict(activation="softplus", method="eoc"), "sigma_w"),
])
def test_unreachable_or_bad_targets_raise(kwargs, match):
  arch = tat_solve.build_arch("mlp", 10, 0.0)
  with pytest.raises(ValueError, match=match):
    solver.get_spec(arch, **kwargs)


def test_quadrature_failure_is_a_clear_error():
  arch = tat_solve.build_arch("mlp", 10, 0.0)
  with pytest.raises(ValueError, match="no solution found"):
    solver.solve_tat_smooth(arch, lambda x: 2.0 * x, tau=0.3)  # linear: C''(1) = 0 always


def test_cli_prints_one_json_object(capsys):
  assert tat_solve.main(["--activation=leaky_relu", "--method=tat", "--architecture=resnet_v2",
                         "--depth=101", "--shortcut_weight=0.0", "--eta=0.9"]) == 0
  out = json.loads(capsys.readouterr().out)
  assert abs(out["negative_slope"] - 0.5704395323991776) < 1e-6
  assert out["output_scale"] == pytest.approx(np.sqrt(2 / (1 + out["negative_slope"] ** 2)))
  assert out["solve_seconds"] > 0 and out["num_nonlinear_layers"] == 100
  assert tat_solve.main(["--activation=leaky_relu", "--method=tat", "--depth=2"]) == 2
  assert "unreachable" in json.loads(capsys.readouterr().out)["error"]


def test_all_rejected_roots_fall_back_to_the_last_start_like_dks():
  arch = tat_solve.build_arch("mlp", 10, 0.0)
  with pytest.warns(UserWarning, match="as dks.base does"):
    spec = solver.solve_tat_smooth(arch, "sigmoid", 0.3)
  assert spec.params["input_scale"] * spec.params["output_scale"] >= 2.0


ARCHS = {
    "mlp7": ("mlp", dict(depth=7, width=1, num_classes=1)),
    "convnet": ("convnet", dict(depth=12, width=1, num_classes=1, downsample_every=4)),
    "resnet50_w0": ("resnet_v2", dict(depth=50, num_classes=1, shortcut_weight=0.0)),
    "resnet101_w08": ("resnet_v2", dict(depth=101, num_classes=1, shortcut_weight=0.8)),
    "resnet18_standard": ("resnet_v2", dict(depth=18, num_classes=1, shortcut_weight=None)),
    "wrn16_w05": ("wide_resnet", dict(depth=16, num_classes=1, shortcut_weight=0.5)),
}


@pytest.mark.parametrize("arch_id", list(ARCHS))
def test_global_targets_are_met_to_float64(arch_id):
  """k = tau / M(1) meets M_{f, y -> y + k}(0) = tau; the leaky slope meets max C_f(0) = eta."""
  name, kw = ARCHS[arch_id]
  arch = tat_arch.get_architecture(name, **kw)
  for tau in (0.05, 0.3, 2.0):
    k = solver.local_curvature_target(arch, tau)
    assert abs(float(solver.max_curvature(arch, k)) - tau) < 1e-13 * max(1.0, tau)
  eta = 0.5 * float(solver.max_c0_leaky_relu(arch, 0.0))
  a = solver.solve_tat_leaky_relu(arch, eta).params["negative_slope"]
  assert abs(float(solver.max_c0_leaky_relu(arch, a)) - eta) < 1e-12
  s = solver.local_slope_target(arch, 1.5)  # M ~ s^depth: the last linear step leaves ~1e-12
  assert abs(float(solver.max_slope(arch, s)) - 1.5) < 1e-10  # (dks.base stops at 1e-8)


def test_named_activations_solve_without_compiling():
  """Closed-form derivatives for named activations; autodiff (jitted once) for callables."""
  arch = tat_solve.build_arch("mlp", 6, 0.0)
  solver._jitted_derivatives.cache_clear()
  solver.solve_tat_smooth(arch, "gelu", 0.3)
  solver.solve_dks(arch, "tanh", 1.5)
  assert solver._jitted_derivatives.cache_info().currsize == 0
  solver.solve_tat_smooth(arch, lambda x: jnp.tanh(x) + 0.1 * x, 0.3)
  assert solver._jitted_derivatives.cache_info().currsize == 1


@pytest.mark.parametrize("spec", ["mlp-30", "resnet_v2-50-w0", "resnet_v2-101-w0.8",
                                  "resnet_v2-152-w0.8", "resnet_v2-200-w0"])
def test_bench_dks_subnet_max_func_matches_arch(spec):
  """The bench's M_{f,r} for dks (written from appendix F.1) agrees with tat.arch's."""
  from tat import bench
  name, depth, w = bench.parse_architecture(spec)
  arch = tat_solve.build_arch(name, depth, w)
  smf = bench.dks_subnet_max_func(name, depth, w)
  for k in (0.01, 0.3):
    assert smf(0.0, lambda y: y + k) == pytest.approx(float(solver.max_curvature(arch, k)), rel=1e-13)
  for s in (1.01, 1.1):
    assert smf(1.0, lambda y: s * y) == pytest.approx(float(solver.max_slope(arch, s)), rel=1e-13)
  for a in (0.0, 0.4):
    assert smf(0.0, lambda c: float(kernels.leaky_relu_c_map(c, a))) == pytest.approx(
        float(solver.max_c0_leaky_relu(arch, a)), rel=1e-13)


def test_bench_cell_against_dks():
  """One bench cell end to end (ours via the CLI path, dks.base live): same activation."""
  pytest.importorskip("dks.base")
  from tat import bench
  row = bench.bench_one("mlp-10", "swish", repeats=1)
  assert row["max_abs_diff"] < 1e-6
  assert row["ours_condition_error"] < 1e-9 and row["dks_condition_error"] < 1e-8
  assert row["dks_s"] > 0 and row["ours_median_s"] > 0
  assert "mlp-10 | swish" in bench.format_row(row)
  with pytest.raises(ValueError, match="NAME-DEPTH"):
    bench.parse_architecture("resnet_v2-x")
  with pytest.raises(ValueError, match="mlp or resnet_v2"):
    bench.parse_architecture("wide_resnet-16")
