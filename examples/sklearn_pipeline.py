"""zdim inside scikit-learn: scale, find the latent size, encode, classify.

``VAETransformer(latent_dim="auto")`` runs zdim's bottleneck search inside ``fit``; its latent means
then feed a logistic regression, and ``GridSearchCV`` compares fixed sizes by held-out ELBO:

    python examples/sklearn_pipeline.py --epochs 2 --max-samples 300
"""

from __future__ import annotations

import argparse

from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from zdim import VAETransformer


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--max-samples", type=int, default=None, help="digits used (default all 1797)")
    p.add_argument("--dims", default="2,4,8,16")
    p.add_argument("--hidden", default="128,64")
    args = p.parse_args()

    x, y = load_digits(return_X_y=True)
    x, y = x[: args.max_samples], y[: args.max_samples]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=0)
    dims = [int(d) for d in args.dims.split(",")]
    hidden = tuple(int(h) for h in args.hidden.split(","))

    pipe = Pipeline(
        [
            ("scale", StandardScaler()),
            ("vae", VAETransformer(latent_dim="auto", dims=dims, hidden=hidden, epochs=args.epochs)),
            ("clf", LogisticRegression(max_iter=1000)),
        ]
    )
    pipe.fit(x_train, y_train)
    vae = pipe.named_steps["vae"]
    print(f"latent size chosen by zdim: {vae.latent_dim_}")
    print(vae.sweep_result_.recommendation.rationale)
    print(f"test accuracy of a logistic regression on the latent means: {pipe.score(x_test, y_test):.3f}")

    grid = GridSearchCV(
        Pipeline([("scale", StandardScaler()), ("vae", VAETransformer(hidden=hidden, epochs=args.epochs))]),
        {"vae__latent_dim": dims[:3]},
        cv=3,
    )
    grid.fit(x_train)
    for dim, score in zip(grid.cv_results_["param_vae__latent_dim"], grid.cv_results_["mean_test_score"]):
        print(f"latent_dim={dim}: cross-validated ELBO per sample {score:.1f} nats")
    print(f"best by ELBO: {grid.best_params_['vae__latent_dim']}")


if __name__ == "__main__":
    main()
