"""The package's own Pyro distributions: mixtures with pathwise and score gradients, a
matrix-product diagonal-Gaussian mixture, the Gumbel-Rao one-hot categorical and the Concrete
choice scored in log space."""

from pyro_mvae.distributions.concrete import LogSpaceConcrete
from pyro_mvae.distributions.gumbel_rao import GumbelRaoOneHotCategorical, OneHotCategoricalLinear
from pyro_mvae.distributions.mixtures import (
                                              DiagonalGaussianMixture,
                                              ReparameterizedDiagNormalMixture,
                                              ReparameterizedNormalMixture,
                                              ScoreWeightsDiagNormalMixture,
)

__all__ = ["DiagonalGaussianMixture", "GumbelRaoOneHotCategorical", "LogSpaceConcrete", "OneHotCategoricalLinear",
           "ReparameterizedDiagNormalMixture", "ReparameterizedNormalMixture", "ScoreWeightsDiagNormalMixture"]
