"""Training-step speed: the package's SVI step against a hand-written plain-PyTorch ELBO step.

    python experiments/bench_svi.py [--data-root ../shared/data] [--batch-sizes 100 1000]
                                    [--steps 20] [--rounds 5] [--levers] [--net mlp|conv]
                                    [--out docs/records/bench_svi.json]
    python experiments/bench_svi.py --table docs/records/bench_svi.json   # the docs' table of a record

Same networks (``--net mlp``: 784-300-300-40 MLPs; ``--net conv``: the convolutional nets of
``net=conv`` at their defaults; copied weights), same prior, same binarised MNIST batches,
one process, after a warm-up; the variants run in turn, ``--steps`` steps each, for ``--rounds``
rounds, and the steps per second of each variant over all rounds are printed with the ratio
package / plain PyTorch (time per step; 1.00 = as fast as hand-written, above 1 = slower) and the
seconds of its first 3 steps (a compiled variant's compilation: what it has to win back).

Models: ``standard`` (N(0, I) prior, Gaussian guide) and ``factorized`` (the mission's
factorized mixture prior, N = 3 per dimension, with the straight-through relaxed guide at
τ = 0.5). Their plain-PyTorch twins below compute the same single-sample Monte Carlo ELBO
(log p(x | z) + log p(c) + log p(z | c) − log q(c | x) − log q(z | c, x)), written for this
benchmark only.

Variants: ``plain PyTorch`` (the twin with ``torch.optim.Adam`` at its defaults: the reference of
every ratio) and ``plain PyTorch, fused Adam``; ``package`` is the training loop's step
(:class:`pyro_mvae.infer.steps.Stepper` as the trainer builds it: fast route, validation off, fused
Adam, the per-step finiteness check of loss and gradients). ``--levers`` adds the levers
measured for the README: ``svi`` (``loss_and_grads`` as ``pyro.infer.SVI`` does, validation on,
default Adam, no finiteness check: the naive step), ``no finite check``, ``unfused`` (default
Adam), ``validate`` (validation on), ``jit`` (``JitTrace_ELBO``), ``compile=true`` (the trainer's
step under ``trainer.compile=true``: the encoder body and the decoder under ``torch.compile``,
:class:`~pyro_mvae.infer.compiled.CompiledNetworks`, Pyro's tracing eager) and
``compiled loss`` (the whole ``ELBOLoss``, Pyro's tracing included, under ``torch.compile``); and
the twin ``plain PyTorch, compiled`` (its loss function under ``torch.compile``, fused Adam).

ATen's element-wise kernels are those ``pyro-mvae train`` uses (AVX2 unless ``ATEN_CPU_CAPABILITY``
is set: :func:`pyro_mvae.runs.prefer_cpu_kernels`).

``--out``: also write the table as a record the docs cite (``experiments/records.py``): under
``<model>.B<batch>.<variant key>`` (the variant's name, its runs of other characters than letters
and digits as ``_``: ``package (compile=true)`` -> ``package_compile_true``) its ``steps_per_s``,
``ratio`` (time per step / plain PyTorch) and ``first_3_s``, or ``fails`` (the error) for a
variant that does not run. ``--table RECORD`` prints the docs' table of such a record, every
number with its marker, measuring nothing.
"""

import argparse
import copy
import json
import math
import re
import time
from pathlib import Path

import pyro
import torch
import torch.nn.functional as F
from records import region, write_record
from torch.distributions.utils import clamp_probs

from pyro_mvae.data import load_mnist
from pyro_mvae.infer.compiled import CompiledNetworks
from pyro_mvae.infer.steps import ELBOLoss, Stepper
from pyro_mvae.models.nets import positive
from pyro_mvae.models.registry import build_vae
from pyro_mvae.runs import prefer_cpu_kernels
from pyro_mvae.training.train import make_optimizer

LOG_2PI = math.log(2 * math.pi)
TAU = 0.5
MODELS = {
    "standard": ({"name": "standard"}, {"name": "gaussian"}),
    "factorized": ({"name": "factorized_mixture", "components": 3},
                   {"name": "relaxed_mixture", "straight_through": True}),
}


def normal_log_prob(z, loc, scale):
    """log N(z; loc, scale²) per element, nats."""
    return -0.5 * ((z - loc) / scale) ** 2 - scale.log() - 0.5 * LOG_2PI


def exp_concrete_log_prob(s, logits, tau):
    """log ExpConcrete(s; τ, logits), s the log of a Concrete sample (Maddison et al. 2017,
    appendix C; what LogSpaceConcrete scores): s, logits ``(..., N)`` -> ``(...)``."""
    n = s.shape[-1]
    score = logits - tau * s
    score = (score - score.logsumexp(-1, keepdim=True)).sum(-1)
    return score + math.lgamma(n) + (n - 1) * math.log(tau)


def bernoulli_log_prob(vae, z, x):
    """log p(x | z) per datapoint, nats: x ``(B, 1, 28, 28)``, z ``(B, d)`` -> ``(B,)``."""
    return -F.binary_cross_entropy_with_logits(vae.decoder(z), x, reduction="none").flatten(1).sum(-1)


