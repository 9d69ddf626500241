"""The package's IWAE log-likelihood against pythae's ``VAE.get_nll`` on the same weights and images.

    pip install pythae   # not a dependency of the package: only this benchmark needs it
    python experiments/bench_pythae.py RUN_DIR [--images 100] [-K 5000] [--threads 2]

RUN_DIR: a trained run with the standard prior, the Gaussian guide and the Bernoulli likelihood
(e.g. `multirun/core_table_mnist/route=standard_gaussian`). Its encoder and decoder are wrapped
as pythae's ``BaseEncoder`` (``embedding`` = the guide's loc, ``log_covariance`` = 2 log scale)
and ``BaseDecoder`` (``reconstruction`` = sigmoid of the logits), so that pythae's importance
sampler scores the same model; pythae returns the mean over the images, which is compared with
the package's mean (eager and compiled) on the same images, with the seconds of each.
"""

import argparse
import time

import torch
import torch.nn.functional as F
from pythae.models import VAE, VAEConfig
from pythae.models.base.base_utils import ModelOutput
from pythae.models.nn import BaseDecoder, BaseEncoder

from pyro_mvae.infer.iwae import iwae_log_likelihood, mean_and_stderr
from pyro_mvae.runs import load_run


class Encoder(BaseEncoder):
    """pythae's encoder interface around the package's Gaussian guide."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, x):
        loc, raw = self.vae.encoder.encode(x).chunk(2, dim=-1)  # (B, d) each
        scale = F.softplus(raw) + 1e-3  # the Gaussian guide's scale
        return ModelOutput(embedding=loc, log_covariance=2 * scale.log())


class Decoder(BaseDecoder):
    """pythae's decoder interface around the package's decoder (Bernoulli means)."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, z):
        return ModelOutput(reconstruction=torch.sigmoid(self.vae.decode(z)))


def timed(fn):
    tic = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - tic


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("-K", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    vae, config, _, data = load_run(args.run_dir, "cpu")
    if (config["prior"]["name"], config["guide"]["name"]) != ("standard", "gaussian"):
        raise SystemExit("pythae's get_nll scores N(0, I) with a Gaussian encoder: give a standard/gaussian run")
    x = data.test.x[:args.images]  # (N, 1, 28, 28)
    theirs = VAE(VAEConfig(input_dim=tuple(x.shape[1:]), latent_dim=vae.latent_dim, reconstruction_loss="bce"),
                 encoder=Encoder(vae), decoder=Decoder(vae)).eval()
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
    for name, ((mean, se), seconds) in rows.items():
        print(f"| {name} | {mean:.2f} ± {se:.2f} | {seconds:.1f} | {seconds / eager_s:.2f} |")
    print(f"| pythae `get_nll` | {pythae_mean:.2f} | {pythae_s:.1f} | {pythae_s / eager_s:.2f} |")


if __name__ == "__main__":
    main()
