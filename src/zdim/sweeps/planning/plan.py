"""What a sweep will do, resolved once and validated before anything is done.

``Options`` is what a user asked for, before any default: the command line's flags and ``zdim.sweep``'s
keywords both become one. ``resolve(data, options)`` is the one place that turns them into a
``SweepPlan``: it decides the ``Mode`` (settle unless an option needs one Optuna trial per point), fills
in the defaults that depend on it (seeds, epoch cap), builds the grid (checked against the data before
it is expanded, or from the intrinsic dimension), refuses every option that does not apply, and runs the
smallest and largest model once on a batch of the data. A bad option or a model that cannot take this
data fails in a second with one line, before a run directory is created, replaced or touched. Code that
receives a ``SweepPlan`` trusts it and never re-derives the mode.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from enum import Enum

import torch

from ...answer import signals
from ...answer.decide import POOLED
from ...answer.rules import DEFAULT_REL_TOL, DEFAULT_RULE, Question
from ...data.dataset import Data
from ...data.folds import auto_folds, check_folds
from ...errors import ConfigError
from ...evaluation.intrinsic import IntrinsicDim, dims_from_estimate, estimate_intrinsic_dim
from ...grid import DimSpec
from ...models.custom import check_model_class, check_protocol
from ...models.nested import NestedVAE
from ...models.vae import VAE
from ...options import Routed, going_to
from ...training.config import TrainConfig, resolve_device
from ...training.stopping import DEFAULT_STOPPING, STOPPING_RULES, RelativeGain, StoppingRule
from ..records.studies import cores
from .config import DEFAULT_ARCH, SweepConfig, build_sweep_model, default_hidden, model_config

SETTLE_SEEDS = 3  # seeds per size in settle mode when no seed count is given
SETTLE_EPOCHS = 500  # the epoch cap of settle mode when none is given: it stops by itself
PER_SIZE_EPOCHS = 100
DEFAULT_STUDY = "zdim-sweep"
CHECKPOINT_SECONDS = 300.0  # settle mode checkpoints every member at least this often (and on Ctrl-C)


class Mode(str, Enum):
    """How a plan is executed (one executor each, see ``zdim.sweeps.execute.EXECUTORS``)."""

    SETTLE = "settle"  # every (size, seed) trains together, epoch by epoch, until the answer settles
    PER_SIZE = "per-size"  # one Optuna trial per (size, seed), each trained to its own end
    NESTED = "nested"  # one nested VAE per seed serves every size


MODES = tuple(m.value for m in Mode)  # == zdim.formats.MODES (tests/test_plan.py)


@dataclass(frozen=True, kw_only=True)
class Running:
    """How a grid is run beyond its mode, the same as asked (``Options``) and as resolved (``SweepPlan``):
    the rule, the growth of the grid, the limits and the scale-out."""

    rule: str = DEFAULT_RULE
    stopping: str | None = None  # a name of zdim.training.stopping.STOPPING_RULES; None: the mode's (default_stopping)
    refine: bool | None = None  # None: refine between the sizes tried, unless the mode cannot (nested)
    extend: bool = True
    extend_grid: bool = False  # --resume may add sizes (and seeds) to the grid its run directory recorded
    time_budget: float | None = None
    prune: bool = False
    workers: int = 1
    storage: str | None = None
    checkpoint_every: float = CHECKPOINT_SECONDS
    stack: bool | None = None  # settle mode: members of one shape as one batched model; None: on CUDA
    folds: int | None = None  # k folds so that every row is held out once (None: under 150 test rows, 5)
    backend: str = "local"  # where the work runs: a name of zdim.sweeps.backends.BACKENDS (its option row)
    address: str | None = None  # the cluster a backend runs on (checked with it: zdim.sweeps.backends.check)


@dataclass(frozen=True, kw_only=True)
class Options(Running):
    """What a user asked for, before any default (None: not given). See ``zdim.sweep`` for each.

    ``config``, when given, is the whole training side (``dims`` still overrides its sizes); ``train``
    is the recipe whose epoch cap is replaced by ``epochs`` or by the mode's default."""

    dims: DimSpec | tuple[int, ...] | str | None = None
    seeds: int | None = None
    epochs: int | None = None
    train: TrainConfig | None = None
    hidden: tuple[int, ...] | None = None
    arch: str | None = None
    k: int = 100
    tolerance: float = DEFAULT_REL_TOL
    model: str | type | None = None
    eval_samples: int | None = None
    config: SweepConfig | None = None
    mode: str | None = None
    nested: bool = False
    study_name: str | None = None
    intrinsic: IntrinsicDim | None = None


