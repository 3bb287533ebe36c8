"""Kernel maps of an ordinary Haiku network, derived by tracing it (no ``tat.arch`` needed).

  traced = trace.from_haiku(net, x)      # net(x, act): plain Haiku, act its nonlinearity
  spec = solver.solve_tat_smooth(traced, "softplus", tau=0.3)
  logits = hk.transform(lambda x: net(x, spec.fn()))  # the same net, TAT-transformed

:func:`from_haiku` traces ``net(x, act)`` once into a jaxpr, with ``act`` a
marker primitive and every parameter a placeholder (no initializer runs), and
reads the jaxpr as a kernel program. The result, :class:`TracedNetwork`, is an
architecture function ``traced(ops, x)`` in the sense of :mod:`tat.arch`: it
replays the program on ``ops``, so ``KernelOps`` (and with it every solver of
:mod:`tat.solver` and the subnetwork maximizing function M_{f,r} of TAT
appendix B) interprets it with the same rules as an ``arch`` written by hand:

* ``dot_general`` / ``conv_general_dilated`` of the data with a constant:
  ``ops.dense`` / ``ops.conv`` (affine layer; c preserved, q -> sigma_w^2 q);
* the marked activation: ``ops.act`` (local Q/C map);
* sums, differences and scalar multiples of data tensors: one weighted sum
  ``ops.add([(w1, x1), (w2, x2), ...])`` (the w^2-weighted average of eq. 6/7;
  an unnormalized ``x + f(x)`` is ``w = (1, 1)``), nested sums flattened;
  concatenation along a non-batch axis: a sum with w_i^2 = size_i / total;
* a tensor multiplied (or divided) by a statistic of itself, optionally after
  subtracting another one (batch / layer / RMS normalization): ``ops.norm``;
* bias and per-channel constants, pooling (mean / sum / max over spatial axes,
  ``reduce_window``), reshape / flatten / transpose / slice / pad, type
  conversions and dropout masks: identity on c.

Axis 0 is the batch axis and the last axis the feature axis. Anything else that
touches the data (a max over channels, softmax, a product of two data tensors,
a gather, an elementwise function other than the marked activation, a loop) is
refused with a :class:`TraceError` naming the operation, the Haiku module and
the line of the user's code, when (and only when) it reaches the network's output.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from typing import Any, Callable, NamedTuple, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
from jax.extend.core import Primitive

from tat import arch as tat_arch


class TraceError(ValueError):
  """An operation of the traced network that has no kernel interpretation."""


# ---------------------------------------------------------------------------
# Marker primitives: the activation, and parameters (placeholders, never initialized).

_act_p = Primitive("tat_marked_activation")
_act_p.def_impl(lambda x: x)
_act_p.def_abstract_eval(lambda x: jax.core.ShapedArray(x.shape, x.dtype))

_param_p = Primitive("tat_parameter")
_param_p.def_abstract_eval(lambda *, shape, dtype, name: jax.core.ShapedArray(shape, dtype))


def marked_activation(x):
  """The activation ``from_haiku`` passes to ``net``: identity, recognisable in the jaxpr."""
  return _act_p.bind(x)


# ---------------------------------------------------------------------------
# Abstract values of the interpretation.

class Op(NamedTuple):
  """Where an operation is: primitive (and enclosing function), module path, user line."""
  what: str
  module: str
  line: str

  def describe(self) -> str:
    where = f" in module {self.module!r}" if self.module else ""
    return f"{self.what}{where} at {self.line}"


@dataclasses.dataclass(frozen=True)
class Const:
  """A value that does not depend on the input (parameters, literals); ``get()`` evaluates it."""
  shape: tuple
  thunk: Optional[Callable] = None  # -> np.ndarray (lazily: parameters are never initialized
  #                                     unless a scalar multiplier or a qc map needs them)

  def get(self):
    if self.thunk is None:
      raise TraceError("internal: constant without a value")
    return self.thunk()


@dataclasses.dataclass(frozen=True)
class Lin:
  """A linear combination sum_i w_i node_i of kernel nodes (data tensors)."""
  terms: tuple  # ((weight, node id), ...), node ids increasing, weights non-zero
  shape: tuple
  norm_root: Optional[tuple] = None  # terms of the tensor this one normalizes


@dataclasses.dataclass(frozen=True)
class Pending:
  """A data tensor minus a statistic of itself (centring), waiting for its rescaling."""
  root: tuple
  shape: tuple
  op: Op


@dataclasses.dataclass(frozen=True)
class Stat:
  """A statistic of the data (a reduction over the feature or batch axis, and functions of it)."""
  root: Optional[tuple]
  shape: tuple
  op: Op


@dataclasses.dataclass(frozen=True)
class Bad:
  """A data-dependent value with no kernel interpretation; an error if it reaches the output."""
  root: Optional[tuple]
  shape: tuple
  op: Op


# ---------------------------------------------------------------------------
# The kernel program.

@dataclasses.dataclass
class Node:
  """One step of the kernel program: kind in input/dense/conv/act/add/norm/scale/bias."""
  kind: str
  src: tuple  # node ids (add: one per term)
  weights: tuple = ()  # add: the branch weights; scale: (w,)
  features: int = 0
  name: str = ""
  fan_in: int = 0
  value: Optional[Callable] = None  # dense/conv: the weight; bias/scale: the constant (thunks)


class TracedNetwork:
  """A Haiku network read as a kernel program; an architecture function ``(ops, x)``.

  Pass it wherever :mod:`tat.solver` takes an ``arch`` (``solve_tat_leaky_relu``,
  ``solve_tat_smooth``, ``solve_dks``, ``get_spec``) or to ``tat.arch.global_map`` /
  ``subnet_max``. :meth:`qc_map` gives (q, c) predictions with every layer's
  own weight and bias variances, for unnormalized networks.
  """

  def __init__(self, nodes: list, output: tuple, num_acts: int):
    self.nodes = nodes
    self.output = output  # terms of the output
    self.num_nonlinear_layers = num_acts

  def __call__(self, ops, x):
    vals = [None] * len(self.nodes)
    for i, n in enumerate(self.nodes):
      k = n.kind
      if k == "input":
        vals[i] = x
      elif k == "act":
        vals[i] = ops.act(vals[n.src[0]])
      elif k == "add":
        vals[i] = ops.add([(w, vals[s]) for w, s in zip(n.weights, n.src)])
      elif k == "dense":
        vals[i] = ops.dense(vals[n.src[0]], n.features, name=n.name)
      elif k == "conv":
        vals[i] = ops.conv(vals[n.src[0]], n.features, name=n.name)
      elif k == "norm":
        vals[i] = ops.norm(vals[n.src[0]], name=n.name)
      else:  # scale, bias: identity on c (as KernelOps' affine layers with sigma_b = 0)
        vals[i] = vals[n.src[0]]
    if len(self.output) == 1:
      return vals[self.output[0][1]]
    return ops.add([(w, vals[s]) for w, s in self.output])

  def qc_map(self, q_fn: Callable, c_fn: Callable, q0=1.0, c0=0.0):
    """(q, c) of the output for two inputs with q values ``q0`` and correlation ``c0``.

    Eq. 3-5 with each layer's own scales: dense/conv q -> sw^2 q with
    sw^2 = fan_in * mean(W^2) of an initialization, biases q -> q + sb^2 and
    c -> (q c + sb^2) / (q + sb^2), a weighted sum q = sum w_i^2 q_i,
    c = sum w_i^2 q_i c_i / q, normalization q -> 1, the activation
    ``q_fn(q)``, ``c_fn(c, q)``. Needs parameter values: the placeholders are
    initialized here (once) with their own initializers.
    """
    qs, cs = [None] * len(self.nodes), [None] * len(self.nodes)

    def add(weights, src):
      q = sum(w * w * qs[s] for w, s in zip(weights, src))
      return q, sum(w * w * qs[s] * cs[s] for w, s in zip(weights, src)) / q

    for i, n in enumerate(self.nodes):
      k = n.kind
      q, c = (qs[n.src[0]], cs[n.src[0]]) if n.src else (q0, c0)
      if k == "act":
        q, c = q_fn(q), c_fn(c, q)
      elif k == "add":
        q, c = add(n.weights, n.src)
      elif k in ("dense", "conv"):
        w = np.asarray(n.value(), np.float64)
        q = q * n.fan_in * float(np.mean(w * w))
      elif k == "scale":
        v = n.weights[0] if n.value is None else np.asarray(n.value(), np.float64)
        q = q * float(np.mean(np.square(v)))
      elif k == "bias":
        sb2 = float(np.mean(np.square(np.asarray(n.value(), np.float64))))
        q, c = q + sb2, (q * c + sb2) / (q + sb2)
      elif k == "norm":
        q = 1.0
      qs[i], cs[i] = q, c
    if len(self.output) == 1:
      return qs[self.output[0][1]], cs[self.output[0][1]]
    return add([w for w, _ in self.output], [s for _, s in self.output])

  def summary(self) -> dict:
    """Node counts by kind (for inspection)."""
    out = {}
    for n in self.nodes:
      out[n.kind] = out.get(n.kind, 0) + 1
    return out


# ---------------------------------------------------------------------------
# Tracing.

def from_haiku(net: Callable, x, *, params: Optional[dict] = None, rng_seed: int = 0
               ) -> TracedNetwork:
  """Trace the untransformed Haiku function ``net(x, act)`` into a :class:`TracedNetwork`.

  ``x`` is an example input (batch axis first; its values are not used, only
  its shape). Parameters are placeholders: no initializer runs, except where a
  value is needed (a scalar multiplier that is a parameter, a constant
  elementwise scale, and :meth:`TracedNetwork.qc_map`); there each parameter is
  initialized by its own initializer (seeded with ``rng_seed``), or taken from
  ``params`` (a Haiku params dict) when given. Traced in float64, so that
  scalar weights in the code (``0.8 * x``) are read exactly.
  """
  if not callable(net):
    raise TypeError("net must be a function net(x, act) written with Haiku modules")
  x = np.asarray(x)
  if x.ndim < 1:
    raise ValueError(f"x must be an example input with a batch axis first; got shape {x.shape}")
  registry: dict = {}

  def creator(next_creator, shape, dtype, init, context):
    del next_creator
    name = context.full_name
    registry[name] = (tuple(shape), dtype, init)
    return _param_p.bind(shape=tuple(int(s) for s in shape),
                         dtype=np.dtype(jnp.float64 if jnp.issubdtype(dtype, jnp.floating)
                                        else dtype), name=name)

  outputs = []

  def fn(inputs):
    with hk.custom_creator(creator, params=True, state=True):
      outputs.append(net(inputs, marked_activation))
    return outputs[-1]

  transformed = hk.transform_with_state(fn)
  with jax.enable_x64(True):
    key = jax.random.PRNGKey(rng_seed)

    def traced_fn(inp):
      transformed.init(key, inp)
      return outputs[-1]

    closed = jax.make_jaxpr(traced_fn)(
        np.asarray(x, np.float64) if np.issubdtype(x.dtype, np.floating) else x)
    leaves = jax.tree_util.tree_leaves(outputs[-1])
    if len(leaves) != 1:
      raise TraceError(f"net must return one array (the network's output); got {len(leaves)} "
                       "arrays")
    values = _ParamValues(registry, params, rng_seed)
    builder = _Builder(values)
    env_out = builder.run(closed.jaxpr, closed.consts, [Lin(((1.0, 0),), x.shape)])
  return builder.finish(env_out[0])


class _ParamValues:
  """Lazy parameter values: given ones, else each initializer run once on demand."""

  def __init__(self, registry, params, seed):
    self.registry, self.params, self.seed = registry, params, seed
    self.cache: dict = {}

  def get(self, name):
    if name not in self.cache:
      module, _, pname = name.rpartition("/")
      if self.params is not None and module in self.params and pname in self.params[module]:
        self.cache[name] = np.asarray(self.params[module][pname], np.float64)
      else:
        shape, dtype, init = self.registry[name]
        seed = self.seed * 1000003 + sum(ord(ch) * 31 ** i for i, ch in enumerate(name)) % 2**31
        with jax.enable_x64(True):
          value = hk.transform(lambda: init(shape, jnp.float64))
          self.cache[name] = np.asarray(value.apply({}, jax.random.PRNGKey(seed)), np.float64)
    return self.cache[name]


def _source(eqn, what: str, context: str, site=None) -> Op:
  """Op with the primitive (and enclosing function), Haiku module path and user line.

  Inside a called function (``jax.nn.relu``, ``jnp.var``: jitted, traced once and
  cached) the location is the call site ``site`` in the user's code.
  """
  site = site or eqn
  line = "unknown location"
  try:
    from jax._src import source_info_util
    frames = list(source_info_util.user_frames(site.source_info.traceback))
    user = [f for f in frames
            if not any(s in f.file_name for s in (f"{os.sep}haiku{os.sep}", f"{os.sep}jax{os.sep}",
                                                  f"tat{os.sep}trace.py"))]
    f = (user or frames)[0]
    line = f"{f.file_name}:{f.start_line} ({f.function_name})"
  except Exception:  # source information is best effort; the op name is always given
    pass
  name = f"{what} (in {context})" if context else what
  return Op(name, str(site.source_info.name_stack), line)


_IDENTITY = {"convert_element_type", "copy", "copy_p", "reduce_precision", "stop_gradient"}
_CALLS = {"pjit": "jaxpr", "jit": "jaxpr", "closed_call": "call_jaxpr", "core_call": "call_jaxpr",
          "custom_jvp_call": "call_jaxpr", "custom_vjp_call": "call_jaxpr",
          "custom_vjp_call_jaxpr": "fun_jaxpr", "remat": "jaxpr", "checkpoint": "jaxpr"}


class _Builder:
  """Abstract interpretation of a jaxpr into kernel program nodes."""

  def __init__(self, values: _ParamValues):
    self.values = values
    self.nodes = [Node("input", ())]
    self.memo: dict = {}  # terms of a materialized combination -> node id
    self.num_acts = 0

  # Program construction.
  def node(self, kind, src, **kw) -> int:
    self.nodes.append(Node(kind, tuple(src), **kw))
    return len(self.nodes) - 1

  def materialize(self, v: Lin) -> int:
    """Node id holding the value of a linear combination (one weighted sum if several terms)."""
    terms = v.terms
    if terms in self.memo:
      return self.memo[terms]
    if len(terms) == 1:
      w, s = terms[0]
      out = s if w == 1.0 else self.node("scale", (s,), weights=(w,))
    else:
      out = self.node("add", [s for _, s in terms], weights=tuple(w for w, _ in terms))
    self.memo[terms] = out
    return out

  def combine(self, parts) -> tuple:
    """Terms of sum_k a_k v_k for Lin values v_k; materialized sums count as one branch."""
    acc: dict = {}
    for a, v in parts:
      terms = ((1.0, self.memo[v.terms]),) if len(v.terms) > 1 and v.terms in self.memo \
          else v.terms
      for w, s in terms:
        acc[s] = acc.get(s, 0.0) + a * w
    return tuple((w, s) for s, w in sorted(acc.items()) if w != 0.0)

  def finish(self, out) -> TracedNetwork:
    out = self.as_data(out, "the network's output")
    if not out.terms:
      raise TraceError("the network's output does not depend on its input")
    terms = out.terms
    if len(terms) > 1 and terms in self.memo:
      terms = ((1.0, self.memo[terms]),)
    return TracedNetwork(self.nodes, terms, self.num_acts)

  def as_data(self, v, use: str) -> Lin:
    """v as a data tensor, or the error of the operation that made it unmappable."""
    if isinstance(v, Lin):
      return v
    if isinstance(v, Const):
      raise TraceError(f"{use} does not depend on the network's input")
    what = {Stat: "is a statistic of the data, not a kernel-mappable tensor",
            Pending: "is a tensor minus its statistic that no normalization rescales",
            Bad: "has no kernel interpretation"}[type(v)]
    raise TraceError(f"cannot derive the kernel map: {v.op.describe()} {what} (used by {use}). "
                     "Mappable: dense/conv layers, the activation passed to net, sums and scalar "
                     "multiples of branches, concatenation, normalization layers, pooling, "
                     "reshapes.")

  # Interpretation.
  def run(self, jaxpr, consts, args, context: str = "", site=None):
    env: dict = {}

    def read(var):
      if hasattr(var, "val") and not hasattr(var, "count"):  # Literal
        val = np.asarray(var.val)
        return Const(val.shape, lambda val=val: val)
      return env[var]

    for var, c in zip(jaxpr.constvars, consts):
      env[var] = Const(np.shape(c), lambda c=c: np.asarray(c))
    for var, a in zip(jaxpr.invars, args):
      env[var] = a
    for eqn in jaxpr.eqns:
      ins = [read(v) for v in eqn.invars]
      outs = self.eqn(eqn, ins, context, site)
      for var, o in zip(eqn.outvars, outs):
        env[var] = o
    return [read(v) for v in jaxpr.outvars]

  def eqn(self, eqn, ins, context, site):
    prim = eqn.primitive.name
    shapes = [tuple(v.aval.shape) for v in eqn.outvars]
    if prim == "tat_parameter":
      name = eqn.params["name"]
      return [Const(shapes[0], lambda: self.values.get(name))]
    if all(isinstance(v, Const) for v in ins):
      return self.const_eqn(eqn, ins, shapes)
    if prim in _CALLS:
      sub = eqn.params.get(_CALLS[prim])
      if sub is not None:
        inner = getattr(sub, "jaxpr", sub)
        consts = getattr(sub, "consts", ())
        name = eqn.params.get("name") or getattr(eqn.params.get("call_jaxpr"), "name", "")
        fname = str(name) if name else prim
        return self.run(inner, consts, ins, f"{fname}" + (f" in {context}" if context else ""),
                        site or eqn)
    op = lambda what=prim: _source(eqn, what, context, site)
    handler = getattr(self, f"p_{prim}", None)
    if handler is None and prim in _IDENTITY:
      handler = self.p_identity
    if handler is None:
      if all(isinstance(v, (Stat, Const)) for v in ins):  # functions of statistics (rsqrt, ...)
        return [Stat(self.root_of(ins), s, next(v for v in ins if isinstance(v, Stat)).op)
                for s in shapes]
      return [self.bad(ins, s, op()) for s in shapes]
    return handler(eqn, ins, shapes, op)

  def const_eqn(self, eqn, ins, shapes):
    memo: dict = {}

    def cached(idx):
      if "out" not in memo:
        args = [v.get() for v in ins]
        with jax.enable_x64(True):
          out = eqn.primitive.bind(*args, **eqn.params)
        memo["out"] = [np.asarray(o) for o in (out if eqn.primitive.multiple_results else [out])]
      return memo["out"][idx]
    return [Const(s, lambda i=i: cached(i)) for i, s in enumerate(shapes)]

  @staticmethod
  def root_of(vs):
    roots = {v.terms if isinstance(v, Lin) else v.root for v in vs
             if not isinstance(v, Const)}
    return roots.pop() if len(roots) == 1 else None

  def bad(self, ins, shape, op):
    for v in ins:  # an earlier unmappable operation is the one to report
      if isinstance(v, Bad):
        return Bad(self.root_of(ins), shape, v.op)
    return Bad(self.root_of(ins), shape, op)

  # Elementwise arithmetic.
  def p_tat_marked_activation(self, eqn, ins, shapes, op):
    x = self.as_data(ins[0], "the activation")
    self.num_acts += 1
    return [Lin(((1.0, self.node("act", (self.materialize(x),))),), shapes[0])]

  def p_identity(self, eqn, ins, shapes, op):
    v = ins[0]
    return [dataclasses.replace(v, shape=shapes[0])]

  def p_neg(self, eqn, ins, shapes, op):
    v = ins[0]
    if isinstance(v, Lin):
      return [Lin(tuple((-w, s) for w, s in v.terms), shapes[0])]
    return [v if isinstance(v, Stat) else self.bad(ins, shapes[0], op())]

  def _add(self, eqn, ins, shapes, op, sign):
    a, b = ins
    if isinstance(a, Lin) and isinstance(b, Lin):
      return [Lin(self.combine([(1.0, a), (sign, b)]), shapes[0])]
    if isinstance(a, Const) or isinstance(b, Const):  # bias / shift of a data tensor
      v = b if isinstance(a, Const) else a
      c = a if isinstance(a, Const) else b
      if isinstance(v, Lin):
        node = self.node("bias", (self.materialize(v),), value=c.get)
        return [Lin(((1.0, node),), shapes[0], v.norm_root)]
      return [v if isinstance(v, (Stat, Pending)) else self.bad(ins, shapes[0], op())]
    if isinstance(a, Stat) and isinstance(b, Stat):
      return [Stat(self.root_of(ins), shapes[0], a.op)]
    lin = next((v for v in ins if isinstance(v, Lin)), None)
    stat = next((v for v in ins if isinstance(v, Stat)), None)
    if lin is not None and stat is not None:
      if lin.norm_root is not None and lin.norm_root == stat.root:
        return [lin]  # the shift of a normalization (BatchNorm: - mean * inv)
      if lin.terms == stat.root:
        return [Pending(lin.terms, shapes[0], op("centring (x - statistic of x)"))]
    return [self.bad(ins, shapes[0], op())]

  def p_add(self, eqn, ins, shapes, op):
    return self._add(eqn, ins, shapes, op, 1.0)

  p_add_any = p_add

  def p_sub(self, eqn, ins, shapes, op):
    return self._add(eqn, ins, shapes, op, -1.0)

  def scalar(self, c: Const):
    """The value of a constant that is one number (possibly broadcast), else None."""
    v = np.asarray(c.get(), np.float64)
    if v.size == 0:
      return None
    flat = v.reshape(-1)
    return float(flat[0]) if np.all(flat == flat[0]) else None

  def _mul(self, ins, shapes, op, divide):
    a, b = ins
    if isinstance(b, Const) or (isinstance(a, Const) and not divide):
      v, c = (a, b) if isinstance(b, Const) else (b, a)
      if isinstance(v, Lin):
        s = self.scalar(c)
        if s is not None:
          if s == 0.0:
            return [Lin((), shapes[0])]
          s = 1.0 / s if divide else s
          return [Lin(tuple((w * s, n) for w, n in v.terms), shapes[0], v.norm_root)]
        value = (lambda c=c: 1.0 / np.asarray(c.get())) if divide else c.get
        node = self.node("scale", (self.materialize(v),), weights=(1.0,), value=value)
        return [Lin(((1.0, node),), shapes[0], v.norm_root)]
      if isinstance(v, (Stat, Pending)):
        return [v if isinstance(v, Stat) else dataclasses.replace(v, shape=shapes[0])]
      return [self.bad(ins, shapes[0], op())]
    data = [v for v in ins if isinstance(v, (Lin, Pending))]
    stats = [v for v in ins if isinstance(v, Stat)]
    if len(data) == 1 and len(stats) == 1 and (divide is False or isinstance(b, Stat)):
      d, s = data[0], stats[0]
      root = d.terms if isinstance(d, Lin) else d.root
      if s.root == root:  # x / std(x), (x - mean x) * rsqrt(var x): a normalization layer
        node = self.node("norm", (self.materialize(Lin(root, shapes[0])),),
                         name=op().module)
        return [Lin(((1.0, node),), shapes[0], root)]
      return [Bad(None, shapes[0], op(f"{eqn_name(divide)} of a data tensor by a statistic of "
                                      "another one (data-dependent gating)"))]
    if all(isinstance(v, (Stat, Const)) for v in ins):
      return [Stat(self.root_of(ins), shapes[0], next(v for v in ins if isinstance(v, Stat)).op)]
    if len(data) == 2:
      return [self.bad(ins, shapes[0], op(f"{eqn_name(divide)} of two data-dependent tensors"))]
    return [self.bad(ins, shapes[0], op())]

  def p_mul(self, eqn, ins, shapes, op):
    return self._mul(ins, shapes, op, False)

  def p_div(self, eqn, ins, shapes, op):
    return self._mul(ins, shapes, op, True)

  # Layers.
  def upstream(self, ins, shape):
    """Bad value reporting the first input that is itself not a data tensor, or None."""
    for v in ins:
      if isinstance(v, (Bad, Stat, Pending)):
        return [Bad(None, shape, v.op)]
    return None

  def p_dot_general(self, eqn, ins, shapes, op):
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    a, b = ins
    if self.upstream(ins, shapes[0]):
      return self.upstream(ins, shapes[0])
    if isinstance(a, Lin) and isinstance(b, Const) and not lb and 0 not in lc:
      return [self.affine("dense", a, b, shapes[0], int(np.prod([b.shape[i] for i in rc])), op)]
    what = ("dot_general of two data-dependent tensors (attention-like)"
            if isinstance(a, Lin) and isinstance(b, Lin)
            else "dot_general that is not data @ weights over non-batch axes")
    return [self.bad(ins, shapes[0], op(what))]

  def p_conv_general_dilated(self, eqn, ins, shapes, op):
    dn = eqn.params["dimension_numbers"]
    a, b = ins
    if self.upstream(ins, shapes[0]):
      return self.upstream(ins, shapes[0])
    if (isinstance(a, Lin) and isinstance(b, Const) and dn.lhs_spec[0] == 0
        and dn.out_spec[0] == 0 and eqn.params["batch_group_count"] == 1):
      rhs = dn.rhs_spec  # (out feature, in feature, *spatial)
      fan_in = int(np.prod([b.shape[i] for i in rhs[1:]]))
      return [self.affine("conv", a, b, shapes[0], fan_in, op)]
    return [self.bad(ins, shapes[0], op("convolution that is not data * kernel"))]

  def affine(self, kind, x: Lin, w: Const, shape, fan_in, op):
    src = self.materialize(x)
    node = self.node(kind, (src,), features=int(shape[-1]), name=op().module, fan_in=fan_in,
                     value=w.get)
    return Lin(((1.0, node),), shape)

  # Shape operations (identity on c), refused when they move the batch axis.
  def keeps_batch(self, v, ok: bool, shape, op, what):
    if isinstance(v, (Lin, Pending, Stat, Bad)) and not ok:
      return [Bad(None, shape, op(f"{what} that moves or mixes the batch axis"))]
    return [dataclasses.replace(v, shape=shape)]

  def p_reshape(self, eqn, ins, shapes, op):
    v = ins[0]
    ok = len(shapes[0]) > 0 and len(v.shape) > 0 and shapes[0][0] == v.shape[0]
    return self.keeps_batch(v, ok or isinstance(v, Stat), shapes[0], op, "reshape")

  def p_transpose(self, eqn, ins, shapes, op):
    return self.keeps_batch(ins[0], eqn.params["permutation"][0] == 0, shapes[0], op,
                            "transpose")

  def p_broadcast_in_dim(self, eqn, ins, shapes, op):
    dims = eqn.params["broadcast_dimensions"]
    v = ins[0]
    ok = isinstance(v, Stat) or (len(dims) > 0 and dims[0] == 0)
    return self.keeps_batch(v, ok, shapes[0], op, "broadcast")

  def p_squeeze(self, eqn, ins, shapes, op):
    return self.keeps_batch(ins[0], 0 not in eqn.params["dimensions"], shapes[0], op, "squeeze")

  def p_expand_dims(self, eqn, ins, shapes, op):
    return self.keeps_batch(ins[0], 0 not in eqn.params["dimensions"], shapes[0], op,
                            "expand_dims")

  def p_slice(self, eqn, ins, shapes, op):
    v = ins[0]
    ok = not v.shape or (eqn.params["start_indices"][0] == 0
                         and eqn.params["limit_indices"][0] == v.shape[0]
                         and (eqn.params["strides"] or (1,))[0] == 1)
    return self.keeps_batch(v, ok, shapes[0], op, "slice")

  def p_pad(self, eqn, ins, shapes, op):
    v, pad = ins
    cfg = eqn.params["padding_config"]
    ok = isinstance(pad, Const) and tuple(cfg[0]) == (0, 0, 0) and self.scalar(pad) == 0.0
    return self.keeps_batch(v, ok, shapes[0], op, "padding (non-zero, or)")

  def p_concatenate(self, eqn, ins, shapes, op):
    axis = eqn.params["dimension"]
    if self.upstream(ins, shapes[0]):
      return self.upstream(ins, shapes[0])
    if axis == 0 or not all(isinstance(v, Lin) for v in ins):
      return [self.bad(ins, shapes[0], op("concatenate of a data tensor with a constant, or "
                                          "along the batch axis"))]
    total = shapes[0][axis]
    parts = [(math.sqrt(v.shape[axis] / total), Lin(((1.0, self.materialize(v)),), v.shape))
             for v in ins]
    return [Lin(self.combine(parts), shapes[0])]

  # Reductions: over spatial axes = pooling (a tensor); over features or batch = a statistic.
  def _reduce(self, ins, shapes, op, axes, scale):
    v = ins[0]
    nd = len(v.shape)
    statistic = 0 in axes or (nd - 1) in axes
    if isinstance(v, Lin) and not statistic:
      if scale is None:
        return [self.bad(ins, shapes[0], op())]
      f = float(np.prod([v.shape[a] for a in axes])) if scale == "sum" else 1.0
      return [Lin(tuple((w * f, s) for w, s in v.terms), shapes[0])]
    if isinstance(v, Bad) and not statistic:
      return [v]
    if isinstance(v, (Lin, Pending, Bad, Stat)):
      root = v.terms if isinstance(v, Lin) else v.root
      return [Stat(root, shapes[0], v.op if isinstance(v, (Bad, Stat)) else
                   op(f"{op().what} over the {'batch' if 0 in axes else 'feature'} axis"))]
    return [self.bad(ins, shapes[0], op())]

  def p_reduce_sum(self, eqn, ins, shapes, op):
    return self._reduce(ins, shapes, op, eqn.params["axes"], "sum")

  def p_reduce_max(self, eqn, ins, shapes, op):
    return self._reduce(ins, shapes, op, eqn.params["axes"], "max")

  def p_reduce_min(self, eqn, ins, shapes, op):
    return self._reduce(ins, shapes, op, eqn.params["axes"], None)

  def p_argmax(self, eqn, ins, shapes, op):
    return self._reduce(ins, shapes, op, eqn.params["axes"], None)

  p_argmin = p_argmax

  def _window(self, eqn, ins, shapes, op, scale):
    v = ins[0]
    dims = eqn.params["window_dimensions"]
    ok = dims[0] == 1 and dims[-1] == 1 and eqn.params["window_strides"][0] == 1
    if not ok:
      return [self.bad(ins, shapes[0], op(f"{eqn.primitive.name} over the batch or feature "
                                          "axis"))]
    if not isinstance(v, Lin):
      return [self.bad(ins, shapes[0], op())]
    f = float(np.prod(dims)) if scale == "sum" else 1.0
    return [Lin(tuple((w * f, s) for w, s in v.terms), shapes[0])]

  def p_reduce_window_sum(self, eqn, ins, shapes, op):
    return self._window(eqn, ins, shapes, op, "sum")

  def p_reduce_window_max(self, eqn, ins, shapes, op):
    return self._window(eqn, ins, shapes, op, "max")


def eqn_name(divide: bool) -> str:
  return "division" if divide else "product"


# ---------------------------------------------------------------------------
# Benchmark: tracing + solving against the tat.arch route.

def _haiku_net(arch: Callable, norm: Optional[str] = None) -> Callable:
  """``net(x, act)`` evaluating a tat.arch architecture with Haiku (the traced side)."""
  def net(x, act):
    return arch(tat_arch.HaikuOps(act, norm_kind=norm), x)
  return net


BENCH_ARCHITECTURES = ("mlp-50", "resnet_v2-50-w0", "resnet_v2-101-w0.8", "resnet_v2-200-w0")


def bench(architectures=BENCH_ARCHITECTURES, activations=("softplus", "leaky_relu"),
          repeats: int = 5):
  """Rows of median seconds: arch solve, traced solve, trace, and the ratio (trace + solve) / arch.

  The arch route is ``solver.get_spec(arch, ...)`` on the hand-written architecture
  (the path ``tat.models`` uses). The traced route is ``from_haiku`` of the Haiku
  network that ``HaikuOps`` builds from the same architecture (channels 8, input
  2 x 8 x 8 x 3; the kernel program does not depend on widths), then ``get_spec``
  on the result. ``network_trace_s`` is one ``jax.make_jaxpr`` of that network's
  Haiku init, which a training run pays anyway before its first step.
  """
  from tat import bench as tat_bench
  from tat import solver
  rows = []
  for spec in architectures:
    name, depth, w = tat_bench.parse_architecture(spec)
    if name == "mlp":
      arch = tat_arch.get_architecture("mlp", depth=depth, width=8, num_classes=8)
      x = np.zeros((2, 8), np.float32)
    else:
      arch = tat_arch.get_architecture("resnet_v2", depth=depth, num_classes=8,
                                       shortcut_weight=w, channels=(8,) * 4, stem_channels=8)
      x = np.zeros((2, 8, 8, 3), np.float32)
    net = _haiku_net(arch)

    def median(fn):
      times = []
      for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
      return float(np.median(times)), out

    transformed = hk.transform(lambda inp: net(inp, jax.nn.relu))
    network_trace_s, _ = median(lambda: jax.make_jaxpr(
        lambda inp: transformed.init(jax.random.PRNGKey(0), inp))(x))
    trace_s, traced = median(lambda: from_haiku(net, x))
    for activation in activations:
      arch_s, a = median(lambda: solver.get_spec(arch, activation, "tat"))
      solve_s, b = median(lambda: solver.get_spec(traced, activation, "tat"))
      both_s, _ = median(lambda: solver.get_spec(from_haiku(net, x), activation, "tat"))
      diff = max(abs(a.params[k] - b.params[k]) for k in a.params)
      rows.append(dict(architecture=spec, activation=activation, arch_solve_s=arch_s,
                       traced_solve_s=solve_s, trace_s=trace_s, trace_and_solve_s=both_s,
                       network_trace_s=network_trace_s, max_param_diff=diff,
                       solve_ratio=solve_s / arch_s, total_ratio=both_s / arch_s,
                       ratio_vs_arch_plus_network_trace=both_s / (arch_s + network_trace_s)))
  return rows


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m tat.trace", description=__doc__.split("\n")[0])
  p.add_argument("--bench", action="store_true", help="time tracing + solving vs tat.arch")
  p.add_argument("--architectures", default=",".join(BENCH_ARCHITECTURES),
                 help="comma-separated NAME-DEPTH[-wW] (as tat.bench), e.g. mlp-50,resnet_v2-101-w0.8")
  p.add_argument("--activations", default="softplus,leaky_relu",
                 help="comma-separated activations solved with method tat")
  p.add_argument("--repeats", type=int, default=5, help="timed calls per cell (median)")
  args = p.parse_args(argv)
  if not args.bench:
    p.error("nothing to do: pass --bench")
  rows = bench(tuple(a for a in args.architectures.split(",") if a),
               tuple(a for a in args.activations.split(",") if a), args.repeats)
  print("| architecture | activation | arch solve (ms) | traced solve (ms) | trace (ms) | "
        "trace + solve (ms) | (trace + solve) / arch solve | traced solve / arch solve | "
        "network trace (ms) | (trace + solve) / (arch solve + network trace) | max param diff |")
  print("|" + "---|" * 11)
  for r in rows:
    print("| {architecture} | {activation} | {a:.1f} | {s:.1f} | {t:.0f} | {b:.0f} | {tr:.0f}x | "
          "{sr:.2f}x | {n:.0f} | {nr:.2f}x | {max_param_diff:.1e} |".format(
              a=1e3 * r["arch_solve_s"], s=1e3 * r["traced_solve_s"], t=1e3 * r["trace_s"],
              b=1e3 * r["trace_and_solve_s"], tr=r["total_ratio"], sr=r["solve_ratio"],
              n=1e3 * r["network_trace_s"], nr=r["ratio_vs_arch_plus_network_trace"], **r))
  return 0


if __name__ == "__main__":
  sys.exit(main())
