"""GaussianMixture: EM in keras.ops against scikit-learn, on each backend.

scikit-learn is a test-only dependency (the reference); the package never
imports it. Real small data: iris and wine, standardised.
"""

import os

import keras
import numpy as np
import pytest

from keras_genzoo import GaussianMixture

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_iris, load_wine  # noqa: E402
from sklearn.mixture import GaussianMixture as SkGaussianMixture  # noqa: E402

KINDS = ("full", "tied", "diag", "spherical")


def _standardised(loader):
    x = loader().data.astype("float64")
    return (x - x.mean(0)) / x.std(0)


@pytest.fixture(scope="module")
def iris():
    return _standardised(load_iris)


@pytest.fixture(scope="module")
def wine():
    return _standardised(load_wine)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("data", ["iris", "wine"])
def test_log_likelihood_matches_scikit_learn(kind, data, request):
    x = request.getfixturevalue(data)
    ours = GaussianMixture(3, covariance_type=kind, n_init=3, seed=0).fit(x)
    reference = SkGaussianMixture(3, covariance_type=kind, n_init=3,
                                  random_state=0).fit(x)
    ours_ll, reference_ll = ours.score(x), reference.score(x)
    assert abs(ours_ll - reference_ll) <= 0.01 * abs(reference_ll), (
        ours_ll, reference_ll)
    # the fitted attributes have scikit-learn's shapes and meaning
    assert ours.weights_.shape == reference.weights_.shape
    assert ours.means_.shape == reference.means_.shape
    assert ours.covariances_.shape == reference.covariances_.shape
    assert ours.precisions_.shape == reference.precisions_.shape
    np.testing.assert_allclose(ours.weights_.sum(), 1.0, atol=1e-5)
    assert ours.converged_ and 1 <= ours.n_iter_ <= 100
    assert ours.n_features_in_ == x.shape[1]
    # scored by scikit-learn's formulas on our parameters: the same value
    reference.weights_ = ours.weights_.astype("float64")
    reference.means_ = ours.means_.astype("float64")
    reference.covariances_ = ours.covariances_.astype("float64")
    reference.precisions_cholesky_ = ours.precisions_cholesky_.astype(
        "float64")
    np.testing.assert_allclose(ours.score_samples(x),
                               reference.score_samples(x), rtol=1e-3,
                               atol=1e-3)


def test_one_component_is_the_sample_mean_and_covariance(iris):
    gmm = GaussianMixture(1, seed=0).fit(iris)
    np.testing.assert_allclose(gmm.means_[0], iris.mean(0), atol=1e-5)
    np.testing.assert_allclose(gmm.covariances_[0],
                               np.cov(iris.T, bias=True) + 1e-6 * np.eye(4),
                               atol=1e-4)


