"""A whole training epoch against the hardware's floor: the matrix products of the same networks.

    python experiments/bench_epoch.py [--data-root ../shared/data] [--threads 1 2]
                                      [--models standard_mlp standard_gated vamp_gated]
                                      [--train-images 50000] [--repeats 3] [--numpyro]
                                      [--out docs/records/NAME.json]
    python experiments/bench_epoch.py --table docs/records/NAME.json

For each model and torch thread count, one process, MNIST with B = 100:

- **epoch**: what ``pyro-mvae train`` spends on one epoch (:class:`pyro_mvae.training.train.Run`:
  the SVI steps on freshly binarised batches, the validation ELBO on the 10,000 validation images,
  ``best.pt``, ``last.pt`` and the metrics written), timed after a first, warm-up epoch: the
  fastest of ``--repeats`` epochs (default 3), since the noise of a shared machine only adds time;
- its **parts**, timed one by one in a third epoch: the steps, the validation, the checkpoints;
- the **floor**: the same epoch's matrix products alone (``torch.mm`` on tensors of the same
  shapes: each linear layer's forward product and its two backward products per training step,
  none for the data's own gradient; the forward products of the validation; for the VampPrior the
  encoder's forward and backward on its C pseudo-inputs at every step and its forward once per
  validation pass), timed in the same process right after the epochs, the fastest of ``--repeats``.

The ratio epoch / floor is what the rest of the computation (activations, densities, Pyro's
tracing, the optimiser, binarisation, files) costs on top of the products; 1.00 would be the
hardware's speed for these networks. Models: ``standard_mlp`` (N(0, I), plain ReLU 784-300-300-40,
the core table's), ``standard_gated`` and ``vamp_gated`` (``experiment=vampprior_protocol`` with
``prior=standard`` and ``prior=vamp``). ATen's element-wise kernels are those the command line uses
(:func:`pyro_mvae.runs.prefer_cpu_kernels`); ``ATEN_CPU_CAPABILITY=avx512`` measures torch's own choice.

``--numpyro`` (``pip install -e ".[bench]"``: NumPyro and JAX, not dependencies of the package) adds the peer of the
issue that asked for this script: the same standard VAE (plain MLP 784-300-300-40, Trace_ELBO,
Adam, B = 100) written in NumPyro with its whole SVI step under ``jax.jit``, run in a subprocess
per thread count (XLA's CPU threads limited by ``--xla_cpu_multi_thread_eigen=false`` for one
thread) on the same binarised batches' shapes, against the package's steps per second of
``standard_mlp`` measured in the same run. ``--out docs/records/NAME.json`` writes every number as
a record the docs cite (``experiments/records.py``).
"""

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from records import write_record
from tqdm.auto import tqdm

from pyro_mvae.compose import build_from_config, compose_config, trainer_settings
from pyro_mvae.data.splits import Split
from pyro_mvae.runs import prefer_cpu_kernels
from pyro_mvae.training import checkpoints
from pyro_mvae.training.report import evaluate_elbo
from pyro_mvae.training.train import Run

MODELS = {
    "standard_mlp": ["experiment=mnist_core", "prior=standard"],
    "standard_gated": ["experiment=vampprior_protocol", "prior=standard"],
    "vamp_gated": ["experiment=vampprior_protocol", "prior=vamp"],
}


def build(model: str, data_root: str, train_images: int):
    """The config, data (the first ``train_images`` training images) and VAE of ``model``."""
    config = compose_config([*MODELS[model], f"data.root={data_root}", "trainer.progress=false"])
    config["objective"]["name"] = "trace"
    data, vae = build_from_config(config, torch.device("cpu"))
    train = data.train
    data = replace(data, train=Split(train.x[:train_images], train.y[:train_images], train.dynamic))
    return config, data, vae


