"""The ``zdim`` command: one small function per subcommand that parses its flags into the public
calls' arguments (``zdim.plan.Options`` for a sweep), calls them and prints; the decisions (the mode,
the defaults, every check) are made in the code it calls.

Every ``ZdimError`` becomes one line on stderr and exit code 2; ``Interrupted`` (a settle-mode sweep
stopped by Ctrl-C or SIGTERM) one line and exit code 128 + the signal. Heavy libraries (torch, Optuna,
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
from .errors import ConfigError, Interrupted, WorkerError, ZdimError
from .formats import LIKELIHOOD_CHOICES, MODES
from .rules import DEFAULT_RULE, RULES

if TYPE_CHECKING:
    from .recommendation import Recommendation
    from .records import TrialRecord

DEVICE_HELP = "auto (CUDA when present, else the CPU; default), cpu, cuda or cuda:N"


def format_table(records: list[TrialRecord]) -> str:
    from .records import COLUMNS, TERMINAL_COLUMNS, format_value

    rows = [r.flat() for r in records]
    cols = [COLUMNS[k] for k in TERMINAL_COLUMNS if any(k in r for r in rows)]
    body = [[format_value(r.get(c.key), c.fmt) for c in cols] for r in rows]
    head = [c.short for c in cols]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths))]
    lines += ["  ".join(x.rjust(w) for x, w in zip(row, widths)) for row in body]
    return "\n".join(lines)


def format_sizes(rec: Recommendation) -> str:
    """The answer beside its table: per size the held-out NLL, its gap to the best and that gap's standard
    error (``Recommendation.size_rows``)."""
    rows = rec.size_rows()
    if not rows:
        return ""
    head = list(rows[0])
    widths = [max(len(h), *(len(r[h]) for r in rows)) for h in head]
    lines = ["  ".join(h.rjust(w) for h, w in zip(head, widths)).rstrip()]
    lines += ["  ".join(r[h].rjust(w) if h else r[h] for h, w in zip(head, widths)).rstrip() for r in rows]
    return "held-out NLL per size (nats per sample):\n" + "\n".join(lines)


def _print_result(trials: list[TrialRecord], rec: Recommendation | None, run_dir: Path | None) -> None:
    print(format_table(trials))
    shared = {(t.seed, round(t.train_seconds, 1)) for t in trials if t.nested and t.train_seconds is not None}
    if shared:
        print(
            "nested: the training time of each row is that of its seed's one nested model, which served "
            f"every size ({', '.join(f'seed {s}: {sec:g} s' for s, sec in sorted(shared))})"
        )
    if rec is None:
        print("\nNo trial completed: nothing to recommend. Why each trial ended:")
        for t in trials:
            print(f"  {t.trial}: {t.status.value}: {t.reason or 'no reason recorded'}")
        return
    print("\n" + format_sizes(rec))
    print(f"\n{rec.rationale}")
    for w in rec.warnings:
        print(f"warning: {w}")
    settled = "" if rec.settled else " (not a settled answer: see the warnings)"
    if rec.settled and any(n.code == "capacity" for n in rec.notes):
        settled = " (above the intrinsic dimension: see the warning on it)"
    print(f"\nRecommended latent size: {rec.confidence}{settled}")
    if run_dir is not None:
        print(f"Run directory: {run_dir}")


def cmd_sweep(args: argparse.Namespace) -> int:
    from .grid import DimSpec

    dims = DimSpec.parse(args.dims) if args.dims else None  # parsed, not expanded: checked against the data
    from .resume import check_extend_grid

    check_extend_grid(args.extend_grid, args.resume)
    if args.mlflow or args.mlflow_uri:  # a missing package or an unwritable store fails now, not after the sweep
        from .tracking import check_tracking

        check_tracking(args.mlflow_uri)

    from .data import read_data
    from .plan import Options, resolve
    from .search import Output, execute
    from .train import TrainConfig

    train = TrainConfig(
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
    data = read_data(args.source, **_loader(args))
    options = Options(
        dims=dims,
        seeds=args.seeds,
        epochs=args.epochs,
        train=train,
        hidden=tuple(args.hidden) if args.hidden is not None else None,
        arch=args.arch,
        k=args.k,
        tolerance=args.tolerance,
        model=args.model,
        eval_samples=args.eval_samples,
        mode=args.mode,
        nested=args.nested,
        rule=args.rule,
        refine=args.refine,
        extend=args.extend,
        extend_grid=args.extend_grid,
        folds=args.folds,
        time_budget=args.time_budget,
        prune=args.prune,
        workers=args.workers,
        backend=args.backend,
        address=args.address,
        storage=args.storage,
        study_name=args.study,
        checkpoint_every=args.checkpoint_every,
        stack=args.stack,
    )
    plan = resolve(data, options)
    config = plan.config
    out = Path(args.out) if args.out else Path("runs") / data.name
    if not args.quiet:
        if plan.intrinsic is not None:
            est = plan.intrinsic
            print(
                f"intrinsic dimension ~{est.dim} (TwoNN {est.twonn:.1f}, MLE {est.mle:.1f}): sizes {list(config.dims)}",
                file=sys.stderr,
            )
        print(
            f"zdim {__version__}: {data.name} {tuple(data.sample_shape)} x {data.summary()['n_train']}"
            f" train, {data.likelihood} likelihood; sizes {list(config.dims)} x {config.seeds} seed(s),"
            f" {plan.mode.value} mode -> {out}",
            file=sys.stderr,
        )
        from .growth import reach

        if growth := reach(plan, data.n_features):
            print(growth, file=sys.stderr)
    command = " ".join(["zdim", *map(shlex.quote, args.argv)])
    output = Output(out, args.overwrite, args.resume, not args.quiet, command, _loader(args))
    result = execute(data, plan, output)
    _print_result(result.trials, result.recommendation, result.run_dir)
    _write_report(result.run_dir, args.quiet)
    if args.mlflow or args.mlflow_uri:
        from .tracking import log_sweep

        try:
            print(f"MLflow: logged {len(result.trials)} trial(s) to {log_sweep(result, args.mlflow_uri)}")
        except Exception as e:  # noqa: BLE001 - the sweep is saved; logging it is an extra
            print(
                f"zdim: warning: MLflow logging failed ({type(e).__name__}: {e}); the results are saved in "
                f"{result.run_dir}",
                file=sys.stderr,
            )
    return 0 if result.recommendation is not None else 1


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
    from .recommendation import Recommendation
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
    s.add_argument("--batch-size", type=int, default=128, help="samples per optimizer step (default 128)")
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
    s.add_argument(
        "--hidden", type=_positive_ints, default=None, help="hidden widths of zdim's VAE, e.g. 512,256 (default)"
    )
    s.add_argument(
        "--arch", choices=["mlp", "conv"], default=None, help="zdim's VAE: mlp (default) or conv (images only)"
    )
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
    g.add_argument(
        "--resume",
        action="store_true",
        help="finish the missing trials of a run directory, with the flags that made it (sizes it added "
        "itself included); other data, sizes, seeds or settings are refused",
    )
    s.add_argument(
        "--folds",
        type=int,
        metavar="K",
        help="train the grid once per fold so that every row is held out once (default: 5 folds when the "
        "test split has fewer than 150 rows, else none; 0 or 1: none)",
    )
    s.add_argument(
        "--extend-grid",
        action="store_true",
        help="with --resume: also train sizes (or more --seeds) the run did not have",
    )
    s.add_argument(
        "--storage",
        help="Optuna storage shared by several run directories: a URL such as postgresql://host/db, or the path "
        "of a journal file such as shared/study.journal (default: a file in the run dir)",
    )
    s.add_argument("--study", help="Optuna study name (default zdim-sweep)")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.add_argument(
        "--workers",
        type=int,
        default=1,
        help="processes on this machine, CPU threads split between them (default 1): settle mode spreads its "
        "members over them; per-size mode trains that many trials at once",
    )
    _add_backend_options(s)
    _switch(
        s,
        "stack",
        "settle mode: train the members of one shape as one batched model (the default on CUDA)",
        "settle mode: train each member on its own",
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
        choices=list(MODES),
        default=None,
        help="settle: every (size, seed) trains together, epoch by epoch, until the answer settles (default; "
        "--epochs is then a cap); per-size: one Optuna trial per (size, seed), each to its own end (the "
        "default with --storage or --prune; --workers alone keeps settle mode); nested: as --nested",
    )
    s.add_argument(
        "--checkpoint-every",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="settle mode: checkpoint every member this often, so a kill -9 loses at most this much training "
        "(default 300; Ctrl-C and SIGTERM always checkpoint first)",
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
    _switch(
        s,
        "refine",
        "bisect between the sizes tried down to an exact answer, and train the sizes at the intrinsic "
        "dimension when the answer is far above it (the default, except with --nested)",
        "keep the answer on the grid given: no sizes are added below the largest tried",
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
    i.add_argument("run_dir", help="the --out folder of a sweep")
    i.set_defaults(func=cmd_info)

    r = sub.add_parser("report", help="rebuild report.html of a run directory (no retraining)")
    r.add_argument("run_dir", help="the --out folder of a sweep (finished, running or interrupted)")
    r.add_argument("--out", help="HTML file to write (default RUN_DIR/report.html)")
    r.set_defaults(func=cmd_report)

    d = sub.add_parser("datasets", help="list embedded data sets and supported formats")
    d.set_defaults(func=cmd_datasets)
    return p


def _switch(p: argparse.ArgumentParser, name: str, on: str, off: str) -> None:
    """``--NAME`` / ``--no-NAME``: True, False, or None when neither is given (the default decides)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument(f"--{name}", dest=name, action="store_true", default=None, help=on)
    group.add_argument(f"--no-{name}", dest=name, action="store_false", help=off)


