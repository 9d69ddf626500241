"""The seed's factorized-mixture prior and relaxed-categorical guide on a CNN of your own.

    python examples/own_networks.py [--steps 2000] [--images 2000]

RGB 32×32 patches of scikit-learn's two sample photographs, binarised once (x ~ Bernoulli(intensity));
the encoder body and decoder are plain PyTorch; pyro.infer.SVI with Trace_ELBO trains them; the
test patches are scored by IWAE (K = 1000) with the Pareto k̂ of their importance weights.
"""

import argparse

import numpy as np
import pyro
import torch
from pyro.infer import SVI, Trace_ELBO
from sklearn.datasets import load_sample_images
from torch import nn

from pyro_mvae import build_vae, iwae_log_likelihood
from pyro_mvae.evaluation.diagnostics import pareto_khat
from pyro_mvae.infer.iwae import log_weight_matrix, mean_and_stderr


def patches(n: int, side: int = 32) -> torch.Tensor:
    """``(n, 3, side, side)`` binary images cut at random places of the two sample photographs."""
    photos = torch.tensor(np.stack(load_sample_images().images), dtype=torch.float32)  # (2, 427, 640, 3)
    photos = photos.permute(0, 3, 1, 2) / 255  # (2, 3, 427, 640) in [0, 1]
    g = torch.Generator().manual_seed(0)
    which = torch.randint(2, (n,), generator=g)
    top, left = torch.randint(427 - side, (n,), generator=g), torch.randint(640 - side, (n,), generator=g)
    x = torch.stack([photos[p, :, t:t + side, w:w + side] for p, t, w in zip(which, top, left)])
    return torch.bernoulli(x, generator=g)


def body() -> nn.Module:
    """x (B, 3, 32, 32) -> features (B, 256)."""
    return nn.Sequential(nn.Conv2d(3, 32, 4, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 4, 2, 1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(64 * 8 * 8, 256), nn.ReLU())


def decoder(latent_dim: int) -> nn.Module:
    """z (B, d) -> Bernoulli logits (B, 3, 32, 32)."""
    return nn.Sequential(nn.Linear(latent_dim, 64 * 8 * 8), nn.ReLU(), nn.Unflatten(1, (64, 8, 8)),
                         nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 3, 4, 2, 1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--images", type=int, default=2000, help="patches in all; a tenth are the test set")
    parser.add_argument("--K", type=int, default=1000, help="importance samples of the IWAE estimate")
    args = parser.parse_args(argv)
    pyro.set_rng_seed(0)
    x = patches(args.images)
    test, train = x[: args.images // 10], x[args.images // 10:]
    vae = build_vae((3, 32, 32), prior={"name": "factorized_mixture", "components": 3},
                    guide={"name": "relaxed_mixture"}, likelihood={"name": "bernoulli"},
                    net={"latent_dim": 16}, encoder=body(), decoder=decoder(16))
    svi = SVI(vae.model, vae.svi_guide, pyro.optim.Adam({"lr": 1e-3}), Trace_ELBO(max_plate_nesting=1))
    for step in range(args.steps):
        batch = train[torch.randint(len(train), (64,))]  # (64, 3, 32, 32)
        loss = svi.step(batch) / len(batch)
        if step % max(1, args.steps // 10) == 0:
            print(f"step {step}: -ELBO {loss:.1f} nats per image")
    ll = iwae_log_likelihood(vae, test, num_samples=args.K)  # (N,) nats
    khat = pareto_khat(log_weight_matrix(vae, test[:50], args.K, chunk_size=500).cpu().numpy())  # (≤ 50,)
    mean, stderr = mean_and_stderr(ll)
    print(f"test IWAE log p(x) (K={args.K}) = {mean:.1f} ± {stderr:.1f} nats per image of 3·32·32 values; "
          f"Pareto k̂ > 0.7 for {(khat > 0.7).mean():.0%} of {len(khat)} test images (median {np.median(khat):.2f})")
    return mean, khat


if __name__ == "__main__":
    main()
