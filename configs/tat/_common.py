"""Shared settings of the tat configs (loaded by path from each config file).

Paper appendix D: momentum 0.9 for every optimizer; K-FAC damping 0.001, norm
constraint 0.001, curvature every step, inverse every 50 steps; LARS trust
coefficient 0.001; linear warm-up for 5 epochs, then /10 at 4/9 and 7/9 of
training; label smoothing 0.1; L2 on weights only, grid {5e-5, 2e-5, 0};
dropout before the classifier for normalization-free nets, grid {0.2, 0};
TReLU eta grid {0.9, 0.95}; learning-rate grids below.
"""

LR_GRID = {"sgd": (1.0, 0.3, 0.1, 0.03, 0.01),
           "kfac": (0.003, 0.001, 0.0003, 0.0001, 0.00003),
           "lars": (10.0, 3.0, 1.0, 0.3, 0.1)}
L2_GRID = (5e-5, 2e-5, 0.0)
DROPOUT_GRID = (0.2, 0.0)
ETA_GRID = (0.9, 0.95)
TAU_GRID = (0.2, 0.3, 0.5)  # section 5.4, smooth TAT
ZETA_GRID = (1.5, 10.0, 100.0)  # section 5.4, DKS
OPTIMIZERS = ("kfac", "sgd", "lars")
DEFAULT_LR = {"sgd": 0.1, "kfac": 0.001, "lars": 1.0}


def parse_args(arg: str, allowed) -> set:
  args = {a for a in arg.split(",") if a}
  unknown = args - set(allowed)
  if unknown:
    raise ValueError(f"unknown config variant(s) {sorted(unknown)}; accepted: {sorted(allowed)}")
  return args


def set_optimizer(c, name: str, learning_rate=None):
  """Optimizer with the paper's settings (appendix D)."""
  if name not in OPTIMIZERS:
    raise ValueError(f"optimizer {name!r} not one of {OPTIMIZERS}")
  c.optimizer.name = name
  c.optimizer.learning_rate = DEFAULT_LR[name] if learning_rate is None else learning_rate
  c.optimizer.momentum = 0.9
  c.optimizer.trust_coefficient = 0.001
  c.optimizer.kfac.damping = 0.001
  c.optimizer.kfac.norm_constraint = 0.001
  c.optimizer.kfac.curvature_update_period = 1
  c.optimizer.kfac.inverse_update_period = 50
  return c


def paper_schedule(c, warmup_epochs: float = 5.0):
  """Linear warm-up, then decay by 10 at 4/9 and 7/9 of the epoch budget."""
  c.optimizer.schedule.name = "step"
  c.optimizer.schedule.warmup_steps = -1
  c.optimizer.schedule.warmup_epochs = warmup_epochs
  c.optimizer.schedule.boundaries = (4 / 9, 7 / 9)
  c.optimizer.schedule.decay_factor = 0.1
  return c


def link_method_fields(c, method: str, activation: str, depth: int):
  """Top-level `method`, `activation`, `depth`, `eta`, `tau`, `zeta` linked into c.model."""
  c.method = method
  c.activation = activation
  c.depth = depth
  c.eta = 0.9
  c.tau = 0.3
  c.zeta = 1.5
  for k in ("method", "activation", "depth", "eta", "tau", "zeta"):
    c.model[k] = c.get_ref(k)
  return c
