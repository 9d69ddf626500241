"""Linear-Gaussian VAEs whose marginal likelihood has a closed form (the tests' oracle).

x = W z + b + ε, ε ~ N(0, σ² I). With z ~ N(0, I):  x ~ N(b, W Wᵀ + σ² I).
With z ~ Σ_c π_c N(μ_c, diag s_c²):  x ~ Σ_c π_c N(W μ_c + b, W diag(s_c²) Wᵀ + σ² I).
"""

import numpy as np
import pyro.distributions as dist
import torch
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from torch import nn

from pyro_mvae.models.guides import GaussianGuide, RelaxedMixtureGuide
from pyro_mvae.models.likelihoods import GaussianLikelihood
from pyro_mvae.models.nets import MLPBody
from pyro_mvae.models.priors import MixturePrior, StandardPrior
from pyro_mvae.models.vae import VAE

D, d, SIGMA = 5, 2, 0.5


def linear_decoder(seed: int = 1) -> nn.Linear:
    gen = torch.Generator().manual_seed(seed)
    dec = nn.Linear(d, D)
    with torch.no_grad():
        dec.weight.copy_(torch.randn(D, d, generator=gen))
        dec.bias.copy_(torch.randn(D, generator=gen))
    return dec


def mlp_guide(cls, hidden=(), **options):
    """A guide of class ``cls`` on an MLP body of x ``(B, D)`` (features: x itself without ``hidden``)."""
    return cls(MLPBody((D,), hidden), hidden[-1] if hidden else D, d, **options)


def standard_vae(guide_hidden=()) -> VAE:
    return VAE(StandardPrior(d), mlp_guide(GaussianGuide, guide_hidden), GaussianLikelihood(scale=SIGMA),
               linear_decoder(), D)


def mixture_vae(guide: str = "gaussian", straight_through: bool = True) -> VAE:
    prior = MixturePrior(d, components=3)
    with torch.no_grad():
        prior.logits.copy_(torch.tensor([0.5, -0.3, 0.0]))
        prior.loc.copy_(torch.tensor([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]]))
        prior.scale_raw.copy_(torch.tensor([[0.0, -0.5], [0.3, 0.0], [-1.0, 0.2]]))
    if guide == "gaussian":
        q = mlp_guide(GaussianGuide, (16,))
    else:
        q = mlp_guide(RelaxedMixtureGuide, (16,), layout=prior.layout, straight_through=straight_through)
    return VAE(prior, q, GaussianLikelihood(scale=SIGMA), linear_decoder(), D)


def _weights(vae):
    return vae.decoder.weight.detach().double().numpy(), vae.decoder.bias.detach().double().numpy()


def exact_log_marginal(vae, x: torch.Tensor) -> np.ndarray:
    """log p(x) in closed form for either linear-Gaussian VAE above: ``(N,)``."""
    W, b = _weights(vae)
    x = x.double().numpy()
    noise = SIGMA ** 2 * np.eye(D)
    if vae.prior.layout is None:
        return multivariate_normal(b, W @ W.T + noise).logpdf(x)
    log_pi = torch.log_softmax(vae.prior.logits.detach().double(), -1).numpy()
    mu, s = vae.prior.loc.detach().double().numpy(), vae.prior.scale.detach().double().numpy()
    per_c = [log_pi[c] + multivariate_normal(W @ mu[c] + b, W @ np.diag(s[c] ** 2) @ W.T + noise).logpdf(x)
             for c in range(len(log_pi))]
    return logsumexp(np.stack(per_c), axis=0)


def sample_data(vae, n: int, seed: int = 2) -> torch.Tensor:
    """n datapoints ``(n, D)`` drawn from the model itself."""
    torch.manual_seed(seed)
    with torch.no_grad():
        z = vae.prior.marginal().sample((n,))
        return vae.likelihood(vae.decode(z)).sample()


def fit_guide(vae, x: torch.Tensor, steps: int = 400, lr: float = 0.02) -> None:
    """Fit only the guide's parameters by SVI (Trace_ELBO, 8 particles), prior and decoder fixed."""
    from pyro.infer import Trace_ELBO

    elbo = Trace_ELBO(num_particles=8, vectorize_particles=True, max_plate_nesting=1)
    opt = torch.optim.Adam(vae.encoder.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        elbo.loss_and_grads(vae.model, vae.svi_guide, x)
        opt.step()
    for p in vae.parameters():
        p.grad = None


def orthogonal_standard_vae_with_exact_guide() -> VAE:
    """Standard prior, W = Q diag(s) with orthonormal Q, and the guide set to the exact posterior
    N(Σ Wᵀ(x − b)/σ², Σ), Σ = diag(1 / (1 + s²/σ²)); every importance weight is then p(x)."""
    from pyro_mvae.models.nets import MIN_SCALE

    vae = standard_vae(guide_hidden=())
    gen = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(D, d, generator=gen))  # (D, d), orthonormal columns
    s = torch.tensor([1.5, 0.7])
    W = q * s  # (D, d)
    post_var = 1.0 / (1.0 + s ** 2 / SIGMA ** 2)  # (d,)
    gain = post_var[:, None] * W.T / SIGMA ** 2  # (d, D)
    with torch.no_grad():
        vae.decoder.weight.copy_(W)
        head = vae.encoder.head  # Linear(D, 2d) on x itself: rows [loc; scale_raw]
        head.weight.zero_()
        head.weight[:d] = gain
        head.bias[:d] = -gain @ vae.decoder.bias
        head.bias[d:] = torch.log(torch.expm1(post_var.sqrt() - MIN_SCALE))
    return vae


def overconfident_on(vae, bad: torch.Tensor, shift_sd: float = 4.0, scale: float = 0.005) -> None:
    """Make ``vae``'s guide over-confident on the image ``bad`` ``(D,)`` only (in place)."""
    guide = vae.encoder
    exact = guide.posterior

    def posterior(x):
        q = exact(x).base_dist  # Normal, batch (B, d)
        hit = (x == bad).all(-1, keepdim=True)  # (B, 1)
        loc = torch.where(hit, q.loc + shift_sd * q.scale, q.loc)
        sd = torch.where(hit, torch.full_like(q.scale, scale), q.scale)
        return dist.Normal(loc, sd).to_event(1)

    guide.posterior = posterior
