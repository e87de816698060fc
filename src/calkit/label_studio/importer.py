"""Label Studio exports (JSON, JSON-MIN) read back as label facts, through the ledger's rules."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from calkit.answers import annotator_problem, class_index
from calkit.errors import IngestError, LabelError
from calkit.label_studio.export import CONTROL, SOURCE, as_item_id, brief, decisions_in_force
from calkit.ledger import LabelFact, select_in

@dataclass(frozen=True)
class ImportResult:
    """What an import did. ``problems`` name each task or annotation left out, and why."""

    tasks: int  #: tasks read
    added: int  #: answers written: new ones, and changed ones superseding the annotator's earlier answer
    unchanged: int  #: answers equal to the annotator's current one (a repeated import)
    adjudications: int  #: lead decisions written
    cancelled: int  #: skipped (cancelled) annotations, which are not labels
    stale: int  #: answers (decisions) older than the annotator's (a lead's) different, newer one in calkit: left out
    still_pending: int  #: items of the open round still without an agreed label
    problems: tuple[str, ...] = ()

    @property
    def labels(self) -> int:
        return self.added


@dataclass
class _Answer:
    where: str
    item_id: int
    annotator: str
    label: int
    when: datetime | None
    guideline_version: str | None = None
    reason: str | None = None  #: set for a lead's decision


def import_tasks(
    run, tasks_or_path: str | Path | list, *, annotator: str | None = None, guideline_version: str | None = None
) -> ImportResult:
    """Record a Label Studio export (JSON, or JSON-MIN) as label facts of ``run``.

    Each annotation is one annotator's answer for the task's ``data.calkit_item_id``: the calkit
    annotator where calkit exported it unchanged, else its Label Studio user (an email or
    username as it is, a numeric id as ``ls-<id>``; ``annotator`` where it names nobody).
    Cancelled annotations are not labels; calkit's own ``ground_truth`` decisions become
    decisions again, recorded as decided by ``label-studio (<name in the file>)``: a file can
    claim any name, so it never decides as a calkit lead. The latest annotation per annotator
    and item counts; one older than that annotator's different answer in calkit is left out
    (``stale``), so an old export cannot undo a newer answer (times in the file count at most
    as now). An answer never replaces a different answer its annotator gave in calkit itself
    (at the labeling desk, through ``calkit ingest`` or the API): that is a problem, since the
    file's names are not signed in. Importing the same export twice adds nothing the second time.
    While a pilot's agreement gate is closed nothing is imported (:class:`IngestError`): pilot
    answers come from its raters at the labeling desk.
    A file that is not a JSON array of tasks is an :class:`IngestError`; a bad task is a problem.
    """
    _refuse_during_pilot(run)
    tasks = _load(tasks_or_path)
    names = run.class_names
    problems: list[str] = []
    answers: list[_Answer] = []
    cancelled = 0
    for index, task in enumerate(tasks):
        found, skipped = _read_task(index, task, names, annotator, guideline_version, problems)
        answers += found
        cancelled += skipped
    facts, decisions = _latest([a for a in answers if a.reason is None]), _latest(
        [a for a in answers if a.reason is not None], per_item=True)
    now = datetime.now(timezone.utc)
    facts, stale = _drop_stale(run._ledger, facts, now, problems)
    added, unchanged = _submit(run._ledger, facts, len(names), problems)
    decided, stale_decisions = _decide(run, decisions, now, problems)
    t = run._ledger.open_round()
    pending = len(run._ledger.unanswered(t)) if t is not None else 0
    return ImportResult(len(tasks), added, unchanged, decided, cancelled, stale + stale_decisions, pending,
                        tuple(problems))


def _refuse_during_pilot(run) -> None:
    """No import while a pilot's agreement gate is closed: the pilot measures whether its
    raters agree, answering blind at the labeling desk, and a file could answer in their names."""
    from calkit.labeling.pilot import gate_note

    note = gate_note(run)
    if note is not None:
        raise IngestError(f"nothing was imported: {note}. Pilot answers come from the raters at the labeling "
                          "desk; import the Label Studio export after the gate opens")


def _load(source: str | Path | list) -> list:
    if isinstance(source, list):
        return source
    if not isinstance(source, (str, Path)):
        raise IngestError(f"a Label Studio export is a list of tasks or a path to one, got {type(source).__name__}")
    path = Path(source)
    if not path.is_file():
        raise IngestError(f"{path}: no such file")
    try:
        tasks = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise IngestError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise IngestError(f"{path}: not JSON ({exc.msg}, line {exc.lineno} column {exc.colno}); "
                          "export the Label Studio project as JSON or JSON-MIN") from None
    except RecursionError:
        raise IngestError(f"{path}: JSON nested too deeply to read; not a Label Studio export") from None
    except ValueError as exc:  # an integer literal too long to convert, and the like
        raise IngestError(f"{path}: unreadable JSON ({str(exc)[:120]}); not a Label Studio export") from None
    except OSError as exc:
        raise IngestError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(tasks, list):
        raise IngestError(f"{path}: a Label Studio export is a JSON array of tasks, this is a JSON "
                          f"{type(tasks).__name__}; export the project as JSON or JSON-MIN")
    return tasks


def _read_task(index: int, task: object, names, fallback: str | None, guideline: str | None,
               problems: list[str]) -> tuple[list[_Answer], int]:
    """A task's answers, and how many of its annotations were cancelled; problems appended."""
    where = f"task {index + 1}"
    if not isinstance(task, dict):
        problems.append(f"{where}: not a JSON object")
        return [], 0
    if task.get("id") is not None:
        where += f" (Label Studio id {brief(task['id'])})"
    minimal = "data" not in task and "annotations" not in task and "completions" not in task
    data = task if minimal else task.get("data")
    item_id = as_item_id(data.get("calkit_item_id")) if isinstance(data, dict) else None
    if item_id is None:
        got = data.get("calkit_item_id") if isinstance(data, dict) else None
        if got is None:
            problems.append(f"{where}: no calkit item (data.calkit_item_id is None); only tasks calkit "
                            "exported can be read back")
        else:
            problems.append(f"{where}: no calkit item (data.calkit_item_id {brief(got)} is not an item id: an "
                            "integer in the signed 64-bit range, or its digits as text of at most 20 characters)")
        return [], 0
    where += f", item {item_id}"
    if minimal:
        return _read_minimal(where, item_id, task, names, fallback, guideline, problems), 0
    meta = task.get("meta") if isinstance(task.get("meta"), dict) else {}
    sent = meta.get("calkit_annotations") if isinstance(meta.get("calkit_annotations"), dict) else {}
    listed = task.get("annotations", task.get("completions")) or []
    if not isinstance(listed, list):
        problems.append(f"{where}: annotations must be a list")
        return [], 0
    found, cancelled = [], 0
    for k, ann in enumerate(listed, start=1):
        here = f"{where}, annotation {k}"
        if not isinstance(ann, dict):
            problems.append(f"{here}: not a JSON object")
            continue
        if ann.get("was_cancelled"):
            cancelled += 1
            continue
        answer = _read_annotation(here, item_id, ann, sent, names, fallback, guideline)
        if isinstance(answer, str):
            problems.append(f"{here}: {answer}")
        else:
            found.append(answer)
    return found, cancelled


