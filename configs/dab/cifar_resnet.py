"""Table 2 / figure 6: CIFAR-10 ResNet-18 with a hard function after residual group k.

Run:
  python -m experiments.main --config=configs/dab/cifar_resnet.py --workdir=/tmp/dab_c10 \
      --config.model.hard=sort --config.model.placement=4 --config.model.gradient=dab
  hard: sort (rows (+) columns) | signum | topk | kmeans | sort_1d; placement 1-4 (figure 6
  left; 0 = no hard function); gradient dab | ste (sort_1d / signum only) | none | smooth
  (table 2 baseline, Identity). Variant ':quick' trains 2 epochs at width 16.
Adam 1e-4, batch 128 (appendix 7.2), gamma 10, per-element approximator over the channel
axis (a dense one over 4x4x512 maps would be 134M parameters), 100 epochs.
summary.json: test_accuracy, test_emd (earth mover's distance between the hard function's
input and output values, figure 6 middle), test_dab_penalty.

Paper (table 2): baseline 92.87%, signum 91.95%, sort 92.93%, top-k 92.21%, k-means
91.97%; DAB above STE with sort-1D (figure 6 right). Needs an accelerator: a ResNet-18
epoch is about half an hour on this CPU.
"""

from experiments import config_lib


def get_config(arg: str = ""):
  args = set(filter(None, arg.split(",")))
  unknown = args - {"quick"}
  if unknown:
    raise ValueError(f"unknown cifar_resnet.py variants {sorted(unknown)}; expected quick")
  c = config_lib.base_config()
  c.dataset.name = "cifar10"
  c.dataset.augment = "cifar"
  c.dataset.normalization = "per_channel"
  c.batch_size = 128
  c.eval_batch_size = 500
  c.train_steps = -1
  c.train_epochs = 2.0 if "quick" in args else 100.0
  c.eval_every = -1
  c.eval_every_epochs = 1.0 if "quick" in args else 5.0
  c.checkpoint_every = -1
  c.checkpoint_every_epochs = c.eval_every_epochs
  c.model.name = "dab.cifar_resnet18"
  c.model.width = 16 if "quick" in args else 64
  c.model.blocks = (2, 2, 2, 2)  # ResNet-18
  c.model.hard = "sort"
  c.model.placement = 4
  c.model.gradient = "dab"
  c.model.approximator = "per_element"
  c.model.approx_hidden = (64,)
  c.model.gamma = 10.0
  c.model.margin = 0.5
  c.model.k = 10
  c.loss.name = "softmax_xent"
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 1e-4
  return c
