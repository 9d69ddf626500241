"""One optimisation step of SVI on a batch, by the fastest route the objective allows.

* **fast**: for ELBOs with a differentiable loss (Trace_ELBO, TraceMeanField_ELBO,
  TraceEnum_ELBO), the loss is a module (:class:`ELBOLoss`, the role of Pyro's ``ELBOModule``)
  whose output is back-propagated and stepped by one plain ``torch.optim`` optimiser over all
  parameters; the loss stays on the device (no per-step host synchronisation) and the module can
  be wrapped in ``DistributedDataParallel``.
* **svi**: for ELBOs that only have ``loss_and_grads`` (TraceGraph_ELBO, whose surrogate carries
  the score-function baselines, and RenyiELBO), as ``pyro.infer.SVI`` does it, with
  ``vae.svi_guide`` (which records the parameters as Pyro ``param`` sites).

A step on labelled images (semi-supervised M2: ``stepper(x, y)``) is always the fast route of
Trace_ELBO (``labelled_elbo``): given c = y the guide's one site z is reparameterised, so the
objective's discrete machinery (enumeration, strata, baselines) has nothing to act on.

Pyro's argument validation is off inside a step (the data were checked once before training);
``validate=True`` turns it on, as the tests do.
"""

import contextlib

import pyro
import torch
from pyro.infer import Trace_ELBO
from torch import nn

from pyro_mvae.errors import NonFiniteStep


class ELBOLoss(nn.Module):
    """``scale`` × −ELBO of ``vae.model`` and ``vae.guide`` on a batch x ``(B, *event)`` (with class
    labels y ``(B,)`` when given): a 0-dim tensor in nats, summed over the batch, differentiable.
    Holds the VAE, so ``parameters()`` are the VAE's. ``scale`` = W, the number of ranks, turns
    DistributedDataParallel's gradient average into the gradient of the global batch's sum."""

    def __init__(self, vae, elbo, scale: float = 1.0):
        super().__init__()
        self.vae = vae
        self.elbo = elbo
        self.scale = scale

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """``scale`` × −ELBO on x ``(B, *event)`` (labels y ``(B,)`` or None), a 0-dim tensor in nats,
        differentiable."""
        loss = self.elbo.differentiable_loss(self.vae.model, self.vae.guide, x, y)
        return loss if self.scale == 1 else self.scale * loss


def labelled_elbo(elbo) -> Trace_ELBO:
    """The Trace_ELBO of labelled steps, with ``elbo``'s particles (vectorised when several)."""
    particles = elbo.num_particles
    return Trace_ELBO(num_particles=particles, max_plate_nesting=1, vectorize_particles=particles > 1)


def has_differentiable_loss(elbo) -> bool:
    """Whether ``elbo`` can take the fast route."""
    return callable(getattr(elbo, "differentiable_loss", None))


class Stepper:
    """Calling the stepper, ``stepper(x)``, zeroes the gradients, computes −ELBO on x ``(B, *event)``
    with its gradients, and steps the optimiser; returns the loss as a detached 0-dim tensor on the data's device (nats,
    summed over the batch). ``stepper(x, y)`` does the same for labelled images (class labels y
    ``(B,)``) with the labelled Trace_ELBO; its loss includes −α · log q(c = y | x).

    Args:
        vae: the :class:`~pyro_mvae.models.vae.VAE`.
        elbo: a Pyro ELBO instance (see :mod:`pyro_mvae.infer.objectives`).
        optimizer: a ``torch.optim`` optimiser over ``vae.parameters()``.
        loss_module: the fast route's loss (default ``ELBOLoss(vae, elbo)``); a
            ``DistributedDataParallel`` wrapper of it for multi-process training.
        fast: take the fast route when the ELBO has a differentiable loss.
        validate: Pyro's distribution argument checks during the step.
        check_finite: before the optimiser steps, check that the loss and the gradients are
            finite (one host read per step) and raise :class:`~pyro_mvae.errors.NonFiniteStep`
            if not (the gradients are then cleared and nothing moves).
        agree: with several ranks, a reduction (sum over ranks) that makes every rank take the
            same decision.
        networks: a :class:`~pyro_mvae.infer.compiled.CompiledNetworks` of ``vae``: the step's
            loss and gradients run the compiled encoder body and decoder (None: eager).
    """

    def __init__(self, vae, elbo, optimizer, loss_module=None, fast: bool = True,
                 validate: bool = False, check_finite: bool = True, agree=None, networks=None):
        self.vae, self.elbo, self.optimizer, self.validate = vae, elbo, optimizer, validate
        self.fast = fast and has_differentiable_loss(elbo)
        self.loss_module = loss_module if loss_module is not None else ELBOLoss(vae, elbo)
        self.check_finite, self.agree, self.networks = check_finite, agree, networks
        self.labelled_module = ELBOLoss(vae, labelled_elbo(elbo))

    @property
    def compiled(self) -> bool:
        """Whether the steps so far ran the networks compiled (none has fallen back to eager)."""
        return self.networks is not None and self.networks.compiled

    @property
    def route(self) -> str:
        """``"fast"`` (the ELBO's differentiable loss, through ``loss_module``) or ``"svi"`` (its
        ``loss_and_grads``)."""
        return "fast" if self.fast else "svi"

    def __call__(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        networks = self.networks.active() if self.networks is not None else contextlib.nullcontext()
        with pyro.validation_enabled(self.validate), networks:
            if self.fast or y is not None:
                loss = self.loss_module(x) if y is None else self.labelled_module(x, y)
                loss.backward()
                loss = loss.detach()
            else:
                loss = torch.as_tensor(self.elbo.loss_and_grads(self.vae.model, self.vae.svi_guide, x),
                                       device=x.device)
        if self.check_finite:
            self._refuse_non_finite(loss)
        self.optimizer.step()
        return loss

    def _refuse_non_finite(self, loss: torch.Tensor) -> None:
        grads = [p.grad for p in self.vae.parameters() if p.grad is not None]
        grad_sum = torch.stack([g.sum() for g in grads]).sum() if grads else torch.zeros_like(loss)
        bad = (~torch.isfinite(loss) | ~torch.isfinite(grad_sum)).float()  # 0-dim, on the device
        if self.agree is not None:
            bad = self.agree(bad)
        if bool(bad > 0):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteStep(float(loss), float(grad_sum))
