"""Generation quality of a VAE: pure functions of arrays, plus one entry point that samples a model.

Feature space (``gen_features``), fitted once per data set on the *training* split only and shared
by every trial so that sizes are compared in the same space:

- ``classifier-train-<m>`` when the data have class labels (2 to 100 classes): the penultimate layer
  (``m`` ReLU units) of a small MLP classifier trained on the training split's labels; its accuracy on
  the held-out test split is recorded as ``gen_feature_acc`` (a feature space that cannot tell the
  classes apart says little about samples);
- ``pca-train-<m>`` otherwise (or with ``features="pca"``): the first ``m`` principal components.

Both keep distances from being dominated by pixel noise and Frechet statistics well conditioned.
The metrics compare decoded prior samples with held-out test data:

- ``frechet_distance``: ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^{1/2})`` of Gaussian fits.
- ``prdc``: precision / recall (Kynkaanniemi et al. 2019) and density / coverage (Naeem et al. 2020)
  from k-nearest-neighbour balls, with the definitions of the reference ``prdc`` package (strict ``<``).
- ``mmd_rbf``: maximum mean discrepancy with an RBF kernel (median-heuristic bandwidth) between the
  encoded held-out means (the aggregate posterior) and prior samples: large where samples fall into
  holes of the latent space.
- ``linear_probe_accuracy``: logistic regression on latent means, when labels exist.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np
import torch

DEFAULT_GEN_SAMPLES = 500
DEFAULT_PCA_COMPONENTS = 16
DEFAULT_NEAREST_K = 5
CLASSIFIER_WIDTH = 64  # units of the classifier's penultimate layer: the feature space
FEATURES = ("auto", "pca", "classifier")


def _t(x: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).double()


def frechet_distance(a: Any, b: Any) -> float:
    """Frechet distance between Gaussian fits of two sample sets ``(n, m)`` and ``(n', m)``.

    Zero for identical sets; grows with the squared distance between means.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a = np.atleast_2d(np.cov(a, rowvar=False))
    s_b = np.atleast_2d(np.cov(b, rowvar=False))
    # tr (S_a S_b)^{1/2} = sum of sqrt eigenvalues of S_a^{1/2} S_b S_a^{1/2} (symmetric PSD): eigh is
    # stable where scipy's sqrtm fails on singular covariances (e.g. collapsed samples)
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    tr_covmean = float(np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ s_b @ root_a), 0.0, None)).sum())
    fd = float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2.0 * tr_covmean)
    return max(fd, 0.0)  # tiny negative values are rounding


