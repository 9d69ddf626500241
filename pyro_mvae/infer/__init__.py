"""Inference on a built VAE: objectives (Pyro ELBOs as data), SVI steps, the IWAE estimator and
the β / τ schedules. Sits above :mod:`pyro_mvae.models`."""
