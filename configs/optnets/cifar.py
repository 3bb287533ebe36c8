"""Table 4: ResNet / HB-Net (n = 9, 18) and DenseNet / AGD-Net (k = 12, L = 40, 52) on CIFAR.

Run (needs the prepared TFDS cifar10 / cifar100):
  python -m experiments.main --config=configs/optnets/cifar.py:hb_net56,c100,aug \
      --workdir=/tmp/hb56_c100p
  model variants: resnet56, hb_net56, resnet110, hb_net110 (n = 9, 18; option-A shortcuts),
  densenet40, agd_net40, densenet52, agd_net52 (growth 12, 3 blocks of (L-4)/3 layers,
  no bottleneck, 16 stem channels, as the L = 40 DenseNet of [7] whose numbers table 4
  quotes; --config.model.bottleneck=True --config.model.compression=0.5 gives DenseNet-BC);
  dataset c10 (default) or c100; `aug` = standard augmentation (pad 4, random crop, flip),
  the '+' columns; `quick` = 1 epoch.
  Error = 1 - test_accuracy in summary.json.

Training (section 7.1): SGD, Nesterov 0.9, weight decay 1e-4, batch 64, 300 epochs,
lr 0.1 divided by 10 at 50% and 75%; per-channel normalisation. AGD-Net: alpha learned
(init 1), beta = 0.1. HB-Net: x_{k+1} = relu(T(x_k) + x_k - x_{k-1}).

Paper error (%), C10 / C100 / C10+ / C100+: ResNet-56 10.05/39.65/5.32/26.03,
HB-Net-56 10.17/38.52/5.46/26.00, ResNet-110 9.17/38.13/5.06/24.71, HB-Net-110
8.66/36.40/5.04/23.93, DenseNet-40 7.00/27.55/5.24/24.42, AGD-Net-40 6.44/26.33/5.20/24.87,
DenseNet-52 6.05/26.30/5.09/24.33, AGD-Net-52 5.75/24.92/4.94/23.84.
A ResNet-56 step at batch 64 takes seconds on this CPU: run on an accelerator.
"""

import os
import runpy

_common = lambda: runpy.run_path(os.path.join(os.path.dirname(__file__), "_common.py"))

MODELS = {
    "resnet56": ("optnets.resnet", dict(n=9)), "hb_net56": ("optnets.hb_net", dict(n=9)),
    "resnet110": ("optnets.resnet", dict(n=18)), "hb_net110": ("optnets.hb_net", dict(n=18)),
    "densenet40": ("optnets.densenet", dict(depth=40)),
    "agd_net40": ("optnets.agd_net", dict(depth=40)),
    "densenet52": ("optnets.densenet", dict(depth=52)),
    "agd_net52": ("optnets.agd_net", dict(depth=52)),
}


def get_config(arg: str = ""):
  common = _common()
  args = common["parse_args"](arg, {"quick", "aug", "c10", "c100", *MODELS})
  model = common["one_of"](args, MODELS, "hb_net56", "model")
  data = common["one_of"](args, ("c10", "c100"), "c10", "dataset")
  num_classes = 100 if data == "c100" else 10
  c = common["image_classification"]("cifar100" if data == "c100" else "cifar10", "aug" in args,
                                     1.0 if "quick" in args else 300.0, 64, (0.5, 0.75),
                                     num_classes)
  name, kw = MODELS[model]
  c.model.name = name
  for k, v in kw.items():
    c.model[k] = v
  c.model.variant = "cifar"
  if "densenet" in model or "agd_net" in model:
    c.model.growth = 12
    c.model.bottleneck = False
    c.model.compression = 1.0
    if "agd_net" in model:
      c.model.beta = 0.1
  return c