def _kth_radius(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance of each point to its k-th nearest neighbour in the same set (itself excluded)."""
    d = torch.cdist(x, x)
    return torch.kthvalue(d, min(k + 1, x.shape[0]), dim=1).values


def prdc(real: Any, fake: Any, k: int = DEFAULT_NEAREST_K) -> dict[str, float]:
    """Precision, recall, density and coverage of ``fake`` samples against ``real`` ones.

    Precision: share of fake points inside some real k-NN ball. Recall: share of real points inside
    some fake k-NN ball. Density: mean number of real balls holding a fake point, over ``k``.
    Coverage: share of real balls holding at least one fake point.
    """
    r, f = _t(real), _t(fake)
    if r.shape[0] < 2 or f.shape[0] < 2:
        raise ValueError(f"prdc needs two or more points per set, got {r.shape[0]} and {f.shape[0]}")
    k = max(1, min(k, r.shape[0] - 1, f.shape[0] - 1))
    r_rad, f_rad = _kth_radius(r, k), _kth_radius(f, k)
    d_rf = torch.cdist(r, f)  # (n_real, n_fake)
    inside_real = d_rf < r_rad[:, None]
    return {
        "precision": float(inside_real.any(dim=0).double().mean()),
        "recall": float((d_rf < f_rad[None, :]).any(dim=1).double().mean()),
        "density": float(inside_real.sum(dim=0).double().mean() / k),
        "coverage": float((d_rf.min(dim=1).values < r_rad).double().mean()),
    }


def mmd_rbf(a: Any, b: Any, bandwidth: float | None = None) -> float:
    """Squared MMD (unbiased) between ``a`` and ``b`` with an RBF kernel.

    The bandwidth defaults to the median of pairwise distances in the pooled sample (median heuristic).
    About 0 (it may be slightly negative) when both come from the same distribution.
    """
    x, y = _t(a), _t(b)
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(f"mmd needs two or more points per set, got {x.shape[0]} and {y.shape[0]}")
    pooled = torch.cat([x, y])
    d = torch.cdist(pooled, pooled)
    if bandwidth is None:
        off = d[~torch.eye(d.shape[0], dtype=torch.bool)]
        bandwidth = float(off.median()) or 1.0
    kern = torch.exp(-d.pow(2) / (2.0 * bandwidth**2))
    n, m = x.shape[0], y.shape[0]
    kxx, kyy, kxy = kern[:n, :n], kern[n:, n:], kern[:n, n:]
    sxx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    syy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return float(sxx + syy - 2.0 * kxy.mean())


def linear_probe_accuracy(z_train: Any, y_train: Any, z_test: Any, y_test: Any, seed: int = 0) -> float:
    """Test accuracy of a logistic regression fitted on latent means ``z_train`` with labels."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(np.asarray(z_train))
    clf = LogisticRegression(max_iter=500, random_state=seed)
    clf.fit(scaler.transform(np.asarray(z_train)), np.asarray(y_train))
    return float(clf.score(scaler.transform(np.asarray(z_test)), np.asarray(y_test)))


def pca_features(train: Any, m: int = DEFAULT_PCA_COMPONENTS, seed: int = 0) -> tuple[Any, str]:
    """A PCA fitted on (at most 5000 rows of) the training split; returns ``(pca, gen_features)``."""
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(seed)
    if len(train) > 5000:  # pick the rows first: a float64 copy of a large split would not fit
        train = train[rng.choice(len(train), 5000, replace=False)]
    x = np.asarray(train, dtype=np.float64)
    m = max(1, min(m, x.shape[1], x.shape[0]))
    return PCA(n_components=m, random_state=seed).fit(x), f"pca-train-{m}"


class ClassifierFeatures:
    """The penultimate layer of a small MLP classifier trained on labelled training rows.

    ``transform`` maps rows (flattened) to ``width`` ReLU activations; ``accuracy`` is measured on the
    held-out rows given to ``fit``. Training is seeded and runs on the CPU in a few seconds (at most
    10000 rows, 20 epochs).
    """

    def __init__(self, width: int = CLASSIFIER_WIDTH) -> None:
        self.width = width
        self.body: torch.nn.Module | None = None
        self.accuracy = float("nan")

    @torch.enable_grad()
    def fit(
        self, x: Any, y: Any, x_test: Any, y_test: Any, seed: int = 0, max_rows: int = 10000, epochs: int = 20
    ) -> ClassifierFeatures:
        rng = np.random.default_rng(seed)
        classes, y_idx = np.unique(np.asarray(y), return_inverse=True)
        if len(x) > max_rows:  # pick the rows first: never a copy of a whole large split
            keep = rng.choice(len(x), max_rows, replace=False)
            x, y_idx = x[keep], y_idx[keep]
        x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        torch.manual_seed(seed)
        hidden = min(256, max(2 * self.width, x.shape[1]))
        self.body = torch.nn.Sequential(
            torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, self.width), torch.nn.ReLU()
        )
        head = torch.nn.Linear(self.width, len(classes))
        net = torch.nn.Sequential(self.body, head)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y_idx.astype(np.int64))
        gen = torch.Generator().manual_seed(seed)
        for _ in range(epochs):
            order = torch.randperm(xt.shape[0], generator=gen)
            for start in range(0, xt.shape[0], 128):
                idx = order[start : start + 128]
                opt.zero_grad(set_to_none=True)
                loss = torch.nn.functional.cross_entropy(net(xt[idx]), yt[idx])
                loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
                opt.step()
        net.eval()
        lookup = {c: i for i, c in enumerate(classes.tolist())}
        y_test_idx = np.array([lookup.get(c, -1) for c in np.asarray(y_test).tolist()])
        with torch.no_grad():
            pred = net(torch.from_numpy(np.asarray(x_test, dtype=np.float32).reshape(len(x_test), -1)))
        self.accuracy = float((pred.argmax(1).numpy() == y_test_idx).mean())
        return self

    @torch.no_grad()
    def transform(self, x: Any) -> np.ndarray:
        assert self.body is not None, "fit first"
        x = np.asarray(x, dtype=np.float32).reshape(len(x), -1)
        return np.asarray(self.body(torch.from_numpy(x)).double().numpy())


def _class_labels(data: Any) -> bool:
    y_train, y_test = getattr(data, "y_train", None), getattr(data, "y_test", None)
    return y_train is not None and y_test is not None and 1 < len(np.unique(y_train)) <= 100


