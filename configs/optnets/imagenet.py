"""Table 5: ResNet-34 / HB-Net-34 and DenseNet-121 / AGD-Net-121 on ImageNet.

Run (needs the prepared TFDS imagenet2012):
  python -m experiments.main --config=configs/optnets/imagenet.py:hb_net34 --workdir=/tmp/hb34
  variants: resnet34, hb_net34 ([3, 4, 6, 3] basic blocks, 7x7 stem, projection shortcuts),
  densenet121, agd_net121 (growth 32, blocks 6/12/24/16, bottleneck, compression 0.5);
  `quick` = 0.01 epoch.
  Top-1 error = 1 - test_accuracy (the validation split) in summary.json.

Training (section 7.1): SGD, Nesterov 0.9, weight decay 1e-4, batch 256, 100 epochs,
lr 0.1 divided by 10 at epochs 30, 60, 90; random 224 crops and flips.

Paper top-1 / top-5 error (%): ResNet-34 26.73/8.74, HB-Net-34 26.33/8.56,
DenseNet-121 25.02/7.71, AGD-Net-121 24.62/7.39. Needs accelerators (days of GPU time).
"""

import os
import runpy

_common = lambda: runpy.run_path(os.path.join(os.path.dirname(__file__), "_common.py"))

MODELS = {
    "resnet34": ("optnets.resnet", dict(variant="imagenet34")),
    "hb_net34": ("optnets.hb_net", dict(variant="imagenet34")),
    "densenet121": ("optnets.densenet", dict(variant="imagenet121", growth=32)),
    "agd_net121": ("optnets.agd_net", dict(variant="imagenet121", growth=32, beta=0.1)),
}


def get_config(arg: str = ""):
  common = _common()
  args = common["parse_args"](arg, {"quick", *MODELS})
  model = common["one_of"](args, MODELS, "hb_net34", "model")
  epochs = 0.01 if "quick" in args else 100.0
  c = common["image_classification"]("imagenet2012", True, epochs, 256, (0.3, 0.6, 0.9), 1000)
  c.dataset.image_size = 224
  name, kw = MODELS[model]
  c.model.name = name
  for k, v in kw.items():
    c.model[k] = v
  return c
