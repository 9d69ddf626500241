"""The parts of the published VampPrior protocol: gated nets, He initialisation, the clipped
log-variance of q(z | x), the clipped pseudo-inputs, AdamNormGrad; each against a hand-written
oracle (Tomczak & Welling 2018's code, vae_vampprior: utils/nn.py, models/VAE.py, models/Model.py,
utils/optimizer.py)."""

import math

import pytest
import torch
from pyro import poutine

from pyro_mvae.data import load_digits
from pyro_mvae.errors import ConfigError
from pyro_mvae.models.guides import GuideConfig, guide_scale
from pyro_mvae.models.modes import eval_mode
from pyro_mvae.models.nets import GatedDense
from pyro_mvae.models.registry import build_vae
from pyro_mvae.training.optimizers import AdamNormGrad
from pyro_mvae.training.train import make_optimizer

GATED = {"name": "gated_mlp", "hidden": [300, 300], "latent_dim": 40}
PAIRS = [("standard", "gaussian"), ("vamp", "gaussian"), ("vamp", "flow"), ("mixture", "marginal_mixture"),
         ("mixture", "discrete_mixture"), ("factorized_mixture", "relaxed_mixture"), ("flow", "gaussian")]


def test_gated_dense_is_the_papers_layer():
    """h = (W x + b) ⊙ σ(V x + c), written out with the layer's own weights."""
    torch.manual_seed(0)
    layer = GatedDense(7, 5)
    x = torch.randn(3, 7)
    weight, bias = layer[0].weight, layer[0].bias  # (10, 7), (10,): the halves are W, b then V, c
    w, v, b, c = weight[:5], weight[5:], bias[:5], bias[5:]
    expected = (x @ w.T + b) * torch.sigmoid(x @ v.T + c)
    torch.testing.assert_close(layer(x), expected)


