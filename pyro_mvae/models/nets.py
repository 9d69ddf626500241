"""Plain-PyTorch network bodies for encoders and decoders (no Pyro here)."""

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn

from pyro_mvae.config import Settings, option


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


IMAGE_SIDE = 28
"""The convolutional networks are built for 28 × 28 images (MNIST)."""

_CHANNELS, _GRID = 64, 7  # the conv body's output: 64 channels on a 7 × 7 grid (3136 values)


def _check_image(data_dim: int) -> None:
    if data_dim != IMAGE_SIDE ** 2:
        raise ValueError(f"net=conv is built for {IMAGE_SIDE}×{IMAGE_SIDE} images (D = {IMAGE_SIDE ** 2}), "
                         f"got D = {data_dim}: use net=mlp for these images")


class ConvEncoder(nn.Module):
    """x ``(..., 784)`` -> ``(..., out_dim)`` for 28 × 28 images.

    (N, 1, 28, 28) -> Conv 4×4 stride 2 (32 ch.) -> (N, 32, 14, 14) -> ReLU -> Conv 4×4 stride 2
    (64 ch.) -> (N, 64, 7, 7) -> ReLU -> flatten (N, 3136) -> MLP(3136, hidden, out_dim).
    """

    def __init__(self, data_dim: int, hidden: Sequence[int], out_dim: int):
        super().__init__()
        _check_image(data_dim)
        self.body = nn.Sequential(nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(32, _CHANNELS, 4, stride=2, padding=1), nn.ReLU())
        self.head = MLP(_CHANNELS * _GRID ** 2, hidden, out_dim)

    def forward(self, x):
        lead = x.shape[:-1]
        h = self.body(x.reshape(-1, 1, IMAGE_SIDE, IMAGE_SIDE))  # (N, 64, 7, 7)
        return self.head(nn.functional.relu(h.flatten(1))).reshape(*lead, -1)


class ConvDecoder(nn.Module):
    """z ``(..., d)`` -> ``(..., 784)``: MLP(d, hidden, 3136) -> ReLU -> (N, 64, 7, 7) ->
    ConvTranspose 4×4 stride 2 (32 ch.) -> (N, 32, 14, 14) -> ReLU -> ConvTranspose 4×4 stride 2
    (1 ch.) -> (N, 1, 28, 28) -> flatten (the likelihood's logits or means)."""

    def __init__(self, latent_dim: int, hidden: Sequence[int], data_dim: int):
        super().__init__()
        _check_image(data_dim)
        self.head = MLP(latent_dim, hidden, _CHANNELS * _GRID ** 2)
        self.body = nn.Sequential(nn.ReLU(), nn.ConvTranspose2d(_CHANNELS, 32, 4, stride=2, padding=1),
                                  nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, stride=2, padding=1))

    def forward(self, z):
        lead = z.shape[:-1]
        h = self.head(z.reshape(-1, z.shape[-1])).reshape(-1, _CHANNELS, _GRID, _GRID)
        return self.body(h).reshape(*lead, IMAGE_SIDE ** 2)


@dataclass
class MLPConfig(Settings):
    """Options of the fully connected encoder and decoder (784-300-300-40 by default)."""

    GROUP = "net"
    hidden: list[int] = option([300, 300], "encoder hidden sizes; the decoder mirrors them")
    latent_dim: int = option(40, "d, the size of z")

    def check(self):
        self.each_at_least("hidden", 1)
        self.at_least("latent_dim", 1)


@dataclass
class ConvConfig(MLPConfig):
    """Options of the convolutional nets (28 × 28 images only)."""

    hidden: list[int] = option([300], "sizes of the MLP after the convolutions; the decoder mirrors the whole net")


@dataclass(frozen=True)
class NetKind:
    """A registered network kind: encoder and decoder classes, both ``(in_dim, hidden, out_dim)``."""

    name: str
    encoder: type
    decoder: type
    Config: type[Settings]


NETS = {k.name: k for k in (NetKind("mlp", MLP, MLP, MLPConfig), NetKind("conv", ConvEncoder, ConvDecoder, ConvConfig))}
"""Network kind -> :class:`NetKind`."""


def encoder_net(kind: str, data_dim: int, hidden: Sequence[int], out_dim: int) -> nn.Module:
    """The encoder body of kind ``mlp`` or ``conv``: ``(..., D)`` -> ``(..., out_dim)``."""
    return NETS[kind].encoder(data_dim, hidden, out_dim)


def decoder_net(kind: str, latent_dim: int, hidden: Sequence[int], data_dim: int) -> nn.Module:
    """The decoder of kind ``mlp`` or ``conv``: ``(..., d)`` -> ``(..., D)``."""
    return NETS[kind].decoder(latent_dim, hidden, data_dim)