def _read_annotation(where: str, item_id: int, ann: dict, sent: dict, names, fallback, guideline) -> _Answer | str:
    """One annotation as an answer, or why not."""
    region, value = _the_choice(ann.get("result"))
    if region is None:
        return value
    label, why = _class(value, names)
    if label is None:
        return why or "unknown class"
    info = ann.get("calkit") if isinstance(ann.get("calkit"), dict) else sent.get(region)
    # calkit's provenance holds while the answer is the one calkit sent; changed, it is the Label Studio user's
    if isinstance(info, dict) and info.get("label") == names[label]:
        who = info.get("decided_by") if info.get("kind") == "adjudication" else info.get("annotator")
        name, why = _annotator_name(who, None)
        if name is None:
            return why
        if info.get("kind") == "adjudication":
            name, why = _decider(name)
            if name is None:
                return why
            reason = info.get("reason").strip() if isinstance(info.get("reason"), str) else ""
            reason = (reason[:MAX_REASON - 1] + "…" if len(reason) > MAX_REASON else reason) or "decided in Label Studio"
            return _Answer(where, item_id, name, label, _when(info.get("created_at")), reason=reason)
        return _Answer(where, item_id, name, label, _when(info.get("created_at")),
                       _guideline(info.get("guideline_version")) or guideline)
    name, why = _annotator_name(ann.get("completed_by"), fallback)
    if name is None:
        return why
    return _Answer(where, item_id, name, label, _when(ann.get("updated_at") or ann.get("created_at")), guideline)


