"""Model registry of the dab package (experiments/API.md).

`config.model.name = "dab.<key>"`; the other `config.model` fields are the
builder's keyword arguments (see `dab.nets`).
"""

from dab import nets

MODELS = {
    "sort": nets.sort_model,                # model.arch = dense | lstm
    "sort_dense": nets.sort_dense,          # table 1, figure 2 left
    "sort_lstm": nets.sort_lstm,            # table 1, figures 2 right and 3
    "autoencoder": nets.autoencoder,        # figures 4-5
    "cifar_resnet18": nets.cifar_resnet18,  # table 2, figure 6
}
