"""Figures of a trained run, as PNG files (written atomically)."""

import io
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torchvision.utils import save_image  # noqa: E402

from pyro_mvae.training.storage import write_bytes_atomic  # noqa: E402


def image_grid(images: torch.Tensor, image_shape, path: Path, nrow: int = 8) -> None:
    """Save flattened images ``(N, D)`` with values in [0, 1] as one PNG grid (torchvision)."""
    h, w = image_shape
    buffer = io.BytesIO()
    batch = images.detach().float().cpu().clamp(0, 1).reshape(-1, 1, h, w)  # (N, 1, H, W)
    scale = max(1, 28 // h)  # small images (8×8 digits) are enlarged to be seen
    batch = torch.nn.functional.interpolate(batch, scale_factor=scale, mode="nearest")  # (N, 1, sH, sW)
    save_image(batch, buffer, nrow=nrow, padding=1, pad_value=0.5, format="png")
    write_bytes_atomic(path, buffer.getvalue())


def _save(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    write_bytes_atomic(path, buffer.getvalue())


@torch.no_grad()
def samples(vae, image_shape, path: Path, n: int = 64) -> None:
    """n images from the model (likelihood means at z ~ p(z)), in a grid."""
    image_grid(vae.sample(n), image_shape, path)


@torch.no_grad()
def reconstructions(vae, x: torch.Tensor, image_shape, path: Path, n: int = 32) -> None:
    """Rows alternate: 8 test images, then their reconstructions."""
    x = x[:n]  # (n, D)
    rec = vae.reconstruct(x)  # (n, D)
    rows = torch.stack([x.reshape(-1, 8, x.shape[-1]), rec.reshape(-1, 8, x.shape[-1])], 1)  # (n/8, 2, 8, D)
    image_grid(rows.reshape(-1, x.shape[-1]), image_shape, path)


@torch.no_grad()
def interpolations(vae, x: torch.Tensor, labels: torch.Tensor, image_shape, path: Path,
                   pairs: int = 6, steps: int = 10) -> None:
    """Decoded straight lines between the posterior means of pairs of test images of different digits."""
    firsts = [int((labels == c).nonzero()[0]) for c in labels.unique()]
    firsts = firsts[: min(2 * pairs, len(firsts) // 2 * 2)]  # an even number of distinct digits
    ends = torch.tensor(firsts, device=x.device).reshape(-1, 2)  # (P, 2)
    z = vae.encoder.mean(x[ends.flatten()]).reshape(len(ends), 2, -1)  # (P, 2, d)
    t = torch.linspace(0, 1, steps, device=x.device)[None, :, None]  # (1, S, 1)
    path_z = (1 - t) * z[:, :1] + t * z[:, 1:]  # (P, S, d)
    images = vae.likelihood.mean(vae.decoder(path_z))  # (P, S, D)
    image_grid(images.reshape(-1, images.shape[-1]), image_shape, path, nrow=steps)


@torch.no_grad()
def latent_map(vae, x: torch.Tensor, labels: torch.Tensor, path: Path) -> None:
    """Posterior means in 2-D (PCA when d > 2) coloured by label; prior modes marked ×."""
    from sklearn.decomposition import PCA

    means = vae.encoder.mean(x).cpu().numpy()  # (N, d)
    modes = None
    if vae.prior.layout is not None:
        modes = vae.prior.layout.modes(vae.prior.loc, 256).detach().cpu().numpy()  # (M, d)
    project = (lambda a: a) if means.shape[1] == 2 else PCA(2, random_state=0).fit(means).transform
    xy = project(means)
    fig, ax = plt.subplots(figsize=(6, 5))
    points = ax.scatter(xy[:, 0], xy[:, 1], c=labels.cpu().numpy(), cmap="tab10", s=4, alpha=0.7)
    if modes is not None:
        m = project(modes)
        ax.scatter(m[:, 0], m[:, 1], marker="x", c="black", s=30, label="prior modes")
        ax.legend(loc="upper right")
    fig.colorbar(points, ax=ax, label="label")
    ax.set_title("posterior means E_q[z | x]" + (" (PCA)" if means.shape[1] > 2 else ""))
    _save(fig, path)


@torch.no_grad()
def latent_marginals(vae, x: torch.Tensor, path: Path, dims: int = 8, bins: int = 60) -> None:
    """Does the learned prior match what the encoder uses? For the ``dims`` most active latent
    dimensions (largest Cov_x E_q[z_j | x]): the histogram of the aggregate posterior
    q(z_j) = E_x q(z_j | x) (one draw per image of x ``(N, D)``) under the prior's own density
    p(z_j) (its mixture components drawn thin), or a histogram of prior draws for a prior with
    no per-dimension density (a flow).
    """
    z = torch.cat([vae.encoder.posterior(xb).sample() for xb in x.split(500)]).cpu()  # (N, d)
    means = torch.cat([vae.encoder.mean(xb) for xb in x.split(500)]).cpu()  # (N, d)
    order = means.var(0).argsort(descending=True)[:dims].tolist()
    per_dim = vae.prior.marginal_per_dim()  # None for a flow
    fig, axes = plt.subplots(2, (len(order) + 1) // 2, figsize=(3 * ((len(order) + 1) // 2), 5), squeeze=False)
    for ax, j in zip(axes.flat, order):
        ax.hist(z[:, j].numpy(), bins=bins, density=True, color="tab:blue", alpha=0.5, label="q(z_j)")
        grid = torch.linspace(z[:, j].min().item() - 1, z[:, j].max().item() + 1, 400)  # device: host-side plot
        if per_dim is None:
            prior_z = vae.prior.marginal().sample((len(z),))[:, j].cpu().numpy()  # (N,)
            ax.hist(prior_z, bins=bins, density=True, histtype="step", color="black", label="p(z_j), draws")
        else:
            _prior_density(ax, per_dim, j, grid)
        ax.set_title(f"z_{j}", fontsize=9)
        ax.set_xlabel("z_j")
    for ax in list(axes.flat)[len(order):]:
        ax.axis("off")
    axes.flat[0].set_ylabel("density")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("aggregate posterior (histogram) against the learned prior (line), most active dimensions")
    fig.tight_layout()
    _save(fig, path)


def _prior_density(ax, per_dim, j: int, grid: torch.Tensor) -> None:
    """p(z_j) on ``grid`` ``(G,)`` from a per-dimension prior (batch ``(d,)``), with its weighted
    components when it is a mixture."""
    points = grid.to(per_dim.mean.device)[:, None]  # (G, 1), broadcast over the d dimensions
    ax.plot(grid, per_dim.log_prob(points)[:, j].exp().cpu(), color="black", label="p(z_j)")
    if isinstance(per_dim, torch.distributions.MixtureSameFamily):
        weights = per_dim.mixture_distribution.probs[j]  # (N,)
        components = per_dim.component_distribution.log_prob(points[..., None])[:, j].exp()  # (G, N)
        ax.plot(grid, (weights * components).cpu(), color="black", linewidth=0.5, alpha=0.6)


def training_curves(metrics_path: Path, path: Path) -> None:
    """ELBO (train, validation), KL, β and τ per epoch from ``metrics.jsonl``."""
    records = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line]
    epoch = [r["epoch"] for r in records]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
    top.plot(epoch, [r["train_elbo"] for r in records], label="train ELBO (β-weighted)")
    top.plot(epoch, [r["val_elbo"] for r in records], label="validation ELBO")
    top.set_ylabel("nats per image")
    top.legend()
    bottom.plot(epoch, [r["val_kl"] for r in records], label="validation KL (nats)")
    twin = bottom.twinx()
    twin.plot(epoch, [r["beta"] for r in records], "k--", label="β")
    twin.plot(epoch, [r["tau"] for r in records], "k:", label="τ")
    twin.set_ylabel("β, τ")
    bottom.set_xlabel("epoch")
    bottom.legend(loc="center left")
    twin.legend(loc="center right")
    _save(fig, path)


def k_sweep(ks, means, stderrs, elbo: float, path: Path) -> None:
    """IWAE log-likelihood against K (log axis), with the ELBO for reference."""
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(ks, means, yerr=stderrs, marker="o", capsize=3, label="IWAE log p(x)")
    ax.axhline(elbo, color="grey", linestyle="--", label="ELBO")
    ax.set_xscale("log")
    ax.set_xlabel("K (importance samples)")
    ax.set_ylabel("nats per image")
    ax.legend()
    _save(fig, path)


def khat_histogram(khat: np.ndarray, threshold: float, path: Path) -> None:
    """Histogram of the per-image Pareto k̂, with the trust threshold."""
    fig, ax = plt.subplots(figsize=(6, 4))
    finite = khat[np.isfinite(khat)]
    ax.hist(finite, bins=40)
    ax.axvline(threshold, color="red", linestyle="--", label=f"k̂ = {threshold}")
    ax.set_xlabel("Pareto k̂ of the importance weights")
    ax.set_ylabel("images")
    ax.legend()
    _save(fig, path)