@dataclass(frozen=True, kw_only=True)
class SweepPlan(Running):
    """A validated sweep: what is trained (``config``) and how (``mode`` and the rest); see ``resolve``."""

    config: SweepConfig
    mode: Mode = Mode.SETTLE
    study_name: str = DEFAULT_STUDY
    intrinsic: IntrinsicDim | None = None
    said: tuple[str, ...] = ()  # where the plan departs from what was asked, one line each (workers capped)
    auto_hidden: bool = False  # the widths are zdim's (``default_hidden``), not asked for: a resume keeps the run's

    def with_dims(self, dims: tuple[int, ...] | list[int]) -> SweepPlan:
        """The plan over a grown or refined grid."""
        return replace(self, config=self.config.with_dims(tuple(sorted(set(dims)))))

    def stopping_rule(self) -> type[StoppingRule]:
        """The stopping rule that says when a training of this plan has converged: the one asked for
        (``--stopping``), else the mode's (``default_stopping``)."""
        return STOPPING_RULES[self.stopping or default_stopping(self.mode)]

    def question(self, data: Data) -> Question:
        """What every answer of this sweep is asked under (``zdim.answer.decide``): the rule and its tolerance,
        the data's likelihood and feature count, the intrinsic-dimension estimate."""
        return Question(
            rule=self.rule,
            rel_tol=self.config.rel_tol,
            likelihood=data.likelihood,
            n_features=data.n_features,
            intrinsic_dim=self.intrinsic.dim if self.intrinsic else None,
        )


def options_from(routed: Routed) -> Options:
    """The ``Options`` of option keywords routed by the option table (``zdim.options.route``: checked,
    converted, sent where each goes): the ``options`` fields as they are, the ``train`` fields as one
    ``TrainConfig`` (over a ``train=`` given among ``Options``' own fields, or the defaults), and the
    keywords the table does not have as ``Options``' own fields (``train``, ``intrinsic``); any other is
    Python's ``TypeError``. The command line, ``zdim.sweep`` and ``zdim.sweeps.execute.sweep`` all build it here."""
    rest = dict(routed.rest)
    unknown = sorted(set(rest) - {f.name for f in fields(Options)})
    if unknown:
        raise TypeError(f"got an unexpected keyword argument {unknown[0]!r}")
    train = rest.pop("train", None)
    if routed["train"]:
        train = replace(train or TrainConfig(), **routed["train"])
    return Options(**routed["options"], **rest, train=train)


def check_values(options: Options) -> None:
    """Every ``Options`` field an option of the table goes to, checked by its row (``ConfigError``, one
    line naming the value and the flag): ``Options`` built directly is checked as the doors' are."""
    for row, name in going_to("options"):
        row.validate(getattr(options, name))


def resolve_mode(options: Options) -> Mode:
    """The mode a sweep runs in: ``options.mode`` when given; else nested for ``nested``; per-size when an
    option needs one Optuna trial per point (``storage``: machines sharing a study, ``prune``) and no
    time budget is asked for; settle otherwise (the default, also with ``workers > 1``: its members are
    then spread over worker processes). ``ConfigError`` for an unknown mode, or ``nested`` beside another
    mode."""
    if options.mode is not None:
        try:
            mode = Mode(options.mode)
        except ValueError:
            raise ConfigError(f"mode {options.mode!r} is not one of {', '.join(MODES)}: fix --mode") from None
        if options.nested and mode is not Mode.NESTED:
            raise ConfigError(
                f"--nested does not combine with --mode {mode.value} (--nested is --mode nested): drop one of them"
            )
        return mode
    if options.nested:
        return Mode.NESTED
    if options.time_budget is None and (options.storage is not None or options.prune):
        return Mode.PER_SIZE
    return Mode.SETTLE


