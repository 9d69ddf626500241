"""Bias and variance of the gradient of the component logits, per route, at fixed parameters.

    python experiments/gradient_study.py RUN_DIR [--images 100] [--draws 2000] [--out FIG.png] [--record RECORD]
    python experiments/gradient_study.py --table RECORD      # the docs' table of a record

RUN_DIR holds a trained run with prior=mixture and guide=discrete_mixture (for example
`multirun/gradient_routes_mnist/route=mix10_enum` from `pyro-mvae train -m experiment=gradient_routes`).
At its parameters, every
route estimates ∂(−ELBO)/∂b, where b are the biases of the encoder outputs that are the component
logits (C of them), summed over a batch of test images:

- enumeration (TraceEnum_ELBO): c summed out exactly; the reference (z is still sampled);
- score function (TraceGraph_ELBO) without baseline, with a decaying average, with a neural
  baseline (trained on the spot, only its own parameters moving);
- relaxed (Concrete, Trace_ELBO) at several τ, and straight-through at τ = 0.5: the same
  encoder weights in a relaxed guide. Their gradient is that of the relaxed model's ELBO, so
  their bias against the discrete gradient is the relaxation's bias;
- Gumbel-Rao (M = 10 conditional relaxations at τ = 0.5; Paulus et al. 2021): straight-through's
  exact one-hot forward pass, scored as the discrete choice, so it targets the same ELBO as
  enumeration and its bias is that of the relaxed backward pass alone.

The marginal-mixture guide is left out: it sums c out of q(z | x) itself, a different (tighter)
ELBO with another gradient, so its distance from enumeration's is not a bias.

Per route: bias = ‖mean − enumeration mean‖ (with the Monte Carlo error of that norm's inputs),
and variance = the trace of one draw's covariance. Prints a Markdown table; saves a plot.
``--record``: also write, per route (its name's runs of other characters than letters and digits
as ``_``), ``name``, ``bias``, ``mc_error``, ``variance``, ``draws`` and ``seconds`` as a record the
docs cite (``experiments/records.py``; a route whose gradient is not finite has NaN there);
``--table RECORD`` prints the docs' table of such a record, measuring nothing.
"""

import argparse
import io
import json
import math
import re
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pyro  # noqa: E402
import torch  # noqa: E402
from records import region, write_record  # noqa: E402

from pyro_mvae.infer.objectives import build_objective  # noqa: E402
from pyro_mvae.models.registry import build_vae  # noqa: E402
from pyro_mvae.runs import load_run  # noqa: E402
from pyro_mvae.storage import write_bytes_atomic  # noqa: E402


def route_vae(config, event_shape, state, guide: dict, tau: float):
    """A VAE of the run's prior and networks with the given guide settings and parameters."""
    vae = build_vae(event_shape, config["prior"], guide, config["likelihood"], config["net"])
    vae.load_state_dict(state, strict=False)  # baseline networks start fresh
    vae.tau = tau
    return vae