def gemm_shapes(vae, batch: int, val_images: int, steps: int) -> list[tuple[int, int, int, int]]:
    """``(m, k, n, count)``: the epoch's matrix products (m×k)·(k×n), each done ``count`` times."""
    encoder = [m for m in vae.encoder.modules() if isinstance(m, torch.nn.Linear)]
    decoder = [m for m in vae.decoder.modules() if isinstance(m, torch.nn.Linear)]
    shapes = []

    def train_products(layers, rows, first_needs_grad):
        for i, layer in enumerate(layers):
            k, n = layer.in_features, layer.out_features
            shapes.append((rows, k, n, steps))  # forward
            shapes.append((n, rows, k, steps))  # weight gradient: (n×rows)·(rows×k)
            if i > 0 or first_needs_grad:
                shapes.append((rows, n, k, steps))  # input gradient

    train_products(encoder, batch, first_needs_grad=False)
    train_products(decoder, batch, first_needs_grad=True)
    val_batches = math.ceil(val_images / batch)
    shapes += [(batch, m.in_features, m.out_features, val_batches) for m in encoder + decoder]
    pseudo = getattr(vae.prior, "components", None) if vae.prior.name == "vamp" else None
    if pseudo:
        train_products(encoder, pseudo, first_needs_grad=True)  # the pseudo-inputs are parameters
        shapes += [(pseudo, m.in_features, m.out_features, 1) for m in encoder]  # kept for the whole pass
    return shapes


def floor_seconds(shapes) -> float:
    """Seconds of the products ``shapes`` alone (after one warm-up product of each shape)."""
    operands = [(torch.randn(m, k), torch.randn(k, n), count) for m, k, n, count in shapes]
    for a, b, _ in operands:
        torch.mm(a, b)
    tic = time.perf_counter()
    for a, b, count in operands:
        for _ in range(count):
            torch.mm(a, b)
    return time.perf_counter() - tic


def timed(fn) -> float:
    tic = time.perf_counter()
    fn()
    return time.perf_counter() - tic


def measure(model: str, threads: int, args) -> dict:
    """One model at one thread count: the epoch, its parts and its floor, in seconds."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config, data, vae = build(model, args.data_root, args.train_images)
    trainer = replace(trainer_settings(config), threads=threads, epochs=args.repeats + 2)
    with tempfile.TemporaryDirectory() as run_dir:
        run = Run(vae, data, trainer, config["objective"], Path(run_dir), config, seed=0)
        run.bar = tqdm(disable=True)  # as train() makes it with trainer.progress=false

        def epoch() -> float:
            return timed(lambda: run.end_of_epoch(run.epoch(), 0.0))

        epoch()  # warm-up
        whole = min(epoch() for _ in range(args.repeats))
        run.vae.beta = trainer.beta(run.progress.epoch)
        steps_s = timed(run.train_batches)
        val_s = timed(lambda: evaluate_elbo(run.vae, data.val, trainer.batch_size))
        ckpt_s = timed(lambda: (checkpoints.save_best(Path(run_dir) / "best.pt", vae, run.step.optimizer, run.config,
                                                      0, 0.0), run.save_last()))
    steps = math.ceil(len(data.train) / trainer.batch_size)
    shapes = gemm_shapes(vae, trainer.batch_size, len(data.val), steps)
    floor = min(floor_seconds(shapes) for _ in range(args.repeats))
    return {"model": model, "threads": threads, "train_images": len(data.train), "steps": steps,
            "epoch_s": whole, "steps_s": steps_s, "validation_s": val_s, "checkpoints_s": ckpt_s,
            "floor_s": floor, "ratio": whole / floor, "steps_per_s": steps / steps_s}


def numpyro_worker(steps: int) -> float:
    """Steps per second of the NumPyro twin (run in a subprocess whose XLA threads are set)."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import SVI, Trace_ELBO
    from numpyro.optim import Adam

    def mlp(params, h, final_linear=True):
        for i, (w, b) in enumerate(params):
            h = h @ w + b
            if i < len(params) - 1 or not final_linear:
                h = jax.nn.relu(h)
        return h

    def init(key, sizes):
        keys = jax.random.split(key, len(sizes) - 1)
        return [(jax.random.normal(k, (a, b)) / np.sqrt(a), jnp.zeros(b))
                for k, a, b in zip(keys, sizes[:-1], sizes[1:])]

    def model(x):
        dec = numpyro.param("dec", init(jax.random.PRNGKey(1), [40, 300, 300, 784]))
        with numpyro.plate("data", x.shape[0]):
            z = numpyro.sample("z", dist.Normal(0, 1).expand([40]).to_event(1))
            numpyro.sample("x", dist.Bernoulli(logits=mlp(dec, z)).to_event(1), obs=x)

    def guide(x):
        enc = numpyro.param("enc", init(jax.random.PRNGKey(2), [784, 300, 300, 80]))
        out = mlp(enc, x)
        with numpyro.plate("data", x.shape[0]):
            numpyro.sample("z", dist.Normal(out[:, :40], jax.nn.softplus(out[:, 40:]) + 1e-3).to_event(1))

    svi = SVI(model, guide, Adam(1e-3), Trace_ELBO())
    rng = np.random.default_rng(0)
    batches = [jnp.asarray(rng.random((100, 784)) < 0.13, dtype=jnp.float32) for _ in range(20)]
    state = svi.init(jax.random.PRNGKey(0), batches[0])
    update = jax.jit(svi.update)
    for xb in batches[:5]:
        state, loss = update(state, xb)
    loss.block_until_ready()
    tic = time.perf_counter()
    for i in range(steps):
        state, loss = update(state, batches[i % len(batches)])
    loss.block_until_ready()
    return steps / (time.perf_counter() - tic)


