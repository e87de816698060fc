"""The `calkit` command line: run, resume, report, query, ingest, export."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from calkit import __version__, cli_people
from calkit.errors import CalkitError

if TYPE_CHECKING:
    from calkit.config import RunConfig

#: Exit status of `run`, `resume` and `status` when the run stopped to wait for people's labels:
#: neither done (0) nor failed (2), so that scripts can tell them apart; and when another process
#: is training it.
EXIT_AWAITING_LABELS = 3
EXIT_TRAINING_ELSEWHERE = 4
EXIT_STATUS = {"awaiting_labels": EXIT_AWAITING_LABELS, "training": EXIT_TRAINING_ELSEWHERE}

#: The seeds of published benchmark numbers: never used while tuning (tuning uses 0, 1, 2).
PUBLISHED_SEEDS = (100, 101, 102, 103, 104)


def run_flags() -> list[tuple[str, type, str]]:
    """Flags of `calkit run` that map one-to-one onto RunConfig fields: (flag, type, help).

    Built on demand, not at import: the choices come from the registries (plugins included) and
    the defaults quoted from the presets and policies, which import torch, and `calkit --version`
    should not wait for that. Booleans are separate (BOOLEAN_FLAGS), each with its --no- form.
    """
    from calkit.acquisition import ACQUISITIONS
    from calkit.oracle import ORACLES
    from calkit.policies import PRESETS, make_policy, policy_names
    from calkit.policies.mir import DEFAULT_CANDIDATES
    from calkit.policies.replay import DEFAULT_CAL_EPOCHS
    from calkit.resolve import DEFAULT_INITIAL_ACCURACY, DEFAULT_INITIAL_MAX_EPOCHS

    cal, tuned = PRESETS["cal"].settings, PRESETS["reset-tuned"].settings
    der, sd, sds2 = (make_policy(name).defaults(64) for name in ("der", "sd", "sds2"))
    replay_ratio = make_policy("er").defaults(64)["replay_ratio"]
    presets = "; ".join(f"{p.name}: {p.summary}" for p in PRESETS.values()).replace("%", "%%")
    return [
        ("dataset", str, "digits, fashion-mnist, fine-foods, vader-amazon, pbmc, or a .npz/.csv/.jsonl/.tsv file "
         "(`calkit data list` shows all) [digits]"),
        ("data-dir", str, "folder holding the dataset's files (e.g. Fashion-MNIST IDX files)"),
        ("model", str, "mlp, mlp:512-256, convnet, convnet:32-64 [mlp]"),
        ("dropout", float, "dropout in the model [0]"),
        ("policy", str, f"one of {', '.join(policy_names())} [reset]. Presets: {presets}"),
        ("acquisition", str, f"one of {', '.join(ACQUISITIONS.names())} [entropy]"),
        ("initial", int, "size of the random initial set [100]"),
        ("round-size", int, "items labeled per round after the initial one [100]"),
        ("rounds", int, "number of rounds, the initial one included"),
        ("budget", str, "stop at this many labels: a count (6000), fraction (0.1) or percentage (10%%)"),
        ("seed", int, "seed of every random choice [0]"),
        ("oracle", str, f"{' or '.join(ORACLES)}: known labels, or people answering through the API, files "
         "(query/ingest) or the web application ('files' is an alias of 'people') [simulated]"),
        ("annotators", int, "oracle simulated: annotators sharing each query, sim-0, sim-1, ... [1]"),
        ("label-noise", float, "oracle simulated: each answer is wrong with this probability [0]"),
        ("noise-model", str, "uniform (a wrong answer is any other class) or pairs (each class is mistaken for "
         "one fixed other class) [uniform]"),
        ("optimizer", str, "adam or sgd [adam]"),
        ("lr", float, "learning rate [0.001]"),
        ("later-lr-factor", float, f"rounds after the initial one start from --lr times this "
         f"[1; reset-tuned: {tuned['later_lr_factor']:g}]"),
        ("momentum", float, "SGD momentum [0.9]"),
        ("weight-decay", float, "weight decay [0]"),
        ("batch-size", int, "training minibatch size [64]"),
        ("initial-accuracy", float, "the initial round (every policy alike): train until the epoch's running accuracy "
         f"reaches this [{DEFAULT_INITIAL_ACCURACY:g}]"),
        ("initial-max-epochs", int, f"epoch cap of the initial round [{DEFAULT_INITIAL_MAX_EPOCHS}]"),
        ("epochs", int, "train a fixed number of epochs per round after the initial one (overrides --train-accuracy)"),
        ("train-accuracy", float, "train each round until the epoch's running accuracy reaches this "
         "[0.99 for reset/warm]"),
        ("new-accuracy", float, "continual policies: train each round until the running accuracy on its new "
         f"items reaches this [cal: {cal['new_accuracy']:g}; the paper's policies train fixed epochs]"),
        ("max-epochs", int, "epoch cap of standard AL's rounds after the initial one [reset: 50; reset-tuned: "
         f"{tuned['max_epochs']}]"),
        ("max-new-epochs", int, "epoch cap of a continual round under --new-accuracy, instead of --labeled-passes "
         f"[{DEFAULT_CAL_EPOCHS}]"),
        ("labeled-passes", float, "continual policies: a round takes ceil(K x labeled / new) epochs over its new items, "
         f"K passes' worth of the labeled set [cal: {cal['labeled_passes']:g}]"),
        ("min-round-steps", int, "continual policies under --labeled-passes: at least this many optimizer steps a round "
         f"[cal: {cal['min_round_steps']}]"),
        ("shrink", float, "policies that keep the model: multiply its weights by this before each later round "
         f"[cal: {cal['shrink']:g}; others 1, off]"),
        ("perturb", float, f"with --shrink: add this times a fresh initialisation [cal: {cal['perturb']:g}; others 0]"),
        ("replay-size", int, "continual policies: replayed items per step, m' [policy default]"),
        ("replay-fraction", float, "continual policies: m'/(m+m') instead of --replay-size"),
        ("replay-ratio", float, f"continual policies: m'/m instead of --replay-size [cal: {cal['replay_ratio']:g}; "
         f"the paper's policies {replay_ratio:g}]"),
        ("alpha", float, f"der: logit-MSE weight [{der['alpha']:g}]; sd/sds2: KL share of the replay loss "
         f"[{sd['alpha']:g}]"),
        ("beta", float, f"der: CE weight on replayed items [{der['beta']:g}]"),
        ("candidates", int, f"mir/sds2: history candidates scored per step, C [max(2m', {DEFAULT_CANDIDATES})]"),
        ("lam-s", float, f"sds2: weight of the uncertainty term [{sds2['lam_s']:g}]"),
        ("kernel-width", float, "sds2: RBF kernel width [median heuristic]"),
        ("schedule", str, "learning-rate schedule: constant, cosine (restarted each round), infinite or wsd "
         "(anneal a copy for use each round) [constant; cal, reset-tuned: cosine]"),
        ("warmup", float, "cosine/infinite/wsd: warm-up share of the horizon [0.01]"),
        ("min-lr-factor", float, "cosine/infinite/wsd: the rate decays and anneals end at, times --lr [0.1]"),
        ("const-lr-factor", float, "infinite: the constant rate between anneals, times --lr [0.55]"),
        ("cooldown", str, "infinite: cosine or inv-sqrt [cosine]"),
        ("anneal-epochs", int, "infinite/wsd: epochs of each round's anneal [1]"),
        ("device", str, "cpu or cuda [cpu]"),
        ("loader-workers", int, "streamed data (--stream, or a pool of .npy files on disk): DataLoader processes "
         "reading batches ahead [0: read in the main process]"),
        ("score-batch-size", int, "batch size for scoring the pool and evaluating [4096]"),
        ("score-multiple", int, "score a seeded random subset of this many times the round size instead of "
         "the whole unlabeled pool [whole pool]"),
        ("test-fraction", float, "held-out test share for data without a test split [0.2]"),
        ("val-fraction", float, "share of a labeled pool held out as the validation split, for tuning; data with its "
         "own keeps it [0.2]"),
        ("label-column", str, "label column of a CSV dataset [label]"),
        ("pool-size", int, "use a fixed random subset of this many pool items [all]"),
        ("keep-checkpoints", str, "all or last [all]"),
    ]


#: RunConfig's boolean settings: each has --NAME and --no-NAME; unset leaves it to the policy.
BOOLEAN_FLAGS = (
    ("mir-sampling", "mir: sample replay by softmax of interference instead of top-k [off]"),
    ("lr-scaling", "continual policies: scale the learning rate by (m + m')/m in rounds that replay "
     "[cal: on; others off]"),
    ("stream", "keep the features in host memory and move each batch to the device when it is needed; a pool "
     "of .npy files on disk always streams [off]"),
    ("lookahead", "open each round's query as soon as the round before it has its labels, chosen by the newest "
     "trained model, so people label while that round trains (from round 2) [off]"),
)


#: Extensions whose own settings become flags: (RunConfig field naming the chosen one, field
#: holding its settings).
EXTENSION_KINDS = (("policy", "policy_settings"), ("acquisition", "acquisition_options"))


def extension_option_flags() -> list[tuple[str, str, str, str, type, str]]:
    """(kind, name, flag, field, type, help) for each setting of each registered policy or
    acquisition with an ``Options`` dataclass: ``--diverse-lam`` and the like, plugins included."""
    from calkit.acquisition import ACQUISITIONS
    from calkit.options import option_flags
    from calkit.policies import POLICIES

    out = []
    for kind, registry in (("policy", POLICIES), ("acquisition", ACQUISITIONS)):
        for name in registry.names():
            options = registry[name].Options
            if options is not None:
                out += [(kind, name, flag, field, type_, f"{name}: {text}")
                        for flag, field, type_, text in option_flags(name, options)]
    return out


COMPARE_EXCLUDED = {"policy", "initial", "round-size", "rounds", "budget", "seed", "oracle", "keep-checkpoints"}


def add_run_flags(parser: argparse.ArgumentParser, exclude: set[str]) -> None:
    """The RunConfig flags, shared by `run` and `compare`."""
    for flag, kind, text in run_flags():
        if flag not in exclude:
            parser.add_argument(f"--{flag}", type=kind, default=None, help=text)
    for flag, text in BOOLEAN_FLAGS:
        parser.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction, default=None, help=text)
    for _, _, flag, _, type_, text in extension_option_flags():
        parser.add_argument(f"--{flag}", type=type_, default=None, help=text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="calkit", description="Deep batch active learning that trains fast.")
    parser.add_argument("--version", action="version", version=f"calkit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start a new active-learning run")
    run.add_argument("--config", type=Path, help="YAML file of settings; flags override it")
    add_run_flags(run, exclude=set())
    run.add_argument("--out", type=Path, help="run directory to create [runs/DATASET-POLICY-ACQ-sSEED-TIME]")
    run.add_argument("--start-from", type=Path, help="take over the trained initial round of this run (same data, "
                     "seed, model, optimizer and initial rule) instead of training one")
    run.add_argument("--quiet", action="store_true", help="print only the final status")

    resume = sub.add_parser("resume", help="continue a stopped or interrupted run")
    resume.add_argument("run_dir", type=Path)
    resume.add_argument("--quiet", action="store_true")

    status = sub.add_parser("status", help="where a run stands (exit status as `resume` would stop)")
    status.add_argument("run_dir", type=Path)
    status.add_argument("--json", action="store_true", help="print a JSON object instead of a line")

    compare = sub.add_parser("compare", help="every policy against standard AL from the same initial sets")
    compare.add_argument("--config", type=Path, help="YAML file of run settings shared by all runs")
    add_run_flags(compare, exclude=COMPARE_EXCLUDED)
    compare.add_argument("--policies", default="cal",
                         help="comma list; `cal` is the recommended CAL policy; reset-tuned and reset (the "
                              "baselines) are always added [%(default)s]")
    compare.add_argument("--seeds", type=parse_seeds, default=(0, 1, 2),
                         help="N (seeds 0..N-1), a range 100-104 or a list 3,7; each changes the initial set [3]")
    compare.add_argument("--budgets", default="10%,15%,20%,25%,30%",
                         help="budget checkpoints: fractions, percentages or counts [%(default)s]")
    compare.add_argument("--round-size", type=int, default=None,
                         help="largest round between checkpoints [2.5%% of the pool]")
    compare.add_argument("--setups", default="paper",
                         help="paper (each side its own stopping rule), same (same fixed epochs for all), or both")
    compare.add_argument("--same-epochs", type=int, default=None, help="epochs per round in the `same` setup [20]")
    compare.add_argument("--out", type=Path, required=True, help="comparison directory (resumable)")

    bench = sub.add_parser("bench", help="the benchmark suites: cpu (this machine) or paper (reference, GPU); "
                           "writes only under --out (a checkout publishes with benchmarks/publish.py)")
    bench.add_argument("suite", choices=("cpu", "paper"))
    bench.add_argument("--out", type=Path, default=Path("runs/bench"),
                       help="where the runs and their record (bench.json) go [runs/bench]")
    bench.add_argument("--device", default=None, help="cpu or cuda [cuda for paper, cpu for cpu]")
    bench.add_argument("--force", action="store_true", help="run the paper suite on a CPU anyway")
    bench.add_argument("--seeds", type=parse_seeds, default=PUBLISHED_SEEDS,
                       help="N (seeds 0..N-1), a range 100-104 or a list 3,7 [100-104: seeds no tuning used; "
                            "the defaults were tuned with 0-2]")
    bench.add_argument("--entries", default=None,
                       help="comma list of suite entries to run (all of them by default)")

    report = sub.add_parser("report", help="print a run's table and write its learning-curve plot")
    report.add_argument("run_dir", type=Path)
    report.add_argument("--plot", type=Path, help="where to write the PNG [RUN_DIR/report.png]")
    report.add_argument("--no-plot", action="store_true", help="print the table only")
    report.add_argument("--worth", type=int, default=1000,
                        help="forecast what this many more labels are worth, by the learning-curve fit [%(default)s]")
    report.add_argument("--stop-below", type=float, default=None,
                        help="suggest stopping when they are worth fewer accuracy points than this")

    query = sub.add_parser("query", help="write the pending query as CSV and JSONL for people to label")
    query.add_argument("run_dir", type=Path)
    query.add_argument("--out-dir", type=Path, help="folder for the files [RUN_DIR/queries]")
    query.add_argument("--overwrite", action="store_true",
                       help="replace a query CSV that already holds answers not yet ingested")

    ingest = sub.add_parser("ingest", help="read labels from a CSV or JSONL answers file, or a Label Studio export")
    ingest.add_argument("run_dir", type=Path)
    ingest.add_argument("file", type=Path)
    ingest.add_argument("--format", choices=("auto", "answers", "label-studio"), default="auto",
                        help="answers (CSV/JSONL) or label-studio (a JSON or JSON-MIN export); auto: a .json file "
                             "holding a JSON array is a Label Studio export [auto]")
    ingest.add_argument("--annotator", help="who labeled (used where the file has no annotator column, or a Label "
                        "Studio annotation names nobody)")
    ingest.add_argument("--guideline", help="guideline version the labels follow")

    export = sub.add_parser("export", help="every label with its provenance (CSV, JSONL), or the asked items as "
                            "Label Studio tasks with answers, decisions and the model's guesses")
    export.add_argument("run_dir", type=Path)
    export.add_argument("--format", choices=("csv", "jsonl", "label-studio"), default=None,
                        help="csv, jsonl or label-studio [from the -o suffix: .jsonl, .json; else csv]")
    export.add_argument("-o", "--out", type=Path, help="file to write [standard output]")
    export.add_argument("--config", type=Path, help="label-studio: also write the matching labeling config (XML) here")
    export.add_argument("--items", choices=("asked", "open"), default="asked",
                        help="label-studio: every asked item, or the open round's [asked]")
    export.add_argument("--embed-images", action="store_true",
                        help="label-studio: images as PNG data URLs inside the tasks (bigger, but self-contained)")
    export.add_argument("--image-url", default=None,
                        help="label-studio: URL of an item's image, with {id} and {file} filled in "
                             "[calkit serve's /api/items/{id}/image]")
    export.add_argument("--no-annotations", action="store_true",
                        help="label-studio: tasks and predictions only, to label afresh in Label Studio")

    data = sub.add_parser("data", help="the built-in datasets: list them, fetch them into the cache")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    data_sub.add_parser("list", help="each built-in dataset: whether it loads offline now, where it comes from")
    fetch = data_sub.add_parser("fetch", help="download a dataset's package into the cache and build its arrays "
                                "(loading never downloads)")
    fetch.add_argument("names", nargs="*", metavar="NAME", help="built-in datasets, e.g. fine-foods pbmc")
    fetch.add_argument("--all", action="store_true", help="every dataset that comes from a package registry")
    cli_people.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--version"]:  # answered before the parser, whose help texts import torch
        print(f"calkit {__version__}")
        return 0
    args = build_parser().parse_args(argv)
    handler = {
        "run": cmd_run, "resume": cmd_resume, "report": cmd_report, "query": cmd_query, "ingest": cmd_ingest,
        "export": cmd_export,
        "compare": cmd_compare, "bench": cmd_bench, "data": cmd_data,
        "status": cmd_status, **cli_people.HANDLERS,
    }
    try:
        _join_ranks(args)
        return handler[args.command](args)
    except CalkitError as exc:
        if not getattr(exc, "from_rank0", False):
            print(f"calkit: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `calkit report RUN | head`: the reader left; nothing to say
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        target = getattr(args, "run_dir", None) or getattr(args, "out", None)
        again = "calkit serve" if args.command in ("serve", "worker") else "calkit resume"
        hint = f"; continue with `{again} {target}`" if target else ""
        print(f"\ncalkit: interrupted{hint}", file=sys.stderr)
        return 130
    finally:
        if args.command in DISTRIBUTED_COMMANDS:
            from calkit.distributed import shutdown

            shutdown()


#: The commands that run on several processes when torchrun launches them.
DISTRIBUTED_COMMANDS = ("run", "resume", "compare")


def _join_ranks(args: argparse.Namespace) -> None:
    """Under torchrun, join the job's process group; only rank 0 prints the command's output."""
    from calkit.distributed import init_from_environment, launched_by_torchrun
    from calkit.errors import ConfigError

    if not launched_by_torchrun():
        return
    if args.command not in DISTRIBUTED_COMMANDS:
        raise ConfigError(f"`calkit {args.command}` runs in one process; torchrun can launch "
                          f"{', '.join(DISTRIBUTED_COMMANDS)}")
    device = getattr(args, "device", None)
    if args.command == "resume":
        from calkit.config import RunConfig

        config = Path(args.run_dir) / "config.yaml"
        device = RunConfig.from_yaml(config).device if config.is_file() else "cpu"
    ranks = init_from_environment(device or "cpu")
    if not ranks.is_main:
        import atexit
        import os

        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the life of the process
        atexit.register(sys.stdout.close)


def _describe_ranks() -> None:
    """Say so when the command runs on several processes (rank 0 prints it)."""
    from calkit.distributed import current

    ranks = current()
    if ranks.distributed:
        import torch.distributed as dist

        print(f"{ranks.world} processes (torchrun, {dist.get_backend()}); rank 0 writes the run")


def parse_seeds(text: str) -> tuple[int, ...]:
    """``3`` is seeds 0, 1, 2; ``100-104`` a range (both ends included); ``3,7`` a list."""
    text = text.strip()
    try:
        if "," in text:
            seeds = tuple(int(s) for s in text.split(",") if s.strip())
        elif "-" in text.lstrip("-"):
            first, last = (int(s) for s in text.split("-", 1))
            seeds = tuple(range(first, last + 1))
        else:
            seeds = tuple(range(int(text)))
    except ValueError:
        raise argparse.ArgumentTypeError(f"cannot read seeds {text!r}; give N, FIRST-LAST or a list like 3,7") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"seeds {text!r} must name at least one distinct, non-negative seed")
    return seeds


def config_from_args(args: argparse.Namespace) -> RunConfig:
    from calkit.config import RunConfig

    base = RunConfig.from_yaml(args.config).to_dict() if args.config else RunConfig().to_dict()
    for flag, _, _ in run_flags():
        value = getattr(args, flag.replace("-", "_"), None)
        if value is not None:
            base[flag.replace("-", "_")] = value
    for flag, _ in BOOLEAN_FLAGS:
        value = getattr(args, flag.replace("-", "_"), None)
        if value is not None:
            base[flag.replace("-", "_")] = value
    flags = extension_option_flags()
    for kind, field in EXTENSION_KINDS:
        base[field] = _extension_options(args, base, kind, field, flags)
    # A rule given on the command line wins over one in the config file.
    if args.epochs is None and args.train_accuracy is not None:
        base["epochs"] = None
    if args.epochs is None and args.train_accuracy is None and args.new_accuracy is not None:
        base["epochs"] = base["train_accuracy"] = None
    return RunConfig.from_dict(base).validate()


def _extension_options(args: argparse.Namespace, base: dict, kind: str, field: str, flags: list) -> dict | None:
    """The chosen policy's or acquisition's own settings: the config file's, overridden by its
    flags; a flag of another one than the chosen is a mistake worth saying."""
    from calkit.errors import ConfigError
    from calkit.registry import normalise

    chosen = normalise(str(base.get(kind) or ""))
    options = dict(base.get(field) or {})
    for flag_kind, name, flag, setting, _, _ in flags:
        value = getattr(args, flag.replace("-", "_"), None)
        if flag_kind != kind or value is None:
            continue
        if normalise(name) not in (chosen, chosen.replace("-", "_"), chosen.replace("_", "-")):
            raise ConfigError(f"--{flag} is a setting of --{kind} {name}, not of {base.get(kind)!r}")
        options[setting] = value
    return options or None


def cmd_run(args: argparse.Namespace) -> int:
    from calkit.data.loaders import describe
    from calkit.run import Run

    cfg = config_from_args(args)
    out = args.out or Path("runs") / f"{Path(cfg.dataset).stem}-{cfg.policy}-{cfg.acquisition}-s{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    run = Run.create(out, config=cfg, dataset=cfg.dataset, progress=_progress(args.quiet), start_from=args.start_from)
    if not args.quiet:
        print(describe(run.dataset))
        print(run.describe())
        _describe_ranks()
    return _advance(run)


def cmd_compare(args: argparse.Namespace) -> int:
    from calkit.compare import CompareSpec, run_compare

    base = config_from_args(argparse.Namespace(**{**vars(args), "rounds": 1}))
    setups = ("paper", "same") if args.setups == "both" else tuple(s.strip() for s in args.setups.split(","))
    spec = CompareSpec(
        base=base,
        policies=tuple(p.strip() for p in args.policies.split(",") if p.strip()),
        seeds=args.seeds,
        budgets=tuple(b.strip() for b in args.budgets.split(",") if b.strip()),
        setups=setups,
        max_round_size=args.round_size,
        **({"same_epochs": args.same_epochs} if args.same_epochs else {}),
    )
    summary = run_compare(spec, args.out)
    from calkit.compare_report import format_budget_table, format_headline

    print(f"\ninitial round (shared by every policy of a seed): {summary['initial_rule']}")
    print("later rounds: " + "; ".join(f"{p}: {r}" for p, r in summary["stopping_rules"].items()))
    print(f"against {summary['baseline']}, per budget (the first is the shared start):")
    print(format_budget_table(summary))
    print("\nmean over the budgets after the shared start:")
    print(format_headline(summary))
    print(f"report: {args.out / 'report.md'}; numbers: {args.out / 'summary.json'}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from calkit.bench import run_bench

    entries = tuple(e.strip() for e in args.entries.split(",") if e.strip()) if args.entries else None
    return run_bench(args.suite, args.out, args.device, args.force, args.seeds, entries)


def cmd_resume(args: argparse.Namespace) -> int:
    from calkit.run import Run

    run = Run.open(args.run_dir, progress=_progress(args.quiet))
    if not args.quiet:
        print(f"resuming {args.run_dir}")
        _describe_ranks()
    return _advance(run)


def cmd_status(args: argparse.Namespace) -> int:
    """Where a run stands; exits like `resume` would stop (0 complete, 3 awaiting labels)."""
    import json

    from calkit.run import Run

    with Run.open(args.run_dir) as run:
        status, plan, records = run.status(), run.plan, run.metrics()
        summary = {
            "run": str(args.run_dir), "state": status.state, "round": status.round, "rounds": len(plan),
            "labeled": status.labeled, "budget": sum(plan), "pending": status.pending, "disputed": status.disputed,
            "policy": run.config.policy, "oracle": run.config.oracle,
            "last_trained": records[-1] if records else None,
        }
        if run.config.oracle == "people":
            from calkit.labeling.pilot import gate_note

            summary["gate"] = gate_note(run)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(_status_line(summary))
        if summary.get("gate"):
            print(summary["gate"])
    return EXIT_STATUS.get(status.state, 0)


def _status_line(s: dict) -> str:
    head = f"{s['run']}: {s['state'].replace('_', ' ')}, round {s['round']} (rounds 0-{s['rounds'] - 1}), " \
           f"{s['labeled']} of {s['budget']} labels trained on"
    if s["state"] == "awaiting_labels":
        head += f"; {s['pending']} items await labels" + (f" ({s['disputed']} disputed)" if s["disputed"] else "")
    last = s["last_trained"]
    if last and last.get("test_accuracy") is not None:
        head += f"; last test accuracy {last['test_accuracy']:.4f}"
    return head


def cmd_report(args: argparse.Namespace) -> int:
    from calkit.report import forecast_line, format_table, plot_learning_curve, read_metrics

    if args.worth < 1 or (args.stop_below is not None and not args.stop_below >= 0):
        raise CalkitError("--worth must be a positive number of labels and --stop-below a number of points >= 0")
    records = read_metrics(args.run_dir)
    print(format_table(records))
    print(forecast_line(records, args.worth, args.stop_below))
    if not args.no_plot:
        last = records[-1] if records else {}
        title = f"{args.run_dir.name}: {last.get('policy')}, {last.get('acquisition')}"
        path = plot_learning_curve(records, args.plot or args.run_dir / "report.png", title=title)
        print(f"plot: {path}")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from calkit.answers import has_numeric_names
    from calkit.run import Run

    with Run.open(args.run_dir) as run:
        status, classes = run.status(), run.class_names
        if status.state != "awaiting_labels":
            why = {"complete": "the run is complete"}.get(status.state, f"round {status.round}'s labels are complete")
            raise CalkitError(f"no query is pending: {why}; see `calkit status {args.run_dir}`")
        csv_path, jsonl_path, n = run.write_query(args.out_dir, args.overwrite)
        from calkit.labeling.pilot import gate_note

        gate = gate_note(run)
    if gate:
        print(f"calkit: warning: {gate}; `ingest` refuses answers to the other items until then", file=sys.stderr)
    how = "by name" if has_numeric_names(classes) else "by name or index from 0"
    print(f"{n} items await labels (classes, {how}: {', '.join(classes)}).")
    print(f"fill in the label column of {csv_path}\n(or answer {jsonl_path} line by line),")
    print(f"then run: calkit ingest {args.run_dir} {csv_path}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from calkit.run import Run

    if args.format == "label-studio" or (args.format == "auto" and _json_array(args.file)):
        return _ingest_label_studio(args)
    with Run.open(args.run_dir) as run:
        result = run.ingest(args.file, args.annotator, args.guideline)
        state = run.status().state
    print(
        f"added {result.added} labels ({result.already_present} already present, {result.blank} rows left blank); "
        f"{_items(result.still_pending)} still await labels"
    )
    if state == "ready":
        print(f"the query is answered: continue with `calkit resume {args.run_dir}`")
    elif state == "complete":
        print("the run is complete")
    return 0


def _json_array(path: Path) -> bool:
    """Whether an answers file is a JSON array (a Label Studio export), not CSV or JSON lines."""
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"[")


def _ingest_label_studio(args: argparse.Namespace) -> int:
    """`calkit ingest RUN EXPORT.json`: each task's problems on stderr, a summary line; exit 1
    when some tasks or annotations were left out (the others are in)."""
    from calkit.label_studio import import_tasks
    from calkit.run import Run

    with Run.open(args.run_dir) as run:
        result = import_tasks(run, args.file, annotator=args.annotator, guideline_version=args.guideline)
        state = run.status().state
    for line in result.problems[:50]:
        print(f"calkit: {line}", file=sys.stderr)
    if len(result.problems) > 50:
        print(f"calkit: ... and {len(result.problems) - 50} more problems", file=sys.stderr)
    extra = [f"{n} {what}" for n, what in ((result.unchanged, "already present"),
                                           (result.adjudications, "lead decisions"),
                                           (result.cancelled, "cancelled annotations skipped"),
                                           (result.stale, "older than a newer answer, left out")) if n]
    print(f"imported {result.labels} labels from {result.tasks} tasks, {len(result.problems)} problems"
          + (f" ({', '.join(extra)})" if extra else "") + f"; {_items(result.still_pending)} still await labels")
    if state == "ready":
        print(f"the query is answered: continue with `calkit resume {args.run_dir}`")
    return 1 if result.problems else 0


def cmd_export(args: argparse.Namespace) -> int:
    """`calkit export`: the provenance export (as the lead's page downloads it) or Label Studio tasks."""
    import json

    from calkit.run import Run

    fmt = args.format or {".jsonl": "jsonl", ".json": "label-studio"}.get(args.out.suffix.lower() if args.out else "", "csv")
    if fmt != "label-studio" and (args.config or args.embed_images or args.image_url or args.no_annotations):
        raise CalkitError("--config, --embed-images, --image-url and --no-annotations go with --format label-studio")
    with Run.open(args.run_dir) as run:
        if fmt == "label-studio":
            from calkit.label_studio import IMAGE_ROUTE, export_tasks, labeling_config

            tasks = export_tasks(run, args.items, embed_images=args.embed_images,
                                 image_url=args.image_url or IMAGE_ROUTE, annotations=not args.no_annotations)
            text = json.dumps(tasks, indent=1, ensure_ascii=False) + "\n"
            config = labeling_config(run)
            what = (f"{len(tasks)} tasks, {sum(len(t['annotations']) for t in tasks)} annotations, "
                    f"{sum(len(t['predictions']) for t in tasks)} predictions")
        else:
            from calkit.labeling import overview

            rows = overview.export_rows(run)
            text = overview.export_csv(rows) if fmt == "csv" else overview.export_jsonl(rows)
            what = f"{len(rows)} labels and decisions"
    if args.config:
        args.config.write_text(config, encoding="utf-8")
    if args.out is None:
        sys.stdout.write(text)
        print(f"exported {what}", file=sys.stderr)
    else:
        args.out.write_text(text, encoding="utf-8")
        print(f"exported {what} to {args.out}" + (f"; labeling config: {args.config}" if args.config else ""))
    return 0


def cmd_data(args: argparse.Namespace) -> int:
    """`calkit data list` and `calkit data fetch`: printing only, over calkit.data.fetch."""
    from calkit.data.cache import CACHE_ENV, cache_path
    from calkit.data.fetch import fetch_dataset, list_datasets, resolve_names
    from calkit.data.packages import EXTERNAL_DATASETS

    if args.data_command == "list":
        print(f"{'dataset':<14} {'state':<10} source")
        for status in list_datasets():
            where = f"; {status.location}" if status.location else ""
            print(f"{status.name:<14} {status.state:<10} {status.origin}{where}")
        print(f"cache: {cache_path()} (${CACHE_ENV} moves it); `calkit data fetch NAME` fetches a missing dataset")
        return 0
    if not args.names and not args.all:
        raise CalkitError(f"name the datasets to fetch ({', '.join(EXTERNAL_DATASETS)}) or pass --all")
    names = list(EXTERNAL_DATASETS) if args.all else resolve_names(args.names)
    failed = []
    for name in names:
        try:
            print(fetch_dataset(name, log=lambda line: print(line, flush=True)).summary(), flush=True)
        except CalkitError as exc:
            print(f"calkit: error: {exc}", file=sys.stderr)
            failed.append(name)
    if failed:
        print(f"calkit: not fetched: {', '.join(failed)}", file=sys.stderr)
    return 2 if failed else 0


def _progress(quiet: bool):
    from calkit.progress import ConsoleProgress, Progress

    return Progress() if quiet else ConsoleProgress()


def _advance(run) -> int:
    """Advance a run as far as it goes and say where it stopped; the exit status tells scripts."""
    try:
        status = run.advance()
    finally:
        run.close()
    path = run.path
    if status.complete:
        print(f"done: {status.labeled} labels in {status.round + 1} rounds. report: calkit report {path}")
    elif status.state == "training":
        print(f"another process is training {path}; see `calkit status {path}`")
    else:
        disputed = f" ({status.disputed} with tied answers)" if status.disputed else ""
        print(f"round {status.round}: {status.pending} items await labels{disputed}. "
              f"label them in the browser (`calkit serve {path}`), or with files: `calkit query {path}`, "
              f"`calkit ingest {path} FILE`, then `calkit resume {path}`")
    from calkit.distributed import current

    if current().distributed:
        return 0  # torchrun takes any other status for a failed rank and stops the rest; `calkit status` tells
    return EXIT_STATUS.get(status.state, 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


def _items(n: int) -> str:
    return f"{n} item" + ("" if n == 1 else "s")
