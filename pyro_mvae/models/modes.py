"""Train and eval mode: every evaluation runs the networks in eval mode, then gives them back.

A network with BatchNorm scores a batch with the batch's own statistics (and updates its running
statistics) in train mode, and Dropout drops units: an image's log-likelihood would then depend
on which images share its batch, and evaluating would change the model. So every function of the
package that scores, samples or draws (IWAE, AIS, BDMC, validation, figures, diagnostics) runs
inside :func:`eval_mode`, and the training loop puts the VAE in train mode for its steps.
"""

import contextlib
import functools
import itertools

from torch import nn

_scope = {"depth": 0, "id": None}
_ids = itertools.count()


@contextlib.contextmanager
def eval_mode(module: nn.Module):
    """Within the block, ``module`` and all its submodules are in eval mode (``module.eval()``:
    BatchNorm uses and keeps its running statistics, Dropout is off); on leaving, each submodule
    gets back the mode it had, so a caller's module in train mode is in train mode again. Like
    ``torch.no_grad``, blocks nest.

    Example::

        with eval_mode(vae):
            log_px = iwae_log_likelihood(vae, x)  # (N,) nats, whatever the batch
    """
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    if _scope["depth"] == 0:
        _scope["id"] = next(_ids)
    _scope["depth"] += 1
    try:
        yield module
    finally:
        _scope["depth"] -= 1
        if _scope["depth"] == 0:
            _scope["id"] = None
        for m, training in modes:
            m.training = training


def evaluation_scope() -> int | None:
    """An id of the outermost :func:`eval_mode` block now open, or None outside every such block.
    Within one block no parameter changes (an evaluation does not train), so a component may keep
    what it computed from its parameters for the rest of the block (the VampPrior's components)."""
    return _scope["id"]


def evaluates(fn):
    """Decorator: run ``fn(module, ...)`` (a function or method whose first argument is the
    ``nn.Module`` it evaluates, e.g. the VAE) inside :func:`eval_mode` of that module."""
    @functools.wraps(fn)
    def wrapper(module, *args, **kwargs):
        with eval_mode(module):
            return fn(module, *args, **kwargs)
    return wrapper
