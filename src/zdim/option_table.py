"""The option table's rows: one ``Option`` per option of a sweep, in ``--help`` order (``OPTIONS``), and
the registries whose names the rows offer as choices (``Names``: read from the registry, never copied).
What a row is: ``zdim.option_spec``; what is made from the rows (flags, routing, wording, the
docstring): ``zdim.options``. Adding an option is one row here."""

from __future__ import annotations

from .formats import LIKELIHOOD_CHOICES, MODES
from .option_spec import (
    FLAG,
    OFF,
    SWITCH,
    Bounds,
    Names,
    OneOf,
    Option,
    _dims,
    column_names,
    integer,
    number_or_word,
    positive_ints,
)

RULES = Names("zdim.answer.signals", "SIGNALS")  # the rules: the signals' registry (--rule)
BACKENDS = Names("zdim.sweeps.backends", "BACKENDS")  # where the work runs: the backends' registry (--backend)
NOISE = Names("zdim.likelihoods", "NOISE_MODES")  # how a Gaussian noise scale is set (--noise)
STOPPING = Names("zdim.training.stopping", "STOPPING_RULES")  # when a training has converged (--stopping)
DEVICE_HELP = "auto (CUDA when present, else the CPU; default), cpu, cuda or cuda:N"


DATA = ("sweep", "tune", "estimate-id")  # how a data source is read: every command that reads one
TUNE = ("sweep", "tune")
SECONDS = Bounds("a number of seconds", 0, strict=True, finite=True)
FLOAT_0 = Bounds("a float", 0)

