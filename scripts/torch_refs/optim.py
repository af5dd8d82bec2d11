"""PyTorch optimizer trajectories for ``tests/test_torch_optim.py``.

A tiny linear model ``y_hat = x @ kernel + bias`` with the loss
``mean((y_hat - y)^2)`` is trained for ``STEPS`` steps in float64 by each
``torch.optim`` optimizer below, the gradient recomputed at the current parameters each
step. Keys:

- ``x`` ``[6, 3]``, ``y`` ``[6, 2]``: the fixed data (NumPy seed ``SEED``);
- ``kernel0`` ``[3, 2]``, ``bias0`` ``[2]``: the starting parameters;
- ``<case>/kernel`` ``[STEPS, 3, 2]``, ``<case>/bias`` ``[STEPS, 2]``: the parameters after
  each step.

A case whose name ends in ``_no_bias_decay`` puts the bias in a parameter group with
``weight_decay = 0`` (dlcore's default decay mask); the other decayed cases decay both
(dlcore's ``decay_include = ["*"]``). The test holds the matching dlcore options per case.
"""

import numpy as np
import torch

SEED = 15
STEPS = 5
BETAS = (0.8, 0.95)

# case -> (torch optimizer class, keyword arguments)
CASES = {
    "sgd": (torch.optim.SGD, {"lr": 0.1}),
    "sgd_momentum": (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    "sgd_dampening": (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "dampening": 0.3}),
    "sgd_nesterov": (torch.optim.SGD, {"lr": 0.1, "momentum": 0.8, "nesterov": True}),
    "sgd_weight_decay": (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.1}),
    "sgd_weight_decay_no_bias_decay": (
        torch.optim.SGD,
        {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.2},
    ),
    "rmsprop": (torch.optim.RMSprop, {"lr": 0.01, "alpha": 0.9, "eps": 0.1}),
    "rmsprop_default_eps": (torch.optim.RMSprop, {"lr": 0.01, "alpha": 0.99}),
    "rmsprop_centered": (
        torch.optim.RMSprop,
        {"lr": 0.01, "alpha": 0.9, "eps": 0.1, "centered": True},
    ),
    "rmsprop_momentum": (
        torch.optim.RMSprop,
        {"lr": 0.01, "alpha": 0.9, "eps": 0.1, "momentum": 0.5},
    ),
    "rmsprop_centered_momentum_weight_decay": (
        torch.optim.RMSprop,
        {
            "lr": 0.01,
            "alpha": 0.9,
            "eps": 0.1,
            "centered": True,
            "momentum": 0.5,
            "weight_decay": 0.05,
        },
    ),
    "adagrad": (torch.optim.Adagrad, {"lr": 0.1, "eps": 0.1}),
    "adagrad_initial_accumulator": (
        torch.optim.Adagrad,
        {"lr": 0.1, "initial_accumulator_value": 0.5},
    ),
    "adagrad_weight_decay": (torch.optim.Adagrad, {"lr": 0.1, "eps": 0.1, "weight_decay": 0.1}),
    "adam": (torch.optim.Adam, {"lr": 0.05, "betas": BETAS, "eps": 0.1}),
    "adam_weight_decay": (torch.optim.Adam, {"lr": 0.05, "betas": BETAS, "weight_decay": 0.1}),
    "adamw": (torch.optim.AdamW, {"lr": 0.05, "betas": BETAS, "eps": 0.1, "weight_decay": 0.3}),
    "adamw_no_bias_decay": (torch.optim.AdamW, {"lr": 0.05, "betas": BETAS, "weight_decay": 0.3}),
}


def make() -> dict[str, np.ndarray]:
    """The data, the starting parameters and every case's trajectory (keys above)."""
    rng = np.random.default_rng(SEED)
    x, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    kernel0, bias0 = rng.standard_normal((3, 2)), rng.standard_normal(2)
    arrays = {"x": x, "y": y, "kernel0": kernel0, "bias0": bias0}
    xt, yt = torch.tensor(x), torch.tensor(y)
    for case, (opt_class, kwargs) in CASES.items():
        kernel = torch.tensor(kernel0, requires_grad=True)
        bias = torch.tensor(bias0, requires_grad=True)
        bias_group = {"params": [bias]}
        if case.endswith("_no_bias_decay"):
            bias_group["weight_decay"] = 0.0
        opt = opt_class([{"params": [kernel]}, bias_group], **kwargs)
        kernels, biases = [], []
        for _ in range(STEPS):
            opt.zero_grad()
            torch.mean((xt @ kernel + bias - yt) ** 2).backward()
            opt.step()
            kernels.append(kernel.detach().numpy().copy())
            biases.append(bias.detach().numpy().copy())
        arrays[f"{case}/kernel"] = np.stack(kernels)
        arrays[f"{case}/bias"] = np.stack(biases)
    assert all(a.dtype == np.float64 for a in arrays.values())
    return arrays
