"""Training (training/data.py, training/trainer.py): the online batches drawn from the reference,
the schedules, the two phases, checkpoint state, and a few iterations of every network size."""

import io
import math

import numpy as np
import pytest
import torch

from neumat.renderer.materials import reference as ref
from neumat.renderer.materials.layout import StackLayout
from neumat.training import data
from neumat.training.settings import EVALUATOR_SIZES
from neumat.training.losses import LOSSES, log_correlation, log_l1, relative_l2, skill
from neumat.training.trainer import TrainConfig, Trainer, cosine_lr
from neumat.training.watchdog import CORRELATION_FLOOR, LR_BACKOFF, TrainingFailed, Watchdog


def _checker_reference(device, resolution: int = 8) -> ref.ReferenceMaterial:
    """A diffuse checker of two albedos under a rough clear coat: spatially varying, cheap."""
    layout = StackLayout(("diffuse", "dielectric"))
    v = np.zeros((resolution, resolution, layout.width), np.float32)
    for i in range(2):
        v[..., layout.slot(i, "weight")] = 1.0
        v[..., layout.slot(i, "normal")] = (0, 0, 1)
    checker = (np.add.outer(np.arange(resolution), np.arange(resolution)) // 2 % 2).astype(bool)
    v[..., layout.slot(0, "albedo")] = np.where(checker[..., None], (0.8, 0.3, 0.1), (0.1, 0.3, 0.7))
    v[..., layout.slot(1, "ior")] = 1.5
    v[..., layout.slot(1, "alpha")] = 0.3
    v[..., layout.slot(1, "thickness")] = 0.0
    levels = [v]
    while levels[-1].shape[0] > 1:  # plain 2x2 averages: fine for a test material without normals
        x = levels[-1]
        levels.append(0.25 * (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]))
    return ref.ReferenceMaterial(device, layout, levels, name="checker")


@pytest.fixture(scope="module")
def checker(device):
    return _checker_reference(device)


# --- directions, levels, lookups ----------------------------------------------------------------

def test_directions_are_reflections_above_the_horizon():
    rng = np.random.default_rng(1)
    wi, wo, p = data.sample_directions(rng, 20000, below_horizon=0.0)
    assert wi.shape == wo.shape == (20000, 3) and p.shape == (20000,)
    np.testing.assert_allclose(np.linalg.norm(wi, axis=1), 1, atol=1e-9)
    np.testing.assert_allclose(np.linalg.norm(wo, axis=1), 1, atol=1e-9)
    assert wi[:, 2].min() > 0 and wo[:, 2].min() > 0
    assert np.all(np.isfinite(p)) and p.min() > 0
    # wo is wi reflected about h = normalize(wi + wo): |wi.h| = |wo.h|.
    h = (wi + wo) / np.linalg.norm(wi + wo, axis=1, keepdims=True)
    np.testing.assert_allclose((wi * h).sum(1), (wo * h).sum(1), atol=1e-9)
    # Half vectors near the normal are dense (uniform theta_h, before the horizon rejections, which
    # remove mostly large theta_h): far more than the 7.6 % of a uniform solid-angle draw.
    assert np.mean(np.arccos(np.clip(h[:, 2], -1, 1)) < np.pi / 8) > 0.25


@pytest.mark.parametrize("peak_fraction", [1.0, 0.5, 0.0])
def test_directions_density_integrates_over_both_hemispheres(peak_fraction):
    """With every wo kept, E[1{wi, wo above} / p] * P(wi above) = (2 pi)^2 (the density is that of
    the raw (h, d) draw, before the rejection of wi below the horizon)."""
    rng = np.random.default_rng(2)
    n = 200000
    wi, wo, p = data.sample_directions(rng, n, below_horizon=1.0, peak_fraction=peak_fraction)
    # P(wi above) of the raw draw, from the same construction without rejection.
    th = np.where(rng.random(n) < peak_fraction, rng.random(n) * np.pi / 2, np.arccos(1 - rng.random(n)))
    rng.random(n)  # phi_h, as the construction draws it; wi.z does not depend on it
    td, pd = rng.random(n) * np.pi / 2, rng.random(n) * 2 * np.pi
    wi_z = -np.sin(th) * np.sin(td) * np.cos(pd) + np.cos(th) * np.cos(td)
    p_above = np.mean(wi_z > 1e-4)
    estimate = np.mean((wo[:, 2] > 0) / p) * p_above
    assert abs(estimate / (2 * np.pi) ** 2 - 1) < 0.05, estimate / (2 * np.pi) ** 2


