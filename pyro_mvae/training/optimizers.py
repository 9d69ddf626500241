"""The optimisers a run can name (``trainer.optimizer``): PyTorch's Adam, and Adam on normalised
gradients as Tomczak & Welling 2018's code trains (``AdamNormGrad``, utils/optimizer.py there)."""

import torch


class AdamNormGrad(torch.optim.Adam):
    """Adam whose every step first scales each parameter's gradient to unit L2 norm,
    g ← g / (‖g‖₂ + 10⁻⁷), one norm per parameter tensor (``AdamNormGrad`` of Tomczak & Welling
    2018's released code, used there and by Norouzi et al. 2020 for the dynamic-MNIST tables).

    The state (moments, step counts) is Adam's, so checkpoints load into either optimiser.
    """

    EPS = 1e-7

    @torch.no_grad()
    def step(self, closure=None):
        """Normalise the gradients in place, then Adam's step."""
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        if grads:  # three calls for all the tensors (the per-tensor loop cost ~2.5% of a gated MLP's step)
            norms = torch._foreach_norm(grads)
            torch._foreach_add_(norms, self.EPS)
            torch._foreach_div_(grads, norms)
        return super().step(closure)


OPTIMIZERS = {"adam": torch.optim.Adam, "adam_normgrad": AdamNormGrad}
"""``trainer.optimizer`` -> the optimiser class (constructed with ``lr`` and ``fused=True``)."""
