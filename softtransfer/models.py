"""Model registry of the softtransfer package (experiments/API.md).

`config.model.name = "softtransfer.<key>"`; the other `config.model` fields are
the builder's keyword arguments (see `softtransfer.nets`).
"""

import functools

from softtransfer import nets

MODELS = {
    "one_neuron": nets.one_neuron,   # figure 1, sin(2x)
    "mlp": nets.mlp,                 # figure 2, Bessel J0 (400x400x400)
    "lenet5": nets.lenet5,           # table 1, MNIST
    "resnet": nets.resnet,           # table 1, CIFAR-10 (depth=6n+2)
    "resnet20": functools.partial(nets.resnet, depth=20),
    "resnet32": functools.partial(nets.resnet, depth=32),
    "resnet56": functools.partial(nets.resnet, depth=56),
    "resnet110": functools.partial(nets.resnet, depth=110),
}