def standard_loss(vae, x):
    """−ELBO summed over x ``(B, 1, 28, 28)`` for N(0, I) prior, Gaussian guide, Bernoulli likelihood."""
    loc, raw = vae.encoder.encode(x).chunk(2, dim=-1)  # (B, d) each
    scale = positive(raw)
    eps = torch.randn_like(loc)
    z = loc + scale * eps
    log_px = bernoulli_log_prob(vae, z, x)
    log_pz = (-0.5 * (z ** 2 + LOG_2PI)).sum(-1)
    log_qz = normal_log_prob(z, loc, scale).sum(-1)
    return -(log_px + log_pz - log_qz).sum()


def factorized_loss(vae, x):
    """−ELBO summed over x ``(B, 1, 28, 28)``: factorized mixture prior, straight-through relaxed guide."""
    B, prior = x.shape[0], vae.prior
    d, n = prior.logits.shape
    logits, loc, raw = vae.encoder.encode(x).split(d * n, dim=-1)  # 3 × (B, d·N)
    logits, loc, scale = logits.reshape(B, d, n), loc.reshape(B, d, n), positive(raw).reshape(B, d, n)
    gumbel = -torch.log(-torch.log(clamp_probs(torch.rand_like(logits))))
    s = torch.log_softmax((logits + gumbel) / TAU, dim=-1)  # log of the relaxed sample (B, d, N)
    y = s.exp()
    hard = F.one_hot(y.argmax(-1), n).to(y)
    c = hard + (y - y.detach())  # straight-through one-hot D
    q_loc, q_scale = (c * loc).sum(-1), (c * scale).sum(-1)  # (B, d)
    z = q_loc + q_scale * torch.randn_like(q_loc)
    p_loc, p_scale = (c * prior.loc).sum(-1), (c * prior.scale).sum(-1)
    log_px = bernoulli_log_prob(vae, z, x)
    log_p = exp_concrete_log_prob(s, prior.logits, TAU).sum(-1) + normal_log_prob(z, p_loc, p_scale).sum(-1)
    log_q = exp_concrete_log_prob(s, logits, TAU).sum(-1) + normal_log_prob(z, q_loc, q_scale).sum(-1)
    return -(log_px + log_p - log_q).sum()


TWINS = {"standard": standard_loss, "factorized": factorized_loss}


class TwinStep:
    """The hand-written step: zero_grad, loss, backward, Adam step."""

    def __init__(self, vae, loss_fn, fused=False):
        self.vae, self.loss_fn = vae, loss_fn
        self.optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3, fused=fused or None)

    def __call__(self, x):
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss_fn(self.vae, x)
        loss.backward()
        self.optimizer.step()
        return loss.detach()


def package_step(vae, elbo="trace", fast=True, validate=False, fused=True, check_finite=True, compiled=False,
                 compiled_loss=False):
    vae.tau = TAU
    networks = CompiledNetworks(vae) if compiled else None  # trainer.compile=true: the networks compiled
    objective = {"trace": pyro.infer.Trace_ELBO, "jit": pyro.infer.JitTrace_ELBO}[elbo](max_plate_nesting=1)
    optimizer = make_optimizer(vae, 1e-3) if fused else torch.optim.Adam(vae.parameters(), lr=1e-3)
    loss = torch.compile(ELBOLoss(vae, objective)) if compiled_loss else None  # Pyro's tracing compiled too
    return Stepper(vae, objective, optimizer, loss_module=loss, fast=fast, validate=validate,
                   check_finite=check_finite, networks=networks)


LEVERS = {
    "svi": dict(fast=False, validate=True, fused=False, check_finite=False),
    "no finite check": dict(check_finite=False),
    "unfused": dict(fused=False),
    "validate": dict(validate=True),
    "jit": dict(elbo="jit"),
    "compile=true": dict(compiled=True),
    "compiled loss": dict(compiled_loss=True),
}


NETS = {"mlp": {"name": "mlp", "hidden": [300, 300], "latent_dim": 40}, "conv": {"name": "conv"}}


def variants(model: str, event_shape, net: str, levers: bool) -> dict:
    torch.manual_seed(0)
    prior, guide = MODELS[model]
    base = build_vae(event_shape, prior, guide, {"name": "bernoulli"}, NETS[net])
    out = {"plain PyTorch": TwinStep(copy.deepcopy(base), TWINS[model]),
           "plain PyTorch, fused Adam": TwinStep(copy.deepcopy(base), TWINS[model], fused=True),
           "package": package_step(copy.deepcopy(base))}
    if levers:
        out["plain PyTorch, compiled"] = TwinStep(copy.deepcopy(base), torch.compile(TWINS[model]), fused=True)
    for name, options in LEVERS.items() if levers else ():
        out[f"package ({name})"] = package_step(copy.deepcopy(base), **options)
    return out


