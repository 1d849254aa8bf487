"""A pair file for `jaxtut compare`: a 30-64-32-1 tanh network and its JAX port."""

import jax
import jax.numpy as jnp
import torch

from jaxtut.data import breast_cancer

x, y, _, _ = breast_cancer("float64")
data = (x, y)

torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Linear(30, 64), torch.nn.Tanh(), torch.nn.Linear(64, 32), torch.nn.Tanh(),
    torch.nn.Linear(32, 1), torch.nn.Sigmoid(),
)  # fmt: skip


def port(p, x):  # Sequential names its layers 0, 2, 4: so do the params below
    h = jnp.tanh(x @ p["0"]["kernel"] + p["0"]["bias"])
    h = jnp.tanh(h @ p["2"]["kernel"] + p["2"]["bias"])
    return jax.nn.sigmoid(h @ p["4"]["kernel"] + p["4"]["bias"])


params = {k: {"kernel": jnp.zeros(s), "bias": jnp.zeros(s[1])} for k, s in
          {"0": (30, 64), "2": (64, 32), "4": (32, 1)}.items()}  # fmt: skip
loss = torch.nn.BCELoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
batch_size, epochs = 32, 3
