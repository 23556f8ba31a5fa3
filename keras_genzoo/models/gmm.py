"""Gaussian mixture models fitted by EM, backend-free.

The fifth family of the zoo: the data as a weighted sum of Gaussians,
sampled by picking a component and drawing from its Gaussian. The
estimator follows scikit-learn's `sklearn.mixture.GaussianMixture` (same
arguments, same fitted attributes, same results up to float32 rounding),
with the expectation-maximisation steps written in `keras.ops` so that they
run, compiled, on TensorFlow, JAX or PyTorch and on their GPUs; no
scikit-learn is needed at run time.

Differences from scikit-learn, with their reasons:

- Arithmetic is float32 (scikit-learn's is float64): JAX computes in
  float32 unless x64 is switched on globally, and GPUs are fastest in it.
  The data are centred on their mean before fitting (the fitted means are
  shifted back), which keeps the float32 covariances accurate for data far
  from the origin.
- Initialisation is k-means++ seeding followed by Lloyd's k-means
  iterations (scikit-learn's default `init_params="kmeans"` runs the same
  algorithm through `KMeans`), in numpy on the host, so that a seed gives
  the same start on every backend.
- It is a `keras.Model`: it is saved in `.keras` files, alone or inside
  another model (an auto-encoder's latent prior), and `gmm(x)` returns the
  per-sample log-likelihood, usable inside other Keras computations. Its
  `fit` and `predict` have scikit-learn's meaning, not Keras' (`fit`
  returns the estimator, `predict` the component labels).
"""

import contextlib
import io
import math
import os
import warnings
import zipfile

import numpy as np

import keras
from keras import ops

from keras_genzoo import _inputs
from keras_genzoo import backend as zoo_backend

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
# scikit-learn adds 10 * eps (float64's) to every component's responsibility
# sum so that an empty component does not divide by zero; float32's eps here.
_NK_FLOOR = 10 * float(np.finfo(np.float32).eps)
_LOG_2PI = math.log(2.0 * math.pi)
# A float32 Cholesky decomposition needs a covariance's smallest eigenvalue
# well above its rounding errors (entry (i, j) is off by about eps times
# sqrt(var_i * var_j), times n_features in the decomposition). scikit-learn's
# float64 gets there with `reg_covar` alone; in float32, rank-deficient data
# (an auto-encoder's codes on a subspace, a feature that is a sum of others)
# need more, so each component's regularisation of feature j is at least
# this times n_features times that component's variance of feature j
# (scale-invariant, like the rounding). The component's own variance, not
# the data's: for well-separated clusters the data's variance is mostly the
# distance between them (clusters 2,000 standard deviations apart got
# covariances 3.4 times too large).
_REG_FLOOR = 10 * float(np.finfo(np.float32).eps)


def _covariance_shape(covariance_type, n_components, n_features):
    return {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]


def _estimate_parameters(x, resp, reg_covar, covariance_type):
    """M-step: `(weights, means, covariances)` from responsibilities.

    `weights` are the responsibility sums (not yet divided by the number
    of samples), as in scikit-learn's `_estimate_gaussian_parameters`.
    Every covariance type is computed around each component's mean, as
    scikit-learn does: `E[xx'] - mm'` loses it to cancellation in float32
    for components far from the data's centre.
    """
    nk = ops.sum(resp, axis=0) + _NK_FLOOR
    means = ops.matmul(ops.transpose(resp), x) / nk[:, None]
    n_components, n_features = means.shape[0], ops.shape(x)[1]
    floor = _REG_FLOOR * ops.cast(n_features, x.dtype)
    eye = ops.eye(n_features, dtype=x.dtype)
    # one component at a time: (n, d) arrays, not (k, n, d) ones
    scatters, variances = [], []
    for k in range(n_components):
        diff = x - means[k][None]
        weighted = diff * resp[:, k][:, None]
        if covariance_type in ("full", "tied"):
            scatters.append(ops.matmul(ops.transpose(weighted), diff))
        else:
            variances.append(ops.sum(weighted * diff, axis=0) / nk[k])
    if covariance_type == "full":
        covariances = ops.stack(scatters) / nk[:, None, None]
        reg = ops.maximum(reg_covar, floor * ops.diagonal(
            covariances, axis1=1, axis2=2))
        covariances = covariances + eye[None] * reg[:, None, :]
    elif covariance_type == "tied":
        covariances = sum(scatters[1:], scatters[0]) / ops.sum(nk)
        reg = ops.maximum(reg_covar, floor * ops.diagonal(covariances))
        covariances = covariances + eye * reg[None, :]
    else:
        variances = ops.stack(variances)
        covariances = variances + ops.maximum(reg_covar, floor * variances)
        if covariance_type == "spherical":
            covariances = ops.mean(covariances, axis=1)
    return nk, means, covariances


