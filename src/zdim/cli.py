"""The ``zdim`` command: parse, call the public API, print. No logic lives here.

Every ``ZdimError`` becomes one line on stderr and exit code 2. Heavy libraries (torch, Optuna,
scikit-learn, matplotlib) are imported inside the commands that need them, so ``zdim --help``,
``zdim datasets`` and argument errors answer at once.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import ConfigError, WorkerError, ZdimError
from .recommend import DEFAULT_RULE, RULES

if TYPE_CHECKING:
    from .recommend import Recommendation
    from .records import TrialRecord

LIKELIHOOD_CHOICES = ["auto", "bernoulli", "gaussian", "poisson", "nb"]
DEVICE_HELP = "auto (CUDA when present, else the CPU; default), cpu, cuda or cuda:N"

TABLE_COLS = [
    ("dim", "dim", "{}"),
    ("seed", "seed", "{}"),
    ("nll", "NLL", "{:.2f}"),
    ("neg_elbo", "-ELBO", "{:.2f}"),
    ("rec", "rec", "{:.2f}"),
    ("kl", "KL", "{:.2f}"),
    ("active_units", "active", "{}"),
    ("mse", "MSE", "{:.4f}"),
    ("epochs_run", "epochs", "{}"),
    ("train_seconds", "train s", "{:.1f}"),
    ("status", "status", "{}"),
]
# generation quality (zdim.generation), placed before the timing and status columns
TABLE_COLS[-2:-2] = [
    ("gen_fd", "FD", "{:.2f}"),
    ("gen_precision", "prec", "{:.2f}"),
    ("gen_recall", "recall", "{:.2f}"),
    ("gen_mmd", "MMD", "{:.3f}"),
    ("gen_probe_acc", "probe", "{:.2f}"),
]


def parse_dims(text: str) -> list[int]:
    """``"2,5,10"``, ``"1-16"`` or a mix (``"1-4,8,16"``) -> sorted unique sizes."""
    dims: set[int] = set()
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part[1:]:
                lo, hi = part.split("-", 1)
                a, b = int(lo), int(hi)
                if a > b:
                    raise ValueError
                dims.update(range(a, b + 1))
            else:
                dims.add(int(part))
    except ValueError:
        raise ConfigError(
            f"--dims {text!r} is not a list of sizes: use integers and ranges like 2,5,10 or 1-16"
        ) from None
    if min(dims) < 1:
        raise ConfigError(f"--dims {text!r} has a size {min(dims)} < 1: latent sizes start at 1")
    return sorted(dims)


def _fmt(v: Any, spec: str) -> str:
    if v is None or v == "":
        return "-"
    try:
        return spec.format(v)
    except (ValueError, TypeError):
        return str(v)


def format_table(records: list[TrialRecord]) -> str:
    rows = [r.flat() for r in records]
    cols = [c for c in TABLE_COLS if any(c[0] in r for r in rows)]
    body = [[_fmt(r.get(k), spec) for k, _, spec in cols] for r in rows]
    head = [h for _, h, _ in cols]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(x.rjust(w) for x, w in zip(row, widths)) for row in body]
    return "\n".join(lines)


def _print_result(trials: list[TrialRecord], rec: Recommendation | None, run_dir: Path | None) -> None:
    print(format_table(trials))
    shared = {(t.seed, round(t.train_seconds, 1)) for t in trials if t.nested and t.train_seconds is not None}
    if shared:
        print(
            "nested: the training time of each row is that of its seed's one nested model, which served "
            f"every size ({', '.join(f'seed {s}: {sec:g} s' for s, sec in sorted(shared))})"
        )
    if rec is None:
        print("\nNo trial completed: nothing to recommend (see the status column).")
        return
    print(f"\n{rec.rationale}")
    for w in rec.warnings:
        print(f"warning: {w}")
    settled = "" if rec.settled else " (not a settled answer: see the warnings)"
    print(f"\nRecommended latent size: {rec.confidence}{settled}")
    if run_dir is not None:
        print(f"Run directory: {run_dir}")


def cmd_sweep(args: argparse.Namespace) -> int:
    from .plan import SweepConfig, default_dims, default_epochs, default_seeds, resolve_mode
    from .search import sweep
    from .train import TrainConfig

    if args.mlflow or args.mlflow_uri:  # a missing package fails now, not after the sweep
        from .tracking import require_mlflow

        require_mlflow()

    dims = parse_dims(args.dims) if args.dims else None
    mode = resolve_mode(
        args.mode,
        workers=args.workers,
        storage=args.storage,
        prune=args.prune,
        nested=args.nested,
        time_budget=args.time_budget,
    )
    train = TrainConfig(
        epochs=default_epochs(mode) if args.epochs is None else args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        beta=args.beta,
        warmup_epochs=args.warmup,
        free_bits=args.free_bits,
        sigma_init=args.sigma_init,
        sigma_warmup_epochs=args.sigma_warmup,
        sigma_after=args.sigma_after,
        patience=args.patience,
        seed=args.seed,
        device=args.device,
        binarize=args.binarize,
    )
    from .data import load_data

    data = load_data(args.source, **_loader(args))
    intrinsic = None
    if not dims:  # the grid comes from the intrinsic dimension of the data
        from .intrinsic import dims_from_estimate, estimate_intrinsic_dim

        intrinsic = estimate_intrinsic_dim(data, seed=args.seed)
        dims = list(dims_from_estimate(intrinsic.dim, data.n_features))
        if not args.quiet:
            print(
                f"intrinsic dimension ~{intrinsic.dim} (TwoNN {intrinsic.twonn:.1f}, MLE "
                f"{intrinsic.mle:.1f}): sizes {dims}",
                file=sys.stderr,
            )
    config = SweepConfig(
        dims=tuple(dims or default_dims(data.n_features)),
        seeds=default_seeds(mode) if args.seeds is None else args.seeds,
        hidden=tuple(args.hidden),
        arch=args.arch,
        train=train,
        k=args.k,
        rel_tol=args.tolerance,
        nested=args.nested or mode == "nested",
        model=args.model,
        eval_samples=args.eval_samples,
    )
    out = Path(args.out) if args.out else Path("runs") / data.name
    if not args.quiet:
        print(
            f"zdim {__version__}: {data.name} {tuple(data.sample_shape)} x {data.summary()['n_train']}"
            f" train, {data.likelihood} likelihood; sizes {list(config.dims)} x {config.seeds} seed(s),"
            f" {mode} mode -> {out}",
            file=sys.stderr,
        )
    result = sweep(
        data,
        config=config,
        out=out,
        overwrite=args.overwrite,
        resume=args.resume,
        storage=args.storage,
        study_name=args.study,
        progress=not args.quiet,
        command=" ".join(["zdim", *map(shlex.quote, args.argv)]),
        workers=args.workers,
        prune=args.prune,
        rule=args.rule,
        refine=args.refine,
        extend=args.extend,
        mode=mode,
        time_budget=args.time_budget,
        intrinsic=intrinsic,
        loader=_loader(args),
    )
    _print_result(result.trials, result.recommendation, result.run_dir)
    _write_report(result.run_dir, args.quiet)
    if args.mlflow or args.mlflow_uri:
        from .tracking import log_sweep

        print(f"MLflow: logged {len(result.trials)} trial(s) to {log_sweep(result, args.mlflow_uri)}")
    return 0


def _write_report(run_dir: Path | None, quiet: bool) -> None:
    """Build ``report.html``; a failure here never loses the finished results, so it is a warning."""
    if run_dir is None:
        return
    from .report import build_report

    try:
        path = build_report(run_dir)
    except ZdimError:
        raise
    except Exception as e:  # a bug in drawing must not hide that the sweep itself succeeded
        print(
            f"zdim: warning: the report could not be built ({type(e).__name__}: {e}); the results are "
            f"saved: retry with `zdim report {run_dir}`",
            file=sys.stderr,
        )
        return
    print(f"Report: {path}")


def cmd_report(args: argparse.Namespace) -> int:
    from .report import build_report

    if args.out and Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out} is a folder: name the HTML file to write, e.g. {args.out}/report.html")
    path = build_report(args.run_dir, out=args.out)
    print(f"Report: {path}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .recommend import Recommendation
    from .runs import RunDir

    run = RunDir.open(args.run_dir)
    info = run.read_info()
    d = info.get("data", {})
    print(
        f"{run.path}: {d.get('name')} {d.get('sample_shape')} ({d.get('likelihood')}), "
        f"sizes {info.get('sweep', {}).get('dims')}"
    )
    if info.get("command"):
        print(f"command: {info['command']}")
    saved = run.read_recommendation()
    _print_result(run.records(), Recommendation.from_dict(saved) if saved else None, None)
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from .formats import _FORMATS, EMBEDDED  # text only: answers without importing torch

    print("Embedded data sets (pass the name as SOURCE):")
    for name, desc in EMBEDDED.items():
        print(f"  {name:<10} {desc}")
    print("\nFormats read from a path:")
    for fmt, desc in _FORMATS:
        print(f"  {fmt:<24} {desc}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="zdim", description="Find and tune the latent size of a VAE.")
    p.add_argument("--version", action="version", version=f"zdim {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("sweep", help="train a VAE per latent size and recommend one")
    s.add_argument("source", help="data: a file, a folder, or an embedded name (see `zdim datasets`)")
    s.add_argument(
        "--dims",
        help="latent sizes, e.g. 2,5,10 or 1-16 (default: powers of 2 up to a few times the intrinsic dimension)",
    )
    s.add_argument("--seeds", type=int, default=None, help="trainings per size (default 3 in settle mode, else 1)")
    s.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="maximum epochs per trial (default 500 in settle mode, where it is a cap, else 100)",
    )
    s.add_argument("--patience", type=int, default=10, help="early-stopping patience in epochs (0: off)")
    s.add_argument("--batch-size", type=int, default=128)
    s.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    s.add_argument("--beta", type=float, default=1.0, help="KL weight (default 1)")
    s.add_argument("--warmup", type=float, default=0.0, help="KL warm-up length in epochs (default 0)")
    s.add_argument("--free-bits", type=float, default=0.0, help="free bits per unit in nats (default 0)")
    s.add_argument(
        "--sigma-init",
        type=_number_or_word,
        default="auto",
        help="Gaussian decoder: starting noise scale per standardized feature, a number or 'pca' (default auto: 0.3)",
    )
    s.add_argument(
        "--sigma-warmup",
        type=_number_or_word,
        default="auto",
        help="Gaussian decoder: epochs the noise scale is held at its start, then learned (default auto: 5; 0: off)",
    )
    s.add_argument(
        "--sigma-after",
        type=_number_or_word,
        default="auto",
        help="apply --sigma-init and --sigma-warmup after this epoch, to a model still ignoring its latents "
        "then (0: from the start, to every model; default auto: 4)",
    )
    s.add_argument("--hidden", type=_positive_ints, default=[512, 256], help="hidden widths, e.g. 512,256 (default)")
    s.add_argument("--arch", choices=["mlp", "conv"], default="mlp")
    s.add_argument(
        "--model",
        metavar="SPEC",
        help="your own model class instead of zdim's VAE: path/to/models.py:MyVAE or package.module:MyVAE "
        "(see docs/guide.md, 'Your own model'; --hidden and --arch do not apply)",
    )
    _add_data_options(s)
    s.add_argument("--k", type=int, default=100, help="importance samples for held-out NLL (default 100)")
    s.add_argument(
        "--eval-samples",
        type=int,
        metavar="N",
        help="evaluate every trial on N test samples (one fixed random subset, the same for all), and the "
        "recommended size on the whole test split too (default: the whole test split for every trial)",
    )
    s.add_argument(
        "--tolerance", type=float, default=0.01, help="relative NLL tolerance of the recommendation rule (default 0.01)"
    )
    s.add_argument("--device", default="auto", help=DEVICE_HELP)
    s.add_argument("--out", help="run directory (default runs/NAME)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--overwrite", action="store_true", help="replace an existing run directory (only one zdim made)")
    g.add_argument("--resume", action="store_true", help="finish the missing trials of a run directory")
    s.add_argument("--storage", help="Optuna storage URL, e.g. postgresql://host/db (default: a file in the run dir)")
    s.add_argument("--study", help="Optuna study name (default zdim-sweep)")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.add_argument(
        "--workers", type=int, default=1, help="trials trained at once, one process each, CPU threads split (default 1)"
    )
    s.add_argument(
        "--prune", action="store_true", help="stop a seed early when it trails the other seeds of the same size"
    )
    s.add_argument(
        "--rule",
        choices=list(RULES),
        default=DEFAULT_RULE,
        help="recommendation rule (default combined; see docs/recommendation.md)",
    )
    s.add_argument(
        "--mode",
        choices=["settle", "per-size", "nested"],
        default=None,
        help="settle: every (size, seed) trains together, epoch by epoch, until the answer settles (default; "
        "--epochs is then a cap); per-size: one Optuna trial per (size, seed), each to its own end (the "
        "default with --workers > 1, --storage or --prune); nested: as --nested",
    )
    s.add_argument(
        "--time-budget",
        type=float,
        metavar="SECONDS",
        help="settle mode: stop every member after this much training time (default: no limit)",
    )
    s.add_argument(
        "--nested",
        action="store_true",
        help="train one nested VAE per seed at the largest size and cut every size out of it "
        "(one training instead of one per size; see docs/recommendation.md)",
    )
    s.add_argument(
        "--refine",
        action="store_true",
        help="after the grid, bisect around the recommended size down to an exact integer",
    )
    s.add_argument(
        "--no-extend",
        dest="extend",
        action="store_false",
        help="never add larger sizes (by default, when the largest size is chosen with every unit active, "
        "the grid grows by doubling up to the feature count)",
    )
    s.add_argument(
        "--mlflow",
        action="store_true",
        help="log each trial (parameters, metrics, weights) to MLflow, by default a file store in "
        "RUN_DIR/mlruns; needs pip install 'zdim[mlflow]'",
    )
    s.add_argument("--mlflow-uri", metavar="URI", help="MLflow tracking URI for --mlflow (implies --mlflow)")
    s.set_defaults(func=cmd_sweep)
    _add_estimate_id_parser(sub)
    _add_tune_parser(sub)

    i = sub.add_parser("info", help="print the table and recommendation of a run directory")
    i.add_argument("run_dir")
    i.set_defaults(func=cmd_info)

    r = sub.add_parser("report", help="rebuild report.html of a run directory (no retraining)")
    r.add_argument("run_dir")
    r.add_argument("--out", help="HTML file to write (default RUN_DIR/report.html)")
    r.set_defaults(func=cmd_report)

    d = sub.add_parser("datasets", help="list embedded data sets and supported formats")
    d.set_defaults(func=cmd_datasets)
    return p


def _add_data_options(p: argparse.ArgumentParser) -> None:
    """How a data source is read (the same for sweep, tune and estimate-id)."""
    p.add_argument("--likelihood", choices=LIKELIHOOD_CHOICES, default="auto", help="decoder likelihood (default auto)")
    p.add_argument("--label-column", help="CSV/Parquet column holding labels (kept for evaluation)")
    p.add_argument("--max-samples", type=int, help="use at most this many samples (quick runs)")
    p.add_argument("--seed", type=int, default=0, help="base seed (split, init, sampling)")
    p.add_argument(
        "--array", metavar="NAME", help=".npz only: the array to read, e.g. X_train (default: X_train + X_test, or X)"
    )
    p.add_argument(
        "--test",
        metavar="DATA",
        help="your own test split (a file like SOURCE, same features; scaled and standardized like the training data)",
    )
    p.add_argument("--layer", help=".h5ad only: the .layers entry to read, e.g. counts (default .X)")
    p.add_argument("--label-key", help=".h5ad only: the .obs column holding labels")
    p.add_argument(
        "--binarize",
        action="store_true",
        help="data in [0, 1]: binarize the validation and test splits once and each training batch afresh "
        "(dynamically binarized MNIST, as in the literature)",
    )


def _loader(args: argparse.Namespace) -> dict[str, Any]:
    """The data options as ``load_data`` keywords (recorded in run.json to reload the data)."""
    return {
        "seed": args.seed,
        "label_column": args.label_column,
        "likelihood": args.likelihood,
        "max_samples": args.max_samples,
        "array": args.array,
        "test": args.test,
        "layer": args.layer,
        "label_key": args.label_key,
        **({"binarize": True} if args.binarize else {}),
    }


def _add_tune_parser(sub: Any) -> None:
    t = sub.add_parser("tune", help="tune beta, warm-up, free bits, lr and width at the chosen size")
    t.add_argument(
        "run_dir",
        metavar="RUN_DIR_OR_SOURCE",
        help="run directory of a sweep (its data, settings and recommended size), or a data "
        "source with --dim K to tune that size directly",
    )
    t.add_argument("--dim", type=int, help="latent size to tune (default: the run's recommendation)")
    t.add_argument("--trials", type=int, default=20, help="Optuna trials (default 20)")
    t.add_argument(
        "--objective", choices=["nll", "elbo", "mse"], default="nll", help="validation figure to minimize (default nll)"
    )
    t.add_argument("--epochs", type=int, help="maximum epochs per trial (default: the sweep's)")
    t.add_argument("--workers", type=int, default=1, help="trials at once, one process each")
    t.add_argument("--no-prune", dest="prune", action="store_false", help="never stop trials early")
    t.add_argument("--storage", help="Optuna storage URL (default: RUN_DIR/tune/study.journal)")
    t.add_argument("--study", help="Optuna study name (default zdim-tune-dim-K)")
    t.add_argument("--quiet", action="store_true", help="no progress bars")
    t.add_argument("--device", default=None, help=DEVICE_HELP + " (default: the sweep's, auto for a SOURCE)")
    t.add_argument(
        "--trust-code",
        action="store_true",
        help="tune a sweep of your own model (--model): imports and runs that code",
    )
    _add_data_options(t)
    t.add_argument("--out", help="run directory when tuning a SOURCE directly (default runs/NAME-dim-K)")
    g = t.add_mutually_exclusive_group()
    g.add_argument("--overwrite", action="store_true", help="replace an existing --out directory")
    g.add_argument("--resume", action="store_true", help="continue tuning in an existing --out directory")
    t.set_defaults(func=cmd_tune)


def cmd_tune(args: argparse.Namespace) -> int:
    from .runs import RunDir
    from .tune import init_tune_run, tune

    run_dir, data = Path(args.run_dir), None
    if RunDir(run_dir).run_json.is_file():
        given = [f for f, v in (("--label-column", args.label_column), ("--max-samples", args.max_samples)) if v]
        given += [
            f"--{k.replace('_', '-')}" for k in ("array", "test", "layer", "label_key", "binarize") if getattr(args, k)
        ]
        given += ["--likelihood"] if args.likelihood != "auto" else []
        if given:
            raise ConfigError(
                f"{given[0]} applies to a data SOURCE: {args.run_dir} is a run directory, whose data is "
                f"reloaded as its sweep read it; drop {given[0]}"
            )
    else:  # a data source: tune one size directly
        from .data import load_data
        from .plan import SweepConfig
        from .train import TrainConfig

        if args.dim is None:
            raise ConfigError(
                f"{args.run_dir} is not a run directory: to tune a data source directly "
                "pass its latent size with --dim K"
            )
        train = TrainConfig(seed=args.seed, device=args.device or "auto", binarize=args.binarize)
        data = load_data(args.run_dir, **_loader(args))
        run_dir = Path(args.out) if args.out else Path("runs") / f"{data.name}-dim-{args.dim}"
        init_tune_run(
            data,
            args.dim,
            run_dir,
            SweepConfig(dims=(args.dim,), train=train),
            overwrite=args.overwrite,
            resume=args.resume,
            command=" ".join(["zdim", *map(shlex.quote, args.argv)]),
            loader=_loader(args),
        )
    res = tune(
        run_dir,
        dim=args.dim,
        n_trials=args.trials,
        objective=args.objective,
        epochs=args.epochs,
        workers=args.workers,
        prune=args.prune,
        storage=args.storage,
        study_name=args.study,
        data=data,
        progress=not args.quiet,
        device=args.device,
        trust_code=args.trust_code,
    )
    print(res.summary())
    _write_report(run_dir, args.quiet)
    return 0


def _add_estimate_id_parser(sub: Any) -> None:
    e = sub.add_parser("estimate-id", help="estimate the intrinsic dimension of a data source")
    e.add_argument("source", help="data: a file, a folder, or an embedded name")
    e.add_argument("--n", type=int, default=1000, help="points per subsample (default 1000)")
    e.add_argument("--repeats", type=int, default=5, help="subsamples, for the spread (default 5)")
    _add_data_options(e)
    e.set_defaults(func=cmd_estimate_id)


def cmd_estimate_id(args: argparse.Namespace) -> int:
    from .data import load_data
    from .intrinsic import dims_from_estimate, estimate_intrinsic_dim

    data = load_data(args.source, **_loader(args))
    est = estimate_intrinsic_dim(data, n=args.n, repeats=args.repeats, seed=args.seed)
    print(f"{data.name}: {data.n_features} features, training split of {data.summary()['n_train']}")
    print(est.table())
    print(f"default sweep sizes: {list(dims_from_estimate(est.dim, data.n_features))}")
    return 0


def _number_or_word(text: str) -> float | str:
    """An integer, a number, or the word itself (``auto``, ``pca``): ``TrainConfig`` says which it accepts."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _positive_ints(text: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of widths like 512,256") from None
    if not vals or min(vals) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: widths must be positive integers like 512,256")
    return vals


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return int(args.func(args))
    except WorkerError as e:  # not the user's input: exit 1, still one line
        print(f"zdim: error: {e}", file=sys.stderr)
        return 1
    except ZdimError as e:
        print(f"zdim: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            "zdim: interrupted; finished trials are saved: rerun the same command with --resume to finish",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