def test_predict_proba_bic_aic_match_scikit_learn(wine):
    ours = GaussianMixture(3, covariance_type="diag", seed=0).fit(wine)
    reference = SkGaussianMixture(3, covariance_type="diag",
                                  random_state=0).fit(wine)
    proba = ours.predict_proba(wine)
    assert proba.shape == (len(wine), 3)
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(ours.predict(wine), proba.argmax(1))
    assert ours._n_parameters() == reference._n_parameters()
    np.testing.assert_allclose(ours.bic(wine), reference.bic(wine),
                               rtol=0.01)
    np.testing.assert_allclose(ours.aic(wine), reference.aic(wine),
                               rtol=0.01)
    # scored in blocks of a few sizes (each new number of points compiled
    # the scoring again): any number of points gives the same scores
    scores = ours.score_samples(wine)
    for count in (1, 5, 17, 100):
        np.testing.assert_allclose(ours.score_samples(wine[:count]),
                                   scores[:count], rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("separation, spread", [(3000.0, 1.0), (1.0, 1e-3)])
def test_well_separated_clusters_match_scikit_learn(kind, separation,
                                                    spread):
    # covariances around each component's mean and a regularisation floor
    # scaled by the component's own variance: before, the floor took the
    # data's variance (mostly the distance between the clusters) and the
    # covariances came out 3 to 20 times too large
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-separation, spread, (300, 2)),
                        rng.normal(separation, spread, (300, 2))])
    ours = GaussianMixture(2, covariance_type=kind, seed=0).fit(x)
    reference = SkGaussianMixture(2, covariance_type=kind,
                                  random_state=0).fit(x)
    mine, theirs = np.argsort(ours.means_[:, 0]), np.argsort(
        reference.means_[:, 0])
    covariances = (ours.covariances_ if kind == "tied"
                   else ours.covariances_[mine])
    expected = (reference.covariances_ if kind == "tied"
                else reference.covariances_[theirs])
    np.testing.assert_allclose(covariances, expected, rtol=1e-3,
                               atol=1e-3 * spread ** 2)
    assert abs(ours.lower_bound_ - reference.lower_bound_) < 1e-3
    assert abs(ours.score(x) - reference.score(x)) < 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_data_far_from_the_origin(kind, iris):
    # float32 EM centres the data and scoring measures from the means'
    # centre: a large offset changes nothing (before, `score` of a diag
    # mixture fitted 1e4 from the origin was 9 nats too low)
    for shifted in (iris * 0.01 + 1000.0, iris + 1e4):
        ours = GaussianMixture(2, covariance_type=kind, seed=0).fit(shifted)
        reference = SkGaussianMixture(2, covariance_type=kind,
                                      random_state=0).fit(shifted)
        assert abs(ours.score(shifted) - reference.score(shifted)) <= (
            0.01 * abs(reference.score(shifted)))
        np.testing.assert_allclose(ours.score(shifted), ours.lower_bound_,
                                   atol=1e-3)
        reference.weights_ = ours.weights_.astype("float64")
        reference.means_ = ours.means_.astype("float64")
        reference.covariances_ = ours.covariances_.astype("float64")
        reference.precisions_cholesky_ = ours.precisions_cholesky_.astype(
            "float64")
        # (scored on the float32 data ours sees)
        np.testing.assert_allclose(
            ours.score_samples(shifted),
            reference.score_samples(shifted.astype("float32").astype(float)),
            rtol=1e-3, atol=1e-3)


def test_sample_shapes_seeds_and_components():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-5, 0.5, (300, 2)),
                        rng.normal(5, 0.5, (100, 2))])
    gmm = GaussianMixture(2, seed=0).fit(x)
    samples, components = gmm.sample(1000, seed=1)
    assert samples.shape == (1000, 2) and samples.dtype == np.float32
    assert components.shape == (1000,)
    np.testing.assert_array_equal(samples, gmm.sample(1000, seed=1)[0])
    assert not np.array_equal(samples, gmm.sample(1000, seed=2)[0])
    # unseeded draws advance
    assert not np.array_equal(gmm.sample(10)[0], gmm.sample(10)[0])
    # each sample sits near its component's mean, in the fitted proportions
    means = gmm.means_[components]
    assert np.abs(samples - means).max() < 4.0
    share = np.mean(components == np.argmax(gmm.weights_))
    assert 0.7 < share < 0.8


@pytest.mark.parametrize("kind", KINDS)
def test_keras_round_trip(kind, iris, tmp_path):
    gmm = GaussianMixture(2, covariance_type=kind, seed=0).fit(iris)
    path = os.path.join(str(tmp_path), "gmm.keras")
    gmm.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, GaussianMixture)
    assert loaded.get_config() == gmm.get_config()
    np.testing.assert_allclose(loaded.score_samples(iris),
                               gmm.score_samples(iris), rtol=1e-6)
    np.testing.assert_array_equal(loaded.sample(20, seed=3)[0],
                                  gmm.sample(20, seed=3)[0])
    assert (loaded.n_iter_, loaded.converged_) == (gmm.n_iter_,
                                                   gmm.converged_)


