"""The package's IWAE log-likelihood against pythae's ``VAE.get_nll`` on the same weights and images.

    pip install pythae   # not a dependency of the package: only this benchmark needs it
    python experiments/bench_pythae.py RUN_DIR [--images 100] [-K 5000] [--threads 2]
                                       [--out docs/records/bench_pythae.json]
    python experiments/bench_pythae.py --table docs/records/bench_pythae.json   # the docs' table of a record

RUN_DIR: a trained run with the standard prior, the Gaussian guide and the Bernoulli likelihood
(e.g. `multirun/core_table_mnist/route=standard_gaussian`). Its encoder and decoder are wrapped
as pythae's ``BaseEncoder`` (``embedding`` = the guide's loc, ``log_covariance`` = 2 log scale)
and ``BaseDecoder`` (``reconstruction`` = sigmoid of the logits), so that pythae's importance
sampler scores the same model; pythae returns the mean over the images, which is compared with
the package's mean (eager and compiled) on the same images, with the seconds of each. The
package runs with the command line's ATen kernels (:func:`pyro_mvae.runs.prefer_cpu_kernels`),
pythae in the same process with the same.

``--out``: also write the table as a record the docs cite (``experiments/records.py``): per row
(``package_eager``, ``package_compiled``, ``pythae``) its ``mean`` (nats), ``se`` (the package's,
over images), ``seconds`` and ``ratio`` to the package's eager seconds. ``--table RECORD`` prints
the docs' table of such a record, measuring nothing.
"""

import argparse
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from records import minus, region, write_record

from pyro_mvae.infer.iwae import iwae_log_likelihood, mean_and_stderr
from pyro_mvae.runs import load_run, prefer_cpu_kernels

LABELS = {"package_eager": "package, `compile=false`", "package_compiled": "package, `compile=true`",
          "pythae": "pythae `get_nll`"}


def pythae_vae(vae, event_shape):
    """pythae's ``VAE`` around the package's Gaussian guide (``BaseEncoder``: ``embedding`` = loc,
    ``log_covariance`` = 2 log scale) and decoder (``BaseDecoder``: Bernoulli means). pythae is
    imported here, so that ``--table`` runs without it."""
    from pythae.models import VAE, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self):
            super().__init__()
            self.vae = vae

        def forward(self, x):
            loc, raw = self.vae.encoder.encode(x).chunk(2, dim=-1)  # (B, d) each
            scale = F.softplus(raw) + 1e-3  # the Gaussian guide's scale
            return ModelOutput(embedding=loc, log_covariance=2 * scale.log())

    class Decoder(BaseDecoder):
        def __init__(self):
            super().__init__()
            self.vae = vae

        def forward(self, z):
            return ModelOutput(reconstruction=torch.sigmoid(self.vae.decode(z)))

    config = VAEConfig(input_dim=tuple(event_shape), latent_dim=vae.latent_dim, reconstruction_loss="bce")
    return VAE(config, encoder=Encoder(), decoder=Decoder()).eval()


def timed(fn):
    tic = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - tic


def table(record: dict) -> str:
    """The docs' table of an ``--out`` record as a records region, every number with its marker."""
    lines = ["| estimator | IWAE log p(x) (nats) | seconds | × package eager |", "|---|---|---|---|"]
    for key, v in record["values"].items():
        ref = f"<!-- rec:{record['id']}.{key}"
        se = f" ± {v['se']:.2f} {ref}.se -->" if "se" in v else ""
        lines.append(f"| {LABELS[key]} | {minus(v['mean'], '.2f')} {ref}.mean -->{se} "
                     f"| {v['seconds']:.1f} {ref}.seconds --> | {v['ratio']:.2f} {ref}.ratio --> |")
    return region(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", nargs="?")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("-K", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="also write the table as a record (docs/records/NAME.json)")
    parser.add_argument("--table", metavar="RECORD", help="print the docs' table of a record, measuring nothing")
    args = parser.parse_args()
    if args.table:
        return print(table(json.loads(Path(args.table).read_text())))
    if args.run_dir is None:
        parser.error("give RUN_DIR (or --table RECORD)")
    kernels = prefer_cpu_kernels()
    torch.set_num_threads(args.threads)
    vae, config, _, data = load_run(args.run_dir, "cpu")
    if (config["prior"]["name"], config["guide"]["name"]) != ("standard", "gaussian"):
        raise SystemExit("pythae's get_nll scores N(0, I) with a Gaussian encoder: give a standard/gaussian run")
    x = data.test.x[:args.images]  # (N, 1, 28, 28)
    theirs = pythae_vae(vae, x.shape[1:])
    with torch.no_grad():
        pythae_mean, pythae_s = timed(lambda: theirs.get_nll(x, n_samples=args.K, batch_size=500))
    print(f"{x.shape[0]} MNIST test images, K = {args.K}, {args.threads} threads; IWAE log p(x) in nats per image")
    print("| estimator | mean (nats) | seconds | × package eager |\n|---|---|---|---|")
    rows = {}
    for setting in ("false", "true"):
        iwae_log_likelihood(vae, x[:100], 50, compile=setting)  # the timed shape (default chunk), compiled unclocked
        ll, seconds = timed(lambda: iwae_log_likelihood(vae, x, args.K, compile=setting))
        rows[f"package, compile={setting}"] = (mean_and_stderr(ll), seconds)
    eager_s = rows["package, compile=false"][1]
    values = {}
    for key, name in (("package_eager", "package, compile=false"), ("package_compiled", "package, compile=true")):
        (mean, se), seconds = rows[name]
        print(f"| {name} | {mean:.2f} ± {se:.2f} | {seconds:.1f} | {seconds / eager_s:.2f} |")
        values[key] = {"mean": float(mean), "se": float(se), "seconds": seconds, "ratio": seconds / eager_s}
    print(f"| pythae `get_nll` | {pythae_mean:.2f} | {pythae_s:.1f} | {pythae_s / eager_s:.2f} |")
    values["pythae"] = {"mean": float(pythae_mean), "seconds": pythae_s, "ratio": pythae_s / eager_s}
    if args.out:
        write_record(args.out, values, f"cpu, {args.threads} torch threads, ATen {kernels} kernels, "
                     "nothing else running")


if __name__ == "__main__":
    main()
