"""Reporting on trained runs: evaluation, diagnostics, figures and comparison tables. Sits on
top of :mod:`pyro_mvae.training`."""
