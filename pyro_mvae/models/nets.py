"""Plain-PyTorch network bodies for encoders and decoders (no Pyro here)."""

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from pyro_mvae.config import Registry, Settings, option
from pyro_mvae.errors import ConfigError


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
"""The raw value whose :func:`positive` is 1, softplus⁻¹(1 − MIN_SCALE)."""


def positive(raw):
    """Map an unconstrained tensor to standard deviations: ``softplus(raw) + MIN_SCALE`` (same shape)."""
    return nn.functional.softplus(raw) + MIN_SCALE


def inverse_positive(scale):
    """The raw value whose :func:`positive` is ``scale`` (same shape; scale > MIN_SCALE)."""
    return (scale - MIN_SCALE).expm1().log()


def event_size(event_shape) -> int:
    """The number of values of one datapoint of ``event_shape``: D = C·H·W for images."""
    return math.prod(event_shape)


def _trunk(in_dim: int, hidden: Sequence[int]) -> nn.Module:
    """``MLP(in_dim, hidden[:-1], hidden[-1])`` followed by a ReLU: ``(..., in_dim)`` -> features
    ``(..., hidden[-1])``; nothing (the input itself) when ``hidden`` is empty."""
    return nn.Sequential(*MLP(in_dim, hidden[:-1], hidden[-1]), nn.ReLU()) if hidden else nn.Identity()


class MLPBody(nn.Module):
    """Encoder body: x ``(..., *event)`` -> features ``(..., F)``: the flattened x (D values)
    through ``MLP(D, hidden[:-1], hidden[-1])`` and a ReLU, F = ``hidden[-1]`` (F = D, the
    flattened x itself, when ``hidden`` is empty)."""

    def __init__(self, event_shape, hidden: Sequence[int]):
        super().__init__()
        self.event_dims = len(event_shape)
        self.mlp = _trunk(event_size(event_shape), hidden)

    def forward(self, x):
        """Features ``(..., F)`` of x ``(..., *event)``."""
        return self.mlp(x.flatten(-self.event_dims))  # (..., D) -> (..., F)


class MLPDecoder(MLP):
    """Decoder: z ``(..., d)`` -> ``MLP(d, hidden, D)`` -> the likelihood's parameters
    ``(..., *event)``; linear last layer."""

    def __init__(self, latent_dim: int, hidden: Sequence[int], event_shape):
        super().__init__(latent_dim, hidden, event_size(event_shape))
        self.event_shape = tuple(event_shape)

    def forward(self, z):
        """The likelihood's parameters ``(..., *event)`` of z ``(..., d)``."""
        return super().forward(z).unflatten(-1, self.event_shape)  # (..., D) -> (..., *event)


class GatedDense(nn.Sequential):
    """Gated dense layer h = (W x + b) ⊙ σ(V x + c) (Dauphin et al. 2017; the ``GatedDense`` of
    Tomczak & Welling 2018): one ``Linear(in_dim, 2·out_dim)`` whose halves are W x + b and
    V x + c, then ``torch.nn.GLU``. Input ``(..., in_dim)``, output ``(..., out_dim)``."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__(nn.Linear(in_dim, 2 * out_dim), nn.GLU(dim=-1))


def gated_stack(in_dim: int, hidden: Sequence[int]) -> nn.Sequential:
    """``GatedDense(in_dim, hidden[0]) -> GatedDense(hidden[0], hidden[1]) -> ...``:
    ``(..., in_dim)`` -> ``(..., hidden[-1])``; no activation after the last gate."""
    sizes = [in_dim, *hidden]
    return nn.Sequential(*(GatedDense(a, b) for a, b in zip(sizes[:-1], sizes[1:])))


class GatedMLPBody(nn.Module):
    """Encoder body of the VampPrior paper's one-stochastic-layer VAE (Tomczak & Welling 2018):
    x ``(..., *event)`` flattened to D values -> :func:`gated_stack` -> features ``(..., F)``,
    F = ``hidden[-1]`` (784 → 300 → 300 on MNIST by default)."""

    def __init__(self, event_shape, hidden: Sequence[int]):
        super().__init__()
        self.event_dims = len(event_shape)
        self.gates = gated_stack(event_size(event_shape), hidden)

    def forward(self, x):
        """Features ``(..., F)`` of x ``(..., *event)``."""
        return self.gates(x.flatten(-self.event_dims))  # (..., D) -> (..., F)


class GatedMLPDecoder(nn.Module):
    """Decoder of the same paper: z ``(..., d)`` -> :func:`gated_stack` -> ``Linear(hidden[-1], D)``
    -> the likelihood's parameters ``(..., *event)`` (Bernoulli logits: the paper's sigmoid output
    layer with the sigmoid left to the likelihood)."""

    def __init__(self, latent_dim: int, hidden: Sequence[int], event_shape):
        super().__init__()
        self.event_shape = tuple(event_shape)
        self.gates = gated_stack(latent_dim, hidden)
        self.out = nn.Linear(hidden[-1], event_size(event_shape))

    def forward(self, z):
        """The likelihood's parameters ``(..., *event)`` of z ``(..., d)``."""
        return self.out(self.gates(z)).unflatten(-1, self.event_shape)  # (..., D) -> (..., *event)


