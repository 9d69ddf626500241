"""One forward pass of a dummy batch through an encoder body and a decoder, before anything
trains: finds the body's feature size F and refuses a network whose shapes do not fit the data."""

import contextlib

import torch
from torch import nn

from pyro_mvae.errors import ConfigError

PROBE_BATCH = 2
"""B of the dummy batch (zeros) sent through each network."""


@contextlib.contextmanager
def _evaluating(module: nn.Module):
    """``module`` in eval mode without gradients (a probe must not move BatchNorm statistics)."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        module.train(was_training)


def _device(module: nn.Module) -> torch.device:
    """The device of ``module``'s first parameter (the CPU for a module without any)."""
    first = next(module.parameters(), None)
    return torch.device("cpu") if first is None else first.device


def _shape(shape) -> str:
    return f"(B, {', '.join(map(str, shape))})"


def body_features(body: nn.Module, event_shape: tuple[int, ...], features: int | None = None) -> int:
    """F, the size of the features ``body`` maps x ``(B, *event)`` to: ``(B, F)``.

    Raises:
        ConfigError: when the body fails on x ``(2, *event)``, gives anything but ``(2, F)``, or
            F differs from ``features`` (when given).
    """
    x = torch.zeros(PROBE_BATCH, *event_shape, device=_device(body))
    with _evaluating(body):
        try:
            h = body(x)
        except RuntimeError as err:
            raise ConfigError(f"the encoder body fails on data of shape {_shape(event_shape)}: {err}") from err
    if not isinstance(h, torch.Tensor) or h.dim() != 2 or h.shape[0] != PROBE_BATCH:
        got = tuple(h.shape) if isinstance(h, torch.Tensor) else type(h).__name__
        raise ConfigError(f"the encoder body must map x {_shape(event_shape)} to features (B, F); on a batch of "
                          f"{PROBE_BATCH} it gave {got}: end it with a flatten (and a layer to F features)")
    if features is not None and h.shape[1] != features:
        raise ConfigError(f"the encoder body gives {h.shape[1]} features per datapoint, not features={features}")
    return h.shape[1]


def check_decoder(decoder: nn.Module, latent_dim: int, event_shape: tuple[int, ...]) -> None:
    """Raises ConfigError unless ``decoder`` maps z ``(B, d)`` to ``(B, *event)``, the shape of the
    likelihood's parameters (one per value of a datapoint)."""
    z = torch.zeros(PROBE_BATCH, latent_dim, device=_device(decoder))
    expected = (PROBE_BATCH, *event_shape)
    with _evaluating(decoder):
        try:
            out = decoder(z)
        except RuntimeError as err:
            raise ConfigError(f"the decoder fails on z of shape (B, {latent_dim}) (net.latent_dim): {err}") from err
    got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
    if got != expected:
        raise ConfigError(f"the decoder must map z (B, {latent_dim}) to the likelihood's parameters "
                          f"{_shape(event_shape)}; on a batch of {PROBE_BATCH} it gave {got}, expected {expected}")
