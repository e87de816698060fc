"""The open round as the desk sees it, read in a few indexed queries (the ledger's views scan
every label), and which item an annotator should get next.

An item needs one answer, or more where a pilot or overlap asked for it (``query_items.needed``);
it is settled once a lead decided it, or once it has the answers it needs with a single most
frequent one: the same rule the ledger closes a round by.
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from dataclasses import dataclass

from calkit.ledger import HOLDOUT_ROUND, utc_now

#: Share of each round after the first whose top-ranked items go to two annotators.
DEFAULT_OVERLAP = 0.1


@dataclass(frozen=True)
class RoundView:
    """One round's items in rank order, the answers each needs, each annotator's current answer,
    and the settled items."""

    ranks: dict[int, int]
    needed: dict[int, int]
    answers: dict[int, dict[str, int]]
    settled: set[int]


@dataclass(frozen=True)
class Restriction:
    """While a pilot's gate is closed: the only items anyone may label, and who may."""

    items: frozenset[int]
    raters: frozenset[str]


def round_view(conn: sqlite3.Connection, round_index: int) -> RoundView:
    ranks, needed = {}, {}
    for item, rank, need in conn.execute("SELECT item_id, rank, needed FROM query_items WHERE round = ? "
                                         "ORDER BY rank", (round_index,)):
        ranks[item], needed[item] = rank, need
    answers: dict[int, dict[str, int]] = {}
    for item, who, label in conn.execute("SELECT item_id, annotator, label FROM labels WHERE round = ? "
                                         "ORDER BY revision", (round_index,)):
        answers.setdefault(item, {})[who] = label  # the latest revision wins
    decided = {r[0] for r in conn.execute("SELECT DISTINCT a.item_id FROM adjudications a JOIN query_items q "
                                          "USING (item_id) WHERE q.round = ?", (round_index,))}
    complete = {i for i, votes in answers.items() if len(votes) >= needed.get(i, 1) and single_top(votes)}
    return RoundView(ranks, needed, answers, decided | complete)


def single_top(votes: dict[str, int]) -> bool:
    counts = sorted(Counter(votes.values()).values(), reverse=True)
    return len(counts) == 1 or counts[0] > counts[1]


def next_for(conn: sqlite3.Connection, round_index: int, annotator: str, now: float,
             restriction: Restriction | None = None) -> tuple[int, int] | None:
    """The first item of the round, in rank order, that still needs an answer from someone, that
    this annotator has neither answered nor skipped, and that has a free place: fewer answers and
    live leases of others than it needs (the annotator's own lease first, so asking again returns
    the same item). Under a ``restriction`` only its items, and only for its raters."""
    if restriction is not None and annotator not in restriction.raters:
        return None
    view = round_view(conn, round_index)
    skipped = {r[0] for r in conn.execute("SELECT item_id FROM skips WHERE annotator = ? AND round = ?",
                                          (annotator, round_index))}
    live: dict[int, int] = {}
    for item, holder, expires in conn.execute("SELECT item_id, annotator, expires_at FROM leases WHERE round = ?",
                                              (round_index,)):
        if holder == annotator:
            allowed = restriction is None or item in restriction.items
            if allowed and item not in view.settled and annotator not in view.answers.get(item, {}):
                return item, view.ranks[item]
        elif expires >= now:
            live[item] = live.get(item, 0) + 1
    for item, rank in view.ranks.items():
        if restriction is not None and item not in restriction.items:
            continue
        if item in view.settled or item in skipped or annotator in view.answers.get(item, {}):
            continue
        if len(view.answers.get(item, {})) + live.get(item, 0) < view.needed[item]:
            return item, rank
    return None


def open_round(conn: sqlite3.Connection) -> int | None:
    row = conn.execute("SELECT round FROM queries WHERE state = 'open'").fetchone()
    return None if row is None else int(row[0])


def prepare_overlap(conn: sqlite3.Connection, round_index: int, share: float) -> None:
    """Once per round after the first: its top-ranked ``share`` of items (the most uncertain
    under an uncertainty acquisition) each need two annotators, when two can label; recorded so
    that a later change of share or of annotators does not move a round already begun."""
    if round_index == 0 or conn.execute("SELECT 1 FROM round_setup WHERE round = ?", (round_index,)).fetchone():
        return
    labelers = conn.execute("SELECT COUNT(*) FROM annotators WHERE role = 'annotator' AND revoked_at IS NULL"
                            ).fetchone()[0]
    size = conn.execute("SELECT COUNT(*) FROM query_items WHERE round = ?", (round_index,)).fetchone()[0]
    count = math.ceil(share * size) if labelers >= 2 else 0
    conn.execute("UPDATE query_items SET needed = 2 WHERE round = ? AND rank < ? AND needed = 1 AND item_id NOT IN "
                 "(SELECT item_id FROM labels) AND item_id NOT IN (SELECT item_id FROM adjudications)",
                 (round_index, count))
    conn.execute("INSERT INTO round_setup(round, overlap_share, overlap_items, created_at) VALUES (?, ?, ?, ?)",
                 (round_index, share, count, utc_now()))


def next_holdout(conn: sqlite3.Connection, annotator: str, now: float) -> tuple[int, int] | None:
    """The first held-out validation item (in the order drawn) that nobody answered, that this
    annotator did not skip, and that nobody else holds a live lease on (their own lease first)."""
    rows = conn.execute(
        "SELECT h.item_id, h.rank, (SELECT annotator FROM leases l WHERE l.item_id = h.item_id AND l.annotator = ?), "
        "(SELECT COUNT(*) FROM leases l WHERE l.item_id = h.item_id AND l.annotator != ? AND l.expires_at >= ?) "
        "FROM holdout h WHERE h.item_id NOT IN (SELECT item_id FROM labels) "
        "AND h.item_id NOT IN (SELECT item_id FROM adjudications) "
        "AND h.item_id NOT IN (SELECT item_id FROM skips WHERE annotator = ? AND round = ?) ORDER BY h.rank",
        (annotator, annotator, now, annotator, HOLDOUT_ROUND)).fetchall()
    mine = next(((item, rank) for item, rank, own, _ in rows if own is not None), None)
    return mine or next(((item, rank) for item, rank, _, others in rows if not others), None)
