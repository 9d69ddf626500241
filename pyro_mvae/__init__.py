"""pyro_mvae: variational autoencoders with learned multimodal priors, as Pyro models and guides.

Importing the package turns on Pyro's ``module_local_params`` setting: every parameter lives in
its own :class:`~pyro.nn.PyroModule` (not in Pyro's global parameter store), so that two models
in one process never share parameters and a plain ``torch.optim`` optimiser trains them.
"""

import pyro

pyro.settings.set(module_local_params=True)

__version__ = "0.1.0"

from pyro_mvae.model import VAE  # noqa: E402
from pyro_mvae.registry import build_vae  # noqa: E402

__all__ = ["VAE", "build_vae", "__version__"]
