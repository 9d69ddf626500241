"""The model: the VAE as a Pyro model and guide, its priors, guides, layouts, likelihoods and
networks, and the registry that builds them from names. Imports only :mod:`pyro_mvae.config`,
:mod:`pyro_mvae.errors` and :mod:`pyro_mvae.distributions`."""
