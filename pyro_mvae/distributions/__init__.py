"""The package's own Pyro distributions: reparameterised mixtures (implicit gradients), a
matrix-product diagonal-Gaussian mixture, and the Gumbel-Rao one-hot categorical."""

from pyro_mvae.distributions.gumbel_rao import GumbelRaoOneHotCategorical, OneHotCategoricalLinear
from pyro_mvae.distributions.mixtures import (DiagonalGaussianMixture, ReparameterizedDiagNormalMixture,
                                              ReparameterizedNormalMixture)

__all__ = ["DiagonalGaussianMixture", "GumbelRaoOneHotCategorical", "OneHotCategoricalLinear",
           "ReparameterizedDiagNormalMixture", "ReparameterizedNormalMixture"]
