"""Figures of a trained run, as PNG files (written atomically).

Drawn on ``matplotlib.figure.Figure`` objects, never through ``pyplot``: importing the
package leaves the user's matplotlib backend (and a notebook's inline figures) alone.
"""

import io
import json
from pathlib import Path

import numpy as np
import torch

from pyro_mvae.data.splits import as_image_batch
from pyro_mvae.models.layouts import PerDimensionLayout
from pyro_mvae.models.modes import evaluates
from pyro_mvae.storage import write_bytes_atomic


def _figure(**options):
    """A ``matplotlib.figure.Figure`` (matplotlib is imported on the first figure, not with the package)."""
    from matplotlib.figure import Figure

    return Figure(**options)


def _integer_ticks():
    """A tick locator that puts ticks on integers only (counts, epochs)."""
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _make_grid(images, **options):
    """torchvision's ``make_grid`` (torchvision is imported on the first grid, not with the package)."""
    from torchvision.utils import make_grid as grid

    return grid(images, **options)


def image_grid(images: torch.Tensor, event_shape, path: Path, nrow: int = 8, title: str = "",
               row_labels: list[str] | None = None) -> None:
    """Save images ``(N, *event)`` with values in [0, 1] and ``event_shape`` (C, H, W) (colour
    when C = 3) as one PNG grid of ``nrow`` per row (torchvision's ``make_grid``), with a title and,
    when given, a label per row."""
    batch = as_image_batch(images, event_shape)  # (N, C, H, W)
    rows = [_make_grid(row, nrow=nrow, padding=1, pad_value=0.5).permute(1, 2, 0)  # (H', W', 3) each
            for row in batch.split(nrow)]
    width = max(r.shape[1] for r in rows)
    fig = _figure(figsize=(max(3.0, 0.5 * nrow + 1.5), 0.5 * len(rows) + 0.8))
    axes = fig.subplots(len(rows), 1, squeeze=False)
    for ax, row, label in zip(axes[:, 0], rows, row_labels or [""] * len(rows)):
        ax.imshow(row.numpy(), extent=(0, row.shape[1], row.shape[0], 0))
        ax.set_xlim(0, width)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
        for side in ax.spines.values():
            side.set_visible(False)
    fig.suptitle(title, fontsize=9)
    _save(fig, path)