def test_below_horizon_fraction_is_controlled():
    rng = np.random.default_rng(3)
    _, wo0, _ = data.sample_directions(rng, 20000, below_horizon=0.0)
    _, wo1, _ = data.sample_directions(rng, 20000, below_horizon=1.0)
    _, wo_q, _ = data.sample_directions(rng, 20000, below_horizon=0.25)
    f1, fq = np.mean(wo1[:, 2] <= 0), np.mean(wo_q[:, 2] <= 0)
    assert np.all(wo0[:, 2] > 0)
    assert 0.1 < f1 < 0.6
    expected = 0.25 * f1 / (1 - f1 + 0.25 * f1)
    assert abs(fq - expected) < 0.02, (fq, expected)


def test_cone_jitter_stays_in_the_cone_and_fills_it():
    rng = np.random.default_rng(4)
    w = data.sample_directions(rng, 5000)[1]
    half = math.radians(10)
    j = data.jitter_in_cone(rng, w, half)
    np.testing.assert_allclose(np.linalg.norm(j, axis=1), 1, atol=1e-9)
    angle = np.arccos(np.clip((j * w).sum(1), -1, 1))
    assert angle.max() <= half + 1e-6
    # Uniform in solid angle: P(angle < half / 2) = (1 - cos(half / 2)) / (1 - cos(half)) ~ 1/4.
    frac = np.mean(angle < half / 2)
    assert abs(frac - (1 - math.cos(half / 2)) / (1 - math.cos(half))) < 0.03
    assert data.jitter_in_cone(rng, w, 0.0) is w


def test_levels_follow_the_exponential():
    rng = np.random.default_rng(5)
    lv = data.sample_levels(rng, 100000, 4, math.log(2))
    counts = np.bincount(lv, minlength=4) / len(lv)
    np.testing.assert_allclose(counts, [0.5, 0.25, 0.125, 0.125], atol=0.01)


def test_host_lookup_matches_the_device_fetch(checker):
    rng = np.random.default_rng(6)
    n = 512
    uv = rng.random((n, 2)).astype(np.float32)
    level = data.sample_levels(rng, n, len(checker.pyramid), math.log(2))
    host = data.bilinear_levels(list(checker.pyramid), uv, level)
    device = checker.fetch_parameters(uv, level.astype(np.float32))
    np.testing.assert_allclose(host, device, atol=1e-5)


