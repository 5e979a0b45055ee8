"""Sample-quality distances and the memorisation report: formulas on fixed inputs, exact limits."""
import numpy as np
import pytest
import scipy.linalg
import torch

from genzoo.errors import GenzooError
from genzoo.metrics.distances import (
    GaussianStats,
    density_coverage,
    frechet_distance,
    frechet_distance_stats,
    kernel_distance,
    knn,
    mmd2_unbiased,
    precision_recall,
    trace_sqrt_product,
)
from genzoo.metrics.memorisation import memorisation_report, nearest_figure, nearest_neighbours


def random_spd(rng, d, floor=0.0):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + floor * np.eye(d)


# ---------------------------------------------------------------- Fréchet distance


def test_frechet_commuting_covariances_closed_form():
    # C1 = Q diag(a) Q^T, C2 = Q diag(b) Q^T commute, so (C1 C2)^{1/2} = Q diag(sqrt(a b)) Q^T and
    # d^2 = ||mu1 - mu2||^2 + sum_i (sqrt(a_i) - sqrt(b_i))^2.
    rng = np.random.default_rng(0)
    d = 6
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a, b = rng.uniform(0.1, 3, d), rng.uniform(0.1, 3, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    got = frechet_distance(mu1, q @ np.diag(a) @ q.T, mu2, q @ np.diag(b) @ q.T)
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)
    # 1-D: the 2-Wasserstein distance between N(m1, s1^2) and N(m2, s2^2) is (m1-m2)^2 + (s1-s2)^2
    assert frechet_distance([1.0], [[4.0]], [-2.0], [[9.0]]) == pytest.approx(9.0 + 1.0)


@pytest.mark.parametrize("d", [2, 17, 64])
def test_frechet_agrees_with_scipy_sqrtm(d):
    rng = np.random.default_rng(d)
    c1, c2 = random_spd(rng, d, 0.05), random_spd(rng, d, 0.05)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    ref = (((mu1 - mu2) ** 2).sum() + np.trace(c1) + np.trace(c2)
           - 2 * np.trace(scipy.linalg.sqrtm(c1 @ c2)).real)
    assert abs(frechet_distance(mu1, c1, mu2, c2) - ref) < 1e-6
    # torch inputs give the same number
    t = [torch.from_numpy(v) for v in (mu1, c1, mu2, c2)]
    assert frechet_distance(*t) == pytest.approx(frechet_distance(mu1, c1, mu2, c2), rel=1e-14)


def test_frechet_singular_covariances_match_nuclear_norm():
    # With n < d samples the covariances are singular. For centred data X1, X2 (n x d),
    # C_i = X_i^T X_i / (n-1) and the nonzero eigenvalues of C1 C2 are the squared singular values of
    # X1 X2^T / (n-1), so Tr (C1 C2)^{1/2} is the nuclear norm of X1 X2^T / (n-1).
    rng = np.random.default_rng(1)
    n, d = 12, 80
    x1, x2 = rng.normal(size=(n, d)), rng.normal(size=(n, d)) * 2 + 1
    s1, s2 = GaussianStats.of(x1), GaussianStats.of(x2)
    c1, c2 = x1 - x1.mean(0), x2 - x2.mean(0)
    nuclear = np.linalg.svd(c1 @ c2.T, compute_uv=False).sum() / (n - 1)
    assert trace_sqrt_product(s1.cov, s2.cov) == pytest.approx(nuclear, rel=1e-10)
    assert frechet_distance_stats(s1, s1) < 1e-9 * np.trace(s1.cov)


def test_fid_of_a_set_with_itself_is_zero():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 32)) @ rng.normal(size=(32, 32)) + 3.0
    s = GaussianStats.of(x)
    assert 0.0 <= frechet_distance_stats(s, s) < 1e-9 * np.trace(s.cov)
    shifted = GaussianStats.of(x + 1.0)  # same covariance, mean moved by 1 in every dimension
    assert frechet_distance_stats(s, shifted) == pytest.approx(32.0, rel=1e-9)