def test_gated_vae_forward_by_hand():
    """The whole encoder and decoder of net=gated_mlp against the paper's forward pass on the
    same weights: two gated layers, a linear mean, a clipped log-variance; the decoder's logits."""
    torch.manual_seed(1)
    vae = build_vae((1, 8, 8), {"name": "standard"}, {"name": "gaussian", "scale": "logvar"}, {"name": "bernoulli"},
                    {"name": "gated_mlp", "hidden": [30, 20], "latent_dim": 4})
    x = torch.rand(6, 1, 8, 8).bernoulli()

    def gate(layer, h):
        a, g = (h @ layer[0].weight.T + layer[0].bias).split(layer[0].out_features // 2, -1)
        return a * torch.sigmoid(g)

    h = x.reshape(6, 64)
    for layer in vae.encoder.body.gates:
        h = gate(layer, h)
    out = h @ vae.encoder.head.weight.T + vae.encoder.head.bias
    mean, logvar = out[:, :4], out[:, 4:].clamp(-6, 2)
    q = vae.encoder.posterior(x).base_dist
    torch.testing.assert_close(q.loc, mean)
    torch.testing.assert_close(q.scale, (0.5 * logvar).exp())
    z = torch.randn(6, 4)
    h = z
    for layer in vae.decoder.gates:
        h = gate(layer, h)
    logits = (h @ vae.decoder.out.weight.T + vae.decoder.out.bias).reshape(6, 1, 8, 8)
    torch.testing.assert_close(vae.decoder(z), logits)


@pytest.mark.parametrize("kind", ["gated_mlp", "mlp"])
def test_he_initialisation_of_every_linear_layer(kind):
    """Weights N(0, 2 / fan_in) in the body, the guide's head and the decoder (a χ² check of the
    sample variance, 300·784 draws for the first layer), for the gated nets (their default) and the
    plain MLP (net.init=he, the protocol ablation's plain nets); init=default keeps PyTorch's uniform."""
    torch.manual_seed(2)
    net = GATED | {"name": kind, "init": "he"}
    vae = build_vae((1, 28, 28), {"name": "standard"}, {"name": "gaussian"}, {"name": "bernoulli"}, net)
    layers = [m for part in (vae.encoder, vae.decoder) for m in part.modules() if isinstance(m, torch.nn.Linear)]
    assert len(layers) == 6  # two layers and the head of the encoder, two layers and the output of the decoder
    for layer in layers:
        w = layer.weight.detach()
        ratio = w.var().item() / (2 / layer.in_features)
        assert abs(ratio - 1) < 6 * math.sqrt(2 / w.numel()), layer  # the variance's relative s.e. is √(2/n)
    plain = build_vae((1, 28, 28), {"name": "standard"}, {"name": "gaussian"}, {"name": "bernoulli"},
                      net | {"init": "default"})
    out = [m for m in plain.decoder.modules() if isinstance(m, torch.nn.Linear)][-1]
    w = out.weight.detach()  # PyTorch: U(±1/√fan_in), variance 1/(3 fan_in)
    assert abs(w.var().item() * 3 * 300 - 1) < 0.05


def test_the_conv_nets_have_no_initialisation_option():
    with pytest.raises(ConfigError, match="init"):
        build_vae((1, 28, 28), {"name": "standard"}, {"name": "gaussian"}, {"name": "bernoulli"},
                  {"name": "conv", "init": "he"})


@pytest.mark.parametrize("prior,guide", PAIRS)
def test_gated_net_with_every_kind_of_prior_and_guide(prior, guide):
    """net=gated_mlp serves every guide family: the model and guide trace on digits and the ELBO's
    gradient reaches the gated layers."""
    torch.manual_seed(3)
    data = load_digits()
    vae = build_vae(data.event_shape, {"name": prior}, {"name": guide, "scale": "logvar"}, {"name": "bernoulli"},
                    {"name": "gated_mlp", "hidden": [50, 40], "latent_dim": 6})
    x = data.train.x[:16].bernoulli()
    guide_trace = poutine.trace(vae.guide).get_trace(x)
    model_trace = poutine.trace(poutine.replay(vae.model, trace=guide_trace)).get_trace(x)
    loss = guide_trace.log_prob_sum() - model_trace.log_prob_sum()
    loss.backward()
    assert torch.isfinite(loss)
    assert vae.encoder.body.gates[0][0].weight.grad.abs().sum() > 0
    assert vae.decoder.gates[0][0].weight.grad.abs().sum() > 0


def test_logvar_scale_clips_and_stops_its_gradient():
    cfg = GuideConfig(scale="logvar", logvar_min=-6.0, logvar_max=2.0)
    raw = torch.tensor([-9.0, -6.5, -1.0, 0.0, 1.5, 3.0], requires_grad=True)
    scale = guide_scale(raw, cfg)
    expected = torch.tensor([-6.0, -6.0, -1.0, 0.0, 1.5, 2.0]).mul(0.5).exp()
    torch.testing.assert_close(scale, expected)
    scale.sum().backward()
    assert raw.grad[0] == 0 and raw.grad[-1] == 0 and raw.grad[2] > 0  # hardtanh passes no gradient outside
    with pytest.raises(ConfigError, match="logvar_max"):
        GuideConfig(scale="logvar", logvar_min=1.0, logvar_max=0.0)
    torch.testing.assert_close(guide_scale(raw, GuideConfig()), torch.nn.functional.softplus(raw) + 1e-3)


def vamp(**options):
    torch.manual_seed(4)
    return build_vae((1, 28, 28), {"name": "vamp", "components": 50, **options}, {"name": "gaussian"},
                     {"name": "bernoulli"}, {"name": "mlp", "hidden": [40], "latent_dim": 5})


def test_published_pseudo_inputs():
    """hardtanh pseudo-inputs start at N(0.05, 0.01²) clipped to [0, 1] and learn; the VampPrior
    code's default mean −0.05 would start every value below 0, where the clip passes no
    gradient, so its pseudo-inputs could never move (why the protocol takes 0.05, the released
    Exemplar VAE run's setting)."""
    published = vamp(pseudo_inputs="hardtanh", init_mean=0.05, init_std=0.01)
    w = published.prior.pseudo_logits.detach()
    assert abs(w.mean().item() - 0.05) < 1e-3 and abs(w.std().item() - 0.01) < 1e-3
    u = published.prior.pseudo_inputs
    assert u.shape == (50, 1, 28, 28) and u.min() >= 0 and u.max() <= 1
    torch.testing.assert_close(u.flatten(1), w.clamp(0, 1))
    published.prior.marginal().log_prob(torch.randn(3, 5)).sum().backward()
    assert (published.prior.pseudo_logits.grad != 0).float().mean() > 0.99
    frozen = vamp(pseudo_inputs="hardtanh", init_mean=-0.05, init_std=0.01)
    assert frozen.prior.pseudo_inputs.max() == 0  # every pseudo-input a blank image
    frozen.prior.marginal().log_prob(torch.randn(3, 5)).sum().backward()
    assert frozen.prior.pseudo_logits.grad.abs().max() == 0


def test_adam_normgrad_is_adam_on_unit_norm_gradients():
    """One step of each equals Adam's on g / (‖g‖ + 1e-7), one norm per parameter tensor."""
    torch.manual_seed(5)
    a = [torch.randn(4, 3, requires_grad=True), torch.randn(5, requires_grad=True)]
    b = [p.detach().clone().requires_grad_() for p in a]
    ours, oracle = AdamNormGrad(a, lr=0.01), torch.optim.Adam(b, lr=0.01)
    for step in range(3):
        grads = [torch.randn_like(p) * 10 ** step for p in a]
        for p, q, g in zip(a, b, grads):
            p.grad = g.clone()
            q.grad = g / (g.norm() + 1e-7)
        ours.step()
        oracle.step()
        for p, q in zip(a, b):
            torch.testing.assert_close(p, q)


def test_vamp_components_are_encoded_once_per_evaluation():
    """Within one evaluation (an eval_mode block, gradients off) the C pseudo-inputs are encoded
    once; the kept components give the same log-densities as encoding afresh; after a step of the
    trainer's optimiser (fused Adam, whose in-place step leaves the version counters alone) the
    next evaluation encodes them again; outside eval_mode nothing is kept."""
    vae = vamp()
    calls = []
    vae.encoder.body.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    z = torch.randn(7, 5)

    def evaluation(times: int = 3) -> list[torch.Tensor]:
        with eval_mode(vae), torch.no_grad():
            return [vae.prior.marginal().log_prob(z) for _ in range(times)]

    fresh = vae.prior.marginal().log_prob(z).detach()  # grad on: encoded every time
    kept = evaluation()
    assert calls.count(50) == 2  # once with gradients, once for the three log-densities of one evaluation
    for value in kept:
        torch.testing.assert_close(value, fresh, rtol=0, atol=0)
    optimiser = make_optimizer(vae, 0.1)  # what the trainer steps with
    vae.prior.marginal().log_prob(z).sum().neg().backward()
    optimiser.step()
    moved = evaluation(1)[0]
    assert not torch.equal(moved, fresh)
    with torch.no_grad():
        torch.testing.assert_close(moved, vae.prior.marginal().log_prob(z), rtol=0, atol=0)
    before = calls.count(50)
    vae.eval()
    with torch.no_grad():  # eval mode set by hand, outside an evaluation block: encoded every call
        vae.prior.marginal().log_prob(z), vae.prior.marginal().log_prob(z)
    assert calls.count(50) == before + 2