@pytest.mark.parametrize("file_name", ["gmm.weights.h5", "gmm.keras"])
def test_load_weights_into_a_new_model(file_name, iris, tmp_path):
    # a new model does not know its number of features before `fit`: it
    # is read from the file (Keras refused it as "not yet built")
    gmm = GaussianMixture(2, covariance_type="diag", seed=0).fit(iris)
    path = os.path.join(str(tmp_path), file_name)
    if file_name.endswith(".keras"):
        gmm.save(path)
    else:
        gmm.save_weights(path)
    loaded = GaussianMixture(2, covariance_type="diag")
    loaded.load_weights(path)
    assert loaded.n_features_in_ == iris.shape[1]
    np.testing.assert_allclose(loaded.score_samples(iris),
                               gmm.score_samples(iris), rtol=1e-6)
    np.testing.assert_allclose(loaded.means_, gmm.means_)
    # another mixture: Keras spoke of `variable.assign` shapes
    for other in (GaussianMixture(3, covariance_type="diag"),
                  GaussianMixture(2, covariance_type="full")):
        with pytest.raises(ValueError, match="another mixture than this "
                                             "GaussianMixture"):
            other.load_weights(path)


def test_call_gives_log_likelihood_tensors(iris):
    gmm = GaussianMixture(2, seed=0).fit(iris)
    values = keras.ops.convert_to_numpy(gmm(iris[:5].astype("float32")))
    np.testing.assert_allclose(values, gmm.score_samples(iris[:5]),
                               rtol=1e-4, atol=1e-6)
    # unfitted: -inf before; another width: an error deep inside
    with pytest.raises(ValueError, match="not fitted yet"):
        GaussianMixture(2)(iris[:5])
    with pytest.raises(ValueError, match="fitted on 4"):
        gmm(np.zeros((3, 5), "float32"))


def test_a_functional_model_on_a_keras_input(iris, tmp_path):
    """(On JAX a symbolic batch size failed a comparison inside
    `_log_gaussian`: "inconclusive".)"""
    gmm = GaussianMixture(2, seed=0).fit(iris)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, gmm(inputs))
    x = iris[:5].astype("float32")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(x)), gmm.score_samples(x),
        rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_a_point_far_from_every_component_is_scored(kind, iris):
    """1e20 from the components (a float32 value), its squared distances
    overflow float32: scores were NaN (no anomaly threshold caught it,
    `predict` said component 0); now float64 scores it, as scikit-learn's
    float64 does."""
    gmm = GaussianMixture(2, covariance_type=kind, seed=0).fit(iris)
    reference = SkGaussianMixture(2, covariance_type=kind)
    for name in ("weights_", "means_", "covariances_",
                 "precisions_cholesky_"):
        setattr(reference, name, getattr(gmm, name).astype("float64"))
    far = np.array([[1e20, 0, 0, 0], [0, 0, -3e19, 1e19], iris[0]])
    scores = gmm.score_samples(far)
    assert np.isfinite(scores).all(), scores
    np.testing.assert_allclose(scores, reference.score_samples(far),
                               rtol=1e-5)
    proba = gmm.predict_proba(far)
    assert np.isfinite(proba).all()
    np.testing.assert_array_equal(gmm.predict(far),
                                  reference.predict(far))
    assert np.isfinite(gmm.score(far)) and np.isfinite(gmm.bic(far))


def test_keras_training_calls_and_changed_settings_are_refused(iris,
                                                               tmp_path):
    """`evaluate` said "call compile()" on TensorFlow and JAX, an
    AttributeError on PyTorch; changing `n_components`/`covariance_type`
    and fitting again said "ill-defined covariance" on TensorFlow, a
    shape error on JAX and PyTorch."""
    gmm = GaussianMixture(2, seed=0).fit(iris)
    for call in (gmm.evaluate, gmm.train_on_batch, gmm.test_on_batch):
        with pytest.raises(ValueError, match=r"score\(x\)"):
            call(iris)
    # `compile` was accepted and ignored (EM used none of it); a file saved
    # after one loads without it
    with pytest.raises(ValueError, match=r"compile is not available"):
        gmm.compile("adam", loss="mse", metrics=["mae"])
    assert not gmm.compiled
    path = str(tmp_path / "compiled.keras")
    with pytest.MonkeyPatch.context() as patch:  # the file of the old one
        patch.setattr(GaussianMixture, "compiled", False)
        keras.Model.compile(gmm, optimizer="adam")
        gmm.save(path)
    loaded = keras.models.load_model(path)
    assert not loaded.compiled  # (it was, without an optimizer)
    loaded.summary(print_fn=lambda *_, **__: None)  # failed
    assert loaded.score(iris) == gmm.score(iris)
    for name, value in (("n_components", 3), ("covariance_type", "diag")):
        gmm = GaussianMixture(2, seed=0).fit(iris)
        expected = gmm.score(iris)
        setattr(gmm, name, value)
        path = str(tmp_path / "changed.keras")
        setattr(gmm, name, {"n_components": 2,
                            "covariance_type": "full"}[name])
        gmm.save(path)
        saved = open(path, "rb").read()
        setattr(gmm, name, value)
        for call, argument in ((gmm.fit, iris), (gmm.score, iris),
                               (gmm.sample, 2), (gmm, iris),
                               (gmm.save, path), (gmm.save_weights,
                                                  path[:-6] + ".weights.h5")):
            with pytest.raises(ValueError, match="Create a new "
                               "GaussianMixture"):
                call(argument)
        # the file saved before is as it was (Keras had written the config
        # of a refused save before asking for the variables)
        assert open(path, "rb").read() == saved
        setattr(gmm, name, {"n_components": 2,
                            "covariance_type": "full"}[name])
        assert gmm.score(iris) == expected  # set back: as it was