def he_init(*modules: nn.Module) -> None:
    """He initialisation of the weights of every ``nn.Linear`` in ``modules``: N(0, 2 / fan_in)
    (He et al. 2015; ``he_init`` of Tomczak & Welling 2018's code), biases left at PyTorch's
    default. Draws from torch's global generator (seeded by the run)."""
    for module in modules:
        for layer in module.modules():
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_normal_(layer.weight, mode="fan_in", nonlinearity="relu")


def _image(event_shape, name: str) -> tuple[int, int, int]:
    if len(event_shape) != 3:
        raise ConfigError(f"net={name} needs images of shape (C, H, W), got data of shape "
                          f"{tuple(event_shape)}: use net=mlp for vectors")
    return tuple(event_shape)


def conv_grids(event_shape, channels: Sequence[int], kernel: int, stride: int) -> list[tuple[int, int]]:
    """(H, W) of the image and after each convolution of :class:`ConvBody` (``len(channels) + 1``
    sizes; each convolution pads by ``(kernel − stride) // 2``).

    Raises:
        ConfigError: when a convolution would leave less than one pixel.
    """
    padding = (kernel - stride) // 2
    grids = [tuple(event_shape[1:])]
    for stage in range(len(channels)):
        grid = tuple((side + 2 * padding - kernel) // stride + 1 for side in grids[-1])
        if min(grid) < 1:
            raise ConfigError(f"net.channels={list(channels)} with kernel {kernel} and stride {stride} leaves "
                              f"no pixel of a {grids[0][0]}×{grids[0][1]} image after convolution {stage + 1}: "
                              "use fewer net.channels stages or a smaller net.stride")
        grids.append(grid)
    return grids


class ConvBody(nn.Module):
    """Encoder body for images x ``(..., C, H, W)`` -> features ``(..., F)``.

    One ``Conv2d(kernel, stride, padding=(kernel − stride) // 2)`` + ReLU per entry of
    ``channels``, (N, C, H, W) -> (N, channels[-1], h, w); flattened (N, channels[-1]·h·w), then
    :class:`MLPBody` with ``hidden``. With the defaults on MNIST (channels [32, 64], kernel 4,
    stride 2, hidden [300]): 28 -> 14 -> 7, 3136 values, F = 300 (0.1.0's net).
    """

    def __init__(self, event_shape, channels: Sequence[int], kernel: int, stride: int, hidden: Sequence[int]):
        super().__init__()
        self.event_shape = _image(event_shape, "conv")
        h, w = conv_grids(event_shape, channels, kernel, stride)[-1]
        sizes = [event_shape[0], *channels]
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Conv2d(a, b, kernel, stride=stride, padding=(kernel - stride) // 2), nn.ReLU()]
        self.convs = nn.Sequential(*layers)
        self.mlp = _trunk(sizes[-1] * h * w, hidden)

    def forward(self, x):
        """Features ``(..., F)`` of images x ``(..., C, H, W)``."""
        lead = x.shape[:-3]
        h = self.convs(x.reshape(-1, *self.event_shape))  # (N, C', h, w)
        return self.mlp(h.flatten(1)).reshape(*lead, -1)  # (N, C'·h·w) -> (..., F)


class ConvDecoder(nn.Module):
    """Decoder mirroring :class:`ConvBody`: z ``(..., d)`` -> ``MLP(d, hidden, C'·h·w)`` -> ReLU ->
    (N, C', h, w) -> one ``ConvTranspose2d`` per stage, back through the encoder's channels and
    grid sizes to (N, C, H, W) (ReLU between them, none after the last) -> ``(..., C, H, W)``, the
    likelihood's parameters."""

    def __init__(self, latent_dim: int, event_shape, channels: Sequence[int], kernel: int, stride: int,
                 hidden: Sequence[int]):
        super().__init__()
        self.event_shape = _image(event_shape, "conv")
        self.grids = conv_grids(event_shape, channels, kernel, stride)[::-1]  # (h, w) ... (H, W)
        sizes = [*channels[::-1], event_shape[0]]
        self.head = MLP(latent_dim, hidden, sizes[0] * math.prod(self.grids[0]))
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.ReLU(), nn.ConvTranspose2d(a, b, kernel, stride=stride, padding=(kernel - stride) // 2)]
        self.body = nn.Sequential(*layers)

    def forward(self, z):
        """The likelihood's parameters ``(..., C, H, W)`` of z ``(..., d)``."""
        lead = z.shape[:-1]
        h = self.head(z.reshape(-1, z.shape[-1])).reshape(-1, self.body[1].in_channels, *self.grids[0])
        for stage, layer in enumerate(self.body):
            is_conv = isinstance(layer, nn.ConvTranspose2d)
            h = layer(h, output_size=self.grids[stage // 2 + 1]) if is_conv else layer(h)
        return h.reshape(*lead, *self.event_shape)  # (N, C, H, W) -> (..., C, H, W)


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
class PlainMLPConfig(MLPConfig):
    """Options of ``net=mlp``: :class:`MLPConfig`'s and the initialisation of its linear layers."""

    init: str = option("default", "default (PyTorch's) | he (N(0, 2/fan_in) weights of every linear layer of the "
                                  "encoder, its heads and the decoder)")

    def check(self):
        super().check()
        self.one_of("init", ("he", "default"))


@dataclass
class ConvConfig(MLPConfig):
    """Options of the convolutional nets (images (C, H, W) of any size)."""

    hidden: list[int] = option([300], "sizes of the MLP after the convolutions; the decoder mirrors the whole net")
    channels: list[int] = option([32, 64], "output channels of each convolution stage")
    kernel: int = option(4, "kernel size of every convolution (padding (kernel - stride) // 2)")
    stride: int = option(2, "stride of every convolution")

    def check(self):
        super().check()
        self.each_at_least("channels", 1)
        self.at_least("stride", 1)
        self.at_least("kernel", self.stride)


@dataclass
class GatedMLPConfig(PlainMLPConfig):
    """Options of the gated fully connected nets of Tomczak & Welling 2018 (784-300-300-40)."""

    init: str = option("he", "he (N(0, 2/fan_in) weights of every linear layer of the encoder, its heads and the "
                             "decoder, as the paper's code) | default (PyTorch's)")


@dataclass(frozen=True)
class NetKind:
    """A registered network kind: ``encoder(event_shape, cfg)`` builds the body, a module
    x ``(B, *event)`` -> features ``(B, F)`` on which each guide puts its own heads;
    ``decoder(event_shape, cfg)`` a module z ``(B, cfg.latent_dim)`` -> the likelihood's
    parameters ``(B, *event)``. ``Config``: their typed options, with ``latent_dim``.
    ``initialise(cfg, guide, decoder)``, when given, re-initialises the built guide (the body and
    the guide's heads) and the decoder in place (:func:`he_init`); None keeps PyTorch's defaults."""

    name: str
    encoder: Callable
    decoder: Callable
    Config: type[Settings]
    initialise: Callable | None = None


def init_when_asked(cfg, guide: nn.Module, decoder: nn.Module) -> None:
    """:func:`he_init` of the guide (its body and heads) and the decoder when ``cfg.init`` is ``he``
    (the ``NetKind.initialise`` of ``net=mlp`` and ``net=gated_mlp``)."""
    if cfg.init == "he":
        he_init(guide, decoder)


NETS = Registry("net", {k.name: k for k in (
    NetKind("mlp", lambda shape, cfg: MLPBody(shape, cfg.hidden),
            lambda shape, cfg: MLPDecoder(cfg.latent_dim, cfg.hidden[::-1], shape), PlainMLPConfig,
            init_when_asked),
    NetKind("conv", lambda shape, cfg: ConvBody(shape, cfg.channels, cfg.kernel, cfg.stride, cfg.hidden),
            lambda shape, cfg: ConvDecoder(cfg.latent_dim, shape, cfg.channels, cfg.kernel, cfg.stride,
                                           cfg.hidden[::-1]), ConvConfig),
    NetKind("gated_mlp", lambda shape, cfg: GatedMLPBody(shape, cfg.hidden),
            lambda shape, cfg: GatedMLPDecoder(cfg.latent_dim, cfg.hidden[::-1], shape), GatedMLPConfig,
            init_when_asked))})
"""Network kind -> :class:`NetKind` (a :class:`~pyro_mvae.config.Registry`).

:meta hide-value:
"""