def default_epochs(mode: Mode) -> int:
    """The epoch cap when none is given: ``SETTLE_EPOCHS`` in settle mode (a cap it rarely reaches: it
    stops once the answer has settled, and members early-stop), ``PER_SIZE_EPOCHS`` otherwise."""
    return SETTLE_EPOCHS if mode is Mode.SETTLE else PER_SIZE_EPOCHS


def default_seeds(mode: Mode, folds: int = 1) -> int:
    """Seeds per size when none are given: ``SETTLE_SEEDS`` in settle mode (the answer's uncertainty
    needs several; the sizes that compete for it get them, ``SweepConfig.seeded``), 1 otherwise, and 1
    with ``folds`` > 1: each size is then trained once per fold, and every held-out row's NLL comes from
    another of those trainings, so the pooled evidence already spans as many trainings as folds."""
    return SETTLE_SEEDS if mode is Mode.SETTLE and folds <= 1 else 1


def default_stopping(mode: Mode) -> str:
    """The stopping rule when none is given: settle mode's ``DEFAULT_STOPPING`` (the projected gain its
    members stop by), ``RelativeGain`` (a finished trial's record) otherwise."""
    return DEFAULT_STOPPING if mode is Mode.SETTLE else RelativeGain.name


def resolve(data: Data, options: Options, *, has_out: bool = True, resume: bool = False) -> SweepPlan:
    """The plan of a sweep of ``data``: every default filled in, every option checked against the data,
    against the mode and against where the results go (``has_out``: a run directory; ``resume``: an
    earlier one gone on with), ``ConfigError`` in one line on the first bad one. The one step every door
    passes (``zdim sweep``, ``zdim.sweep``, ``zdim.sweeps.execute.sweep``); the backend, whose table sits
    above the plan, is checked once where the work is started (``zdim.sweeps.backends.check``). Writes
    nothing; may estimate the intrinsic dimension (the grid when no sizes are given)."""
    check_values(options)
    mode = resolve_mode(options)
    _check_options(options, mode, has_out, resume)
    intrinsic = options.intrinsic
    if options.dims is not None:
        spec = options.dims if isinstance(options.dims, DimSpec) else DimSpec.of(options.dims)
        dims = spec.sizes(data.n_features, data.name)
    elif options.config is not None:
        dims = DimSpec.of(options.config.dims).sizes(data.n_features, data.name)
    else:
        seed = options.train.seed if options.train is not None else 0
        intrinsic = intrinsic or estimate_intrinsic_dim(data, seed=seed)
        dims = dims_from_estimate(intrinsic.dim, data.n_features)
    folds = _folds(options, mode, data)
    if options.config is not None:
        config = options.config.with_dims(dims)
    else:
        train = options.train or TrainConfig()
        config = SweepConfig(
            dims=dims,
            seeds=default_seeds(mode, folds) if options.seeds is None else options.seeds,
            # by default, the seeds after the first go to the sizes that compete for the answer
            seeded=() if options.seeds is None and mode is Mode.SETTLE and folds <= 1 else None,
            hidden=default_hidden(data) if options.hidden is None else tuple(options.hidden),
            arch=DEFAULT_ARCH if options.arch is None else options.arch,
            train=replace(train, epochs=default_epochs(mode) if options.epochs is None else options.epochs),
            k=options.k,
            rel_tol=options.tolerance,
            model=options.model,
            eval_samples=options.eval_samples,
        )
    if config.train.epoch_steps is None:  # the number itself: a worker in another process trains as this one
        config = replace(config, train=replace(config.train, epoch_steps=config.train.min_epoch_steps))
    if config.train.binarize and not data.extra.get("binarized"):
        raise ConfigError(
            "training with binarize needs data loaded with binarize=True (fixed binary validation and test "
            "splits): pass --binarize (zdim.sweep(..., binarize=True)), which does both"
        )
    resolve_device(config.train.device)
    check_model(data, config, nested=mode is Mode.NESTED)
    running = {f.name: getattr(options, f.name) for f in fields(Running)}
    # a nested model serves the sizes it was trained for only: it neither grows nor refines
    running["extend"] = options.extend and mode is not Mode.NESTED
    running["refine"] = mode is not Mode.NESTED if options.refine is None else options.refine
    running["folds"] = folds
    running["stopping"] = default_stopping(mode) if options.stopping is None else options.stopping
    running["workers"], said = capped_workers(options.workers, len(config.grid()), options.backend, mode)
    check_rule(options.rule, running["folds"])
    # stacked by default (CPU too: the per-member overhead of small networks is paid once per stack;
    # benchmarks/bench_stacked.py, docs/performance.md)
    running["stack"] = mode is Mode.SETTLE and (True if options.stack is None else options.stack)
    return SweepPlan(
        config=config,
        mode=mode,
        study_name=options.study_name or DEFAULT_STUDY,
        intrinsic=intrinsic,
        said=said,
        auto_hidden=options.config is None and options.hidden is None,
        **running,
    )


