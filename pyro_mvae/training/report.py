"""What a run reports: the validation ELBO of every epoch and the final test evaluation."""

import time
from dataclasses import asdict

import torch

from pyro_mvae.data.labelled import classification_error
from pyro_mvae.data.splits import Dataset, dequantized_bits_per_dim
from pyro_mvae.infer.iwae import density_note, iwae_log_likelihood, mean_and_stderr
from pyro_mvae.models.modes import evaluates
from pyro_mvae.training.checkpoints import Progress
from pyro_mvae.training.distributed import SINGLE, Group


@evaluates
@torch.no_grad()
def evaluate_elbo(vae, split, batch_size: int, group: Group = SINGLE) -> dict:
    """One-sample ELBO, log-likelihood and KL per datapoint over a split: means (nats) and the
    ELBO's s.e. With several ranks each scores its shard and the values are gathered."""
    log_lik, kl = zip(*(vae.elbo_terms(xb) for xb in split.shard(group).batches(batch_size)))
    log_lik, kl = group.gather(torch.cat(log_lik)), group.gather(torch.cat(kl))  # (N,), (N,)
    elbo, elbo_se = mean_and_stderr(log_lik - kl)
    return {"elbo": elbo, "elbo_se": elbo_se, "log_lik": log_lik.mean().item(), "kl": kl.mean().item()}


@evaluates
def final_report(vae, data: Dataset, trainer, progress: Progress, group: Group = SINGLE,
                 config: dict | None = None, evaluate=None) -> dict:
    """Test ELBO and IWAE log p(x) (mean ± s.e., nats) of ``vae`` (the best state), sharded.

    ``evaluate(vae, data, test, trainer, best_epoch, config)``, on one process: the scoring to
    use instead, which returns ``iwae_ll``, ``iwae_ll_se``, ``elbo``, ``elbo_se`` and ``kl`` and
    may write more (:func:`pyro_mvae.evaluation.evaluate.evaluate_final` writes ``eval.json``
    and the per-image CSV, so that the run is scored once)."""
    vae.beta = 1.0
    test = data.test.head(trainer.eval_limit)
    tic = time.perf_counter()
    if group.world == 1 and evaluate is not None:
        summary = evaluate(vae, data, test, trainer, progress.best_epoch, config)
        (ll_mean, ll_se), elbo = (summary["iwae_ll"], summary["iwae_ll_se"]), summary
    else:
        iwae = iwae_log_likelihood(vae, test.shard(group).x, trainer.eval_samples, trainer.eval_chunk_size,
                                   trainer.eval_batch_size, progress=trainer.progress and group.is_main,
                                   compile=trainer.compile)
        ll_mean, ll_se = mean_and_stderr(group.gather(iwae))
        elbo = evaluate_elbo(vae, test, trainer.eval_batch_size, group)
    extra = {} if not data.levels else {  # dequantised grey levels (DESIGN.md §2)
        "test_bits_per_dim_discrete": dequantized_bits_per_dim(ll_mean, data.data_dim, data.levels)}
    if data.labelled is not None:  # semi-supervised: the component is the class
        extra["test_error"] = classification_error(vae, test)
    return extra | {
        "dataset": data.name, "n_test": len(test), "K": trainer.eval_samples,
        "test_iwae_ll": ll_mean, "test_iwae_ll_se": ll_se,
        "test_elbo": elbo["elbo"], "test_elbo_se": elbo["elbo_se"],
        "test_kl": elbo["kl"], "best_epoch": progress.best_epoch, "best_val_elbo": progress.best_val_elbo,
        "tau_at_best": vae.tau, "density": density_note(vae), "units": "nats per image",
        "eval_seconds": time.perf_counter() - tic, "trainer": asdict(trainer)}