def warm_up(steps_of: dict, batches: list) -> tuple[dict, dict]:
    """Runs 3 steps of each variant (and compiles the compiled ones); returns the seconds those
    took (the compilation included) and the failures' messages."""
    seconds, failed = {}, {}
    for name, step in steps_of.items():
        tic = time.perf_counter()
        try:
            for xb in batches[:3]:
                step(xb)
        except Exception as error:  # a lever that does not work with this model is reported
            failed[name] = f"{type(error).__name__}: {error}"
        seconds[name] = time.perf_counter() - tic
    return seconds, failed


def bench(steps_of: dict, batches: list, rounds: int) -> dict:
    """Seconds per step of each variant, measured in alternating blocks over the batches."""
    seconds = dict.fromkeys(steps_of, 0.0)
    for _ in range(rounds):
        for name, step in steps_of.items():
            tic = time.perf_counter()
            for xb in batches:
                loss = step(xb)
            float(loss)  # one host read per block: the device queue is drained before the clock stops
            seconds[name] += time.perf_counter() - tic
    return {name: s / (rounds * len(batches)) for name, s in seconds.items()}


def variant_key(name: str) -> str:
    """A record key of a variant's name: ``package (compile=true)`` -> ``package_compile_true``."""
    return re.sub(r"\W+", "_", name).strip("_")


def table(record: dict) -> str:
    """The docs' table of a ``--out`` record as a records region, every number with its marker."""
    names = ["plain PyTorch", "plain PyTorch, fused Adam", "package", "plain PyTorch, compiled",
             *(f"package ({lever})" for lever in LEVERS)]
    name_of = {variant_key(name): name for name in names}
    lines = ["| model | B | variant | steps/s | time per step / plain PyTorch | first 3 steps (s) |", "|---" * 6 + "|"]
    for model, by_batch in record["values"].items():
        for batch, by_variant in by_batch.items():
            for key, v in by_variant.items():
                ref = f"{record['id']}.{model}.{batch}.{key}"
                cells = (f"fails ({v['fails'].split(':')[0]}) | | " if "fails" in v else
                         f"{v['steps_per_s']:.1f} <!-- rec:{ref}.steps_per_s --> | {v['ratio']:.3f} "
                         f"<!-- rec:{ref}.ratio --> | {v['first_3_s']:.1f} <!-- rec:{ref}.first_3_s -->")
                lines.append(f"| {model} | {batch.removeprefix('B')} | {name_of.get(key, key)} | {cells} |")
    return region(lines)


def _to(step, device):
    """The step with its model moved to ``device`` (its optimiser's state is created lazily)."""
    step.vae.to(device)
    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--steps", type=int, default=20, help="steps per block")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--levers", action="store_true", help="also time the levers (see above)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--net", default="mlp", choices=list(NETS))
    parser.add_argument("--out", help="also write the table as a record (docs/records/NAME.json)")
    parser.add_argument("--table", metavar="RECORD", help="print the docs' table of a record, measuring nothing")
    args = parser.parse_args()
    if args.table:
        return print(table(json.loads(Path(args.table).read_text())))
    kernels = prefer_cpu_kernels()  # ATen's element-wise kernels as pyro-mvae train uses them
    device = torch.device(args.device)
    data = load_mnist(args.data_root, download=False, device=device)
    print(f"device {device}, torch threads {torch.get_num_threads()}, torch {torch.__version__}, "
          f"pyro {pyro.__version__}; ATen {kernels} kernels; net {args.net}; "
          f"{args.rounds} rounds × {args.steps} steps per variant")
    print("| model | batch | variant | steps/s | samples/s | time per step / plain PyTorch | first 3 steps (s) |")
    print("|---|---|---|---|---|---|---|")
    values = {}
    for model in args.models:
        for B in args.batch_sizes:
            pyro.set_rng_seed(0)
            batches = [data.train.x[i * B:(i + 1) * B].bernoulli() for i in range(args.steps)]  # (B, 1, 28, 28)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            built = variants(model, data.event_shape, args.net, args.levers)
            steps_of = {name: _to(step, device) for name, step in built.items()}
            first, failed = warm_up(steps_of, batches)
            per_step = bench({k: v for k, v in steps_of.items() if k not in failed}, batches, args.rounds)
            plain = per_step["plain PyTorch"]
            for name, s in per_step.items():
                print(f"| {model} | {B} | {name} | {1 / s:.1f} | {B / s:.0f} | {s / plain:.3f} | {first[name]:.1f} |")
                values.setdefault(model, {}).setdefault(f"B{B}", {})[variant_key(name)] = {
                    "steps_per_s": 1 / s, "ratio": s / plain, "first_3_s": first[name]}
            for name, message in failed.items():
                print(f"| {model} | {B} | {name} | fails: {message[:100]} | | | |")
                values.setdefault(model, {}).setdefault(f"B{B}", {})[variant_key(name)] = {"fails": message}
            if device.type == "cuda":
                print(f"| {model} | {B} | peak GPU memory of all variants | "
                      f"{torch.cuda.max_memory_allocated() / 2 ** 20:.0f} MiB | | | |")
    if args.out:
        write_record(args.out, values, f"{device}, {torch.get_num_threads()} torch threads, ATen {kernels} kernels, "
                     "nothing else running")


if __name__ == "__main__":
    main()
