"""Table 1 / figure 3: neural sequence sorting with an epsilon-margin signum (eq. 11).

Run (T=5, dense model, DAB gradient):
  python -m experiments.main --config=configs/dab/sort.py --workdir=/tmp/dab_sort5 \
      --config.seq_len=5 --config.gradient=dab --config.model.arch=dense
  seq_len: T; gradient: dab | ste | none | smooth (smooth + model.activation=elu is the
  ELU-Dense baseline); model.arch: dense | lstm (model.ponder_steps for figure 3);
  model.init: haiku (default) | pytorch (torch.nn.Linear's default, dense only);
  model.hidden: the dense widths (128, 128, 256); dataset.num_train: 0 draws fresh
  sequences every step, N > 0 trains on one fixed pool of N (the authors': 2,000,000).
  Variants: ':quick' (short CPU run), ':lstm', ':elu' (ELU-Dense baseline).
(`--config.model` itself is the framework's model section, so the architecture switch
is `--config.model.arch`.)

Data: fresh U(0,1)^T sequences every step, labels argsort(x); a held-out test set of
10,000 sequences. Loss: cross-entropy summed over the T positions, batch mean; plus the
DAB regularizer gamma * sum_features (approx - hard)^2 (gamma 10). Adam 1e-4, batch 1024.
summary.json: test_all_or_none_accuracy (every position right), test_accuracy (per position).

Paper (table 1, signum-dense): 99.3% (T=5), 94.2% (T=10), 79.8% (T=15); training
length not given. The authors' released 10-sort example logs 94.6% test accuracy at
epoch 2,168 of 2M sequences (about 4.23M steps of batch 1024); its default, 15,000
epochs, is about 29.3M steps. Table 1 with every variant over seeds:
`python -m experiments.reproduce dab_table1 --out DIR` (200,000 steps a run, 30-90 min
on one CPU core); the T=10 ablations (fixed pool, PyTorch init, ELU-Dense widths):
`python -m experiments.reproduce dab_table1_ablations --out DIR`. Measured numbers are
in dab/README.md.
"""

from experiments import config_lib


def get_config(arg: str = ""):
  args = set(filter(None, arg.split(",")))
  unknown = args - {"quick", "lstm", "elu"}
  if unknown:
    raise ValueError(f"unknown sort.py variants {sorted(unknown)}; expected quick, lstm, elu")
  c = config_lib.base_config()
  c.seq_len = 5
  c.gradient = "dab"
  c.train_steps = 2000 if "quick" in args else 200_000
  c.eval_every = 500 if "quick" in args else 5000
  c.checkpoint_every = c.eval_every
  c.log_every = 100
  c.batch_size = 1024
  c.eval_batch_size = 1000
  c.dataset.name = "generated"
  c.dataset.generator = "dab.data.sort_sequences"
  c.dataset.kwargs.seq_len = c.get_ref("seq_len")
  c.dataset.num_train = 0
  c.dataset.num_eval = 10_000
  c.dataset.normalization = "none"

  c.model.name = "dab.sort"
  c.model.arch = "lstm" if "lstm" in args else "dense"
  c.model.seq_len = c.get_ref("seq_len")
  c.model.gradient = c.get_ref("gradient")
  c.model.activation = "elu" if "elu" in args else "tanh"
  # haiku (truncated normal, zero bias) | pytorch (torch.nn.Linear's default, the authors').
  c.model.init = "haiku"
  c.model.margin = 0.5
  c.model.gamma = 10.0
  c.model.approximator = "dense"
  # The approximator: 256 -> 128 -> 128 -> 256 with tanh, the authors' released 10-sort
  # example (the paper does not give its size).
  c.model.approx_hidden = (128, 128)
  if "elu" in args:
    c.gradient = "smooth"
  c.model.ponder_steps = 5  # lstm only (figure 3)
  if "lstm" not in args:
    c.model.hidden = (128, 128, 256)  # dense only (the released example's widths)
  else:
    c.model.lstm_size = 256
    c.model.dense = 256
    c.optimizer.grad_clip_norm = 5.0  # appendix 7.2: LSTM (gradclip 5)
  c.loss.name = "softmax_xent"
  c.optimizer.name = "adam"
  c.optimizer.learning_rate = 1e-4
  c.optimizer.schedule.name = "constant"
  return c
