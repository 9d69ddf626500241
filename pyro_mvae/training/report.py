"""What a run reports: the validation ELBO of every epoch and the final test evaluation."""

import time
from dataclasses import asdict
from pathlib import Path

import torch

from pyro_mvae.infer.iwae import density_note, iwae_log_likelihood, mean_and_stderr
from pyro_mvae.training.checkpoints import Progress
from pyro_mvae.training.data import Dataset, Split, dequantized_bits_per_dim
from pyro_mvae.training.distributed import SINGLE, Group


@torch.no_grad()
def evaluate_elbo(vae, split, batch_size: int, group: Group = SINGLE) -> dict:
    """One-sample ELBO, log-likelihood and KL per datapoint over a split: means (nats) and the
    ELBO's s.e. With several ranks each scores its shard and the values are gathered."""
    log_lik, kl = zip(*(vae.elbo_terms(xb) for xb in split.shard(group).batches(batch_size)))
    log_lik, kl = group.gather(torch.cat(log_lik)), group.gather(torch.cat(kl))  # (N,), (N,)
    elbo, elbo_se = mean_and_stderr(log_lik - kl)
    return {"elbo": elbo, "elbo_se": elbo_se, "log_lik": log_lik.mean().item(), "kl": kl.mean().item()}


def final_report(vae, data: Dataset, trainer, progress: Progress, group: Group = SINGLE,
                 config: dict | None = None) -> dict:
    """Test ELBO and IWAE log p(x) (mean ± s.e., nats) of ``vae`` (the best state), sharded.

    On one process with the run's ``config``, the same scoring also writes the ``eval.json`` and
    ``per_datapoint_test.csv`` of its ``run_dir`` (per-image IWAE for the K sweep, ELBO, k̂), as
    ``pyro-mvae evaluate RUN_DIR -K eval_samples --limit eval_limit`` would, without scoring twice."""
    vae.beta = 1.0
    test = data.test if trainer.eval_limit is None else _head(data.test, trainer.eval_limit)
    tic = time.perf_counter()
    if group.world == 1 and config is not None:
        iwae, elbo = _evaluate_here(vae, data, test, trainer, progress, config)
    else:
        iwae = iwae_log_likelihood(vae, test.shard(group).x, trainer.eval_samples, trainer.eval_chunk_size,
                                   trainer.eval_batch_size, progress=trainer.progress and group.is_main)
        iwae = mean_and_stderr(group.gather(iwae))
        elbo = evaluate_elbo(vae, test, trainer.eval_batch_size, group)
    ll_mean, ll_se = iwae
    discrete = {} if not data.levels else {  # dequantised grey levels (DESIGN.md §2)
        "test_bits_per_dim_discrete": dequantized_bits_per_dim(ll_mean, data.data_dim, data.levels)}
    return discrete | {
        "dataset": data.name, "n_test": len(test), "K": trainer.eval_samples,
        "test_iwae_ll": ll_mean, "test_iwae_ll_se": ll_se,
        "test_elbo": elbo["elbo"], "test_elbo_se": elbo["elbo_se"],
        "test_kl": elbo["kl"], "best_epoch": progress.best_epoch, "best_val_elbo": progress.best_val_elbo,
        "tau_at_best": vae.tau, "density": density_note(vae), "units": "nats per image",
        "eval_seconds": time.perf_counter() - tic, "trainer": asdict(trainer)}


def _evaluate_here(vae, data: Dataset, test: Split, trainer, progress: Progress, config: dict):
    """Score ``test`` once for the report and the run's ``eval.json``; returns the IWAE
    (mean, s.e.) and the ELBO summary."""
    from pyro_mvae.evaluation.evaluate import score_images, write_evaluation  # evaluation imports training

    scores, summary = score_images(vae, test.x, test.y, trainer.eval_samples, trainer.eval_chunk_size,
                                   trainer.eval_batch_size, trainer.progress)
    summary.update(run_dir=config["run_dir"], split="test", n_split=len(data.test), epoch=progress.best_epoch,
                   tau=vae.tau, chunk_size=trainer.eval_chunk_size, data=config["data"]["name"],
                   prior=config["prior"]["name"], guide=config["guide"]["name"])
    write_evaluation(Path(config["run_dir"]), test.y, scores, summary, data)
    _, kl = zip(*(vae.elbo_terms(xb) for xb in test.batches(trainer.eval_batch_size)))
    elbo = {"elbo": summary["elbo"], "elbo_se": summary["elbo_se"], "kl": torch.cat(kl).mean().item()}
    return (summary["iwae_ll"], summary["iwae_ll_se"]), elbo


def _head(split: Split, n: int) -> Split:
    return Split(split.x[:n], split.y[:n], split.dynamic)
