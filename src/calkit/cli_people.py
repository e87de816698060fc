"""The CLI commands for people labeling together: `serve`, `worker` and `annotators`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from calkit.errors import CalkitError


def add_commands(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="the labeling web application for a run made with --oracle people, "
                           "with a worker that trains between rounds")
    serve.add_argument("run_dir", type=Path)
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on [127.0.0.1: this machine only; 0.0.0.0 exposes it to the network]")
    serve.add_argument("--port", type=int, default=8765, help="[%(default)s]")
    serve.add_argument("--lease-seconds", type=float, default=None,
                       help="how long an item stays with one annotator before it may go to another [300]")
    serve.add_argument("--stop-below", type=float, default=None,
                       help="the lead's page suggests stopping when the next 1,000 labels are worth fewer accuracy "
                            "points than this, by the learning-curve fit [0.5]")
    serve.add_argument("--overlap", type=float, default=None,
                       help="share of each round after the first whose top-ranked items two annotators label, for "
                            "agreement and adjudication; kept in the run [0.1]")
    serve.add_argument("--no-worker", action="store_true",
                       help="do not start a worker (run `calkit worker RUN` elsewhere, e.g. where the GPU is)")

    worker = sub.add_parser("worker", help="train a run people label whenever a round's labels are complete "
                            "(`serve` starts one)")
    worker.add_argument("run_dir", type=Path)
    worker.add_argument("--threads", type=int, default=None,
                        help="CPU threads for training [all cores but one, which the web application keeps]")

    review = sub.add_parser("review", help="the labels most worth checking again, by confident learning on "
                            "cross-validated predictions")
    review.add_argument("run_dir", type=Path)
    review.add_argument("--top", type=int, default=20, help="how many to list [%(default)s]")
    review.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    review.add_argument("--queue", action="store_true", help="also store the --top most suspect as the lead's review "
                        "queue (on the lead's page, where labels are corrected)")
    review.add_argument("--source", default="crossval", help="whose predictions: crossval (5 models trained on the "
                        "other folds), selection (the model that chose each item), ensemble, newest [%(default)s]")

    pilot = sub.add_parser("pilot", help="a pilot with an agreement gate: every annotator labels the same items "
                           "before labeling scales up")
    pilot.add_argument("run_dir", type=Path)
    psub = pilot.add_subparsers(dest="pilot_command", required=True)
    pstart = psub.add_parser("start", help="start a pilot on the open round's first unanswered items")
    pstart.add_argument("--items", type=int, default=10, help="[%(default)s]")
    pstart.add_argument("--threshold", type=float, default=0.8,
                        help="Krippendorff's alpha at which labeling scales up by itself [%(default)s]")
    pstart.add_argument("--by", default="lead", help="who started it, for the record [%(default)s]")
    pstatus = psub.add_parser("status", help="the newest pilot (or --id N): answers so far, agreement, the items without agreement")
    pstatus.add_argument("--id", type=int, help="an earlier pilot, by number")
    psub.add_parser("list", help="every pilot: state, alpha, who decided and why")
    popen = psub.add_parser("open", help="open scale-up without the agreement the gate asks for")
    popen.add_argument("--reason", required=True, help="why; kept with the pilot")
    popen.add_argument("--by", default="lead", help="[%(default)s]")

    holdout = sub.add_parser("holdout", help="random items set aside as a validation set that people label first "
                             "(for data without one): never trained on, measured every round")
    holdout.add_argument("run_dir", type=Path)
    holdout.add_argument("--add", type=int, metavar="N", help="hold out N more items")
    holdout.add_argument("--list", action="store_true", help="each held-out item's id and its agreed label so far "
                         "(label them by id with `calkit ingest` or Run.submit, or at the labeling desk)")

    guideline = sub.add_parser("guideline", help="the run's labeling guideline, in versions: set, show, history, diff")
    guideline.add_argument("run_dir", type=Path)
    gsub = guideline.add_subparsers(dest="guideline_command", required=True)
    gset = gsub.add_parser("set", help="make a Markdown file the current guideline (a new version if it changed)")
    gset.add_argument("file", type=Path)
    gset.add_argument("--note", help="what changed, for the history")
    gset.add_argument("--author", default="lead", help="[%(default)s]")
    gshow = gsub.add_parser("show", help="print a version's text [the current one]")
    gshow.add_argument("--version", type=int)
    gsub.add_parser("history", help="every version: when, who, what changed")
    gdiff = gsub.add_parser("diff", help="a unified diff between two versions")
    gdiff.add_argument("old", type=int)
    gdiff.add_argument("new", type=int)

    annotators = sub.add_parser("annotators", help="who may label a run: add, list, reset, revoke")
    commands = annotators.add_subparsers(dest="annotators_command", required=True)
    add = commands.add_parser("add", help="make an account and print its sign-in link (shown once)")
    add.add_argument("run_dir", type=Path)
    add.add_argument("name")
    add.add_argument("--role", choices=("annotator", "lead"), default="annotator", help="[%(default)s]")
    add.add_argument("--url", help="the application's address, for the link [where `serve` last ran, else "
                     "http://127.0.0.1:8765]")
    listing = commands.add_parser("list", help="every account, its role and whether it is active")
    listing.add_argument("run_dir", type=Path)
    reset = commands.add_parser("reset", help="a new sign-in link for an account; the old one stops working")
    reset.add_argument("run_dir", type=Path)
    reset.add_argument("name")
    reset.add_argument("--url")
    revoke = commands.add_parser("revoke", help="end an account: its link and sessions stop working, its items "
                                 "go back to the queue (its answers stay)")
    revoke.add_argument("run_dir", type=Path)
    revoke.add_argument("name")


def _require_serve_extra() -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
        import jinja2  # noqa: F401
    except ImportError as exc:
        raise CalkitError(f"the labeling application needs the serve extra ({exc.name} is missing): "
                          "pip install 'calkit[serve]'") from exc


def cmd_serve(args: argparse.Namespace) -> int:
    _require_serve_extra()
    from calkit.web.serve import serve

    return serve(args.run_dir, host=args.host, port=args.port, worker=not args.no_worker,
                 lease_seconds=args.lease_seconds, stop_below=args.stop_below, overlap=args.overlap,
                 log=lambda line: print(line, flush=True))


def cmd_worker(args: argparse.Namespace) -> int:
    import os

    from calkit.labeling.worker import work

    threads = args.threads or max(1, (os.cpu_count() or 2) - 1)
    return work(args.run_dir, threads=threads)


def cmd_annotators(args: argparse.Namespace) -> int:
    from calkit.labeling.accounts import Accounts
    from calkit.run import Run
    from calkit.web.serve import base_url, signin_link

    with Run.open(args.run_dir) as run:
        if run.config.oracle != "people":
            raise CalkitError(f"{args.run_dir} takes its labels from the dataset (oracle {run.config.oracle!r}); "
                              "accounts are for runs created with --oracle people")
        accounts = Accounts(run._ledger)
        command = args.annotators_command
        if command == "add":
            token = accounts.add(args.name, role=args.role)
        elif command == "reset":
            token = accounts.reset(args.name)
        elif command == "revoke":
            accounts.revoke(args.name)
            print(f"revoked {args.name}")
            return 0
        else:
            rows = accounts.list()
            if not rows:
                print(f"no accounts yet: calkit annotators add {args.run_dir} NAME", file=sys.stderr)
            for a in rows:
                print(f"{a.name}\t{a.role}\t{'active' if a.active else 'revoked ' + a.revoked_at}\t{a.created_at}")
            return 0
        url = (args.url or base_url(run.path)).rstrip("/")
        print(f"{args.name}'s sign-in link (shown once; anyone with it can label as {args.name}):")
        print(signin_link(url, token))
        print(f"for scripts: Authorization: Bearer {token}", file=sys.stderr)
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    import dataclasses
    import json

    from calkit.run import Run

    if args.top < 1:
        raise CalkitError(f"--top must be a positive integer, got {args.top}")
    with Run.open(args.run_dir) as run:
        suspects = run.review_labels(args.source)
        names = run.class_names
        if args.queue:
            from calkit.labeling import review_queue

            kept = review_queue.store(run, suspects, args.source, length=args.top)
    flagged = sum(s.confident for s in suspects)
    if suspects and flagged > len(suspects) / 2:
        print(f"warning: {flagged} of {len(suspects)} labels look wrong to the models: they are too weak for this "
              "review to mean much yet (label more, or check the model)", file=sys.stderr)
    if args.queue:
        print(f"stored the {kept} most suspect labels as the lead's review queue", file=sys.stderr)
    if args.json:
        for s in suspects[:args.top]:
            print(json.dumps({**dataclasses.asdict(s), "given_name": names[s.given], "likely_name": names[s.likely]}))
        return 0
    print(f"{flagged} of {len(suspects)} agreed labels are confidently another class; the {min(args.top, len(suspects))} "
          "most suspect:")
    print(f"{'rank':>4}  {'item':>10}  {'round':>5}  {'labeled':>12}  {'likely':>12}  {'p(label)':>8}  confident")
    for rank, s in enumerate(suspects[:args.top], 1):
        print(f"{rank:>4}  {s.item_id:>10}  {s.round:>5}  {names[s.given][:12]:>12}  {names[s.likely][:12]:>12}  "
              f"{s.self_confidence:>8.3f}  {'yes' if s.confident else 'no'}")
    return 0


def cmd_guideline(args: argparse.Namespace) -> int:
    from calkit.labeling.guidelines import Guidelines
    from calkit.run import Run

    with Run.open(args.run_dir) as run:
        guidelines = Guidelines(run)
        command = args.guideline_command
        if command == "set":
            try:
                text = args.file.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise CalkitError(f"cannot read {args.file}: {exc}") from exc
            before = guidelines.current()
            now = guidelines.set(text, author=args.author, note=args.note)
            same = before is not None and before.version == now.version
            print(f"guideline {now.label}" + (" unchanged (the same text)" if same else " is now current"))
        elif command == "show":
            g = guidelines.get(args.version) if args.version is not None else guidelines.current()
            if g is None:
                raise CalkitError(f"no guideline version {args.version}" if args.version is not None else
                                  f"no guideline yet: calkit guideline {args.run_dir} set FILE.md")
            print(g.text, end="" if g.text.endswith("\n") else "\n")
        elif command == "history":
            for g in guidelines.history():
                print(f"{g.label}\t{g.created_at}\t{g.author}\t{g.note or ''}")
        else:
            print(guidelines.diff(args.old, args.new), end="")
    return 0


def cmd_pilot(args: argparse.Namespace) -> int:
    import json

    from calkit.labeling import pilot
    from calkit.labeling.refusal import Refused
    from calkit.run import Run

    with Run.open(args.run_dir) as run:
        try:
            if args.pilot_command == "start":
                started = pilot.start(run, args.by, args.items, args.threshold)
                print(f"pilot {started.pilot_id}: {len(started.items)} items of round {started.round} for "
                      f"{', '.join(started.raters)}; labeling scales up at alpha >= {started.threshold:g}")
                return 0
            if args.pilot_command == "open":
                opened = pilot.open_gate(run, args.by, args.reason)
                print(f"pilot {opened.pilot_id}: the gate is open (alpha {_alpha(opened.alpha)}); reason recorded")
                return 0
            if args.pilot_command == "list":
                for p in pilot.history(run):
                    print(f"pilot {p['pilot_id']}\t{p['state']}\talpha {_alpha(p['alpha'])} (threshold {p['threshold']:g})\t"
                          f"{p['items']} items, round {p['round']}, guideline {p['guideline_version'] or '-'}\t"
                          f"{p['decided_by'] or ''}{': ' + p['reason'] if p['reason'] else ''}")
                return 0
            found = pilot.report(run, args.id)
        except Refused as exc:
            raise CalkitError(exc.message) from exc
    if found is None:
        print(f"no pilot yet: calkit pilot {args.run_dir} start")
        return 0
    stats = found["agreement"]
    print(f"pilot {found['pilot_id']} ({found['state']}; gate {'closed' if found['gate_closed'] else 'open'}): "
          f"{len(found['items'])} items, raters {', '.join(found['raters'])}, threshold {found['threshold']:g}")
    print("answered: " + ", ".join(f"{who} {n}/{len(found['items'])}" for who, n in found["answered"].items()))
    print(f"Krippendorff's alpha {_alpha(stats['alpha'])}, Fleiss' kappa {_alpha(stats['fleiss'])}, "
          f"raw agreement {_alpha(stats['raw'])}")
    for pair in stats["pairs"]:
        print(f"  {pair['annotator_a']} ~ {pair['annotator_b']}: {pair['items']} items, agreement "
              f"{_alpha(pair['agreement'])}, Cohen's kappa {_alpha(pair['kappa'])}")
    for item in found["disputed_items"]:
        print(f"no agreement on item {item['item_id']}: {json.dumps(item['answers'])}"
              + "".join(f"\n  question ({q['annotator']}): {q['text']}" for q in item["questions"]))
    if found["revoked_raters"]:
        print(f"revoked since it started (no longer awaited): {', '.join(found['revoked_raters'])}")
    if found.get("reason"):
        print(f"opened by {found['decided_by']}: {found['reason']}")
    elif found["state"] == "failed":
        print(f"next: revise the guideline (calkit guideline {args.run_dir} set FILE.md) and start another pilot, or "
              f"open the gate: calkit pilot {args.run_dir} open --reason \"...\"")
    elif found["state"] == "passed" and found["agreement"]["alpha"] is None:
        print("alpha is undefined (every answer was one class): nobody disagreed, so the gate opened")
    return 0


def cmd_holdout(args: argparse.Namespace) -> int:
    from calkit.run import Run

    with Run.open(args.run_dir) as run:
        if args.add is not None:
            added = run.hold_out(args.add)
            print(f"held out {len(added)} more items: annotators get them first; they never train")
            if run.dataset.has_val:
                print("note: this data has a validation split of its own; rounds report both")
        ids, labels = run._ledger.holdout_ids(), run._ledger.holdout_labels()
        disputed = len(run._ledger.holdout_disputed())
        if args.list:
            for item in ids.tolist():
                print(f"{item}\t{run.class_names[labels[item]] if item in labels else '-'}")
    print(f"{len(ids)} items held out as a validation set, {len(labels)} labeled"
          + (f", {disputed} disputed (the lead decides them)" if disputed else ""), file=sys.stderr if args.list else sys.stdout)
    return 0


def _alpha(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.3f}"


HANDLERS = {"pilot": cmd_pilot, "holdout": cmd_holdout, "guideline": cmd_guideline, "serve": cmd_serve, "worker": cmd_worker, "annotators": cmd_annotators, "review": cmd_review}
