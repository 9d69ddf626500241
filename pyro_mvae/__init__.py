"""pyro_mvae: variational autoencoders with learned multimodal priors, as Pyro models and guides.

Parameters live in the modules (ordinary ``torch.nn`` parameters, never in Pyro's global
parameter store), so two models in one process never share parameters and a plain
``torch.optim`` optimiser trains them.

Layers, each importing only the ones above it in this list: :mod:`pyro_mvae.errors`,
:mod:`pyro_mvae.config` and :mod:`pyro_mvae.storage`; :mod:`pyro_mvae.distributions`;
:mod:`pyro_mvae.models`; :mod:`pyro_mvae.infer`; :mod:`pyro_mvae.data`; :mod:`pyro_mvae.plugins`;
:mod:`pyro_mvae.tracking`; :mod:`pyro_mvae.training`; :mod:`pyro_mvae.compose` (a configuration
composed and checked) and :mod:`pyro_mvae.runs` (run directories read back);
:mod:`pyro_mvae.evaluation`; :mod:`pyro_mvae.session` (one training run from a configuration);
:mod:`pyro_mvae.sweeps` (many, on Hydra's multirun); the command line (:mod:`pyro_mvae.cli`). The
names below are the public API.
"""

__version__ = "0.2.0"

from pyro_mvae.compose import build_from_config, compose_config  # noqa: E402
from pyro_mvae.data import DATASETS, DataSource, build_dataset  # noqa: E402
from pyro_mvae.errors import ConfigError, DataError, PairingError, RunError, UserError  # noqa: E402
from pyro_mvae.evaluation.evaluate import evaluate_run  # noqa: E402
from pyro_mvae.infer.iwae import iwae_log_likelihood  # noqa: E402
from pyro_mvae.infer.objectives import OBJECTIVES, build_objective  # noqa: E402
from pyro_mvae.models.base import Guide, Prior  # noqa: E402
from pyro_mvae.models.nets import NetKind  # noqa: E402
from pyro_mvae.models.registry import GUIDES, LIKELIHOODS, PRIORS, build_vae  # noqa: E402
from pyro_mvae.models.vae import VAE  # noqa: E402
from pyro_mvae.plugins import load_installed, register  # noqa: E402
from pyro_mvae.runs import load_run  # noqa: E402
from pyro_mvae.session import resume_run  # noqa: E402
from pyro_mvae.training.train import Run, TrainerConfig, fit  # noqa: E402

__all__ = ["VAE", "Prior", "Guide", "NetKind", "PRIORS", "GUIDES", "LIKELIHOODS", "OBJECTIVES", "DATASETS",
           "DataSource", "register", "load_installed", "build_vae", "build_dataset", "build_objective",
           "build_from_config", "compose_config",
           "Run", "TrainerConfig", "fit", "resume_run", "load_run", "evaluate_run", "iwae_log_likelihood",
           "ConfigError", "DataError", "PairingError", "RunError", "UserError", "__version__"]