def test_call_under_a_global_mixed_policy(iris):
    # the mixture stays float32 (a float16-by-float32 error on TensorFlow
    # and PyTorch before; about 1e-3 off on JAX)
    keras.config.set_dtype_policy("mixed_float16")
    try:
        gmm = GaussianMixture(2, seed=0).fit(iris)
        values = keras.ops.convert_to_numpy(gmm(iris[:5].astype("float32")))
    finally:
        keras.config.set_dtype_policy("float32")
    assert gmm.dtype_policy.name == "float32"
    np.testing.assert_allclose(values, gmm.score_samples(iris[:5]),
                               rtol=1e-5, atol=1e-6)


def test_same_seed_same_fit(wine):
    a = GaussianMixture(3, seed=4).fit(wine)
    b = GaussianMixture(3, seed=4).fit(wine)
    np.testing.assert_array_equal(a.means_, b.means_)


def test_seed_none_follows_keras_set_random_seed(wine):
    # seed=None drew from the OS: `keras.utils.set_random_seed` (which
    # made the networks repeat) did not make the mixture repeat
    runs = []
    for _ in range(2):
        keras.utils.set_random_seed(3)
        gmm = GaussianMixture(4, n_init=1, max_iter=2).fit(wine)
        runs.append((gmm.means_, gmm.sample(5)[0], gmm.sample(5)[0]))
    for first, second in zip(*runs):
        np.testing.assert_array_equal(first, second)
    assert not np.array_equal(runs[0][1], runs[0][2])  # sample goes on