def _add_backend_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backend",
        choices=["local", "ray"],
        default="local",
        help="where the --workers run: local (processes on this machine, the default) or ray (Ray actors and "
        "tasks on a Ray cluster; needs pip install 'zdim[ray]' and --out on a path every node sees)",
    )
    p.add_argument(
        "--address",
        metavar="HOST:PORT",
        help="with --backend ray: the Ray cluster to join (what `ray start --head` printed); default: RAY_ADDRESS, "
        "else the cluster `ray start` began on this machine, else a local Ray instance",
    )


def _add_data_options(p: argparse.ArgumentParser) -> None:
    """How a data source is read (the same for sweep, tune and estimate-id)."""
    p.add_argument(
        "--likelihood", choices=list(LIKELIHOOD_CHOICES), default="auto", help="decoder likelihood (default auto)"
    )
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
    _add_backend_options(t)
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
    from .plan import check_backend
    from .runs import RunDir
    from .tuning import init_tune_run, tune

    check_backend(args.backend, args.address)  # before a run directory is made for a SOURCE

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
        from .config import SweepConfig
        from .data import read_data
        from .train import TrainConfig

        if args.dim is None:
            raise ConfigError(
                f"{args.run_dir} is not a run directory: to tune a data source directly "
                "pass its latent size with --dim K"
            )
        train = TrainConfig(seed=args.seed, device=args.device or "auto", binarize=args.binarize)
        data = read_data(args.run_dir, **_loader(args))
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
        backend=args.backend,
        address=args.address,
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
    from .data import read_data
    from .intrinsic import dims_from_estimate, estimate_intrinsic_dim

    data = read_data(args.source, **_loader(args))
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
    except Interrupted as e:  # settle mode: it said what it saved
        print(f"zdim: {e}", file=sys.stderr)
        return 128 + e.signum
    except KeyboardInterrupt:
        print(
            "zdim: interrupted; the trials that had finished are saved: rerun the same command with --resume "
            "to finish the others",
            file=sys.stderr,
        )
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
