"""The ``zdim`` command: one small function per subcommand that parses its flags into the public
calls' arguments (``zdim.sweeps.planning.plan.Options`` for a sweep), calls them and prints (``zdim.printing``); the
decisions (the mode, the defaults, every check) are made in the code it calls. The flags of ``sweep``,
and those ``tune`` and ``estimate-id`` share with it, are the option table's (``zdim.options``).

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
from typing import Any

from ._version import __version__
from .errors import ConfigError, Interrupted, WorkerError, ZdimError
from .options import add_arguments, for_command, given, route
from .records import OBJECTIVES


def _seeds_text(config: Any) -> str:
    """``3 seed(s)``, or ``1 seed (3 for the sizes that compete for the answer)`` (``SweepConfig.seeded``)."""
    if config.seeded is None or config.seeds <= 1:
        return f"{config.seeds} seed(s)"
    return f"1 seed ({config.seeds} for the sizes that compete for the answer)"


def cmd_sweep(args: argparse.Namespace) -> int:
    routed = route(given(args, "sweep"))  # every value checked (dims parsed, not expanded) before anything is read
    if args.mlflow or args.mlflow_uri:  # a missing package or an unwritable store fails now, not after the sweep
        from .tracking import check_tracking

        check_tracking(args.mlflow_uri)

    from .data.dataset import read_data
    from .printing import print_result, write_report
    from .sweeps.execute import Output, execute
    from .sweeps.planning.plan import options_from, resolve

    options = options_from(routed)
    loader = routed.loader()
    data = read_data(args.source, **loader)
    plan = resolve(data, options, resume=args.resume)
    config = plan.config
    out = Path(args.out) if args.out else Path("runs") / data.name

    def header() -> None:  # once every check has passed (a bad input stays one line), before anything is written
        if plan.intrinsic is not None:
            est = plan.intrinsic
            print(
                f"intrinsic dimension ~{est.dim} (TwoNN {est.twonn:.1f}, MLE {est.mle:.1f}): sizes {list(config.dims)}",
                file=sys.stderr,
            )
        print(
            f"zdim {__version__}: {data.name} {tuple(data.sample_shape)} x {data.summary()['n_train']}"
            f" train, {data.likelihood} likelihood; sizes {list(config.dims)} x {_seeds_text(config)},"
            f" {plan.mode.value} mode -> {out}",
            file=sys.stderr,
        )
        from .sweeps.executors.growth import reach

        if growth := reach(plan, data.n_features):
            print(growth, file=sys.stderr)

    command = " ".join(["zdim", *map(shlex.quote, args.argv)])
    output = Output(
        out,
        args.overwrite,
        args.resume,
        args.progress,
        command,
        loader,
        ready=header if args.progress else None,
        say=say,
    )
    result = execute(data, plan, output)
    print_result(result.trials, result.recommendation, result.run_dir)
    if args.report:
        write_report(result.run_dir, not args.progress)
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


def say(line: str) -> None:
    """A line the user should hear before anything trains (what reading the data did, workers capped),
    on stderr; a sweep says its lines once every check has passed, so bad input stays one line."""
    from tqdm import tqdm  # above a progress bar that is showing, without breaking it

    tqdm.write(f"zdim: {line}", file=sys.stderr)


def say_notes(data: Any) -> None:
    """What reading the data did (a column dropped, a column modelled as yes/no, the separator found)."""
    for note in data.extra.get("notes", ()):
        say(f"{data.name}: {note}")


def cmd_report(args: argparse.Namespace) -> int:
    from .report import build_report

    if args.out and Path(args.out).is_dir():
        raise ConfigError(f"--out {args.out} is a folder: name the HTML file to write, e.g. {args.out}/report.html")
    path = build_report(args.run_dir, out=args.out)
    print(f"Report: {path}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from .answer.recommendation import Recommendation
    from .printing import format_folds, print_result
    from .sweeps.executors.folded import read_fold_tables
    from .sweeps.records.runs import RunDir

    run = RunDir.open(args.run_dir)
    info = run.read_info()
    d = info.get("data", {})
    print(
        f"{run.path}: {d.get('name')} {d.get('sample_shape')} ({d.get('likelihood')}), "
        f"sizes {info.get('sweep', {}).get('dims')}"
    )
    if info.get("command"):
        print(f"command: {info['command']}")
    from .sweeps.records.resume import reproduce

    if line := reproduce(info):
        print(f"reproduce: {line}")
    saved = run.read_recommendation()
    folds = read_fold_tables(run)
    if folds is not None:  # the rows pooled over every fold, as the sweep printed them and results.csv holds
        print(f"trials pooled over {len(folds.folds)} folds (every row held out once):")
    print_result(folds.pooled if folds else run.records(), Recommendation.from_dict(saved) if saved else None, None)
    if folds is not None:
        print("\n" + format_folds(folds.folds, folds.folders))
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
    add_arguments(s, "sweep")  # every flag of a sweep is a row of zdim.options.OPTIONS
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
        "--objective", choices=list(OBJECTIVES), default="nll", help="validation figure to minimize (default nll)"
    )
    add_arguments(t, "tune", ["epochs", "workers", "backend", "address"])  # the rows tune shares with sweep
    t.add_argument("--no-prune", dest="prune", action="store_false", help="never stop trials early")
    add_arguments(t, "tune", ["storage", "study_name", "progress", "device"])
    t.add_argument(
        "--trust-code",
        action="store_true",
        help="tune a sweep of your own model (--model): imports and runs that code",
    )
    add_arguments(t, "tune", [o.keyword for o in for_command("estimate-id")])  # how a data source is read
    add_arguments(t, "tune", ["out", "overwrite", "resume", "report"])
    t.set_defaults(func=cmd_tune)


def cmd_tune(args: argparse.Namespace) -> int:
    import inspect

    from .sweeps.records.runs import RunDir
    from .tuning import check_resumable, init_tune_run, run_tune, tune_study

    values = given(args, "tune")
    routed = route(values)
    run_dir, data = Path(args.run_dir), None
    if RunDir(run_dir).run_json.is_file():
        # the data options (--seed aside: it is not refused) apply to a source, not to a run directory
        given_flags = [
            o.flag_text for o in for_command("estimate-id") if o.keyword != "seed" and values[o.keyword] != o.default
        ]
        if given_flags:
            raise ConfigError(
                f"{given_flags[0]} applies to a data SOURCE: {args.run_dir} is a run directory, whose data is "
                f"reloaded as its sweep read it; drop {given_flags[0]}"
            )
    else:  # a data source: tune one size directly
        from .data.dataset import read_data
        from .sweeps.planning.config import SweepConfig
        from .training.config import TrainConfig

        if args.dim is None:
            raise ConfigError(
                f"{args.run_dir} is not a run directory: to tune a data source directly "
                "pass its latent size with --dim K"
            )
        from .sweeps.backends import join

        join(values["backend"], values["address"])  # a cluster is joined before the tune run directory is made
        train = TrainConfig(**(routed["train"] | {"device": args.device or "auto"}))
        data = read_data(args.run_dir, **routed.loader())
        run_dir = Path(args.out) if args.out else Path("runs") / f"{data.name}-dim-{args.dim}"
        if args.resume and RunDir(run_dir).run_json.is_file():  # refused before run.json is written again
            check_resumable(RunDir(run_dir), args.dim, args.storage, tune_study(args.dim, args.study_name))
        init_tune_run(
            data,
            args.dim,
            run_dir,
            SweepConfig(dims=(args.dim,), train=train),
            overwrite=args.overwrite,
            resume=args.resume,
            command=" ".join(["zdim", *map(shlex.quote, args.argv)]),
            loader=routed.loader(),
        )
        say_notes(data)
    shared = {k: v for k, v in values.items() if k in inspect.signature(run_tune).parameters}  # epochs, workers, ...
    res = run_tune(
        run_dir,
        dim=args.dim,
        n_trials=args.trials,
        objective=args.objective,
        prune=args.prune,
        data=data,
        trust_code=args.trust_code,
        **shared,
    )
    print(res.summary())
    if args.report:
        from .printing import write_report

        write_report(run_dir, not args.progress)
    return 0


def _add_estimate_id_parser(sub: Any) -> None:
    e = sub.add_parser("estimate-id", help="estimate the intrinsic dimension of a data source")
    e.add_argument("source", help="data: a file, a folder, or an embedded name")
    e.add_argument("--n", type=int, default=1000, help="points per subsample (default 1000)")
    e.add_argument("--repeats", type=int, default=5, help="subsamples, for the spread (default 5)")
    add_arguments(e, "estimate-id")
    e.set_defaults(func=cmd_estimate_id)


def cmd_estimate_id(args: argparse.Namespace) -> int:
    from .data.dataset import read_data
    from .evaluation.intrinsic import dims_from_estimate, estimate_intrinsic_dim

    data = read_data(args.source, **route(given(args, "estimate-id")).loader())
    say_notes(data)
    est = estimate_intrinsic_dim(data, n=args.n, repeats=args.repeats, seed=args.seed)
    print(f"{data.name}: {data.n_features} features, training split of {data.summary()['n_train']}")
    print(est.table())
    print(f"default sweep sizes: {list(dims_from_estimate(est.dim, data.n_features))}")
    return 0


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