@pytest.mark.parametrize("x, message", [
    (np.array([[0.0, 1.0], [np.nan, 2.0], [1.0, 1.0]]), "NaN or Inf"),
    (np.array([[0.0, 1.0], [np.inf, 2.0], [1.0, 1.0]]), "NaN or Inf"),
    # finite, beyond float32: it said "NaN or Inf"
    (np.array([[0.0, 1.0], [1e39, 2.0], [1.0, 1.0]]), "float32's range"),
    (np.zeros((2, 3)), "fewer than n_components=3"),
    (np.arange(10.0), "reshape"),
    (np.zeros((4, 2, 2)), "2-D"),
])
def test_bad_data_messages(x, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(3).fit(x)


@pytest.mark.parametrize("kwargs, message", [
    ({"covariance_type": "banana"}, "covariance_type"),
    ({"n_components": 0}, "n_components"),
    ({"max_iter": 0}, "max_iter"),
    ({"n_init": 1.5}, "n_init"),
    ({"reg_covar": -1.0}, "reg_covar"),
    ({"reg_covar": float("inf")}, "finite"),  # fit said "raise it"
    ({"tol": -0.1}, "tol"),
    ({"seed": 1.5}, "seed"),  # cut to 1 before
    ({"seed": -1}, "seed"),
])
def test_bad_argument_messages(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(**kwargs)


def test_unfitted_and_wrong_width_messages(iris):
    gmm = GaussianMixture(2)
    with pytest.raises(ValueError, match="not fitted yet"):
        gmm.means_
    with pytest.raises(ValueError, match="not fitted yet"):
        gmm.sample(3)
    gmm.fit(iris)
    with pytest.raises(ValueError, match="fitted on 4"):
        gmm.score(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="takes only the data"):
        gmm.fit(iris, epochs=3)


def test_empty_data_is_refused_by_every_method():
    # Only fit checked the sample count: score / bic / aic of 0 samples
    # returned NaN with numpy warnings, predict(_proba) an empty array.
    gmm = GaussianMixture(1, max_iter=2).fit(
        np.random.default_rng(0).normal(size=(10, 2)))
    empty = np.zeros((0, 2))
    for method in (gmm.score, gmm.score_samples, gmm.bic, gmm.aic,
                   gmm.predict, gmm.predict_proba, GaussianMixture(1).fit):
        with pytest.raises(ValueError, match="0 samples"):
            method(empty)


@pytest.mark.parametrize("kind", KINDS)
def test_rank_deficient_data_fit(kind):
    # codes on a subspace (an auto-encoder's, in the latent prior benchmark
    # on torch): float32 Cholesky fails with scikit-learn's reg_covar alone
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(8, 6)) * 20
    base = (centers[rng.integers(0, 8, 20000)]
            + rng.normal(size=(20000, 6)) * 3 + 50)
    x = np.concatenate([base, base[:, :2].sum(1, keepdims=True),
                        base[:, 2:4] @ np.array([[1.0, 2.0], [3.0, 4.0]])],
                       axis=1)
    gmm = GaussianMixture(8, covariance_type=kind, seed=0).fit(x)
    assert np.isfinite(gmm.score(x))
    means = gmm.means_.astype("float64")
    np.testing.assert_allclose(means[:, 6], means[:, 0] + means[:, 1],
                               rtol=1e-3, atol=1e-2)


def test_collapsed_points_fit_and_overflow_names_the_fixes():
    x = np.repeat(np.eye(3), 5, axis=0)  # 3 points, 5 copies each
    gmm = GaussianMixture(3, reg_covar=0.0, seed=0).fit(x)
    assert np.isfinite(gmm.score(x))
    with pytest.raises(ValueError, match="overflow.*Standardise"):
        GaussianMixture(2, seed=0).fit(np.repeat(x, 2, axis=1) * 1e25)


def test_failed_cholesky_names_reg_covar(monkeypatch):
    # the float32 floor makes this rare; without it collapsed points fail
    from keras_genzoo.models import gmm as gmm_module

    monkeypatch.setattr(gmm_module, "_REG_FLOOR", 0.0)
    x = np.repeat(np.eye(3), 5, axis=0)
    with pytest.raises(ValueError, match="reg_covar.*n_components"):
        GaussianMixture(3, reg_covar=0.0, seed=0).fit(x)


@pytest.mark.parametrize("kind", KINDS)
def test_fits_under_another_default_float_type(kind, iris):
    # the identity matrices took Keras' floatx: under float64 a full
    # mixture failed on PyTorch ("expected scalar type Double but found
    # Float") and full and tied ones on TensorFlow
    reference = GaussianMixture(2, covariance_type=kind, seed=0).fit(iris)
    floatx = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        gmm = GaussianMixture(2, covariance_type=kind, seed=0).fit(iris)
        score = gmm.score(iris)
    finally:
        keras.config.set_floatx(floatx)
    assert score == pytest.approx(reference.score(iris), abs=1e-3)


@pytest.mark.parametrize("kind", ["full", "tied"])
def test_large_data_goes_one_component_at_a_time_to_the_same_fit(
        kind, wine, monkeypatch):
    # above a size, the E-step loops over the components ((n, d) arrays)
    # instead of making an (n, k, d) one: the same numbers
    from keras_genzoo.models import gmm as gmm_module

    whole = GaussianMixture(3, covariance_type=kind, seed=0).fit(wine)
    monkeypatch.setattr(gmm_module, "_WHOLE_ELEMENTS", 0)
    looped = GaussianMixture(3, covariance_type=kind, seed=0).fit(wine)
    np.testing.assert_allclose(looped.means_, whole.means_, rtol=1e-4,
                               atol=1e-4)
    np.testing.assert_allclose(looped.score_samples(wine[:20]),
                               whole.score_samples(wine[:20]), rtol=1e-4,
                               atol=1e-4)
