"""A run as Label Studio tasks, and the labeling config that shows them."""

from __future__ import annotations

import base64
import re
import reprlib
from pathlib import Path
from typing import Iterable, Mapping
from xml.sax.saxutils import escape

import numpy as np

from calkit.errors import ConfigError, LabelError
from calkit.labeling.display import image_bytes, is_image

#: The source recorded with answers read from Label Studio.
SOURCE = "label-studio"
#: Name of the Choices tag of the labeling config (``from_name`` of every result).
CONTROL = "label"
#: calkit serve's route for an item's image (it needs a signed-in session).
IMAGE_ROUTE = "/api/items/{id}/image"
#: Features of a table item shown in Label Studio's Table tag (as the labeling screen shows).
MAX_FEATURES = 200
#: Prefix of the result region ids calkit writes; the rest is the key into meta["calkit_annotations"].
REGION_PREFIX = "calkit-"


# -- what an item is ------------------------------------------------------------------------
def item_kind(dataset) -> str:
    """``text``, ``image`` or ``features``: the Label Studio object tag that shows the items
    (Text, Image, Table); also the ``to_name`` of every result."""
    if dataset.texts is not None:
        return "text"
    if dataset.files is not None or (dataset.x_train.ndim == 4 and is_image(dataset.x_train[0])):
        return "image"
    return "features"


def labeling_config(run) -> str:
    """The Label Studio labeling config (XML) matching :func:`export_tasks`: the items' object
    tag and one single-choice question listing every class, so a project made with it shows the
    exported tasks, predictions and annotations as they are."""
    kind = item_kind(run.dataset)
    tag = {"text": "Text", "image": "Image", "features": "Table"}[kind]
    choices = "\n".join(f'    <Choice value="{_attr(name)}"/>' for name in run.class_names)
    return (f'<View>\n  <{tag} name="{kind}" value="${kind}"/>\n'
            f'  <Choices name="{CONTROL}" toName="{kind}" choice="single" showInline="true">\n'
            f"{choices}\n  </Choices>\n</View>\n")