def _precisions_cholesky(covariances, covariance_type):
    """The Cholesky factors of the precision matrices (scikit-learn's
    `precisions_cholesky_`): for "full" and "tied" the upper-triangular
    `U` with `precision = U @ U.T`; for "diag" and "spherical" the inverse
    standard deviations. NaN where a covariance is not positive definite.
    """
    if covariance_type in ("full", "tied"):
        lower = ops.cholesky(covariances)
        eye = ops.broadcast_to(
            ops.eye(ops.shape(lower)[-1], dtype=lower.dtype),
            ops.shape(lower))
        inverse = ops.solve_triangular(lower, eye, lower=True)
        return ops.swapaxes(inverse, -1, -2)
    return 1.0 / ops.sqrt(covariances)


# the most elements of an (n, k, d) array the `full` and `tied` E-steps
# make at once (64 MB of float32)
_WHOLE_ELEMENTS = 2**24

# (each backend's Keras said something else: "You must call `compile()`",
# or an AttributeError on PyTorch)
_NOT_KERAS_TRAINING = (
    "GaussianMixture.{call} is not available: the mixture is fitted by EM "
    "with `fit(x)` (all the data at once, no compile), and scored with "
    "`score(x)` (mean log-likelihood), `score_samples(x)`, `bic(x)` or "
    "`aic(x)`.")


def _log_gaussian(x, means, precisions_cholesky, covariance_type):
    """`log N(x_n | mean_k, covariance_k)`, shape `(n_samples,
    n_components)` (scikit-learn's `_estimate_log_gaussian_prob`)."""
    chol = precisions_cholesky
    n_features = ops.shape(x)[1]
    # In float32, products of data far from the origin cancel
    # catastrophically (an offset of 1e4 gave log-likelihoods off by 9
    # nats): distances are shift-invariant, so measure from the means'
    # centre.
    centre = ops.mean(means, axis=0)
    x = x - centre[None]
    means = means - centre[None]
    # An (n, k, d) array where it is small (one op, quick to compile);
    # else one component at a time, (n, d) arrays, as scikit-learn's loop
    # does: (n, k, d) cost 0.4-0.8 GB more than `diag` for 100,000 x 64
    # points and 16 components, and the loop, unrolled in the compiled
    # step, compiles slowly for many components (64: 13.7 s against 7.7)
    n, k, d = x.shape[0], means.shape[0], x.shape[1]
    # (a JAX symbolic batch size is neither None nor an int: comparing it
    # failed `gmm(keras.Input(...))`)
    whole = (isinstance(n, int) and isinstance(d, int)
             and n * k * d <= _WHOLE_ELEMENTS)
    if covariance_type == "full":
        log_det = ops.sum(ops.log(ops.diagonal(chol, axis1=1, axis2=2)),
                          axis=1)
        if whole:
            y = ops.einsum("nd,kde->nke", x, chol) - ops.einsum(
                "kd,kde->ke", means, chol)[None]
            distances = ops.sum(y * y, axis=2)
        else:
            distances = ops.stack(
                [ops.sum(ops.square(ops.matmul(x - means[i][None], chol[i])),
                         axis=1) for i in range(k)], axis=1)
    elif covariance_type == "tied":
        log_det = ops.sum(ops.log(ops.diagonal(chol)))
        if whole:
            y = ops.matmul(x, chol)[:, None, :] - ops.matmul(
                means, chol)[None]
            distances = ops.sum(y * y, axis=2)
        else:
            distances = ops.stack(
                [ops.sum(ops.square(ops.matmul(x - means[i][None], chol)),
                         axis=1) for i in range(k)], axis=1)
    elif covariance_type == "diag":
        # differences first, not the expanded x.x - 2 x.m + m.m: for
        # components far apart that cancelled (a nat off at +-3000); one
        # component at a time, (n, d) arrays
        log_det = ops.sum(ops.log(chol), axis=1)
        distances = ops.stack(
            [ops.sum(ops.square((x - means[k][None]) * chol[k][None]),
                     axis=1) for k in range(means.shape[0])], axis=1)
    else:  # spherical
        log_det = ops.cast(n_features, x.dtype) * ops.log(chol)
        distances = ops.stack(
            [ops.sum(ops.square(x - means[k][None]), axis=1)
             for k in range(means.shape[0])], axis=1) * (chol * chol)[None]
    # rounding can make a tiny squared distance negative
    distances = ops.maximum(distances, 0.0)
    return (-0.5 * (ops.cast(n_features, x.dtype) * _LOG_2PI + distances)
            + log_det)


def _e_step(x, weights, means, precisions_cholesky, covariance_type):
    """`(mean log-likelihood, log responsibilities)`."""
    weighted = (_log_gaussian(x, means, precisions_cholesky, covariance_type)
                + ops.log(weights)[None])
    log_norm = ops.logsumexp(weighted, axis=1)
    return ops.mean(log_norm), weighted - log_norm[:, None]


