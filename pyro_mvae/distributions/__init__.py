"""The package's own Pyro distributions: mixtures with pathwise and score gradients and a
matrix-product diagonal-Gaussian mixture (:mod:`~pyro_mvae.distributions.mixtures`), the Gumbel-Rao
one-hot categorical (:mod:`~pyro_mvae.distributions.gumbel_rao`) and the Concrete choice scored in
log space (:mod:`~pyro_mvae.distributions.concrete`). The names of ``__all__`` are importable from
here; each is documented in the module that defines it."""

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