def _read_minimal(where: str, item_id: int, row: dict, names, fallback, guideline, problems: list[str]) -> list[_Answer]:
    """A JSON-MIN row: the task's data flattened, one annotation's answer under the control's name."""
    value = row.get(CONTROL)
    if isinstance(value, dict):
        value = value.get("choices")
    if isinstance(value, list):
        value = value[0] if len(value) == 1 else None
    if value is None:
        if CONTROL not in row:
            return []  # a task nobody annotated
        problems.append(f"{where}: '{CONTROL}' must hold one class")
        return []
    label, why = _class(value, names)
    name, who_not = _annotator_name(row.get("annotator"), fallback)
    if label is None or name is None:
        problems.append(f"{where}: {why if label is None else who_not}")
        return []
    return [_Answer(where, item_id, name, label, _when(row.get("updated_at") or row.get("created_at")), guideline)]


def _the_choice(result: object) -> tuple[str | None, str]:
    """(region id, class name) of the annotation's one choice, or (None, why not)."""
    if not isinstance(result, list):
        return None, "its result must be a list"
    regions = [r for r in result if isinstance(r, dict) and str(r.get("type", "")).lower() == "choices"]
    if len(regions) > 1:
        regions = [r for r in regions if r.get("from_name") == CONTROL]
    if len(regions) != 1:
        return None, ("no class chosen" if not regions else
                      f"several choice questions; calkit reads the one named '{CONTROL}'")
    value = regions[0].get("value")
    chosen = value.get("choices") if isinstance(value, dict) else None
    if not isinstance(chosen, list) or len(chosen) != 1:
        return None, f"choose exactly one class, got {brief(chosen)}"
    return str(regions[0].get("id", "")), chosen[0]


def _annotator_name(who: object, fallback: str | None) -> tuple[str | None, str]:
    """An annotator name under calkit's rules from a Label Studio user (id, email, username, name)."""
    if isinstance(who, dict):
        who = who.get("email") or who.get("username") or who.get("id")
    if who is None or (isinstance(who, str) and not who.strip()):
        if fallback is None:
            return None, "names no annotator (completed_by); give a default annotator"
        who = fallback
    if isinstance(who, bool) or not isinstance(who, (int, str)) or (isinstance(who, int) and who.bit_length() > 63):
        return None, f"annotator {brief(who)} is neither a Label Studio user id nor a name"
    name = f"ls-{who}" if isinstance(who, int) else who.strip()
    why = annotator_problem(name)
    return (None, why) if why else (name, "")


#: Longest reason kept from a file (the rest is cut), as a pilot's reason.
MAX_REASON = 2000


def _decider(name: str) -> tuple[str | None, str]:
    """Who an imported decision is recorded as decided by: ``label-studio (<name>)``, never a
    bare name, since anyone can write any name into a file (a name already of that form stays)."""
    if not (name.startswith(f"{SOURCE} (") and name.endswith(")")):
        name = f"{SOURCE} ({name})"
    why = annotator_problem(name)
    return (None, f"decided by: {why}") if why else (name, "")


