"""Analytic tests of the DRGrad router (model/strategies/drgrad.py `route`), in the style of
tensor2robot's pcgrad_test: tiny vectors, outputs computed by hand in the comments.

Shared set-up: g1′ = [1, 0] (‖g1′‖ = 1). The g1″ candidates have norm 5 (λ2 = 1/5 = 0.2) and
the g2 candidates norm 1 (λ1 = 1), so the literal and paired variants give different answers.
"""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from drgrad.model.strategies.drgrad import route  # noqa: E402

G1 = [1.0, 0.0]
SH_POS = [4.0, 3.0]     # ξ2 = cos(g1′, g1″) = +0.8, λ2 = 0.2
SH_NEG = [-4.0, 3.0]    # ξ2 = -0.8, λ2 = 0.2
AUX_POS = [0.6, 0.8]    # ξ1 = cos(g1′, g2) = +0.6, λ1 = 1
AUX_NEG = [-0.6, 0.8]   # ξ1 = -0.6, λ1 = 1

# (g1″, g2, literal g′R1, paired g′R1, g″R1), Table 1's four sign cases.
CASES = {
    # ξ1 ≥ 0, ξ2 ≥ 0. literal: 1·λ1·g1″ + λ2·g2 = [4, 3] + 0.2·[0.6, 0.8];
    # paired: λ2·g1″ + λ1·g2 = 0.2·[4, 3] + [0.6, 0.8]; g″R1 = 0 (ξ1ξ2 > 0).
    "coop_coop": (SH_POS, AUX_POS, [4.12, 3.16], [1.4, 1.4], [0.0, 0.0]),
    # ξ1 ≥ 0, ξ2 < 0. literal: 1·1·[-4, 3] + 0 (ξ2 < 0 drops g2);
    # paired: (1 + 0.8)·0.2·[-4, 3] + 1·[0.6, 0.8] = [-1.44 + 0.6, 1.08 + 0.8];
    # g″R1 = -(0.6·-0.8)·g1″ = 0.48·[-4, 3].
    "coop_conf": (SH_NEG, AUX_POS, [-4.0, 3.0], [-0.84, 1.88], [-1.92, 1.44]),
    # ξ1 < 0, ξ2 ≥ 0. literal: (1 + 0.6)·1·[4, 3] + 0.2·[-0.6, 0.8] = [6.4 - 0.12, 4.8 + 0.16];
    # paired: 1·0.2·[4, 3] + 0 (ξ1 < 0 drops g2); g″R1 = -(-0.6·0.8)·[4, 3] = 0.48·[4, 3].
    "conf_coop": (SH_POS, AUX_NEG, [6.28, 4.96], [0.8, 0.6], [1.92, 1.44]),
    # ξ1 < 0, ξ2 < 0. literal: 1.6·1·[-4, 3] + 0; paired: 1.8·0.2·[-4, 3] + 0;
    # g″R1 = 0 (ξ1ξ2 = 0.48 > 0).
    "conf_conf": (SH_NEG, AUX_NEG, [-6.4, 4.8], [-1.44, 1.08], [0.0, 0.0]),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("variant", ["literal", "paired"])
def test_four_sign_cases(case, variant):
    g1_sh, g_aux, literal, paired, expected_sh = CASES[case]
    g_r_ded, g_r_sh, stats = route(G1, g1_sh, [g_aux], gamma=1.0, variant=variant)
    expected_ded = literal if variant == "literal" else paired
    np.testing.assert_allclose(g_r_ded.numpy(), expected_ded, atol=1e-6)
    np.testing.assert_allclose(g_r_sh.numpy(), expected_sh, atol=1e-6)
    np.testing.assert_allclose(stats["xi1"].numpy(), [0.6 if g_aux == AUX_POS else -0.6],
                               atol=1e-6)
    np.testing.assert_allclose(stats["xi2"].numpy(), 0.8 if g1_sh == SH_POS else -0.8, atol=1e-6)
    np.testing.assert_allclose(stats["lambda1"].numpy(), [1.0], atol=1e-6)
    np.testing.assert_allclose(stats["lambda2"].numpy(), 0.2, atol=1e-6)


def test_aux_given_as_vector_equals_one_row_matrix():
    a = route(G1, SH_NEG, AUX_POS)
    b = route(G1, SH_NEG, [AUX_POS])
    np.testing.assert_allclose(a[0].numpy(), b[0].numpy())
    np.testing.assert_allclose(a[1].numpy(), b[1].numpy())


@pytest.mark.parametrize("variant,expected", [
    # g2 = [1.2, 1.6]: ‖g2‖ = 2, ξ1 = 0.6, λ1 = (1/2)^2 = 0.25; λ2 = (1/5)^2 = 0.04.
    # literal: 0.25·[4, 3] + 0.04·[1.2, 1.6] = [1.048, 0.814]
    ("literal", [1.048, 0.814]),
    # paired: 0.04·[4, 3] + 0.25·[1.2, 1.6] = [0.46, 0.52]
    ("paired", [0.46, 0.52]),
])
def test_gamma_two(variant, expected):
    g_r_ded, g_r_sh, stats = route(G1, SH_POS, [[1.2, 1.6]], gamma=2.0, variant=variant)
    np.testing.assert_allclose(g_r_ded.numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(g_r_sh.numpy(), [0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(stats["lambda1"].numpy(), [0.25], atol=1e-6)
    np.testing.assert_allclose(stats["lambda2"].numpy(), 0.04, atol=1e-6)


@pytest.mark.parametrize("variant,expected_ded", [
    # Aux a = [0.6, 0.8, 0] (ξ = 0.6, λ = 1), aux b = [-1.2, 1.6, 0] (‖b‖ = 2, ξ = -0.6,
    # λ = 0.5); g1″ = [4, 3, 0] (ξ2 = 0.8, λ2 = 0.2), 3-D vectors.
    # literal: mean[(1)·1, (1 + 0.6)·0.5]·g1″ + 0.2·(a + b) = 0.9·[4, 3] + 0.2·[-0.6, 2.4]
    ("literal", [3.48, 3.18, 0.0]),
    # paired: 0.2·g1″ + 1·a + 0·b = [0.8, 0.6] + [0.6, 0.8]
    ("paired", [1.4, 1.4, 0.0]),
])
def test_two_auxiliary_tasks(variant, expected_ded):
    aux = [[0.6, 0.8, 0.0], [-1.2, 1.6, 0.0]]
    g_r_ded, g_r_sh, stats = route([1.0, 0.0, 0.0], [4.0, 3.0, 0.0], aux, variant=variant)
    np.testing.assert_allclose(g_r_ded.numpy(), expected_ded, atol=1e-6)
    # g″R1 = -mean[0 (ξ1a·ξ2 > 0), -0.6·0.8]·g1″ = 0.24·[4, 3, 0], in both variants.
    np.testing.assert_allclose(g_r_sh.numpy(), [0.96, 0.72, 0.0], atol=1e-6)
    np.testing.assert_allclose(stats["xi1"].numpy(), [0.6, -0.6], atol=1e-6)
    np.testing.assert_allclose(stats["lambda1"].numpy(), [1.0, 0.5], atol=1e-6)


def test_single_aux_reduces_to_eq2_in_four_dims():
    # 4-D, n = 1: the generalization must equal Eq. 2 computed directly.
    g1 = np.array([1.0, 2.0, -1.0, 0.5])
    g1s = np.array([-2.0, 1.0, 0.5, 3.0])
    g2 = np.array([0.5, -1.0, 2.0, 1.0])
    xi1 = g1 @ g2 / np.linalg.norm(g1) / np.linalg.norm(g2)
    xi2 = g1 @ g1s / np.linalg.norm(g1) / np.linalg.norm(g1s)
    lam1 = min(np.linalg.norm(g1) / np.linalg.norm(g2), 1.0) ** 1.5
    lam2 = min(np.linalg.norm(g1) / np.linalg.norm(g1s), 1.0) ** 1.5
    ded = (1 - (xi1 < 0) * xi1) * lam1 * g1s + (xi2 >= 0) * lam2 * g2
    sh = -float(xi1 * xi2 < 0) * xi1 * xi2 * g1s
    g_r_ded, g_r_sh, _ = route(g1, g1s, g2[None], gamma=1.5)
    np.testing.assert_allclose(g_r_ded.numpy(), ded, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(g_r_sh.numpy(), sh, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("variant", ["literal", "paired"])
def test_zero_gradients_give_no_nan(variant):
    zero = [0.0, 0.0]
    for g1, g1s, g2 in [(zero, SH_POS, AUX_POS), (G1, zero, AUX_POS), (G1, SH_POS, zero),
                        (zero, zero, zero)]:
        g_r_ded, g_r_sh, stats = route(g1, g1s, [g2], variant=variant)
        for value in [g_r_ded, g_r_sh] + list(stats.values()):
            assert np.isfinite(value.numpy()).all(), (g1, g1s, g2)
    # g1′ = 0: cosines 0, λ = 0: nothing is routed.
    g_r_ded, g_r_sh, stats = route(zero, SH_POS, [AUX_POS], variant=variant)
    np.testing.assert_allclose(g_r_ded.numpy(), zero)
    np.testing.assert_allclose(g_r_sh.numpy(), zero)
    assert float(stats["xi2"]) == 0.0 and float(stats["lambda2"]) == 0.0


def test_zero_shared_gradient_literal_routes_aux():
    # g1″ = 0: ξ2 = 0 counts as ≥ 0 and λ2 = clip(1/eps) = 1, so literal g′R1 = g2
    # (what docs/REFERENCE.md records once the literal updater saturates).
    g_r_ded, g_r_sh, _ = route(G1, [0.0, 0.0], [AUX_POS], variant="literal")
    np.testing.assert_allclose(g_r_ded.numpy(), AUX_POS, atol=1e-6)
    np.testing.assert_allclose(g_r_sh.numpy(), [0.0, 0.0])


@pytest.mark.parametrize("kwargs", [{"gamma": 0.0}, {"gamma": -1.0}, {"variant": "other"}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        route(G1, SH_POS, [AUX_POS], **kwargs)


def test_mismatched_sizes():
    with pytest.raises(ValueError, match="identical shapes"):
        route(G1, [1.0, 2.0, 3.0], [AUX_POS])