OPTIONS: tuple[Option, ...] = (
    Option(
        "dims",
        "latent sizes, e.g. 2,5,10 or 1-16 (default: powers of 2 up to a few times the intrinsic dimension)",
        convert=_dims,
        doc='Latent sizes (``[2, 4, 8]``, ``range(1, 17)`` or ``"1-16,32"``); default powers of two up to a few '
        "times the intrinsic dimension of the data.",
    ),
    Option(
        "seeds",
        "trainings per size (default 3 in settle mode, else 1)",
        parse=int,
        check=integer(1),
        doc="Independent trainings per size (seeds ``seed, seed+1, ...``); default 3 in settle mode, else 1.",
    ),
    Option(
        "epochs",
        "maximum epochs per trial (default 500 in settle mode, where it is a cap, else 100)",
        parse=int,
        check=integer(1),
        commands=TUNE,
        per_command={"tune": {"help": "maximum epochs per trial (default: the sweep's)"}},
    ),
    Option(
        "patience",
        "early-stopping patience in epochs (0: off)",
        10,
        parse=int,
        check=integer(0),
        to=("train.patience",),
    ),
    Option(
        "lr_patience",
        "epochs without a better validation -ELBO before the learning rate is lowered (x0.3, at most 3 times; "
        "0: never); early stopping waits for a first lowering (default 5)",
        5,
        parse=int,
        check=integer(0),
        to=("train.lr_patience",),
    ),
    Option(
        "epoch_steps",
        "the fewest optimizer steps in one epoch: a small training split is passed over several times per "
        "epoch (default 100)",
        parse=int,
        check=integer(1),
        to=("train.epoch_steps",),
    ),
    Option(
        "batch_size",
        "samples per optimizer step (default 128)",
        128,
        parse=int,
        check=integer(1),
        to=("train.batch_size",),
    ),
    Option(
        "lr",
        "Adam learning rate (default 1e-3)",
        1e-3,
        parse=float,
        check=Bounds("a float", 0, 10, strict=True),
        to=("train.lr",),
    ),
    Option(
        "beta",
        "KL weight (default 1)",
        1.0,
        parse=float,
        check=Bounds("a finite float", 0, finite=True),
        to=("train.beta",),
    ),
    Option(
        "warmup",
        "KL warm-up length in epochs (default 0)",
        0.0,
        parse=float,
        check=FLOAT_0,
        to=("train.warmup_epochs",),
    ),
    Option(
        "free_bits", "free bits per unit in nats (default 0)", 0.0, parse=float, check=FLOAT_0, to=("train.free_bits",)
    ),
    Option(
        "sigma_init",
        "Gaussian decoder: starting noise scale per standardized feature, a number or 'pca' (default auto: 0.1 "
        "with the linear start, else off)",
        "auto",
        parse=number_or_word,
        to=("train.sigma_init",),
        doc="Gaussian decoder only: the noise scale a model is given (a number per standardized feature, or "
        '``"pca"``); ``"auto"`` (default): 0.1 on Gaussian data with the linear start '
        "(``Likelihood.wakeup``), else off; "
        "``sigma_init=1.0, sigma_warmup=0`` turns the levers off. ``TrainConfig`` checks it.",
    ),
    Option(
        "sigma_warmup",
        "Gaussian decoder: epochs the noise scale is held at its start (default auto: 1 with the linear start; 0: off)",
        "auto",
        parse=number_or_word,
        to=("train.sigma_warmup_epochs",),
        doc="Gaussian decoder only: the epochs the noise scale is held at ``sigma_init`` before it is "
        'learned; ``"auto"`` (default): 1 on Gaussian data with the linear start, else 0 (off).',
    ),
    Option(
        "sigma_after",
        "apply --sigma-init and --sigma-warmup after this epoch, to a model still ignoring its latents "
        "then (0: from the start, to every model; default auto: 0)",
        "auto",
        parse=number_or_word,
        to=("train.sigma_after",),
        doc="Gaussian decoder only: the epoch after which ``sigma_init`` and the hold apply, to a model "
        'still ignoring its latents then (0: from the start, to every model); ``"auto"`` (default): '
        "0 (from the start, with the linear start).",
    ),
    Option(
        "noise",
        "Gaussian decoder: its noise scale calibrated in closed form from the residuals (default) or learned",
        "calibrated",
        choices=NOISE,
        check=OneOf(NOISE),
        to=("train.noise",),
        doc='Gaussian decoder only: ``"calibrated"`` (default) sets the noise scale per feature in closed form '
        'to the one that maximizes the likelihood of the residuals (Rybkin et al. 2021); ``"learned"`` trains it.',
    ),
    Option(
        "hidden",
        "hidden widths of zdim's VAE, e.g. 512,256 (default: 512,256 for images; 3 layers of about "
        "2 x sqrt(training rows), 32 to 256, for tables)",
        parse=positive_ints,
        convert=tuple,
        doc="Hidden widths of zdim's VAE (the decoder mirrors the encoder); default ``(512, 256)`` for images, "
        "three layers of about ``2 * sqrt(n_train)`` (a power of two in [32, 256]) for tables "
        "(``zdim.sweeps.planning.config.default_hidden``).",
    ),
    Option(
        "arch",
        "zdim's VAE: mlp (default) or conv (images only)",
        check=OneOf(("mlp", "conv")),  # == zdim.models.vae.ARCHS (tests/test_options.py)
        doc='Network family of zdim\'s VAE (``conv`` for images); default ``"mlp"``. Neither applies to '
        "``model``: giving them with it is an error.",
    ),
    Option(
        "model",
        "your own model class instead of zdim's VAE: path/to/models.py:MyVAE or package.module:MyVAE "
        "(see docs/guide.md, 'Your own model'; --hidden and --arch do not apply)",
        metavar="SPEC",
        doc='Your own model (see "Your own model" in docs/guide.md): a class, ``"path/file.py:ClassName"`` '
        'or ``"package.module:ClassName"``; default zdim\'s VAE (``hidden``/``arch`` do not apply to yours).',
    ),
    # how a data source is read: the same for sweep, tune and estimate-id
    Option(
        "likelihood",
        "decoder likelihood (default auto)",
        "auto",
        choices=LIKELIHOOD_CHOICES,
        to=("loader.likelihood",),
        commands=DATA,
        doc="Decoder likelihood (see ``zdim.load_data``; ``mixed``: tables with text columns).",
    ),
    Option(
        "label_column",
        "CSV/Parquet column holding labels (kept for evaluation)",
        to=("loader.label_column",),
        commands=DATA,
    ),
    Option(
        "keep_columns",
        "table columns to model as they are, e.g. id,date: by default a column holding one value is dropped, "
        "and a text column with a distinct value in nearly every row (an identifier or a date) is refused",
        metavar="NAME,...",
        convert=column_names,
        to=("loader.keep_columns",),
        commands=DATA,
        doc='Table columns to model as they are (``["id", "date"]`` or ``"id,date"``): by default a column '
        "holding one value in every row is dropped, and a text column with a distinct value in nearly every "
        "row (an identifier or a date) is refused.",
    ),
    Option(
        "max_samples",
        "use at most this many samples (quick runs)",
        parse=int,
        to=("loader.max_samples",),
        commands=DATA,
    ),
    Option(
        "seed",
        "base seed (split, init, sampling)",
        0,
        parse=int,
        check=Bounds("an integer", integer=True),
        to=("loader.seed", "train.seed"),
        commands=DATA,
        doc="Base seed (split, initialization, sampling).",
    ),
    Option(
        "array",
        ".npz only: the array to read, e.g. X_train (default: X_train + X_test, or X)",
        metavar="NAME",
        to=("loader.array",),
        commands=DATA,
        doc='The array of an ``.npz`` file to read (e.g. ``"X_train"``); by default a file holding '
        "``X_train`` and ``X_test`` gives the training samples and the test split.",
    ),
    Option(
        "test",
        "your own test split (a file like SOURCE, same features; scaled and standardized like the training data)",
        metavar="DATA",
        to=("loader.test",),
        commands=DATA,
        doc="Your own test split (a path, array, tensor or DataFrame): same features, scaled and standardized "
        "like the training split.",
    ),
    Option(
        "layer", ".h5ad only: the .layers entry to read, e.g. counts (default .X)", to=("loader.layer",), commands=DATA
    ),
    Option("label_key", ".h5ad only: the .obs column holding labels", to=("loader.label_key",), commands=DATA),
    Option(
        "binarize",
        "data in [0, 1]: binarize the validation and test splits once and each training batch afresh "
        "(dynamically binarized MNIST, as in the literature)",
        False,
        kind=FLAG,
        to=("loader.binarize", "train.binarize"),
        commands=DATA,
        doc="Data in [0, 1]: fixed binarized validation and test splits and a fresh binary sample of "
        "every training batch (dynamically binarized MNIST, comparable with the literature).",
    ),
    Option("y", "labels of the samples of the source (evaluation only), one per sample", flag=None, to=("loader.y",)),
    Option(
        "val_fraction",
        "fraction of the samples held out for validation",
        0.1,
        flag=None,
        to=("loader.val_fraction",),
        doc="Fraction of the samples held out for validation (as in ``zdim.load_data``).",
    ),
    Option(
        "test_fraction",
        "fraction of the samples held out for the test split",
        0.1,
        flag=None,
        to=("loader.test_fraction",),
        doc="Fraction of the samples held out for the test split (as in ``zdim.load_data``; a given "
        "``test`` replaces it).",
    ),
    Option(
        "k",
        "importance samples for held-out NLL (default 100)",
        100,
        parse=int,
        check=integer(1),
        doc="Importance samples of the held-out NLL.",
    ),
    Option(
        "eval_samples",
        "evaluate every trial on N test samples (one fixed random subset, the same for all), and the "
        "recommended size on the whole test split too (default: the whole test split for every trial)",
        parse=int,
        metavar="N",
        check=integer(1),
        doc="Evaluate every trial on this many test samples (one fixed random subset, the same for every "
        "trial) and the recommended size on the whole test split too (``recommendation.full_test``).",
    ),
    Option(
        "tolerance",
        "relative NLL tolerance of the recommendation rule (default 0.01)",
        0.01,
        parse=float,
        check=Bounds("a finite number", 0, finite=True),
        doc="Relative NLL tolerance of the recommendation rule.",
    ),
    Option(
        "device",
        DEVICE_HELP,
        "auto",
        to=("train.device",),
        commands=TUNE,
        per_command={"tune": {"help": DEVICE_HELP + " (default: the sweep's, auto for a SOURCE)", "default": None}},
        words=("cpu", "cuda"),
        doc='``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.',
    ),
    Option(
        "out",
        "run directory (default runs/NAME)",
        to=("run.out",),
        commands=TUNE,
        per_command={"tune": {"help": "run directory when tuning a SOURCE directly (default runs/NAME-dim-K)"}},
        doc="Run directory (every trial saved as it finishes, with ``report.html`` at the end); without it "
        "nothing is written.",
    ),
    Option(
        "overwrite",
        "replace an existing run directory (only one zdim made)",
        False,
        kind=FLAG,
        to=("run.overwrite",),
        commands=TUNE,
        per_command={"tune": {"help": "replace an existing --out directory"}},
        group="target",
        doc="When ``out`` exists: replace it (only a folder zdim made).",
    ),
    Option(
        "resume",
        "finish the missing trials of a run directory, with the flags that made it (sizes it added "
        "itself included); other data, sizes, seeds or settings are refused",
        False,
        kind=FLAG,
        to=("run.resume",),
        commands=TUNE,
        per_command={"tune": {"help": "continue tuning in an existing --out directory"}},
        group="target",
        doc="When ``out`` exists: finish its missing trials (a ``resume`` of a folder that holds no run, "
        "or with other data, sizes, seeds or settings than the run was made with, raises "
        "``zdim.errors.RunDirError``).",
    ),
    Option(
        "folds",
        "train the grid once per fold so that every row is held out once (default: 5 folds when the "
        "test split has fewer than 150 rows, else none; 0 or 1: none)",
        parse=int,
        metavar="K",
        check=integer(0),
        doc="Train the grid once per fold so that every row is held out once (``zdim.data.folds``); None (the "
        "default): 5 folds when the test split has fewer than 150 rows, else none; 0 or 1: none.",
    ),
    Option(
        "extend_grid",
        "with --resume: also train sizes (or more --seeds) the run did not have",
        False,
        kind=FLAG,
        doc="With ``resume``: also train sizes (or more ``seeds``) the run did not have.",
    ),
    Option(
        "storage",
        "Optuna storage shared by several run directories: a URL such as postgresql://host/db, or the path "
        "of a journal file such as shared/study.journal (default: a file in the run dir)",
        commands=TUNE,
        per_command={"tune": {"help": "Optuna storage URL (default: RUN_DIR/tune/study.journal)"}},
        doc="Optuna storage URL (or journal file), to share a sweep between workers or machines.",
    ),
    Option(
        "study_name",
        "Optuna study name (default zdim-sweep)",
        flag="--study",
        commands=TUNE,
        per_command={"tune": {"help": "Optuna study name (default zdim-tune-dim-K)"}},
        doc='Optuna study name (default ``"zdim-sweep"``).',
    ),
    Option(
        "progress",
        "no progress bars",
        False,
        flag="--quiet",
        kind=OFF,
        to=("run.progress",),
        commands=TUNE,
        doc="Progress bars on stderr (the command line shows them unless ``--quiet``).",
    ),
    Option(
        "workers",
        "processes on this machine, CPU threads split between them (default 1): settle mode spreads its "
        "members over them; per-size mode trains that many trials at once",
        1,
        parse=int,
        check=integer(1),
        commands=TUNE,
        per_command={"tune": {"help": "trials at once, one process each"}},
        doc="Processes on this machine: settle mode spreads its members over them (one answer, decided in"
        " this process); per-size mode trains that many trials at once.",
    ),
    Option(
        "backend",
        "where the --workers run: local (processes on this machine, the default) or ray (Ray actors and tasks "
        "on a Ray cluster; needs pip install 'zdim[ray]' and --out on a path every node sees)",
        "local",
        check=OneOf(BACKENDS),
        commands=TUNE,
        doc="Where the work runs: ``local`` (this process, or ``workers`` processes on this machine) or"
        " ``ray`` (``workers`` Ray actors and tasks on a Ray cluster; ``pip install 'zdim[ray]'``).",
    ),
    Option(
        "address",
        "with --backend ray: the Ray cluster to join (what `ray start --head` printed); default: RAY_ADDRESS, "
        "else the cluster `ray start` began on this machine, else a local Ray instance",
        metavar="HOST:PORT",
        commands=TUNE,
        doc="With ``backend='ray'``: the Ray cluster to join (``HOST:PORT``); default Ray's own rule.",
    ),
    Option(
        "stack",
        "settle mode: train the members of one shape as one batched model (the default)",
        kind=SWITCH,
        off="settle mode: train each member on its own",
    ),
    Option("prune", "stop a seed early when it trails the other seeds of the same size", False, kind=FLAG),
    Option(
        "rule",
        "recommendation rule (default combined; see docs/recommendation.md)",
        "combined",
        check=OneOf(RULES),
        doc="Recommendation rule (see ``zdim.answer.signals.SIGNALS`` and docs/recommendation.md).",
    ),
    Option(
        "stopping",
        "the stopping rule that says when a training has converged (default: settle mode's projected gain; "
        "in per-size and nested mode, the gain relative to the best validation -ELBO)",
        check=OneOf(STOPPING),
        doc="The stopping rule that says when a training has converged (``zdim.training.stopping.STOPPING_RULES``):"
        " settle mode's members stop by it, a per-size or nested trial's record says by it whether it converged."
        " Default: settle mode's projected gain (``ProjectedGain``), the relative gain (``RelativeGain``) in"
        " the other modes.",
    ),
    Option(
        "mode",
        "settle: every (size, seed) trains together, epoch by epoch, until the answer settles (default; "
        "--epochs is then a cap); per-size: one Optuna trial per (size, seed), each to its own end (the "
        "default with --storage or --prune; --workers alone keeps settle mode); nested: as --nested",
        check=OneOf(MODES),
        doc="``settle`` trains every (size, seed) together and stops once the answer has settled "
        "(``epochs`` is then a cap); ``per-size`` trains one Optuna trial per (size, seed) to its own"
        " end; ``nested`` is ``nested=True``. Default: settle (with ``workers > 1`` too: its members "
        "are spread over the worker processes), per-size where ``storage`` or ``prune`` needs one "
        "Optuna trial per point, or nested with ``nested=True``.",
    ),
    Option(
        "checkpoint_every",
        "settle mode: checkpoint every member this often, so a kill -9 loses at most this much training "
        "(default 300; Ctrl-C and SIGTERM always checkpoint first)",
        300.0,
        parse=float,
        metavar="SECONDS",
        check=SECONDS,
        doc="Settle mode: seconds between checkpoints of every member in the run directory (default 300),"
        " so a killed process loses at most that much training; an interrupt (Ctrl-C, SIGTERM) "
        "checkpoints first and raises ``zdim.errors.Interrupted``.",
    ),
    Option(
        "time_budget",
        "settle mode: stop every member after this much training time (default: no limit)",
        parse=float,
        metavar="SECONDS",
        check=SECONDS,
        doc="Settle mode only: seconds of training after which every member stops.",
    ),
    Option(
        "nested",
        "train one nested VAE per seed at the largest size and cut every size out of it "
        "(one training instead of one per size; see docs/recommendation.md)",
        False,
        kind=FLAG,
    ),
    Option(
        "refine",
        "bisect between the sizes tried down to an exact answer, and train the sizes at the intrinsic "
        "dimension when the answer is far above it (the default, except with --nested)",
        kind=SWITCH,
        off="keep the answer on the grid given: no sizes are added below the largest tried",
    ),
    Option(
        "extend",
        "never add larger sizes (by default, when the largest size is chosen with every unit active, "
        "the grid grows by doubling up to the feature count)",
        True,
        kind=OFF,
        doc="When the largest size tried is chosen with every unit active, add larger sizes and go on.",
    ),
    Option(
        "mlflow",
        "log each trial (parameters, metrics, weights) to MLflow, by default a file store in "
        "RUN_DIR/mlruns; needs pip install 'zdim[mlflow]'",
        False,
        kind=FLAG,
        to=("cli.mlflow",),
        api=False,
    ),
    Option(
        "mlflow_uri",
        "MLflow tracking URI for --mlflow (implies --mlflow)",
        metavar="URI",
        to=("cli.mlflow_uri",),
        api=False,
    ),
    Option(
        "report",
        "write no report.html in the run directory (zdim report RUN_DIR writes it later)",
        True,
        kind=OFF,
        to=("api.report",),
        commands=("sweep", "tune"),
        doc="With ``out``, write ``out/report.html`` (``zdim.build_report(out)`` rebuilds it).",
    ),
    Option(
        "config",
        "full control over the grid, architecture and training",
        flag=None,
        doc="Full control over the grid, architecture and training (a ``SweepConfig``); when given it replaces "
        "``seeds`` to ``model`` and ``seed``/``device`` of training (``dims`` still overrides its sizes).",
    ),
)