def _attr(text: str) -> str:
    """Text safe inside a double-quoted XML attribute (``<``, ``&``, quotes; newlines kept)."""
    return escape(text, {'"': "&quot;", "'": "&apos;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


# -- export ------------------------------------------------------------------------------------
def export_tasks(
    run,
    items: str | Iterable[int] = "asked",
    *,
    embed_images: bool = False,
    image_url: str = IMAGE_ROUTE,
    annotations: bool = True,
    completed_by: Mapping[str, str | int] | None = None,
) -> list[dict]:
    """One Label Studio task per item asked (``"asked"``: every round; ``"open"``: the open
    round; or the given item ids), in round and rank order.

    ``data`` holds ``calkit_item_id``, ``round``, ``rank`` and what shows the item: ``text``;
    ``image`` (``image_url`` with ``{id}`` and, for image folders, ``{file}`` filled in; calkit
    serve's route by default, which Label Studio can load only with the files or a session, so
    ``embed_images`` puts a PNG data URL there instead); or ``features`` (a table). With
    ``annotations``, each annotator's current answer is an annotation and the lead's decision
    in force one marked ``ground_truth``; the model's guess, where the worker stored one, is a
    prediction with its ``score`` and ``model_version`` (``round-N``: the trained round whose
    model guessed). ``completed_by`` maps calkit names to Label Studio members (email or id), for
    Label Studio to attribute the annotations it imports; others go to the importing user.
    """
    ledger, names, kind = run._ledger, run.class_names, item_kind(run.dataset)
    with ledger.snapshot() as conn:
        asked = _asked(conn, items)
        answers = _current_answers(conn) if annotations else {}
        decisions = decisions_in_force(conn) if annotations else {}
        guesses = _suggestions(conn)
    tasks = []
    for item_id, rnd, rank in asked:
        data = {"calkit_item_id": item_id, "round": rnd, "rank": rank,
                **_shown(run.dataset, item_id, kind, embed_images, image_url)}
        task: dict = {"data": data, "annotations": [], "predictions": []}
        provenance: dict[str, dict] = {}
        for k, answer in enumerate(answers.get(item_id, [])):
            region = f"{REGION_PREFIX}{k}"
            info = {"kind": "answer", "annotator": answer["annotator"], "label": names[answer["label"]],
                    "revision": answer["revision"], "round": answer["round"], "source": answer["source"],
                    "guideline_version": answer["guideline_version"], "created_at": answer["created_at"]}
            task["annotations"].append(_annotation(kind, info, region, completed_by, answer["annotator"]))
            provenance[region] = info
        if item_id in decisions:
            d = decisions[item_id]
            region = f"{REGION_PREFIX}decision"
            info = {"kind": "adjudication", "decided_by": d["decided_by"], "label": names[d["label"]],
                    "reason": d["reason"], "round": rnd, "created_at": d["created_at"]}
            task["annotations"].append(_annotation(kind, info, region, completed_by, d["decided_by"], True))
            provenance[region] = info
        if provenance:
            task["meta"] = {"calkit_annotations": provenance}
        if item_id in guesses:
            label, probability, model_round = guesses[item_id]
            task["predictions"].append({"model_version": f"round-{model_round}", "score": probability,
                                        "result": [_choice(kind, names[label], f"{REGION_PREFIX}prediction")]})
        tasks.append(task)
    return tasks


def _annotation(kind: str, info: dict, region: str, completed_by: Mapping | None, who: str,
                ground_truth: bool = False) -> dict:
    out = {"result": [_choice(kind, info["label"], region)], "was_cancelled": False, "ground_truth": ground_truth,
           "created_at": info["created_at"], "updated_at": info["created_at"], "calkit": info}
    member = (completed_by or {}).get(who)
    if isinstance(member, str):
        out["completed_by"] = {"email": member}
    elif isinstance(member, int) and not isinstance(member, bool):
        out["completed_by"] = member
    return out


def _choice(kind: str, name: str, region: str) -> dict:
    return {"id": region, "from_name": CONTROL, "to_name": kind, "type": "choices", "value": {"choices": [name]}}


def _shown(dataset, item_id: int, kind: str, embed: bool, image_url: str) -> dict:
    """The data fields that show one item in Label Studio."""
    display = dataset.display(item_id)
    if kind == "text":
        return {"text": display}
    if kind == "features":
        flat = np.asarray(display, dtype=np.float64).reshape(-1)
        return {"features": {f"f{i}": float(v) for i, v in enumerate(flat[:MAX_FEATURES])}}
    file = display if isinstance(display, Path) else None
    if embed:
        data, media = image_bytes(display)
        out = {"image": f"data:{media};base64,{base64.b64encode(data).decode('ascii')}"}
    else:
        try:
            out = {"image": image_url.format(id=item_id, file=file.name if file else "")}
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"image URL {image_url!r} takes the fields {{id}} and {{file}} only ({exc})") from None
    if file is not None:
        out["file"] = str(file)
    return out


def _asked(conn, items: str | Iterable[int]) -> list[tuple[int, int, int]]:
    rows = [(int(i), int(r), int(k)) for i, r, k in conn.execute(
        "SELECT q.item_id, q.round, q.rank FROM query_items q JOIN queries r USING (round) "
        + ("WHERE r.state = 'open' " if items == "open" else "") + "ORDER BY q.round, q.rank")]
    if isinstance(items, str):
        if items not in ("asked", "open"):
            raise ConfigError(f"items must be 'asked', 'open' or item ids, got {items!r}")
        return rows
    wanted = {as_item_id(i): i for i in items}
    if None in wanted:
        raise ConfigError(f"item ids must be integers (signed 64-bit), got {brief(wanted[None])}")
    missing = set(wanted) - {r[0] for r in rows}
    if missing:
        raise LabelError({i: "never asked in this run" for i in sorted(missing)})
    return [r for r in rows if r[0] in wanted]


def _current_answers(conn) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    cur = conn.execute("SELECT item_id, annotator, revision, label, round, source, guideline_version, created_at "
                       "FROM current_answers ORDER BY item_id, created_at, annotator")
    keys = [d[0] for d in cur.description]
    for row in cur:
        answer = dict(zip(keys, row))
        out.setdefault(int(answer["item_id"]), []).append(answer)
    return out


def decisions_in_force(conn) -> dict[int, dict]:
    """The decision in force per item (the latest)."""
    rows = conn.execute(
        "SELECT a.item_id, a.label, a.decided_by, a.reason, a.created_at FROM adjudications a "
        "JOIN (SELECT item_id, MAX(adjudication_id) AS last_id FROM adjudications GROUP BY item_id) m "
        "ON a.adjudication_id = m.last_id")
    return {int(r[0]): {"label": int(r[1]), "decided_by": r[2], "reason": r[3], "created_at": r[4]} for r in rows}


def _suggestions(conn) -> dict[int, tuple[int, float, int]]:
    """The worker's guesses (the labeling desk's table, absent until a desk opened the run)."""
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'suggestions'").fetchone() is None:
        return {}
    rows = conn.execute("SELECT item_id, label, probability, model_round FROM suggestions")
    return {int(i): (int(y), float(p), int(m)) for i, y, p, m in rows}


#: Item ids are SQLite integers: signed 64-bit. As text, at most this many characters.
ITEM_ID_RANGE = (-(2**63), 2**63 - 1)
MAX_ID_TEXT = 20


def as_item_id(value: object) -> int | None:
    """An item id from JSON (an integer, or its digits as text of at most 20 characters), None
    for anything else, including integers outside the signed 64-bit range that SQLite stores."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, np.integer)):
        number = int(value)
    elif isinstance(value, str) and len(value) <= MAX_ID_TEXT and re.fullmatch(r"\s*-?[0-9]+\s*", value):
        number = int(value)
    else:
        return None
    return number if ITEM_ID_RANGE[0] <= number <= ITEM_ID_RANGE[1] else None


_BRIEF = reprlib.Repr()
_BRIEF.maxstring = _BRIEF.maxother = _BRIEF.maxlong = 60


def brief(value: object) -> str:
    """A short repr of a value from an untrusted file, for a message: long text, deep or wide
    structures and integers too long to print are cut, never an exception."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    try:
        return _BRIEF.repr(value)
    except (ValueError, RecursionError, TypeError):
        return f"a {type(value).__name__}"