def capped_workers(workers: int, at_once: int, backend: str, mode: Mode | None = None) -> tuple[int, tuple[str, ...]]:
    """The workers worth starting: no more than the ``at_once`` members (settle mode; trials in per-size mode
    and tuning) that can train at once, and what to say (one line each) when more were asked, or when more
    workers than this machine has cores run on it (each then gets one thread, and they take turns)."""
    what = "members" if mode is Mode.SETTLE else "trials"
    said = []
    used = max(1, min(workers, at_once))
    if used < workers:
        said.append(f"--workers {workers} is more than the {at_once} {what} that can train at once: {used} used")
    n = cores()
    if backend == "local" and used > n:
        said.append(
            f"--workers {used} is more than this machine's {n} cores: each worker gets one thread and they take "
            f"turns, which runs slower than --workers {n}"
        )
    return used, tuple(said)


def _folds(o: Options, mode: Mode, data: Data) -> int:
    """The folds of the plan: as asked (checked against the data), or ``auto_folds`` when not asked and
    nothing rules them out (nested mode, a shared study, a time budget: one fold then)."""
    if o.folds is not None:
        k = check_folds(o.folds, data)
        clash = [(mode is Mode.NESTED, "--nested"), (o.storage is not None, "--storage")]
        clash.append((o.time_budget is not None, "--time-budget (each fold's training would stop at another point)"))
        what = next((flag for on, flag in clash if on), None)
        if k > 1 and what is not None:
            raise ConfigError(f"--folds {k} does not combine with {what}: drop one of them (--folds 1: no folds)")
        return k
    if mode is Mode.NESTED or o.storage is not None or o.time_budget is not None:
        return 1
    return auto_folds(data)


def check_rule(rule: str, folds: int | None) -> None:
    """``ConfigError`` for a rule that needs evidence the plan's trials cannot give (``Signal.evidence``):
    with folds the answer reads the pooled records, which carry ``zdim.answer.decide.POOLED``. Settle
    mode gives every rule its evidence: what it does not measure after each epoch (generation quality)
    it measures once training has ended (``zdim.answer.rules.Question.given``)."""
    if (folds or 1) <= 1:
        return
    lacking = sorted(signals.get(rule).evidence() - POOLED)
    if lacking:
        raise ConfigError(
            f"--rule {rule} reads {', '.join(lacking)}, which the {folds} folds' pooled records do not carry: "
            "choose another --rule, or --folds 1"
        )


