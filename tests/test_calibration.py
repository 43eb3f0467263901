"""The energy calibration after training (training/calibration.py): it measures, on the reference's
targets alone, how far a log loss's minimiser (their log-space median) falls below their mean, and
folds that scale into the network exactly."""

import numpy as np
import pytest
import torch

from neumat.training import calibration as cal
from neumat.training.model import NeuralMaterial, NeuralMaterialConfig


def skewed_noise(rng, shape):
    """Mean-1, strongly right-skewed multiplicative noise (lognormal, sigma 1): its median is 0.61, so
    a median-seeking fit lands 39 % low, while a fit of the mean does not."""
    return rng.lognormal(-0.5, 1.0, shape)


def test_loss_bias_scale_undoes_the_median_of_skewed_targets():
    """Each query's targets are its mean times mean-1 lognormal noise, whose log-space median is 0.61
    of the mean (a log loss lands there): the scale is 1 / 0.61 per channel. A few queries with far
    brighter means (peaks) do not move it, and neither does where the model is (it is not asked)."""
    rng = np.random.default_rng(0)
    n, repeats = 1 << 13, 32
    mean = rng.lognormal(-3, 1, (n, 3))
    mean[rng.random(n) < 0.03] *= 200.0  # peaks
    targets = mean * skewed_noise(rng, (repeats, n, 3))
    s = cal.loss_bias_scale(targets)
    # The median of 32 lognormal samples has a relative standard deviation of about
    # sqrt(pi / 2) / sqrt(32) = 0.22 per query; a group of 512 queries averages it to 1 %, and the
    # median of 16 groups is closer still. Over 20 seeds the error was -1.3 to +0.5 % (standard
    # deviation 0.4 %, the dim queries' LOG_EPS pulling their medians towards the mean): 5 % is
    # ten standard deviations from the worst.
    np.testing.assert_allclose(s, np.exp(0.5), rtol=0.05)


def test_loss_bias_scale_of_noiseless_targets_is_one():
    """Targets without noise have median = mean, whatever their values: nothing to correct."""
    t = np.random.default_rng(1).lognormal(-2, 2, (1, 4096, 3)).repeat(8, axis=0)
    np.testing.assert_allclose(cal.loss_bias_scale(t), 1.0, rtol=1e-9)
    black = np.zeros((8, 64, 3))
    np.testing.assert_allclose(cal.loss_bias_scale(black), 1.0)


def tiny_model(network: str = "2x16") -> NeuralMaterial:
    torch.manual_seed(0)
    return NeuralMaterial(NeuralMaterialConfig(resolution=8, evaluator=network)).eval()


def random_queries(n: int, seed: int = 1):
    from neumat.training.report import heldout_queries

    return heldout_queries(n, 4, np.random.default_rng(seed))


@pytest.mark.parametrize("network", ["2x16", "2x16+lobe"])
def test_apply_scale_multiplies_the_network_part_only(network):
    model = tiny_model(network)
    uv, wi, wo, level = (torch.from_numpy(a) for a in random_queries(512))
    with torch.no_grad():
        latent = model.latents.sample_level(uv, level.long())
        net_before, lobe_before, _ = model.eval_parts(latent, wi, wo)
        scale = torch.tensor([1.3, 0.7, 1.05])
        cal.apply_scale(model, scale.numpy())
        net_after, lobe_after, _ = model.eval_parts(latent, wi, wo)
    torch.testing.assert_close(net_after, net_before * scale, rtol=1e-5, atol=1e-7)
    if network.endswith("+lobe"):
        assert lobe_before.max() > 0
        torch.testing.assert_close(lobe_after, lobe_before, rtol=0, atol=0)
    else:
        assert lobe_before is None and lobe_after is None


def test_calibrate_applies_and_records_the_measured_bias():
    """calibrate() on a reference whose targets are skewed around a constant mean: the model's network
    output is scaled by exp(0.5) (the lognormal's mean over its median), and the record says so."""
    model = tiny_model()
    reference_model = tiny_model()
    rng = np.random.default_rng(3)

    def target(uv, wi, wo, level, seed):
        return np.full((len(uv), 3), 0.2) * skewed_noise(rng, (len(uv), 3))

    info = cal.calibrate(model, target, n=4096)
    # 20 seeds of the same draw: -3.0 to +0.2 % (standard deviation 0.75 %); 5 % is 2.7 of them past the worst.
    np.testing.assert_allclose(info["scale"], [np.exp(0.5)] * 3, rtol=0.05)
    assert not info["clamped"] and info["queries"] == 4096 and info["repeats"] == cal.REPEATS
    uv, wi, wo, level = (torch.from_numpy(a) for a in random_queries(256))
    with torch.no_grad():
        lat = model.latents.sample_level(uv, level.long())
        got = model.eval_parts(lat, wi, wo)[0]
        want = reference_model.eval_parts(lat, wi, wo)[0]
    torch.testing.assert_close(got, want * torch.tensor(info["scale"], dtype=want.dtype), rtol=1e-5, atol=1e-7)


def test_calibrate_clamps_an_implausible_skew():
    model = tiny_model()
    rng = np.random.default_rng(4)
    info = cal.calibrate(model, lambda uv, wi, wo, level, seed: rng.lognormal(-10, 4, (len(uv), 3)), n=2048)
    assert info["clamped"] and info["scale"] == [cal.SCALE_RANGE[1]] * 3
