"""Plain-PyTorch network bodies for encoders and decoders (no Pyro here)."""

from collections.abc import Sequence

from torch import nn


class MLP(nn.Sequential):
    """Fully connected network ``in_dim -> hidden... -> out_dim`` with ReLU between layers.

    Input ``(..., in_dim)``, output ``(..., out_dim)``; the last layer is linear.
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int):
        sizes = [in_dim, *hidden, out_dim]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            if i > 0:
                layers.append(nn.ReLU())
            layers.append(nn.Linear(a, b))
        super().__init__(*layers)


MIN_SCALE = 1e-3
"""Floor added to every learned standard deviation, for numerical stability."""

UNIT_SCALE_RAW = 0.539742417236952
"""softplus⁻¹(1 − MIN_SCALE): the raw value whose :func:`positive` is 1."""


def positive(raw):
    """Map an unconstrained tensor to standard deviations: ``softplus(raw) + MIN_SCALE`` (same shape)."""
    return nn.functional.softplus(raw) + MIN_SCALE