def _kmeans_plus_plus(x, n_clusters, rng):
    """k-means++ seeding (Arthur & Vassilvitskii, 2007) with scikit-learn's
    greedy `2 + log(k)` local trials; returns the centres."""
    n_samples = len(x)
    squared = np.einsum("nd,nd->n", x, x)
    trials = 2 + int(np.log(n_clusters))
    centers = np.empty((n_clusters, x.shape[1]), x.dtype)
    first = rng.integers(n_samples)
    centers[0] = x[first]
    closest = np.maximum(squared - 2 * x @ x[first] + squared[first], 0)
    potential = closest.sum()
    for c in range(1, n_clusters):
        if potential > 0:
            draws = rng.random(trials) * potential
            candidates = np.searchsorted(np.cumsum(closest), draws)
            candidates = np.minimum(candidates, n_samples - 1)
        else:  # every point sits on a centre already
            candidates = rng.integers(n_samples, size=trials)
        distances = np.maximum(
            squared[None] - 2 * x[candidates] @ x.T
            + squared[candidates][:, None], 0)
        distances = np.minimum(closest[None], distances)
        best = int(np.argmin(distances.sum(axis=1)))
        closest = distances[best]
        potential = closest.sum()
        centers[c] = x[candidates[best]]
    return centers


def _kmeans_labels(x, n_clusters, rng, max_iter=300, tol=1e-4):
    """Labels of Lloyd's k-means from k-means++ seeds (what scikit-learn's
    `init_params="kmeans"` starts EM from; it stops, as scikit-learn's
    `KMeans`, when the labels repeat or the centres move less than `tol`
    times the data's mean variance)."""
    centers = _kmeans_plus_plus(x, n_clusters, rng)
    squared = np.einsum("nd,nd->n", x, x)
    threshold = tol * float(np.mean(np.var(x, axis=0)))
    labels = None
    for _ in range(max_iter):
        distances = (squared[:, None] - 2 * x @ centers.T
                     + np.einsum("kd,kd->k", centers, centers)[None])
        new_labels = np.argmin(distances, axis=1)
        if labels is not None and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        one_hot = np.zeros((len(x), n_clusters), x.dtype)
        one_hot[np.arange(len(x)), labels] = 1
        counts = one_hot.sum(axis=0)
        sums = one_hot.T @ x
        filled = counts > 0  # an empty cluster keeps its centre
        new_centers = centers.copy()
        new_centers[filled] = sums[filled] / counts[filled, None]
        shift = float(np.sum((new_centers - centers) ** 2))
        centers = new_centers
        if shift <= threshold:
            distances = (squared[:, None] - 2 * x @ centers.T
                         + np.einsum("kd,kd->k", centers, centers)[None])
            labels = np.argmin(distances, axis=1)
            break
    return labels


def _saved_n_features(filepath):
    """The number of features of the mixture saved in a `.weights.h5` or
    `.keras` file (the last axis of its means, the second variable `build`
    makes), or None where the file holds no such array."""
    import h5py

    def read(h5file):
        means = h5file.get("vars/1")
        if means is None or len(means.shape) != 2:
            return None
        return int(means.shape[-1])

    filepath = str(filepath)
    try:
        if filepath.endswith(".keras") and zipfile.is_zipfile(filepath):
            with zipfile.ZipFile(filepath) as archive:
                if "model.weights.h5" not in archive.namelist():
                    return None
                with archive.open("model.weights.h5") as member:
                    with h5py.File(io.BytesIO(member.read()), "r") as h5:
                        return read(h5)
        if filepath.endswith(".h5"):
            with h5py.File(filepath, "r") as h5:
                return read(h5)
    except OSError:
        return None  # Keras' own error names the unreadable file
    return None


class _Compiled:
    """The compiled EM and scoring functions (kept out of Keras' attribute
    tracking: they are not state to save)."""

    def __init__(self):
        self.functions = {}


