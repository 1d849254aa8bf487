"""Bring your own model: prove that a PyTorch network and its JAX port train the same.

The model is not in the catalogue: a 30-64-32-1 tanh network with a sigmoid output, trained with
BCELoss and SGD with momentum on the breast-cancer table, batch 32, three epochs. The torch side
is written as any torch script would be; the JAX port is a Flax NNX module whose attribute names
mirror the torch ones (fc1, fc2, fc3), so jaxtut maps the parameters by itself.

`jaxtut.compare` starts both from the torch model's current parameters, feeds both the same
batches, compares the forward pass, the gradients and every step of training, and checks that its
own comparison would catch a learning rate off by 1%. Run it:

    python examples/compare_custom_model.py            # float64, then float32
"""

import sys

import jax
import numpy as np
import torch
from flax import nnx

import jaxtut
from jaxtut.data import breast_cancer


# --- the torch model, as a researcher wrote it ---------------------------------------------
class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(30, 64)
        self.fc2 = torch.nn.Linear(64, 32)
        self.fc3 = torch.nn.Linear(32, 1)

    def forward(self, x):
        x = torch.tanh(self.fc1(x))
        x = torch.tanh(self.fc2(x))
        return torch.sigmoid(self.fc3(x))


# --- its JAX port: the same names, so the state_dict maps onto it automatically --------------
class JaxNet(nnx.Module):
    def __init__(self, *, rngs: nnx.Rngs):
        # HIGHEST: full float32 matmuls on a GPU too (JAX would otherwise use TF32 there).
        dense = dict(rngs=rngs, precision=jax.lax.Precision.HIGHEST)
        self.fc1 = nnx.Linear(30, 64, **dense)
        self.fc2 = nnx.Linear(64, 32, **dense)
        self.fc3 = nnx.Linear(32, 1, **dense)

    def __call__(self, x):  # (B, 30) -> (B, 1) probabilities
        x = jax.numpy.tanh(self.fc1(x))
        x = jax.numpy.tanh(self.fc2(x))
        return jax.nn.sigmoid(self.fc3(x))


def main() -> int:
    x_train, y_train, _, _ = breast_cancer("float64")  # standardised, y as (N, 1) floats
    ok = True
    for dtype in ("float64", "float32"):
        torch.manual_seed(0)
        model = TorchNet()  # its parameters now are the shared start
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        report = jaxtut.compare(
            model,
            JaxNet(rngs=nnx.Rngs(0)),  # only its structure is used: parameters come from torch
            (x_train, y_train),
            loss=torch.nn.BCELoss(),
            optimizer=optimizer,
            batch_size=32,
            epochs=3,
            dtype=dtype,
            name=f"tanh MLP 30-64-32-1 ({dtype})",
        )
        print(report.verdict)
        for tier, check, verdict, measured, tol, where in report.rows():
            print(
                f"  tier {tier} {check:<30} {verdict}  {measured:>9} (tol {tol or '-':>7})  {where}"
            )
        ok &= report.passed
    # The series behind the verdict: the last report's worst parameter difference per step.
    worst = np.nanmax(report.series.rel_params)
    print(f"float32: worst parameter difference over the judged steps {worst:.1e}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
