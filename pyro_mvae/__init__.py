"""pyro_mvae: variational autoencoders with learned multimodal priors, as Pyro models and guides.

Parameters live in the modules (ordinary ``torch.nn`` parameters, never in Pyro's global
parameter store), so two models in one process never share parameters and a plain
``torch.optim`` optimiser trains them.
"""

__version__ = "0.1.0"

from pyro_mvae.model import VAE  # noqa: E402
from pyro_mvae.registry import build_vae  # noqa: E402

__all__ = ["VAE", "build_vae", "__version__"]