def test_frechet_rejects_mismatched_shapes():
    with pytest.raises(GenzooError, match="shapes"):
        frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_gaussian_stats_streaming_equals_numpy():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1000, 24)) * rng.uniform(0.01, 5, 24) + 1e4  # a large offset: no cancellation
    s = GaussianStats()
    for start, stop in [(0, 1), (1, 300), (300, 301), (301, 1000)]:  # uneven batches, one of size 1
        s.update(torch.from_numpy(x[start:stop]).float() if start == 1 else x[start:stop])
    x[1:300] = x[1:300].astype(np.float32)  # the float32 batch as the stats saw it
    assert s.count == 1000
    np.testing.assert_allclose(s.mean, x.mean(0), rtol=1e-13)
    np.testing.assert_allclose(s.cov, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-12)
    merged = GaussianStats.of(x[:400]).merge(GaussianStats.of(x[400:]))
    np.testing.assert_allclose(merged.mean, x.mean(0), rtol=1e-13)
    np.testing.assert_allclose(merged.cov, np.cov(x, rowvar=False), rtol=1e-9, atol=1e-12)
    back = GaussianStats.from_state(s.state())
    assert back.count == s.count and np.array_equal(back.cov, s.cov) and np.array_equal(back.mean, s.mean)
    with pytest.raises(GenzooError, match="dimension"):
        s.update(np.zeros((2, 5)))


# ---------------------------------------------------------------- KID


def brute_mmd2(x, y):
    m = len(x)
    k = lambda a, b: (a @ b / x.shape[1] + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_full_subsets_equal_the_unbiased_estimator():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(15, 3)), rng.normal(size=(20, 3)) + 0.3
    assert mmd2_unbiased(x, y[:15]) == pytest.approx(brute_mmd2(x, y[:15]), rel=1e-12)
    # subset_size is capped at 15 and x's subset is then all of x (in some order): with a
    # 15-row y every subset pair is the full pair and the spread is exactly zero
    mean, std = kernel_distance(x, y[:15], n_subsets=5, subset_size=1000)
    assert mean == pytest.approx(brute_mmd2(x, y[:15]), rel=1e-12) and std == pytest.approx(0.0, abs=1e-12)


def test_kid_zero_for_one_distribution_and_positive_for_a_shift():
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(600, 16)), rng.normal(size=(600, 16))
    mean, std = kernel_distance(a, b, n_subsets=50, subset_size=200, seed=0)
    assert abs(mean) < 3 * std
    mean_s, std_s = kernel_distance(a, b + 0.5, n_subsets=50, subset_size=200, seed=0)
    assert mean_s > 5 * std_s and mean_s > 10 * abs(mean)
    assert kernel_distance(a, b, n_subsets=50, subset_size=200, seed=0) == (mean, std)  # seeded


# ---------------------------------------------------------------- nearest neighbours and manifolds


def test_knn_and_nearest_neighbours_equal_brute_force():
    rng = np.random.default_rng(6)
    q, r = rng.normal(size=(23, 5)), rng.normal(size=(31, 5))
    full = np.sqrt(((q[:, None] - r[None]) ** 2).sum(-1))  # (23, 31)
    d, i = nearest_neighbours(q, r, chunk=7)  # blocks that do not divide either size
    assert np.array_equal(i, full.argmin(1))
    np.testing.assert_allclose(d, full.min(1), rtol=1e-10)
    d3, i3 = knn(torch.from_numpy(q).float(), r, k=3, chunk=4)
    assert np.array_equal(i3, np.argsort(full, 1)[:, :3])
    np.testing.assert_allclose(d3, np.sort(full, 1)[:, :3], rtol=1e-5)


def test_precision_recall_identical_and_disjoint_sets():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, 8))
    pr = precision_recall(x, x.copy(), k=3, chunk=64)
    assert pr["precision"] == 1.0 and pr["recall"] == 1.0
    far = precision_recall(x, x + 100.0, k=3, chunk=64)
    assert far["precision"] == 0.0 and far["recall"] == 0.0