def _save(fig, path: Path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    write_bytes_atomic(path, buffer.getvalue())


@evaluates
@torch.no_grad()
def samples(vae, event_shape, path: Path, n: int = 64) -> None:
    """n images from the model (likelihood means at z ~ p(z)), in a grid."""
    image_grid(vae.sample(n), event_shape, path, title="samples from the model: mean of p(x | z), z ~ p(z)")


@evaluates
@torch.no_grad()
def reconstructions(vae, x: torch.Tensor, event_shape, path: Path, n: int = 32) -> None:
    """Rows alternate, each labelled: test images ("data"), then their reconstructions (the
    likelihood's mean at the guide's posterior mean)."""
    width = min(8, len(x))
    x = x[:max(width, min(n, len(x)) // width * width)].flatten(1)  # (n, D), n a multiple of the row width
    rec = vae.reconstruct(x.reshape(-1, *vae.event_shape)).flatten(1)  # (n, D)
    rows = torch.stack([x.reshape(-1, width, x.shape[-1]), rec.reshape(-1, width, x.shape[-1])], 1)  # (n/w, 2, w, D)
    image_grid(rows.reshape(-1, x.shape[-1]), event_shape, path, nrow=width,
               title="test images and their reconstructions: mean of p(x | z), z = E_q[z | x]",
               row_labels=["data", "reconstruction"] * len(rows))


@evaluates
@torch.no_grad()
def interpolations(vae, x: torch.Tensor, labels: torch.Tensor, event_shape, path: Path,
                   pairs: int = 6, steps: int = 10) -> None:
    """Decoded straight lines between the posterior means of pairs of test images of different
    labels (digits), or of consecutive test images when the data has a single label (unlabelled)."""
    firsts = [int((labels == c).nonzero()[0]) for c in labels.unique()]
    if len(firsts) < 2:
        firsts = list(range(len(x)))
    firsts = firsts[: min(2 * pairs, len(firsts) // 2 * 2)]  # an even number of images
    ends = torch.tensor(firsts, dtype=torch.long, device=x.device).reshape(-1, 2)  # (P, 2)
    z = vae.encoder.mean(x[ends.flatten()]).reshape(len(ends), 2, -1)  # (P, 2, d)
    t = torch.linspace(0, 1, steps, device=x.device)[None, :, None]  # (1, S, 1)
    path_z = (1 - t) * z[:, :1] + t * z[:, 1:]  # (P, S, d)
    images = vae.likelihood.mean(vae.decode(path_z))  # (P, S, *event)
    names = [f"{int(labels[a])} → {int(labels[b])}" for a, b in ends.tolist()]
    image_grid(images.flatten(0, 1), event_shape, path, nrow=steps, row_labels=names,
               title="decoded straight lines between the posterior means E_q[z | x] of two test images")


@evaluates
@torch.no_grad()
def latent_map(vae, x: torch.Tensor, labels: torch.Tensor, path: Path) -> None:
    """Posterior means E_q[z | x] in 2-D coloured by label, with the prior's modes (×): for the
    per-dimension (factorized) prior the two most active dimensions and its N × N modes there;
    otherwise the PCA plane of the means (explained variance on the axes) and the component means."""
    means = vae.encoder.mean(x).cpu().numpy()  # (N, d)
    layout = vae.prior.layout
    if isinstance(layout, PerDimensionLayout):
        xy, modes, names = _active_plane(means, vae.prior.loc.detach().cpu().numpy())
    else:
        loc = None if layout is None else vae.prior.loc.detach().cpu().numpy()  # (C, d)
        xy, modes, names = _pca_plane(means, loc)
    fig = _figure(figsize=(6, 5))
    ax = fig.subplots()
    points = ax.scatter(xy[:, 0], xy[:, 1], c=labels.cpu().numpy(), cmap="tab10", s=4, alpha=0.7)
    if modes is not None:
        ax.scatter(modes[:, 0], modes[:, 1], marker="x", c="black", s=30, label="prior modes")
        ax.legend(loc="upper right")
    fig.colorbar(points, ax=ax, label="label")
    ax.set_xlabel(names[0])
    ax.set_ylabel(names[1])
    ax.set_title("posterior means E_q[z | x] of test images")
    _save(fig, path)


def _active_plane(means: np.ndarray, loc: np.ndarray):
    """The two dimensions whose posterior means vary most, and the N × N modes of a per-dimension
    prior there (loc ``(d, N)``)."""
    a, b = np.argsort(means.var(0))[::-1][:2]
    modes = np.array([(u, v) for u in loc[a] for v in loc[b]])  # (N², 2)
    return means[:, [a, b]], modes, (f"z_{a} (most active dimension)", f"z_{b} (second most active)")


def _pca_plane(means: np.ndarray, loc: np.ndarray | None):
    """The means themselves when d = 2, else their first two principal components; the
    component means ``loc`` ``(C, d)`` projected the same way."""
    from sklearn.decomposition import PCA

    if means.shape[1] == 2:
        return means, loc, ("z_0", "z_1")
    pca = PCA(2, random_state=0).fit(means)
    share = pca.explained_variance_ratio_ * 100
    names = tuple(f"principal component {i + 1} ({share[i]:.0f}% of the variance)" for i in range(2))
    return pca.transform(means), None if loc is None else pca.transform(loc), names


@evaluates
@torch.no_grad()
def latent_marginals(vae, x: torch.Tensor, path: Path, dims: int = 8, bins: int = 60) -> None:
    """Does the learned prior match what the encoder uses? For the ``dims`` most active latent
    dimensions (largest Cov_x E_q[z_j | x]): the histogram of the aggregate posterior
    q(z_j) = E_x q(z_j | x) (one draw per image of x ``(N, *event)``) under the prior's own density
    p(z_j) (its mixture components drawn thin), or a histogram of prior draws for a prior with
    no per-dimension density (a flow). The title names the prior (``prior=<name>``).
    """
    z = torch.cat([vae.encoder.posterior(xb).sample() for xb in x.split(500)]).cpu()  # (N, d)
    means = torch.cat([vae.encoder.mean(xb) for xb in x.split(500)]).cpu()  # (N, d)
    order = means.var(0).argsort(descending=True)[:dims].tolist()
    per_dim = vae.prior.marginal_per_dim()  # None for a flow
    columns = (len(order) + 1) // 2
    fig = _figure(figsize=(3 * columns, 5))
    axes = fig.subplots(2, columns, squeeze=False)
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
    fig.suptitle(f"prior={vae.prior.name}: aggregate posterior q(z_j) (histogram) against p(z_j) (line), "
                 f"the {len(order)} most active dimensions")
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


def training_curves(metrics_path: Path, path: Path, title: str = "", show_tau: bool = True) -> None:
    """ELBO (train, validation), KL and β (and τ with ``show_tau``: a guide with a temperature) per
    epoch from ``metrics.jsonl``, titled ``title``; legends beside the axes, not on the curves."""
    records = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line]
    epoch = [r["epoch"] for r in records]
    fig = _figure(figsize=(8, 6))
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(epoch, [r["train_elbo"] for r in records], label="train ELBO (β-weighted)")
    top.plot(epoch, [r["val_elbo"] for r in records], label="validation ELBO")
    top.set_ylabel("nats per image")
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    kl = [r["val_kl"] for r in records]
    bottom.plot(epoch, kl, label="validation KL")
    bottom.set_ylabel("KL(q ‖ p), nats per image")
    if len(kl) > 2:  # epoch 0's KL (β ≈ 0) can be far above the rest: scale to the later epochs
        low, high = min(kl[1:]), max(kl[1:])
        bottom.set_ylim(low - 0.1 * (high - low + 1), high + 0.1 * (high - low + 1))
    twin = bottom.twinx()
    twin.plot(epoch, [r["beta"] for r in records], "k--", label="β")
    if show_tau:
        twin.plot(epoch, [r["tau"] for r in records], "k:", label="τ")
    twin.set_ylabel("β, τ" if show_tau else "β")
    bottom.set_xlabel("epoch")
    bottom.xaxis.set_major_locator(_integer_ticks())
    lines = bottom.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
    bottom.legend(lines, [line.get_label() for line in lines], loc="upper left", bbox_to_anchor=(1.12, 1.0),
                  fontsize=8)
    fig.suptitle(title or "training curves")
    _save(fig, path)


def k_sweep(ks, means, stderrs, elbo: float, path: Path, images: int | None = None) -> None:
    """IWAE log-likelihood against K (log axis), with the ELBO for reference; titled with the
    number of ``images`` scored."""
    fig = _figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.errorbar(ks, means, yerr=stderrs, marker="o", capsize=3,
                label="IWAE estimate of log p(x), q(z | x) with c summed out")
    ax.axhline(elbo, color="grey", linestyle="--", label="ELBO of the guide's own sites (one sample)")
    ax.set_xscale("log")
    ax.set_xlabel("K (importance samples)")
    ax.set_ylabel("nats per image")
    ax.legend(fontsize=8)
    ax.set_title("IWAE estimate against the number of importance samples K"
                 + (f", mean of {images} images" if images else ""))
    fig.text(0.01, -0.06, "Two different densities: the IWAE points score z under the marginal q(z | x); "
             "the ELBO line scores the guide's\nsampled sites (c included, relaxed when the guide is), so "
             "K = 1 may lie above it. The points rise with K towards log p(x).", fontsize=7)
    _save(fig, path)


def confusion_matrix(clusters: np.ndarray, labels: np.ndarray, path: Path, as_classes: bool = False) -> None:
    """Labels × clusters (clusters, labels ``(N,)``): the share of each label's images in each
    cluster, the clusters ordered by their Hungarian match to the labels (the diagonal holds the
    images the unsupervised accuracy counts right). ``as_classes``: the components are the classes
    (semi-supervised M2), kept in their own order, the diagonal the images classified right."""
    from sklearn.metrics import confusion_matrix as contingency

    from pyro_mvae.evaluation.diagnostics import cluster_matching, clustering_scores

    if as_classes:
        values = np.arange(max(clusters.max(), labels.max()) + 1)
        table, label_values, cluster_values = contingency(labels, clusters, labels=values), values, values
        title = f"classification error {100 * np.mean(clusters != labels):.2f}% (component c = class)"
    else:
        table, label_values, cluster_values, _ = cluster_matching(clusters, labels)  # (L, K)
        scores = clustering_scores(clusters, labels)
        title = (f"accuracy {scores['cluster_accuracy']:.3f} (Hungarian), NMI {scores['nmi']:.3f}, "
                 f"ARI {scores['ari']:.3f}")
    shares = table / np.maximum(table.sum(1, keepdims=True), 1)
    fig = _figure(figsize=(1.2 + 0.45 * len(cluster_values), 1.2 + 0.45 * len(label_values)))
    ax = fig.subplots()
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (i, k), count in np.ndenumerate(table):
        if count:
            ax.text(k, i, str(count), ha="center", va="center", fontsize=6,
                    color="white" if shares[i, k] > 0.5 else "black")
    ax.set_xticks(range(len(cluster_values)), [str(c) for c in cluster_values], fontsize=7)
    ax.set_yticks(range(len(label_values)), [str(v) for v in label_values], fontsize=7)
    ax.set_xlabel("component argmax q(c | x)" + ("" if as_classes else ", in the order matched to the labels"))
    ax.set_ylabel("label")
    ax.set_title(title, fontsize=8)
    _save(fig, path)


def khat_histogram(khat: np.ndarray, threshold: float, path: Path) -> None:
    """Histogram of the per-image Pareto k̂, with the trust threshold; integer counts of images."""
    fig = _figure(figsize=(6, 4))
    ax = fig.subplots()
    finite = khat[np.isfinite(khat)]
    ax.hist(finite, bins=40)
    ax.axvline(threshold, color="red", linestyle="--", label=f"k̂ = {threshold}")
    ax.set_xlabel("Pareto k̂ of the importance weights")
    ax.set_ylabel("images")
    ax.yaxis.set_major_locator(_integer_ticks())
    ax.legend()
    above = float(np.mean(finite > threshold)) if finite.size else float("nan")
    ax.set_title(f"Pareto k̂ of {finite.size} images: {100 * above:.1f}% above {threshold}, "
                 "whose IWAE is not to be trusted", fontsize=10)
    _save(fig, path)