def numpyro_steps_per_second(threads: int, steps: int) -> float | None:
    """The NumPyro twin's steps per second with ``threads`` CPU threads, or None without NumPyro."""
    flags = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" if threads == 1 else ""
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu",
           "NPROC": str(threads), "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, __file__, "--numpyro-worker", str(steps)], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        print(f"NumPyro twin not run: {done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode}")
        return None
    return float(done.stdout.strip().splitlines()[-1])


COLUMNS = {"epoch_s": ".2f", "steps_s": ".2f", "validation_s": ".2f", "checkpoints_s": ".2f", "floor_s": ".2f",
           "ratio": ".2f", "steps_per_s": ".0f"}


def table(values: dict, record_id: str | None = None) -> str:
    """The docs' table of the measured ``values``; with ``record_id`` every number is followed by
    the marker that cites it (docs/_ext/check_records.py)."""
    lines = ["| model | threads | epoch (s) | steps (s) | validation (s) | checkpoints (s) | floor: products (s) "
             "| epoch / floor | steps/s |", "|---|---|---|---|---|---|---|---|---|"]
    for model, by_threads in values.items():
        if model == "numpyro":
            continue
        for threads, row in by_threads.items():
            cells = [f"{row[key]:{spec}}" + (f" <!-- rec:{record_id}.{model}.{threads}.{key} -->" if record_id else "")
                     for key, spec in COLUMNS.items()]
            lines.append(f"| {model} | {threads.removeprefix('threads_')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--train-images", type=int, default=50_000, help="a shorter epoch (default: all 50,000)")
    parser.add_argument("--repeats", type=int, default=3, help="epochs and floors timed, the fastest kept")
    parser.add_argument("--numpyro", action="store_true", help="add the NumPyro twin of standard_mlp")
    parser.add_argument("--numpyro-steps", type=int, default=500)
    parser.add_argument("--numpyro-worker", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", help="write the numbers as a record (docs/records/NAME.json)")
    parser.add_argument("--table", metavar="RECORD", help="print the docs' table of a record, measuring nothing")
    args = parser.parse_args()
    if args.table:
        record = json.loads(Path(args.table).read_text())
        print(table(record["values"], record["id"]))
        return
    asked = os.environ.get("ATEN_CPU_CAPABILITY")
    prefer_cpu_kernels()  # as the command line does; ATEN_CPU_CAPABILITY=avx512 measures without it
    if args.numpyro_worker:
        print(numpyro_worker(args.numpyro_worker))
        return
    rows = [measure(model, threads, args) for model in args.models for threads in args.threads]
    values = {r["model"]: {} for r in rows}
    for r in rows:
        values[r["model"]][f"threads_{r['threads']}"] = {k: v for k, v in r.items() if k not in ("model", "threads")}
    if args.numpyro:
        values["numpyro"] = {}
        for threads in args.threads:
            rate = numpyro_steps_per_second(threads, args.numpyro_steps)
            ours = values.get("standard_mlp", {}).get(f"threads_{threads}", {}).get("steps_per_s")
            if rate is not None:
                values["numpyro"][f"threads_{threads}"] = {"steps_per_s": rate}
                print(f"NumPyro twin, {threads} thread(s): {rate:.0f} steps/s; the package's standard_mlp: "
                      f"{ours if ours is None else round(ours)} steps/s")
    kernels = torch.backends.cpu.get_cpu_capability()
    print(f"ATen's element-wise kernels: {kernels}")
    if args.out:
        command = (f"ATEN_CPU_CAPABILITY={asked} " if asked else "") + "python " + " ".join(sys.argv)
        how = f"torch {torch.__version__}, ATen kernels {kernels}, nothing else running"
        write_record(args.out, values, how, command)
    print(table(values, Path(args.out).stem if args.out else None))

if __name__ == "__main__":
    main()
