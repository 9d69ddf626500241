"""Gradient variance of the marginal-mixture guide's estimators at a trained model's parameters.

    python experiments/marginal_gradients.py RUN_DIR [--images 100] [--draws 200] [--steps 50]

RUN_DIR holds a run with prior=mixture or factorized_mixture and guide=marginal_mixture. At its
best checkpoint, on a
fixed batch of validation images, each estimator gives ``--draws`` independent estimates of
∂(−ELBO)/∂θ (ELBO summed over the batch, β = 1):

- ``implicit`` (Trace_ELBO): the implicit gradient of the sequential distributional transform;
- ``score_weights`` (Trace_ELBO): z pathwise given its component, the weights by the score
  r(z) − w times the per-image cost (the default);
- ``score_weights + decaying_average`` and ``+ neural`` (TraceGraph_ELBO): the same with Pyro's
  baselines; the neural baseline is first trained on the spot for ``--draws`` steps (only its
  own parameters move), the decaying average warmed up for as many.

For each parameter group (the encoder's logits, locations and scales heads, its trunk, the
decoder, the prior) it prints the trace of one estimate's covariance (summed per-coordinate
variance), the squared norm of the mean, their ratio, and the tail share: the largest fraction of
the summed squared deviations ||g_i − ḡ||² that one draw carries (1/draws for a light tail, near 1
when one draw dominates: a heavy-tailed estimator); then the training step's time per
estimator over ``--steps`` steps of B = ``--images``, as a ratio against ``implicit``, measured
in this run. All estimators target the same gradient: their means agree within Monte Carlo error.
"""

import argparse
import time

import pyro
import torch

from pyro_mvae.infer.objectives import build_objective
from pyro_mvae.infer.steps import Stepper
from pyro_mvae.runs import load_run

ROUTES = {  # name -> (estimator, baseline, objective)
    "implicit": ("implicit", "none", "trace"),
    "score_weights": ("score_weights", "none", "trace"),
    "score_weights + decaying_average": ("score_weights", "decaying_average", "tracegraph"),
    "score_weights + neural": ("score_weights", "neural", "tracegraph"),
    "stratified": ("score_weights", "none", "stratified"),
}


def groups(vae) -> dict[str, list[tuple[torch.Tensor, slice]]]:
    """Parameter group -> (tensor, rows) pairs: the encoder's last layer split by output."""
    head = vae.encoder.head
    n_logits, n_table = vae.encoder._n_logits, vae.encoder._n_table
    rows = {"encoder logits head": slice(0, n_logits), "encoder loc head": slice(n_logits, n_logits + n_table),
            "encoder scale head": slice(n_logits + n_table, None)}
    trunk = list(vae.encoder.body.parameters())
    out = {name: [(head.weight, r), (head.bias, r)] for name, r in rows.items()}
    out["encoder trunk"] = [(p, slice(None)) for p in trunk]
    out["decoder"] = [(p, slice(None)) for p in vae.decoder.parameters()]
    out["prior"] = [(p, slice(None)) for p in vae.prior.parameters()]
    return out


def set_route(vae, estimator: str, baseline: str) -> None:
    from pyro_mvae.models.nets import MLP

    vae.encoder.estimator, vae.encoder.baseline = estimator, baseline
    if baseline == "neural" and vae.encoder.baseline_net is None:
        vae.encoder.baseline_net = MLP(vae.data_dim, [100], 1)


def one_gradient(vae, elbo, x, params, baseline_opt=None) -> torch.Tensor:
    """One estimate of ∂(−ELBO)/∂θ, flattened ``(P,)``; trains a neural baseline one step."""
    vae.zero_grad(set_to_none=True)
    elbo.loss_and_grads(vae.model, vae.svi_guide, x)
    grad = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params])
    if baseline_opt is not None:
        baseline_opt.step()
    return grad


def route_gradients(vae, route: str, x, draws: int) -> torch.Tensor:
    """``(draws, P)`` estimates over all VAE parameters (not the baseline's)."""
    estimator, baseline, objective = ROUTES[route]
    pyro.clear_param_store()
    set_route(vae, estimator, baseline)
    params = [p for name, p in vae.named_parameters() if "baseline_net" not in name]
    elbo = build_objective(objective, vae=vae)
    opt = torch.optim.Adam(vae.encoder.baseline_net.parameters(), lr=1e-3) if baseline == "neural" else None
    warmup = draws if baseline != "none" else 0
    for _ in range(warmup):
        one_gradient(vae, elbo, x, params, opt)
    return torch.stack([one_gradient(vae, elbo, x, params) for _ in range(draws)])


def group_table(vae, grads: dict[str, torch.Tensor]) -> None:
    offsets, start = {}, 0
    for p in (p for name, p in vae.named_parameters() if "baseline_net" not in name):
        offsets[p] = start
        start += p.numel()
    print("| parameters | " + " | ".join(f"{r}: variance (mean², ratio; tail share)" for r in grads) + " |")
    print("|---|" + "---|" * len(grads))
    for gname, members in groups(vae).items():
        idx = torch.cat([offsets[p] + torch.arange(p.numel()).reshape(p.shape)[rows].flatten()
                         for p, rows in members]) if members else torch.zeros(0, dtype=torch.long)
        cells = []
        for g in grads.values():
            sub = g[:, idx].double()  # (draws, n)
            var, mean2 = sub.var(0).sum().item(), sub.mean(0).pow(2).sum().item()
            deviations = (sub - sub.mean(0)).pow(2).sum(1)  # (draws,)
            tail = (deviations.max() / deviations.sum().clamp_min(1e-300)).item()
            cells.append(f"{var:.3g} ({mean2:.3g}, {var / max(mean2, 1e-300):.3g}; {tail:.2f})")
        print(f"| {gname} | " + " | ".join(cells) + " |")


def step_times(vae, x, steps: int, routes) -> dict[str, float]:
    """Seconds per training step (Trace_ELBO routes; the state is restored after each)."""
    state = {k: v.clone() for k, v in vae.state_dict().items()}
    times = {}
    for route in (r for r in ("implicit", "score_weights", "stratified") if r in routes):
        estimator, baseline, objective = ROUTES[route]
        set_route(vae, estimator, baseline)
        stepper = Stepper(vae, build_objective(objective, vae=vae), torch.optim.Adam(vae.parameters(), lr=1e-4))
        stepper(x)  # warm-up
        start = time.perf_counter()
        for _ in range(steps):
            stepper(x)
        times[route] = (time.perf_counter() - start) / steps
        vae.load_state_dict(state)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--draws", type=int, default=200)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    torch.manual_seed(0)
    vae, config, _, data = load_run(args.run_dir)
    routes = [r for r in ROUTES if r != "stratified" or vae.prior.layout.stratifiable]  # whole vectors only
    x = data.val.x[: args.images]  # (B, *event)
    grads = {route: route_gradients(vae, route, x, args.draws) for route in routes}
    print(f"{config['prior']['name']} C = {vae.prior.layout.components}, d = {vae.latent_dim}; B = {len(x)} "
          f"validation images; {args.draws} estimates per estimator; variance = trace of one estimate's "
          f"covariance, mean² = squared norm of the mean (units: nats² per parameter²)\n")
    group_table(vae, grads)
    times = step_times(vae, x, args.steps, routes)
    print("\n| estimator | seconds per step | ratio to implicit |\n|---|---|---|")
    for route, t in times.items():
        print(f"| {route} | {t:.4f} | {t / times['implicit']:.2f} |")


if __name__ == "__main__":
    main()
