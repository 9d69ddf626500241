"""Inference on a built VAE, above :mod:`pyro_mvae.models`: the objectives, Pyro ELBOs as data
(:mod:`~pyro_mvae.infer.objectives`), the stratified ELBO (:mod:`~pyro_mvae.infer.stratified`), SVI
steps (:mod:`~pyro_mvae.infer.steps`), the β / τ schedules (:mod:`~pyro_mvae.infer.schedules`), and
the estimators of log p(x): IWAE (:mod:`~pyro_mvae.infer.iwae`) and its compiled form
(:mod:`~pyro_mvae.infer.compiled`), AIS (:mod:`~pyro_mvae.infer.ais`) and BDMC
(:mod:`~pyro_mvae.infer.bdmc`)."""