# One feature space per data set, shared by every trial of a sweep: keyed by the id of its training
# tensor, with a weak reference that tells a live tensor from a dead one whose id was reused.
_SPACES: dict[int, tuple[weakref.ref[Any], dict[tuple[str, int], tuple[Any, str, float | None]]]] = {}


def feature_space(
    data: Any, features: str = "auto", components: int = DEFAULT_PCA_COMPONENTS
) -> tuple[Any, str, float | None]:
    """``(transformer, gen_features name, classifier test accuracy or None)`` for ``data``.

    ``features``: ``auto`` (a classifier's penultimate layer when there are class labels, else PCA),
    ``pca`` or ``classifier``. Fitted with seed 0 on the training split and cached per data set.
    """
    if features not in FEATURES:
        raise ValueError(f"features must be one of {FEATURES}, got {features!r}")
    use_clf = features == "classifier" or (features == "auto" and _class_labels(data))
    if use_clf and not _class_labels(data):
        raise ValueError("features='classifier' needs class labels (2 to 100 classes) on the data")
    key = ("classifier" if use_clf else "pca", components)
    for k in [k for k, (ref, _) in _SPACES.items() if ref() is None]:
        del _SPACES[k]
    ref, cache = _SPACES.get(id(data.train), (None, {}))
    if ref is None or ref() is not data.train:
        cache = {}
        _SPACES[id(data.train)] = (weakref.ref(data.train), cache)
    if key not in cache:
        if use_clf:
            clf = ClassifierFeatures().fit(data.train.numpy(), data.y_train, data.test.numpy(), data.y_test)
            cache[key] = (clf, f"classifier-train-{clf.width}", clf.accuracy)
        else:
            pca, name = pca_features(data.train.numpy(), components, 0)
            cache[key] = (pca, name, None)
    return cache[key]


@torch.no_grad()
def generation_metrics(
    model: Any,
    data: Any,
    *,
    n: int = DEFAULT_GEN_SAMPLES,
    seed: int = 0,
    components: int = DEFAULT_PCA_COMPONENTS,
    k: int = DEFAULT_NEAREST_K,
    features: str = "auto",
) -> dict[str, Any]:
    """Generation metrics of a trained VAE on ``data`` (a ``zdim.Data``), prefixed ``gen_``.

    Decodes ``n`` prior samples (decoder means) and compares them with up to ``n`` held-out test rows
    in the feature space of ``feature_space(data, features, components)``; MMD is between encoded test
    means and prior draws; the linear probe (labels only) is fitted on the encoded training split (at
    most ``5 n`` rows).
    """
    model.eval()
    dev = next(model.parameters()).device
    gen = torch.Generator(device="cpu").manual_seed(seed)
    test = data.test[torch.randperm(data.test.shape[0], generator=gen)[:n]]
    z_prior = torch.randn(test.shape[0], model.latent_dim, generator=gen)
    fake = model.mean(model.decode(z_prior.to(dev))).float().cpu()
    mu_test = model.encode(test.to(dev).float())[0].float().cpu()
    space, name, feature_acc = feature_space(data, features, components)
    real_f, fake_f = space.transform(test.double().numpy()), space.transform(fake.double().numpy())
    out: dict[str, Any] = {
        "gen_features": name,
        "gen_n": int(test.shape[0]),
        "gen_k": k,
        "gen_fd": frechet_distance(real_f, fake_f),
    }
    if feature_acc is not None:
        out["gen_feature_acc"] = feature_acc
    out.update({f"gen_{key}": v for key, v in prdc(real_f, fake_f, k).items()})
    # the unbiased estimate dips below 0 by its noise where the two agree: shown (and kept) as 0, no less
    out["gen_mmd"] = max(0.0, mmd_rbf(mu_test, torch.randn(test.shape[0], model.latent_dim, generator=gen)))
    if getattr(data, "y_train", None) is not None and getattr(data, "y_test", None) is not None:
        idx = torch.randperm(data.train.shape[0], generator=gen)[: 5 * n]
        mu_train = model.encode(data.train[idx].to(dev).float())[0].float().cpu().numpy()
        test_idx = torch.randperm(data.test.shape[0], generator=gen)[:n]
        mu_t = model.encode(data.test[test_idx].to(dev).float())[0].float().cpu().numpy()
        y_tr, y_te = np.asarray(data.y_train)[idx.numpy()], np.asarray(data.y_test)[test_idx.numpy()]
        if 1 < len(np.unique(y_tr)) <= 100:  # class labels; a continuous target gets no probe
            out["gen_probe_acc"] = linear_probe_accuracy(mu_train, y_tr, mu_t, y_te, seed)
    return out