def _check_options(o: Options, mode: Mode, has_out: bool, resume: bool) -> None:
    """Every option that does not apply to this mode, this model or where the results go: ``ConfigError``
    (the range of each value is its row's check, ``check_values``)."""
    if o.extend_grid and not resume:
        raise ConfigError("--extend-grid adds sizes to a run being resumed: pass --resume too, or drop --extend-grid")
    if o.workers > 1 and not has_out and o.storage is None:
        raise ConfigError("--workers > 1 needs a run directory (--out) or --storage to share the study")
    if o.backend != "local" and mode is Mode.PER_SIZE and not has_out and o.storage is None:
        raise ConfigError(
            f"--backend {o.backend} in per-size mode needs a run directory (--out) or --storage to share the study"
        )
    model = o.config.model if o.config is not None else o.model
    if model is not None:
        spec = model if isinstance(model, str) else getattr(model, "__name__", str(model))
        for given, flag in ((o.hidden, "--hidden"), (o.arch, "--arch")):
            if given is not None:
                raise ConfigError(
                    f"{flag} does not apply to --model {spec} (your class builds its own layers): drop {flag}"
                )
    refused: list[tuple[bool, str, str]] = []
    if mode is Mode.NESTED:
        refused = [
            (o.refine is True, "--refine", "its sizes are fixed when the nested model is trained"),
            (o.prune, "--prune", "one training serves every size"),
            (o.workers > 1, "--workers > 1", "one training serves every size; use --seeds to spread seeds"),
            (o.backend != "local", f"--backend {o.backend}", "one training serves every size, in this process"),
        ]
        for on, flag, why in refused:
            if on:
                raise ConfigError(f"{flag} does not combine with --nested ({why}): drop {flag} or --nested")
    if o.time_budget is not None and mode is not Mode.SETTLE:
        raise ConfigError(
            "--time-budget caps settle mode only: use --mode settle (the default without --storage, "
            "--prune or --nested), or drop --time-budget"
        )
    if mode is Mode.SETTLE:
        refused = [
            (o.prune, "--prune", "settle mode stops members itself"),
            (o.storage is not None, "--storage", "settle mode trains every member in one process: nothing to share"),
        ]
        for on, flag, why in refused:
            if on:
                raise ConfigError(f"{flag} does not combine with --mode settle ({why}): drop {flag}")


def check_model(data: Data, cfg: SweepConfig, *, nested: bool = False) -> None:
    """Build the smallest and largest model and run them on two training samples: a model that cannot
    take this data (architecture, shapes, NaN at initialization) fails here with one line. A user's
    model is also checked against the protocol (``zdim.models.custom.check_protocol``)."""
    check_model_class(cfg.model, nested)
    sizes = (min(cfg.dims), max(cfg.dims))
    x = data.train[:2].float()
    for dim in sizes:
        vcfg = model_config(data, dim, cfg)  # ConfigError: e.g. conv on a table
        torch.manual_seed(0)
        model: VAE = NestedVAE(vcfg, cfg.dims) if nested and dim == sizes[1] else build_sweep_model(data, dim, cfg)
        check_protocol(model, x)
        try:
            with torch.no_grad():
                rec, kl = model.elbo_terms(x)
        except Exception as e:  # noqa: BLE001 - any failure of the model on the data is the user's setting
            if cfg.model is not None:
                raise ConfigError(
                    f"--model {cfg.model} at latent size {dim} fails on {data.name!r} of shape "
                    f"{tuple(data.sample_shape)} ({type(e).__name__}: {e}): fix the model"
                ) from None
            raise ConfigError(
                f"the {cfg.arch} model of size {dim} cannot take {data.name!r} of shape "
                f"{tuple(data.sample_shape)} ({type(e).__name__}: {e}): fix --arch or --hidden"
            ) from None
        if not (torch.isfinite(rec).all() and torch.isfinite(kl).all()):
            raise ConfigError(f"the model of size {dim} gives a non-finite loss at initialization: check the data")


__all__ = [
    "Mode",
    "MODES",
    "Running",
    "Options",
    "SweepPlan",
    "resolve",
    "resolve_mode",
    "options_from",
    "check_values",
    "default_seeds",
    "default_epochs",
    "default_stopping",
    "check_model",
    "capped_workers",
    "check_rule",
    "SETTLE_EPOCHS",
    "CHECKPOINT_SECONDS",
]