@keras.saving.register_keras_serializable(package="keras_genzoo")
class GaussianMixture(keras.Model):
    """A Gaussian mixture model fitted by expectation-maximisation.

    The same estimator as scikit-learn's `GaussianMixture` (same arguments,
    same fitted attributes and methods, log-likelihoods within float32
    rounding of its), written in `keras.ops`: EM runs compiled on the
    current Keras backend (TensorFlow, JAX or PyTorch) and its device, and
    the fitted model is saved in `.keras` files, alone or inside another
    model. `fit(x)` returns the estimator; `sample(n)` draws new points.

    Args:
        n_components: number of Gaussians.
        covariance_type: `"full"` (each component its own covariance
            matrix), `"tied"` (one matrix shared by all), `"diag"` (each its
            own diagonal) or `"spherical"` (each its own single variance).
        tol: EM stops when the mean log-likelihood gains less than this
            in one iteration.
        reg_covar: added to the covariances' diagonals, keeping them
            positive definite. In float32, at least `10 * eps32 *
            n_features` times the component's variance of each feature is
            added (1.2e-6 for one feature of unit variance), so that
            rank-deficient data (codes on a subspace) still fit;
            scikit-learn, in float64, adds `reg_covar` alone.
        max_iter: EM iterations per initialisation.
        n_init: initialisations (k-means++ seeds followed by k-means); the
            one with the highest likelihood is kept.
        seed: optional integer seed of the initialisations and of `sample`
            (scikit-learn's `random_state`). `None` draws one from numpy's
            global generator, as scikit-learn does, so that
            `keras.utils.set_random_seed` makes a run repeat.
        **kwargs: standard `keras.Model` arguments (`name`).

    Fitted attributes (numpy; a `ValueError` before `fit`): `weights_`
    `(n_components,)`, `means_` `(n_components, n_features)`,
    `covariances_` (`"full"`: `(n_components, n_features, n_features)`,
    `"tied"`: `(n_features, n_features)`, `"diag"`: `(n_components,
    n_features)`, `"spherical"`: `(n_components,)`), `precisions_`,
    `precisions_cholesky_`, `converged_`, `n_iter_`, `lower_bound_`,
    `n_features_in_`.

    Example:
        >>> import numpy as np
        >>> from keras_genzoo import GaussianMixture
        >>> rng = np.random.default_rng(0)
        >>> x = np.concatenate([rng.normal(-4, 1, (200, 2)),
        ...                     rng.normal(4, 1, (200, 2))])
        >>> gmm = GaussianMixture(n_components=2, seed=0).fit(x)
        >>> np.sort(gmm.means_[:, 0]).round()
        array([-4.,  4.], dtype=float32)
        >>> samples, components = gmm.sample(5, seed=1)
        >>> samples.shape, components.shape
        ((5, 2), (5,))
    """

    def __init__(self, n_components=1, covariance_type="full", tol=1e-3,
                 reg_covar=1e-6, max_iter=100, n_init=1, seed=None,
                 **kwargs):
        kwargs.pop("dtype", None)
        # always float32: under a global mixed policy, `gmm(x)` failed on
        # float16 inputs by float32 variables (TensorFlow, PyTorch)
        super().__init__(dtype="float32", **kwargs)
        if covariance_type not in COVARIANCE_TYPES:
            raise ValueError(
                f"`covariance_type` must be one of {COVARIANCE_TYPES}; got "
                f"{covariance_type!r}.")
        for name, value in (("n_components", n_components),
                            ("max_iter", max_iter), ("n_init", n_init)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(
                    f"`{name}` must be an integer >= 1; got {value!r}.")
        for name, value in (("tol", tol), ("reg_covar", reg_covar)):
            # (inf passed, and `fit` then said "raise reg_covar (now inf)")
            if not 0.0 <= float(value) < np.inf:
                raise ValueError(
                    f"`{name}` must be a finite number >= 0; got {value!r}.")
        self.n_components = int(n_components)
        self.covariance_type = covariance_type
        self.tol = float(tol)
        self.reg_covar = float(reg_covar)
        self.max_iter = int(max_iter)
        self.n_init = int(n_init)
        self.seed = _inputs.check_seed(seed)  # 1.5 was cut to 1
        self._rng = None  # `sample`'s generator, made at its first call
        self._compiled = _Compiled()

    def _seed(self):
        """`seed`, or with `seed=None` one drawn from numpy's global
        generator, as scikit-learn's `random_state=None` does: it follows
        `keras.utils.set_random_seed` (before, fresh OS entropy made every
        run differ, though the seeded networks did not)."""
        if self.seed is not None:
            return self.seed
        return int(np.random.randint(0, 2**32, dtype=np.int64))

    # ------------------------------------------------------------ state
    def build(self, input_shape):
        n_features = int(input_shape[-1] if not isinstance(input_shape, int)
                         else input_shape)
        k, kind = self.n_components, self.covariance_type
        shape = _covariance_shape(kind, k, n_features)

        def state(name, var_shape):
            return self.add_weight(shape=var_shape, initializer="zeros",
                                   trainable=False, name=name,
                                   dtype="float32")

        self._weights_var = state("weights", (k,))
        self._means_var = state("means", (k, n_features))
        self._covariances_var = state("covariances", shape)
        self._precisions_cholesky_var = state("precisions_cholesky", shape)
        # converged (0/1), iterations, lower bound of the kept fit
        self._fit_info_var = state("fit_info", (3,))
        self.n_features_in_ = n_features
        self._built_as = (k, kind)
        self.built = True

    def _check_settings(self):
        """One `ValueError` where `n_components` or `covariance_type` was
        changed after the variables were made for other ones (a refit was
        a false "ill-defined covariance" on TensorFlow, a shape error on
        JAX and PyTorch; scoring used the old shapes)."""
        built_as = getattr(self, "_built_as", None)
        if built_as is None or built_as == (self.n_components,
                                            self.covariance_type):
            return
        raise ValueError(
            f"This GaussianMixture was made for n_components={built_as[0]},"
            f" covariance_type={built_as[1]!r}; they are now "
            f"n_components={self.n_components!r}, covariance_type="
            f"{self.covariance_type!r}. Create a new GaussianMixture with "
            "the new arguments (one per candidate, e.g. to choose by "
            "`bic`), or set them back.")

    def get_build_config(self):
        if not self.built:
            return None
        return {"n_features": self.n_features_in_}

    def build_from_config(self, config):
        if config:
            self.build((None, config["n_features"]))

    def load_weights(self, filepath, *args, **kwargs):
        """`keras.Model.load_weights`; a new, unfitted model is built first
        with the number of features read from the file (Keras refused it as
        "not yet built", and `n_features` is only known from data)."""
        if not self.built:
            n_features = _saved_n_features(filepath)
            if n_features is not None:
                self.build((None, n_features))
        try:
            return super().load_weights(filepath, *args, **kwargs)
        except ValueError as error:
            if "could not be loaded" not in str(error):
                raise
            # Keras' message spoke of `variable.assign` shapes
            raise ValueError(
                f"{os.fspath(filepath)} holds the weights of another "
                f"mixture than this GaussianMixture(n_components="
                f"{self.n_components}, covariance_type="
                f"{self.covariance_type!r}) of {self.n_features_in_} "
                f"features: make it with the arguments of the one that "
                f"saved it. Keras said: {str(error).splitlines()[0]}"
            ) from error

    def _is_fitted(self):
        return self.built and float(
            zoo_backend.to_numpy(self._fit_info_var)[1]) > 0

    def _fitted_value(self, variable_name):
        self._check_settings()
        if not self._is_fitted():
            raise ValueError(
                "This GaussianMixture is not fitted yet: call "
                "`fit(x)` first.")
        return zoo_backend.to_numpy(getattr(self, variable_name))

    @property
    def weights_(self):
        return self._fitted_value("_weights_var")

    @property
    def means_(self):
        return self._fitted_value("_means_var")

    @property
    def covariances_(self):
        return self._fitted_value("_covariances_var")

    @property
    def precisions_cholesky_(self):
        return self._fitted_value("_precisions_cholesky_var")

    @property
    def precisions_(self):
        chol = self.precisions_cholesky_
        if self.covariance_type == "full":
            return np.einsum("kij,klj->kil", chol, chol)
        if self.covariance_type == "tied":
            return chol @ chol.T
        return chol * chol

    @property
    def converged_(self):
        return bool(self._fitted_value("_fit_info_var")[0] > 0.5)

    @property
    def n_iter_(self):
        return int(round(float(self._fitted_value("_fit_info_var")[1])))

    @property
    def lower_bound_(self):
        return float(self._fitted_value("_fit_info_var")[2])

    # ------------------------------------------------------------- data
    def _check_x(self, x, what="x", fitting=False):
        self._check_settings()
        if isinstance(x, (list, tuple)) or hasattr(x, "shape"):
            array = np.asarray(zoo_backend.to_numpy(x)
                               if not isinstance(x, (list, tuple)) else x)
        else:
            raise ValueError(
                f"`{what}` must be a 2-D array of shape (n_samples, "
                f"n_features); got {type(x).__name__}.")
        if array.ndim != 2:
            hint = (" For one feature, reshape it: x.reshape(-1, 1)."
                    if array.ndim == 1 else
                    " Flatten each sample first: x.reshape(len(x), -1).")
            raise ValueError(
                f"`{what}` must be 2-D (n_samples, n_features); got shape "
                f"{array.shape}.{hint}")
        # Checked for every method, not only when fitting: score, bic and
        # aic of 0 samples used to return NaN (with numpy RuntimeWarnings),
        # predict and predict_proba an empty array, silently.
        if len(array) == 0:
            raise ValueError(
                f"`{what}` has 0 samples (shape {array.shape}): pass at "
                "least 1 sample (row).")
        try:
            finite = np.isfinite(array).all()
            with np.errstate(over="ignore"):  # beyond float32: Inf, below
                array = array.astype("float32")
        except (TypeError, ValueError):
            raise ValueError(
                f"`{what}` must hold numbers; got dtype {array.dtype}.")
        if finite and not np.isfinite(array).all():
            # (said "NaN or Inf", and its filter dropped nothing)
            raise ValueError(
                f"`{what}` holds values beyond float32's range (up to "
                f"{np.finfo('float32').max:.3g}), which the mixture "
                "computes in: standardise the data first, e.g. "
                "(x - x.mean(0)) / x.std(0).")
        if not np.isfinite(array).all():
            bad = int(np.sum(~np.isfinite(array).all(axis=1)))
            raise ValueError(
                f"`{what}` holds NaN or Inf in {bad} row(s): drop or impute "
                f"them before fitting (e.g. x[np.isfinite(x).all(axis=1)]).")
        if fitting:
            if len(array) < self.n_components:
                raise ValueError(
                    f"`{what}` has {len(array)} sample(s), fewer than "
                    f"n_components={self.n_components}: pass at least "
                    f"{self.n_components} samples or lower n_components.")
            if len(array) < 2 and self.n_components == 1:
                raise ValueError(
                    f"`{what}` needs at least 2 samples to estimate a "
                    f"covariance; got {len(array)}.")
        elif self.built and array.shape[1] != self.n_features_in_:
            raise ValueError(
                f"`{what}` has {array.shape[1]} features but this "
                f"GaussianMixture was fitted on {self.n_features_in_}.")
        return array

    # -------------------------------------------------------------- EM
    def _em_iteration(self):
        """The compiled EM iteration `(x, weights, means, precisions
        Cholesky) -> (mean log-likelihood, new weights, means,
        covariances, precisions Cholesky)`: an E-step, then an M-step."""
        if "em" not in self._compiled.functions:
            kind = self.covariance_type

            def iteration(x, weights, means, chol, reg):
                log_norm, log_resp = _e_step(x, weights, means, chol, kind)
                nk, means, covariances = _estimate_parameters(
                    x, ops.exp(log_resp), reg, kind)
                weights = nk / ops.cast(ops.shape(x)[0], "float32")
                chol = _precisions_cholesky(covariances, kind)
                return log_norm, weights, means, covariances, chol

            self._compiled.functions["em"] = zoo_backend.compile_inference(
                self, iteration)
        return self._compiled.functions["em"]

    def _initial_parameters(self, x, centered, rng):
        labels = _kmeans_labels(centered, self.n_components, rng)
        resp = np.zeros((len(x), self.n_components), "float32")
        resp[np.arange(len(x)), labels] = 1.0
        nk, means, covariances = _estimate_parameters(
            x, ops.convert_to_tensor(resp), self.reg_covar,
            self.covariance_type)
        weights = nk / float(len(x))
        return weights, means, covariances, self._checked_cholesky(
            covariances)

    def _checked_cholesky(self, covariances):
        with self._cholesky_errors():
            chol = _precisions_cholesky(covariances, self.covariance_type)
        if not np.isfinite(zoo_backend.to_numpy(chol)).all():
            raise ValueError(self._ill_defined_message())
        return chol

    @contextlib.contextmanager
    def _cholesky_errors(self):
        """Turns a backend's failed Cholesky decomposition (eager
        TensorFlow and PyTorch raise, Keras' JAX eager raises; compiled
        code returns NaN, checked by the caller) into the one message."""
        try:
            yield
        except Exception as error:  # each backend has its own class
            text = str(error).lower()
            if "cholesky" in text or "positive" in text:
                raise ValueError(self._ill_defined_message()) from error
            raise

    def _ill_defined_message(self):
        return (
            "Fitting the mixture model failed: some components have an "
            "ill-defined (not positive definite) covariance, from "
            "collapsed samples or too many components for the data. Raise "
            f"`reg_covar` (now {self.reg_covar}), lower `n_components` "
            f"(now {self.n_components}) or standardise the data.")

    def fit(self, x, y=None, **kwargs):
        """Fits the mixture to `x` by EM, `n_init` times, keeping the best.

        Args:
            x: array-like `(n_samples, n_features)`.
            y: ignored (scikit-learn's API).
            **kwargs: Keras `fit` arguments are not taken; passing any is a
                `ValueError`.

        Returns:
            The fitted estimator itself.
        """
        del y
        if kwargs:
            raise ValueError(
                f"GaussianMixture.fit(x) takes only the data; got "
                f"{sorted(kwargs)}. Set iterations and tolerance with "
                f"`max_iter=` and `tol=` when creating it.")
        array = self._check_x(x, fitting=True)
        n_features = array.shape[1]
        if self.built and n_features != self.n_features_in_:
            raise ValueError(
                f"This GaussianMixture was built for {self.n_features_in_} "
                f"features; `x` has {n_features}. Create a new one.")
        if not self.built:
            self.build((None, n_features))
        # centring: covariances are shift-invariant; means shift back below
        offset = array.mean(axis=0)
        centered = array - offset
        largest = float(np.max(np.abs(centered)))
        if largest * largest * len(centered) * 10 > np.finfo("float32").max:
            raise ValueError(
                f"`x` has values up to {largest:.3g} from its mean: their "
                f"squares summed over {len(centered)} samples overflow "
                f"float32. Standardise the data first, e.g. "
                f"(x - x.mean(0)) / x.std(0).")
        x_t = ops.convert_to_tensor(centered)
        reg = ops.convert_to_tensor(self.reg_covar, "float32")
        em = self._em_iteration()
        rng = np.random.default_rng(self._seed())
        best, best_bound = None, -np.inf
        any_converged = False
        for _ in range(self.n_init):
            weights, means, covariances, chol = self._initial_parameters(
                x_t, centered, rng)
            bound, converged, iterations = -np.inf, False, 0
            for iterations in range(1, self.max_iter + 1):
                previous = bound
                with self._cholesky_errors():
                    log_norm, weights, means, covariances, chol = em(
                        x_t, weights, means, chol, reg)
                bound = float(zoo_backend.to_numpy(log_norm))
                if not np.isfinite(zoo_backend.to_numpy(chol)).all():
                    raise ValueError(self._ill_defined_message())
                if abs(bound - previous) < self.tol:
                    converged = True
                    break
            any_converged = any_converged or converged
            if bound > best_bound or best is None:
                best_bound = bound
                best = (weights, means, covariances, chol, converged,
                        iterations)
        weights, means, covariances, chol, converged, iterations = best
        if not any_converged:
            warnings.warn(
                f"GaussianMixture did not converge in max_iter="
                f"{self.max_iter} iterations (tol={self.tol}) for any of the "
                f"{self.n_init} initialisation(s): raise `max_iter` or "
                f"`tol`, or check the data.", RuntimeWarning, stacklevel=2)
        self._weights_var.assign(weights)
        self._means_var.assign(zoo_backend.to_numpy(means) + offset)
        self._covariances_var.assign(covariances)
        self._precisions_cholesky_var.assign(chol)
        self._fit_info_var.assign(np.array(
            [float(converged), float(iterations), best_bound], "float32"))
        return self

    # --------------------------------------------------------- scoring
    def __call__(self, inputs, *args, **kwargs):
        # what `call` cannot check on a traced batch: before, an unfitted
        # mixture returned -inf and another width failed deep inside
        if not self.built:
            raise ValueError(
                "This GaussianMixture is not fitted yet: call `fit(x)` "
                "first.")
        self._check_settings()
        shape = getattr(inputs, "shape", None)
        if shape is not None and len(shape) != 2:
            raise ValueError(
                f"`x` must be 2-D (n_samples, n_features); got shape "
                f"{tuple(shape)}.")
        if shape is not None and shape[-1] is not None and (
                int(shape[-1]) != self.n_features_in_):
            raise ValueError(
                f"`x` has {shape[-1]} features per sample, but this "
                f"GaussianMixture was fitted on {self.n_features_in_}.")
        return super().__call__(inputs, *args, **kwargs)

    def call(self, inputs):
        """Per-sample log-likelihood `log p(x)` of a batch, as a tensor."""
        inputs = ops.cast(inputs, "float32")
        weighted = (_log_gaussian(inputs, self._means_var,
                                  self._precisions_cholesky_var,
                                  self.covariance_type)
                    + ops.log(self._weights_var)[None])
        return ops.logsumexp(weighted, axis=1)

    def _weighted_log_prob(self, x):
        array = self._check_x(x)
        self._fitted_value("_weights_var")  # fitted?
        if "weighted" not in self._compiled.functions:
            kind = self.covariance_type

            def weighted(batch):
                return (_log_gaussian(batch, self._means_var,
                                      self._precisions_cholesky_var, kind)
                        + ops.log(self._weights_var)[None])

            self._compiled.functions["weighted"] = zoo_backend.compile_inference(
                self, weighted)
        # in blocks of a few sizes (`padded_rows`): each new number of
        # points compiled the function again (0.1-0.16 s, kept)
        function, block, parts = self._compiled.functions["weighted"], 4096, []
        for start in range(0, len(array), block):
            part = array[start:start + block]
            rows = _inputs.padded_rows(len(part), block)
            parts.append(np.asarray(zoo_backend.to_numpy(function(
                ops.convert_to_tensor(_inputs.pad_rows(part, rows)))),
                "float64")[:len(part)])
        weighted = np.concatenate(parts)
        lost = ~np.isfinite(weighted.max(axis=1))
        if lost.any():
            # A point far from every component (1e20 from them): its
            # squared distances overflow float32 and every component's
            # log-probability is -inf; its scores were NaN (and `predict`
            # gave component 0). Those rows again, in float64.
            weighted[lost] = self._weighted_log_prob_float64(array[lost])
        return weighted

    def _weighted_log_prob_float64(self, x):
        """`_log_gaussian` plus the log weights, in numpy's float64."""
        means, chol, weights = (
            np.asarray(self._fitted_value(name), "float64") for name in (
                "_means_var", "_precisions_cholesky_var", "_weights_var"))
        x = np.asarray(x, "float64")
        n_features = x.shape[1]
        differences = x[:, None, :] - means[None]  # (n, k, d)
        kind = self.covariance_type
        if kind == "full":
            log_det = np.log(np.diagonal(chol, axis1=1, axis2=2)).sum(axis=1)
            y = np.einsum("nkd,kde->nke", differences, chol)
        elif kind == "tied":
            log_det = np.log(np.diagonal(chol)).sum()
            y = differences @ chol
        elif kind == "diag":
            log_det = np.log(chol).sum(axis=1)
            y = differences * chol[None]
        else:  # spherical
            log_det = n_features * np.log(chol)
            y = differences * chol[None, :, None]
        with np.errstate(over="ignore"):
            distances = np.sum(y * y, axis=2)
        return (-0.5 * (n_features * _LOG_2PI + distances) + log_det
                + np.log(weights)[None])

    def score_samples(self, x):
        """Log-likelihood of each sample, numpy `(n_samples,)`."""
        weighted = self._weighted_log_prob(x)
        top = weighted.max(axis=1, keepdims=True)
        # (-inf, not NaN, where even float64 finds no component possible)
        top = np.where(np.isfinite(top), top, 0.0)
        with np.errstate(divide="ignore"):
            return (top + np.log(np.exp(weighted - top).sum(
                axis=1, keepdims=True)))[:, 0]

    def score(self, x, y=None):
        """Mean log-likelihood per sample (a float)."""
        del y
        return float(np.mean(self.score_samples(x)))

    def predict_proba(self, x):
        """Posterior probability of each component, `(n_samples,
        n_components)`."""
        weighted = self._weighted_log_prob(x)
        weighted = weighted - weighted.max(axis=1, keepdims=True)
        proba = np.exp(weighted)
        return proba / proba.sum(axis=1, keepdims=True)

    def compile(self, *args, **kwargs):
        """Not Keras' `compile`: EM takes no optimizer, loss or metrics
        (they were accepted and ignored)."""
        raise ValueError(_NOT_KERAS_TRAINING.format(call="compile"))

    def compile_from_config(self, config):
        """A file saved after a `compile` (accepted, unused, before it was
        refused) loads without it."""
        del config

    @property
    def compiled(self):
        """Always `False`: a mixture is fitted by EM, never compiled."""
        return False

    @compiled.setter
    def compiled(self, value):
        # Keras sets it (loading a file saved after a `compile` set it
        # True, without an optimizer: `summary()` failed)
        del value

    def evaluate(self, *args, **kwargs):
        """Not Keras' `evaluate`: a mixture is scored with `score(x)`."""
        raise ValueError(_NOT_KERAS_TRAINING.format(call="evaluate"))

    def train_on_batch(self, *args, **kwargs):
        """Not Keras' `train_on_batch`: a mixture is fitted with `fit(x)`."""
        raise ValueError(_NOT_KERAS_TRAINING.format(call="train_on_batch"))

    def test_on_batch(self, *args, **kwargs):
        """Not Keras' `test_on_batch`: use `score(x)`."""
        raise ValueError(_NOT_KERAS_TRAINING.format(call="test_on_batch"))

    def predict(self, x, **kwargs):
        """The most probable component of each sample, `(n_samples,)`
        int (scikit-learn's meaning, not Keras')."""
        if kwargs:
            raise ValueError(
                f"GaussianMixture.predict(x) takes only the data; got "
                f"{sorted(kwargs)}.")
        return np.argmax(self._weighted_log_prob(x), axis=1)

    def _n_parameters(self):
        k, d = self.n_components, self.n_features_in_
        covariance = {"full": k * d * (d + 1) / 2, "tied": d * (d + 1) / 2,
                      "diag": k * d, "spherical": k}[self.covariance_type]
        return int(covariance + k * d + k - 1)

    def bic(self, x):
        """Bayesian information criterion on `x` (lower is better)."""
        array = self._check_x(x)
        return float(-2 * self.score(array) * len(array)
                     + self._n_parameters() * np.log(len(array)))

    def aic(self, x):
        """Akaike information criterion on `x` (lower is better)."""
        array = self._check_x(x)
        return float(-2 * self.score(array) * len(array)
                     + 2 * self._n_parameters())

    # --------------------------------------------------------- sampling
    def sample(self, n_samples=1, seed=None):
        """Draws `n_samples` points from the fitted mixture.

        As in scikit-learn, the points come grouped by component (all of
        component 0 first): shuffle them if the order matters.

        Args:
            n_samples: how many points.
            seed: optional integer seed; without one the estimator's own
                random generator (from `seed=` at creation) advances, so
                repeated calls differ.

        Returns:
            `(samples, components)`: float32 `(n_samples, n_features)` and
            int `(n_samples,)`, the component each point came from.
        """
        n_samples = _inputs.check_count(n_samples, "n_samples")
        seed = _inputs.check_seed(seed)
        weights, means = self.weights_, self.means_
        _inputs.check_output_size(n_samples, means.shape[1:], "`n_samples`")
        covariances = self.covariances_.astype("float64")
        if seed is not None:
            rng = np.random.default_rng(seed)
        else:
            if self._rng is None:
                self._rng = np.random.default_rng(self._seed())
            rng = self._rng
        weights = weights.astype("float64")
        counts = rng.multinomial(int(n_samples), weights / weights.sum())
        d = means.shape[1]
        parts = []
        for k, count in enumerate(counts):
            noise = rng.standard_normal((count, d))
            if self.covariance_type == "full":
                scale = np.linalg.cholesky(covariances[k]).T
                parts.append(means[k] + noise @ scale)
            elif self.covariance_type == "tied":
                parts.append(means[k] + noise @ np.linalg.cholesky(
                    covariances).T)
            elif self.covariance_type == "diag":
                parts.append(means[k] + noise * np.sqrt(covariances[k]))
            else:
                parts.append(means[k] + noise * np.sqrt(covariances[k]))
        samples = np.concatenate(parts).astype("float32")
        components = np.repeat(np.arange(self.n_components), counts)
        return samples, components

    # ------------------------------------------------------------ config
    def save(self, filepath, *args, **kwargs):
        """`keras.Model.save`, refused (before the file is opened) for a
        mixture whose settings changed after it was made."""
        # (Keras opens and writes the file before `save_own_variables`:
        # a refusal there left a good file without its weights)
        self._check_settings()
        return super().save(filepath, *args, **kwargs)

    def save_weights(self, filepath, *args, **kwargs):
        """`keras.Model.save_weights`, checked as `save` is."""
        self._check_settings()
        return super().save_weights(filepath, *args, **kwargs)

    def save_own_variables(self, store):
        # a mixture saved inside another model (a latent prior): a file
        # whose config says other shapes than its variables did not load
        self._check_settings()
        super().save_own_variables(store)

    def get_config(self):
        return {
            "name": self.name,
            "n_components": self.n_components,
            "covariance_type": self.covariance_type,
            "tol": self.tol,
            "reg_covar": self.reg_covar,
            "max_iter": self.max_iter,
            "n_init": self.n_init,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)
