"""The model: the VAE as a Pyro model and guide (:mod:`~pyro_mvae.models.vae`), the base classes of
its components (:mod:`~pyro_mvae.models.base`), their tables by name
(:mod:`~pyro_mvae.models.components`) and the builder of VAEs from names
(:mod:`~pyro_mvae.models.registry`), the priors (:mod:`~pyro_mvae.models.priors`,
:mod:`~pyro_mvae.models.vamp`, :mod:`~pyro_mvae.models.flows`), guides
(:mod:`~pyro_mvae.models.guides`), mixture layouts (:mod:`~pyro_mvae.models.layouts`), likelihoods
(:mod:`~pyro_mvae.models.likelihoods`), networks (:mod:`~pyro_mvae.models.nets`), train and eval
modes (:mod:`~pyro_mvae.models.modes`) and the checks of networks (:mod:`~pyro_mvae.models.probe`).
Imports only :mod:`pyro_mvae.config`, :mod:`pyro_mvae.errors` and :mod:`pyro_mvae.distributions`."""
