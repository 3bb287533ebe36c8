"""Model registry of the optnets package (experiments/API.md).

`config.model.name = "optnets.<key>"`; the other `config.model` fields are the
builder's keyword arguments. Baselines are settings of the same definitions:
ResNet = HB-Net with beta_2 = 0, DenseNet = AGD-Net with concatenation and
beta = 0, DMRNet = the ADMM network with alpha = beta = 1/2.
"""

from __future__ import annotations

import jax.numpy as jnp

from optnets import nets

# CIFAR: depth 6n + 2 (n = 9 -> 56, n = 18 -> 110); ImageNet-34: [3, 4, 6, 3].
_IMAGENET34 = dict(stage_blocks=(3, 4, 6, 3), stage_channels=(64, 128, 256, 512),
                   stem="imagenet", shortcut="B")


def fc(*, structure: str = "gd", depth: int = 10, activation: str = "sigmoid",
       shared: bool = False, hb_beta: float = 0.3, coefficients: str = "algorithm",
       beta1: float = 1.0, beta2: float = 0.0, alpha: float = 1.0, beta: float = 0.0,
       with_bias: bool = False, admm_start: str = "input"):
  """Fully connected structure of section 5 (table 2 simulation); see nets.fc_structure.

  Besides the output it reports `output_mean`, the mean of the prediction over the
  batch and the coordinates: the targets have mean 0, so this is the constant offset
  the sigmoid read-out starts with (about 0.5), which the table-2 MSE is dominated by
  until training removes it.
  """
  kw = dict(structure=structure, depth=depth, activation=activation, shared=shared,
            hb_beta=hb_beta, coefficients=coefficients, beta1=beta1, beta2=beta2,
            alpha=alpha, beta=beta, with_bias=with_bias, admm_start=admm_start)
  if structure not in nets.FC_STRUCTURES:
    raise ValueError(f"structure={structure!r} is not accepted; choose one of "
                     f"{list(nets.FC_STRUCTURES)}.")

  if admm_start not in nets.ADMM_STARTS:
    raise ValueError(f"admm_start={admm_start!r} is not accepted; choose one of "
                     f"{list(nets.ADMM_STARTS)}.")

  def forward(inputs, *, is_training, step):
    del is_training, step
    out = nets.fc_structure(inputs, **kw)
    return {"output": out, "metrics": {"output_mean": jnp.mean(out)}}
  return forward


def _resnet_like(beta2_default):
  def builder(*, n: int = 9, variant: str = "cifar", num_classes: int = 10,
              beta1: float = 1.0, beta2: float = beta2_default, coefficients: str = "constant"):
    if variant == "cifar":
      arch = dict(stage_blocks=(n,) * 3, stage_channels=(16, 32, 64), stem="cifar", shortcut="A")
    elif variant == "imagenet34":
      arch = _IMAGENET34
    else:
      raise ValueError(f"variant={variant!r} is not accepted; choose 'cifar' or 'imagenet34'.")

    def forward(inputs, *, is_training, step):
      del step
      return nets.hb_net(inputs, is_training, num_classes=num_classes, beta1=beta1, beta2=beta2,
                         coefficients=coefficients, **arch)
    return forward
  return builder


hb_net = _resnet_like(-1.0)   # section 6.1: x_{k+1} = T(x_k) + x_k - x_{k-1}
resnet = _resnet_like(0.0)    # table 3: beta_2 = 0 in (16)


def _dense_like(combine, beta_default):
  def builder(*, depth: int = 40, growth: int = 12, variant: str = "cifar",
              num_classes: int = 10, bottleneck: bool = False, compression: float = 1.0,
              beta: float = beta_default, alpha_mode: str = "learned",
              stem_channels: int = 0):
    """variant 'cifar': 3 blocks of (depth-4)/3 layers ((depth-4)/6 with bottlenecks);
    'imagenet121': DenseNet-121 blocks (6, 12, 24, 16), bottleneck, compression 0.5."""
    if variant == "cifar":
      per = (depth - 4) // (6 if bottleneck else 3)
      if per < 1 or (depth - 4) % (6 if bottleneck else 3):
        raise ValueError(f"depth={depth} does not give whole dense blocks "
                         f"(depth - 4 must divide by {6 if bottleneck else 3}).")
      arch = dict(block_layers=(per,) * 3, stem="cifar", bottleneck=bottleneck,
                  compression=compression, stem_channels=stem_channels or
                  (2 * growth if bottleneck else 16))
    elif variant == "imagenet121":
      arch = dict(block_layers=(6, 12, 24, 16), stem="imagenet", bottleneck=True,
                  compression=0.5, stem_channels=stem_channels or 2 * growth)
    else:
      raise ValueError(f"variant={variant!r} is not accepted; choose 'cifar' or 'imagenet121'.")

    def forward(inputs, *, is_training, step):
      del step
      return nets.agd_net(inputs, is_training, growth=growth, num_classes=num_classes,
                          combine=combine, beta=beta, alpha_mode=alpha_mode, **arch)
    return forward
  return builder


agd_net = _dense_like("sum", 0.1)      # eq. (21), beta = 0.1
densenet = _dense_like("concat", 0.0)  # eq. (19)


def _admm_like(default):
  def builder(*, n: int = 9, num_classes: int = 10, alpha: float = default,
              beta: float = default, coefficients: str = "constant"):
    def forward(inputs, *, is_training, step):
      del step
      return nets.admm_net(inputs, is_training, stage_blocks=(n,) * 3,
                           stage_channels=(16, 32, 64), num_classes=num_classes, alpha=alpha,
                           beta=beta, coefficients=coefficients)
    return forward
  return builder


admm_net = _admm_like(0.5)
dmrnet = _admm_like(0.5)  # table 3: alpha_k = beta_k = 1/2 in (20)

MODELS = {
    "fc": fc,
    "hb_net": hb_net,
    "resnet": resnet,
    "agd_net": agd_net,
    "densenet": densenet,
    "admm_net": admm_net,
    "dmrnet": dmrnet,
}