def _class(value: object, names) -> tuple[int | None, str | None]:
    """:func:`class_index` for a value from a file: never an exception, never a message
    repeating a huge value."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 63:
        return None, f"class {brief(value)} is not one of the classes"
    try:
        label, why = class_index(value, names)
    except (ValueError, TypeError, RecursionError):
        return None, f"class {brief(value)} is not one of the classes"
    if label is None and why and len(why) > 400 + sum(len(n) + 4 for n in names):
        why = f"class {brief(value)} is not one of {brief(list(names))}"
    return label, why


def _guideline(value: object) -> str | None:
    """A guideline version from a file: text of at most 200 characters, else none."""
    return value.strip() if isinstance(value, str) and value.strip() and len(value) <= 200 else None


def _latest(answers: list[_Answer], per_item: bool = False) -> list[_Answer]:
    """The latest answer per item and annotator (per item for decisions); undated ones rank first
    and ties go to the later in the file."""
    floor = datetime.min.replace(tzinfo=timezone.utc)
    best: dict[tuple, _Answer] = {}
    for a in answers:
        key = (a.item_id,) if per_item else (a.item_id, a.annotator)
        if key not in best or (a.when or floor) >= (best[key].when or floor):
            best[key] = a
    return list(best.values())


def _drop_stale(ledger, answers: list[_Answer], now: datetime, problems: list[str]) -> tuple[list[_Answer], int]:
    """Leave out answers older than the same annotator's different current answer in calkit
    (stale; a time in the file counts at most as ``now``), and, as a problem, answers that
    would replace a different answer the annotator gave in calkit itself (not read from Label
    Studio): a name in a file proves nobody's identity."""
    current: dict[tuple[int, str], tuple[int, str, datetime | None]] = {}
    for item, who, label, source, at in select_in(  # ids outside 64 bits match nothing there
            ledger._conn, "SELECT item_id, annotator, label, source, created_at FROM current_answers WHERE item_id IN",
            sorted({a.item_id for a in answers})):
        current[(int(item), who)] = (int(label), source, _when(at))
    kept, stale = [], 0
    for a in answers:
        mine = current.get((a.item_id, a.annotator))
        if mine is None or mine[0] == a.label:
            kept.append(a)
        elif a.when and mine[2] and mine[2] > min(a.when, now):
            stale += 1
        elif mine[1] != SOURCE:
            problems.append(f"{a.where}: would replace {a.annotator}'s own answer given in calkit "
                            f"({mine[1]}); an answer read from Label Studio never replaces one given in calkit")
        else:
            kept.append(a)
    return kept, stale


def _submit(ledger, answers: list[_Answer], n_classes: int, problems: list[str]) -> tuple[int, int]:
    """Submit through the ledger (all or nothing per call): an item it refuses is reported and
    the rest submitted again. Returns (written, unchanged)."""
    where = {a.item_id: a.where.split(", annotation")[0] for a in answers}
    while answers:
        facts = [LabelFact(a.item_id, a.label, source=SOURCE, annotator=a.annotator,
                           guideline_version=a.guideline_version) for a in answers]
        try:
            result = ledger.submit(facts, n_classes=n_classes)
        except LabelError as exc:
            refused = {int(k) for k in exc.problems if isinstance(k, (int, np.integer))}
            if not refused & {a.item_id for a in answers}:
                raise
            problems += [f"{where.get(int(k), f'item {k}')}: {why}" for k, why in exc.problems.items()]
            answers = [a for a in answers if a.item_id not in refused]
            continue
        return result.written, result.unchanged
    return 0, 0


def _decide(run, decisions: list[_Answer], now: datetime, problems: list[str]) -> tuple[int, int]:
    """Decisions through Run.resolve, each unless the same decision by the same name is in force
    (the name as the file gives it, or as calkit recorded it: ``label-studio (<name>)``) or a
    different, newer one is (stale; a time in the file counts at most as ``now``).
    Returns (written, stale)."""
    in_force = decisions_in_force(run._ledger._conn)
    done = stale = 0
    for d in decisions:
        held = in_force.get(d.item_id)
        if held is not None and held["label"] == d.label and d.annotator in (
                held["decided_by"], f"{SOURCE} ({held['decided_by']})"):
            continue
        decided_at = _when(held["created_at"]) if held is not None else None
        if decided_at and d.when and decided_at > min(d.when, now):
            stale += 1
            continue
        try:
            run.resolve({d.item_id: d.label}, decided_by=d.annotator, reason=d.reason)
            done += 1
        except LabelError as exc:
            problems.append(f"{d.where}: the decision was not recorded: " + "; ".join(map(str, exc.problems.values())))
    return done, stale


def _when(text: object) -> datetime | None:
    """An ISO time as an aware datetime (naive ones taken as UTC), None when unreadable."""
    if not isinstance(text, str) or not text.strip():
        return None
    try:
        at = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)