def test_batches_are_a_function_of_seed_and_step(checker):
    src = data.BatchSource(checker, data.DataConfig(batch_size=256, target_queries=2), seed=7)
    a, b, c = src.batch(3, 0.1), src.batch(3, 0.1), src.batch(4, 0.1)
    for name in ("uv", "level", "wi", "wo", "target", "p_dirs", "params"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert not torch.equal(a.uv, c.uv) and not torch.equal(a.target, c.target)
    assert a.target.shape == (256, 3) and a.params.shape == (256, checker.width)
    assert torch.all(a.target >= 0) and torch.all(torch.isfinite(a.target))
    assert torch.all(a.target[a.wo[:, 2] <= -0.2] == 0)  # far below the horizon even after the cone jitter
    # The standardised parameters: the checker's albedo channel has mean 0 and unit spread.
    albedo = src.texel_parameters(0)[..., 4]
    assert abs(float(albedo.mean())) < 1e-5 and abs(float(albedo.std(unbiased=False)) - 1) < 1e-4


def test_prefetcher_delivers_in_order_and_stops(checker):
    src = data.BatchSource(checker, data.DataConfig(batch_size=64, target_queries=1), seed=0)
    feeder = data.Prefetcher(src, 5, 9, lambda s: (0.0, False))
    try:
        for step in range(5, 9):
            b = feeder.get(step)
            assert b.params is None and torch.equal(b.uv, src.batch(step, 0.0, False).uv)
    finally:
        feeder.close()
    feeder = data.Prefetcher(src, 0, 1000, lambda s: (0.0, False))
    feeder.get(0)
    feeder.close()  # stops a producer blocked on the full queue
    assert not feeder.thread.is_alive()


# --- schedules and losses -----------------------------------------------------------------------

def test_cosine_lr_and_mollification_schedule(checker):
    assert cosine_lr(0, 1e-3, 1e-4) == pytest.approx(1e-3)
    assert cosine_lr(1, 1e-3, 1e-4) == pytest.approx(1e-4)
    assert cosine_lr(0.5, 1e-3, 1e-4) == pytest.approx(5.5e-4)
    cfg = TrainConfig(resolution=8, encoder_iterations=50, finetune_iterations=50, batch_size=64)
    t = Trainer(cfg, checker)
    assert t.lr_at(0) == pytest.approx(1e-2) and t.lr_at(99) == pytest.approx(1e-4)  # one cosine
    assert t.lr_at(49) == pytest.approx(cosine_lr(49 / 99, 1e-2, 1e-4))
    restart = Trainer(TrainConfig(resolution=8, encoder_iterations=50, finetune_iterations=50, batch_size=64,
                                  lr_start=1e-3, lr_restart=True), checker)
    assert restart.lr_at(0) == pytest.approx(1e-3) and restart.lr_at(49) == pytest.approx(1e-4)
    assert restart.lr_at(50) == pytest.approx(1e-3) and restart.lr_at(99) == pytest.approx(1e-4)
    assert t.cone_at(0) == pytest.approx(math.radians(10))
    assert t.cone_at(5) == pytest.approx(math.radians(5))  # 10 % of 100 iterations
    assert t.cone_at(10) == 0 and t.cone_at(80) == 0
    assert [t.phase_of(s) for s in (0, 49, 50, 99)] == [1, 1, 2, 2]


def test_learning_rate_multipliers_per_parameter_group(checker):
    cfg = TrainConfig(resolution=8, encoder_iterations=2, finetune_iterations=2, batch_size=64, target_queries=1)
    t = Trainer(cfg, checker)

    def lrs() -> dict:
        by_id = {id(p): g["lr"] for g in t.optimizer.param_groups for p in g["params"]}
        return {name: by_id.get(id(p)) for name, p in t.model.named_parameters()}

    t.run(until=1)
    lr0 = t.lr_at(0)
    got = lrs()
    assert got["evaluator.mlp.layers.0.weight"] == pytest.approx(10 * lr0)
    assert got["frames.linear.weight"] == pytest.approx(10 * lr0)
    assert got["evaluator.mlp.layers.2.weight"] == pytest.approx(lr0)
    assert got["encoder.mlp.layers.0.weight"] == pytest.approx(lr0)
    assert got["latents.levels.0"] is None  # not trained in the encoder phase
    t.run(until=3)
    got = lrs()
    assert got["latents.levels.0"] == pytest.approx(0.1 * t.lr_at(2))  # fine-tuned gently
    plain = Trainer(TrainConfig(resolution=8, use_encoder=False, finetune_iterations=2, batch_size=64,
                                target_queries=1), checker)
    plain.run(until=1)
    by_id = {id(p): g["lr"] for g in plain.optimizer.param_groups for p in g["params"]}
    assert by_id[id(plain.model.latents.levels[0])] == pytest.approx(plain.lr_at(0))  # from scratch: full rate


def test_log_l1_is_relative_above_eps_and_bounded_at_zero():
    t = torch.tensor([[1.0, 10.0, 100.0]])
    assert log_l1(t * 1.1, t).item() == pytest.approx(math.log(1.1), rel=0.02)
    assert log_l1(torch.zeros(1, 3), torch.zeros(1, 3)).item() == 0
    assert log_l1(torch.full((1, 3), 1e-3), torch.zeros(1, 3)).item() < 0.1


def test_bad_configs_are_rejected():
    with pytest.raises(ValueError, match="evaluator"):
        TrainConfig(evaluator="5x5")
    with pytest.raises(ValueError, match="power of two"):
        TrainConfig(resolution=12)
    with pytest.raises(ValueError):
        TrainConfig(encoder_iterations=0, finetune_iterations=0)


# --- training -----------------------------------------------------------------------------------

@pytest.mark.parametrize("size", sorted(EVALUATOR_SIZES))
def test_smoke_both_phases_every_network_size(checker, size):
    cfg = TrainConfig(evaluator=size, resolution=8, encoder_iterations=3, finetune_iterations=3, batch_size=512,
                      target_queries=2)
    t = Trainer(cfg, checker)
    assert t.in_encoder_phase
    records = []
    t.run(callback=records.append)
    assert t.step == 6 and [r["step"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert [r["phase"] for r in records] == [1, 1, 1, 2, 2, 2]
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["sampler_loss"]) for r in records)
    assert t.model.encoder is None and not t.in_encoder_phase
    v = t.validate(t.validation_batch(256, 2))
    assert math.isfinite(v["log_l1"]) and math.isfinite(v["relative_error"])


def test_encoder_fills_every_level(checker):
    cfg = TrainConfig(resolution=8, encoder_iterations=2, finetune_iterations=1, batch_size=256, target_queries=1)
    t = Trainer(cfg, checker)
    t.run(until=2)
    enc = t.model.encoder
    expected = [enc(t.source.texel_parameters(lvl).reshape(-1, checker.width)).detach() for lvl in range(4)]
    t.fill_latents_from_encoder()
    for lvl, e in enumerate(expected):
        got = t.model.latents.levels[lvl].detach().permute(1, 2, 0).reshape(-1, 8)
        torch.testing.assert_close(got, e)
    # Phase 2 trains the latents: the optimiser now holds them.
    held = {id(p) for g in t.optimizer.param_groups for p in g["params"]}
    assert all(id(p) in held for p in t.model.latents.parameters())


def test_plain_variant_trains_latents_directly(checker):
    cfg = TrainConfig(resolution=8, use_encoder=False, use_frames=False, encoder_iterations=5,
                      finetune_iterations=4, batch_size=256, target_queries=1)
    t = Trainer(cfg, checker)
    assert t.model.encoder is None and t.model.frames is None and cfg.total_iterations == 4
    before = t.model.latents.levels[0].detach().clone()
    t.run()
    assert t.step == 4 and not torch.equal(before, t.model.latents.levels[0].detach())


def test_state_dict_round_trip_continues_identically(checker):
    cfg = TrainConfig(resolution=8, encoder_iterations=3, finetune_iterations=3, batch_size=256, target_queries=1)
    a = Trainer(cfg, checker)
    a.run()
    b = Trainer(cfg, checker)
    b.run(until=4)  # into phase 2
    buffer = io.BytesIO()
    torch.save(b.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)  # a checkpoint holds tensors and plain values only
    c = Trainer(cfg, checker)
    c.load_state_dict(state)
    assert c.step == 4 and not c.in_encoder_phase
    c.run()
    for (name, pa), (_, pc) in zip(a.model.state_dict().items(), c.model.state_dict().items()):
        torch.testing.assert_close(pa, pc, msg=name)


# --- losses, output start, watchdog --------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(LOSSES))
def test_losses_are_zero_at_the_target_and_grow_with_the_error(name):
    t = torch.tensor([[0.0, 0.02, 3.0]])
    loss = LOSSES[name]
    assert loss(t, t).item() == pytest.approx(0, abs=1e-5)
    assert 0 < loss(t * 1.2 + 0.01, t).item() < loss(t * 2 + 0.05, t).item()


def test_relative_l2_is_minimised_by_the_mean_of_noisy_targets():
    """The detached denominator: the gradient at the mean of the targets is zero (log-L1's optimum
    would be their median)."""
    targets = torch.tensor([[0.1], [0.1], [0.1], [1.7]])  # mean 0.5, median 0.1
    for value, sign in ((0.5, 0), (0.4, -1), (0.6, 1)):
        pred = torch.full((4, 1), value, requires_grad=True)
        relative_l2(pred, targets).backward()
        assert (pred.grad.sum().item() > 1e-6) - (pred.grad.sum().item() < -1e-6) == sign


def test_scores_of_constants():
    """A zero or constant prediction cannot pass either score, however the targets are spread."""
    g = torch.Generator().manual_seed(0)
    t = torch.rand(4096, 3, generator=g) ** 8  # heavy tailed, mostly dark
    for c in (0.0, 1e-30, 1e-3, float(t.median()), float(t.mean()), 1.0):
        y = torch.full_like(t, c)
        assert skill(y, t).item() <= 1e-6 and log_correlation(y, t).item() == 0
    assert skill(t, t).item() == pytest.approx(1.0) and log_correlation(t, t).item() == pytest.approx(1.0)
    assert log_correlation(3 * t, t).item() > 0.95  # too bright, but it follows the targets


def test_output_starts_at_the_median_target(checker):
    cfg = TrainConfig(resolution=8, encoder_iterations=2, finetune_iterations=1, batch_size=2048, target_queries=1)
    t = Trainer(cfg, checker)
    batch = t.source.batch(0)
    t._init_output(batch)
    with torch.no_grad():
        f = t.model.eval_from_latent(t.model.encode(batch.params), batch.wi, batch.wo)
    want = batch.target.median(0).values.clamp_min(0.01)
    torch.testing.assert_close(f.median(0).values, want, rtol=0.02, atol=0)


def test_watchdog_restores_a_collapsed_evaluator_with_a_lower_rate(checker):
    """Sabotage: after 6 healthy steps the output bias drops by 100 (every prediction ~e^-100, as in
    the collapse of issue 14); the watchdog restores its last healthy snapshot and lowers the rate,
    and a second collapse past MAX_RECOVERIES stops training with TrainingFailed."""
    cfg = TrainConfig(resolution=8, use_encoder=False, finetune_iterations=40, batch_size=1024, target_queries=1)
    t = Trainer(cfg, checker)
    t.watchdog = Watchdog(every=2, grace=2, bad_checks=2, max_recoveries=1)
    t.run(until=6)
    assert not t.watchdog.recoveries and t.watchdog.checks[-1]["correlation"] > CORRELATION_FLOOR
    with torch.no_grad():
        t.model.evaluator.mlp.layers[-1].bias -= 100.0
    records = []
    t.run(until=12, callback=records.append)
    assert len(t.watchdog.recoveries) == 1 and t.watchdog.recoveries[0]["restored_step"] == 6
    assert "collapsed" in t.watchdog.recoveries[0]["reason"]
    assert t.watchdog.lr_factor == pytest.approx(LR_BACKOFF) and t.step == 12
    assert records[-1]["lr"] == pytest.approx(t.lr_at(11) * LR_BACKOFF)
    assert records[-1]["correlation"] > CORRELATION_FLOOR  # recovered
    with torch.no_grad():
        t.model.evaluator.mlp.layers[-1].bias -= 100.0
    with pytest.raises(TrainingFailed, match="collapsed.*no asset"):
        t.run()


def test_watchdog_state_travels_with_the_checkpoint(checker):
    cfg = TrainConfig(resolution=8, use_encoder=False, finetune_iterations=4, batch_size=256, target_queries=1)
    a = Trainer(cfg, checker)
    a.watchdog.lr_factor = 0.09
    b = Trainer(cfg, checker)
    b.load_state_dict(a.state_dict())
    assert b.watchdog.lr_factor == 0.09


def test_lobe_energy_trains_only_the_lobe(checker):
    """The lobe energy term (trainer.py, 'Lobe energy') moves the lobe's layer and nothing else: from
    the same start on the same batches, a run with it and one without end with every other parameter
    equal (the term's gradient reaches no network, latent or frame) and the lobe's layer not. The
    term is on for the last step only (lobe_energy_fraction): once the lobes differ, the next step's
    log-L1 gradients would differ everywhere."""
    def run(weight: float) -> dict:
        cfg = TrainConfig(resolution=8, evaluator="2x32+lobe", use_encoder=False, finetune_iterations=4,
                          batch_size=512, target_queries=1, lobe_energy=weight, lobe_energy_fraction=0.25,
                          lobe_energy_alone=False)
        t = Trainer(cfg, checker)
        assert [t.lobe_energy_at(s) for s in range(4)] == [0.0, 0.0, 0.0, weight]
        t.run()
        return {k: v.detach().clone() for k, v in t.model.state_dict().items()}

    with_term, without = run(1.0), run(0.0)
    lobe = [k for k in with_term if k.startswith("lobe.")]
    assert lobe and any(not torch.equal(with_term[k], without[k]) for k in lobe)
    for k in with_term:
        if k not in lobe:
            torch.testing.assert_close(with_term[k], without[k], rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("alone", [True, False])
def test_lobe_learns_from_the_energy_term_alone_in_its_phase(checker, alone):
    """lobe_energy_alone: in the lobe-energy phase the main loss sees the lobe detached, so the lobe's
    step does not depend on which main loss is used; without it, it does. One step from the same
    start, the phase covering it, with log-L1 and with relative L2 as the main loss."""
    def lobe_after_one_step(loss: str) -> dict:
        cfg = TrainConfig(resolution=8, evaluator="2x32+lobe", use_encoder=False, finetune_iterations=1,
                          batch_size=512, target_queries=1, loss=loss, lobe_energy_fraction=1.0,
                          lobe_energy_alone=alone)
        t = Trainer(cfg, checker)
        t.run()
        return {k: v.detach().clone() for k, v in t.model.state_dict().items() if k.startswith("lobe.")}

    a, b = lobe_after_one_step("log_l1"), lobe_after_one_step("rel_l2")
    assert a
    same = all(torch.equal(a[k], b[k]) for k in a)
    assert same == alone


@pytest.mark.parametrize("with_f0", [True, False])
def test_lobe_energy_f0_keeps_normal_incidence_out_of_the_energy_term(checker, with_f0):
    """lobe_energy_f0=False: the energy term's gradient reaches the lobe's f90 and alpha outputs but
    not its f0 (outputs 1-3 of the lobe's layer, training/lobe.py), which keeps the log-L1 fit; with
    True (the default) it reaches all six."""
    cfg = TrainConfig(resolution=8, evaluator="2x32+lobe", use_encoder=False, finetune_iterations=1,
                      batch_size=512, target_queries=1, lobe_energy_fraction=1.0, lobe_energy_f0=with_f0)
    t = Trainer(cfg, checker)
    t.model.lobe.linear.weight.data.normal_(0.0, 0.5)  # texels with lobes of their own: gradients on every row
    batch = t.source.batch(0, 0.0).to(t.device)
    _, energy, _, _ = t.losses(batch)
    assert energy.item() > 0
    t.model.zero_grad()
    energy.backward()
    grad = torch.cat([t.model.lobe.linear.weight.grad, t.model.lobe.linear.bias.grad[:, None]], 1).abs().sum(1)
    assert grad[0] > 0 and grad[4] > 0 and grad[5] > 0
    assert (grad[1:4] > 0).all() == with_f0 and ((grad[1:4] == 0).all() != with_f0)