def test_precision_recall_hand_built():
    real = np.array([[0.0], [1.0], [2.0], [3.0]])  # k=1 radii: 1 each
    fake = np.array([[0.5], [10.0]])  # k=1 radii: 9.5 each
    pr = precision_recall(real, fake, k=1, chunk=3)
    assert pr["precision"] == 0.5  # 0.5 lies in the real manifold, 10 does not
    assert pr["recall"] == 1.0  # every real point is within 9.5 of 0.5


def test_density_coverage_hand_built():
    real = np.array([[0.0], [1.0], [2.0], [3.0], [10.0]])  # k=1 radii: 1, 1, 1, 1, 7
    fake = np.array([[0.5], [20.0]])
    dc = density_coverage(real, fake, k=1, chunk=2)
    # 0.5 lies in the balls of 0 and 1, 20 in none: density = (2 + 0) / (1 * 2)
    assert dc["density"] == 1.0
    # covered: 0 and 1 (nearest fake 0.5 within radius 1); 2, 3 (1.5, 2.5 > 1) and 10 (9.5 > 7) are not
    assert dc["coverage"] == pytest.approx(2 / 5)
    # density rewards fakes packed where real points are dense and can exceed 1
    crowded = density_coverage(real, np.array([[0.5]] * 4), k=1)
    assert crowded["density"] == 2.0 and crowded["coverage"] == pytest.approx(2 / 5)
    with pytest.raises(GenzooError, match="k must be"):
        density_coverage(real, fake, k=5)


# ---------------------------------------------------------------- memorisation


def test_memorisation_flags_a_copying_model_and_not_fresh_draws():
    rng = np.random.default_rng(8)
    draw = lambda n: rng.uniform(0, 1, size=(n, 3, 4, 4))  # noqa: E731  the "data distribution"
    train, test = draw(300), draw(100)
    copies = train[rng.choice(300, 200, replace=False)]
    rep = memorisation_report(copies, train, test, chunk=64)
    assert rep.near_copy_share == 1.0 and rep.train_closer_share == 1.0
    assert rep.train_closer_expected == 0.75 and rep.train_closer_z > 5
    assert np.array_equal(train.reshape(300, -1)[rep.nearest_train], copies.reshape(200, -1))
    noisy = np.clip(copies + rng.normal(0, 0.01, copies.shape), 0, 1)  # copies with a little noise
    assert memorisation_report(noisy, train, test).near_copy_share == 1.0

    fresh = memorisation_report(draw(200), train, test, chunk=64)
    assert fresh.near_copy_share == 0.0 and fresh.test_near_copy_share == 0.0
    assert abs(fresh.train_closer_z) < 4  # P[d_train < d_test] = 300/400 for fresh draws
    assert fresh.threshold == pytest.approx(fresh.near_copy_ratio * fresh.baseline)
    assert set(fresh.to_dict()) >= {"near_copy_share", "baseline", "train_closer_share"}
    assert "d_train" not in fresh.to_dict() and f"{fresh.threshold:.4g}" in fresh.to_dict()["rule"]


def test_memorisation_rejects_bad_inputs():
    x = np.zeros((4, 12))
    with pytest.raises(GenzooError, match="pixel counts differ"):
        memorisation_report(x, np.zeros((4, 10)), x)
    with pytest.raises(GenzooError, match=r"\[0, 1\]"):
        memorisation_report(x + 2, x, x)


def test_nearest_figure_places_sample_beside_its_neighbour():
    rng = np.random.default_rng(9)
    samples = rng.integers(0, 256, (3, 4, 4, 3), dtype=np.uint8)
    train = rng.integers(0, 256, (10, 4, 4, 3), dtype=np.uint8)
    idx = np.array([7, 0, 3])
    fig = np.asarray(nearest_figure(samples, train, idx))
    pad, header, tile = 3, 16, 4 * 20 + 3  # 4-px tiles are drawn 20x larger
    for row in range(3):
        y = header + pad + row * tile + 1
        assert tuple(fig[y, pad + 1]) == tuple(samples[row, 0, 0])
        assert tuple(fig[y, pad + tile + 1]) == tuple(train[idx[row], 0, 0])
    with pytest.raises(GenzooError, match="out of range"):
        nearest_figure(samples, train, np.array([0, 1, 10]))