def draw_gradients(vae, objective, x, draws, particles, warmup=0):
    """``(draws // particles, C)`` estimates, each the mean of ``particles`` vectorised draws."""
    elbo = build_objective(objective, particles, vae=vae)
    head = vae.encoder.head
    C = vae.prior.layout.components
    baseline = getattr(vae.encoder, "baseline_net", None)
    opt = None if baseline is None else torch.optim.Adam(baseline.parameters(), lr=1e-3)
    out = []
    for i in range(warmup + draws // particles):
        vae.zero_grad()
        elbo.loss_and_grads(vae.model, vae.svi_guide, x)
        if opt is not None:
            opt.step()
        if i >= warmup:
            out.append(head.bias.grad[:C].clone())
    return torch.stack(out)


ROUTES = [  # name, guide options, objective, τ, particles per call
    ("enumeration", {"name": "discrete_mixture"}, "enum", 1.0, 10),
    ("score function", {"name": "discrete_mixture"}, "tracegraph", 1.0, 50),
    ("SF + decaying average", {"name": "discrete_mixture", "baseline": "decaying_average"}, "tracegraph", 1.0, 50),
    ("SF + neural baseline", {"name": "discrete_mixture", "baseline": "neural"}, "tracegraph", 1.0, 1),
    ("relaxed τ=2", {"name": "relaxed_mixture", "straight_through": False}, "trace", 2.0, 50),
    ("relaxed τ=1", {"name": "relaxed_mixture", "straight_through": False}, "trace", 1.0, 50),
    ("relaxed τ=0.5", {"name": "relaxed_mixture", "straight_through": False}, "trace", 0.5, 50),
    ("relaxed τ=0.2", {"name": "relaxed_mixture", "straight_through": False}, "trace", 0.2, 50),
    ("straight-through τ=0.5", {"name": "relaxed_mixture", "straight_through": True}, "trace", 0.5, 50),
    ("Gumbel-Rao M=10 τ=0.5", {"name": "relaxed_mixture", "estimator": "gumbel_rao", "rao_samples": 10},
     "trace", 0.5, 50),
]


def route_key(name: str) -> str:
    """A record key of a route's name (``SF + neural baseline`` -> ``SF_neural_baseline``)."""
    return re.sub(r"\W+", "_", name).strip("_")


def record_table(record: dict) -> str:
    """The docs' table of a ``--record`` record as a records region, every number with its marker."""
    lines = ["| route | bias ‖mean − enumeration‖ (its MC error) | variance of one draw | draws |", "|---|---|---|---|"]
    for key, v in record["values"].items():
        ref = f"<!-- rec:{record['id']}.{key}"
        if math.isnan(v["bias"]):
            lines.append(f"| `{v['name']}` | not finite | — | {v['draws']} |")
            continue
        lines.append(f"| `{v['name']}` | {v['bias']:.1f} {ref}.bias --> ({v['mc_error']:.1f} {ref}.mc_error -->) "
                     f"| {v['variance']:.0f} {ref}.variance --> | {v['draws']} |")
    return region(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--draws", type=int, default=2000, help="gradient draws per route")
    parser.add_argument("--out", default="experiments/gradient_study.png")
    parser.add_argument("--record", help="also write the table as a record (docs/records/NAME.json)")
    parser.add_argument("--table", metavar="RECORD", help="print the docs' table of a record, measuring nothing")
    args = parser.parse_args()
    if args.table:
        return print(record_table(json.loads(Path(args.table).read_text())))
    if args.run_dir is None:
        parser.error("give RUN_DIR (or --table RECORD)")
    vae, config, _, data = load_run(args.run_dir, "cpu")
    if config["prior"]["name"] != "mixture":
        raise SystemExit("the study needs a run with prior=mixture (enumeration is the reference)")
    x = data.test.x[: args.images]
    state = {k: v for k, v in vae.state_dict().items() if not k.startswith("encoder.baseline_net")}
    rows = []
    for name, guide, objective, tau, particles in ROUTES:
        pyro.set_rng_seed(0)
        pyro.clear_param_store()
        model = route_vae(config, data.event_shape, state, guide, tau)
        tic = time.perf_counter()
        warmup = 300 if guide.get("baseline") == "neural" else 0
        draws = min(args.draws, 400) if particles == 1 else args.draws
        grads = draw_gradients(model, objective, x, draws, particles, warmup)  # (M, C)
        rows.append((name, grads.mean(0), grads.var(0).sum().item() * particles,
                     grads.std(0) / math.sqrt(len(grads)), time.perf_counter() - tic, len(grads) * particles))
    reference, ref_se = rows[0][1], rows[0][3]
    print(f"{config['data']['name']}, {len(x)} test images, C = {len(reference)}; gradient of −ELBO "
          "w.r.t. the encoder's logit biases, summed over the images")
    print("| route | bias ‖mean − enumeration‖ | its MC error | variance of one draw | draws | seconds |")
    print("|---|---|---|---|---|---|")
    table, values = [], {}
    for name, mean, var, se, secs, n in rows:
        bias = (mean - reference).norm().item()
        noise = (se ** 2 + ref_se ** 2).sum().sqrt().item()
        table.append((name, bias, var))
        values[route_key(name)] = {"name": name, "bias": bias, "mc_error": noise, "variance": var, "draws": n,
                                   "seconds": secs}
        print(f"| {name} | {bias:.3g} | {noise:.2g} | {var:.3g} | {n} | {secs:.1f} |")
    plot(table, args.out)
    print(f"plot: {args.out}")
    if args.record:
        write_record(args.record, values, f"cpu, {torch.get_num_threads()} torch threads")


def plot(table, path):
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for name, bias, var in table:
        ax.scatter(var, max(bias, 1e-3), s=40)
        ax.annotate(name, (var, max(bias, 1e-3)), fontsize=8, xytext=(4, 2), textcoords="offset points")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("variance of one gradient draw")
    ax.set_ylabel("bias against enumeration (norm)")
    ax.set_title("component-logit gradient: bias vs variance per route")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    write_bytes_atomic(Path(path), buffer.getvalue())


if __name__ == "__main__":
    main()
