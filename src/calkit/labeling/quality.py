"""Agreement while labeling runs, and adjudication by a model of annotator reliability.

Items answered by more than one annotator (pilots, and the overlap share of each later round)
measure how well people agree: pairwise Cohen's kappa, Krippendorff's alpha, and each
annotator's confusion matrix against the consensus (the label training reads). Disputed items
(answers tied at the top) wait for the lead, who decides them one by one, or lets Dawid-Skene
decide: it weighs each answer by how reliable its annotator has been on every item they
answered. Either way the decision is a new fact (an adjudication); every answer stays.
"""

from __future__ import annotations

from calkit import agreement

#: Who a Dawid-Skene adjudication is recorded as decided by (with the lead who asked for it).
MODEL = "dawid-skene"
#: Pairs of annotators listed (those with the most shared items first).
MAX_PAIRS = 100


def current_answers(run) -> dict[int, dict[str, int]]:
    """Every item's current answers, by annotator."""
    found: dict[int, dict[str, int]] = {}
    for item, who, label in run._ledger._conn.execute("SELECT item_id, annotator, label FROM current_answers"):
        found.setdefault(int(item), {})[str(who)] = int(label)
    return found


def agreement_report(run) -> dict:
    """Agreement on every item with two or more answers, and each annotator's confusion matrix
    against the consensus on those items (rows: the consensus class; columns: their answer)."""
    answers = current_answers(run)
    shared = {item: votes for item, votes in answers.items() if len(votes) >= 2}
    names = run.class_names
    stats = agreement.summary(shared, len(names)).to_dict()
    stats["pairs_total"] = len(stats["pairs"])
    stats["pairs"] = sorted(stats["pairs"], key=lambda p: -p["items"])[:MAX_PAIRS]
    consensus = run._ledger.adjudicated(shared)
    confusion = agreement.confusion_against(shared, consensus, len(names))
    return {"items": len(shared), "agreement": stats, "classes": list(names),
            "confusion": {who: matrix.astype(int).tolist() for who, matrix in sorted(confusion.items())},
            "accuracy_against_consensus": {who: _diagonal_share(matrix) for who, matrix in sorted(confusion.items())}}


def model_decisions(run) -> dict[int, dict]:
    """Dawid-Skene's label and posterior for each disputed item of the open round and of the
    held-out validation set (fitted on every current answer of the run)."""
    ledger = run._ledger
    disputed = [] if ledger.open_round() is None else [int(i) for i in ledger.disputed(ledger.open_round())]
    disputed += [int(i) for i in ledger.holdout_disputed()]
    short = ledger.short_of_answers()  # still waiting for answers (a running pilot's items)
    disputed = [i for i in disputed if i not in short]
    if not disputed:
        return {}
    model = agreement.dawid_skene(current_answers(run), len(run.class_names))
    return {item: {"label": run.class_names[model.labels[item]], "label_index": model.labels[item],
                   "posterior": float(model.posterior[item][model.labels[item]])}
            for item in disputed if item in model.labels}


def settle_by_model(run, lead: str) -> dict[int, dict]:
    """Decide every disputed item of the open round and of the held-out set by Dawid-Skene, as
    the lead asked."""
    decisions = model_decisions(run)
    if decisions:  # all in one transaction, or none (a round closed meanwhile: LabelError)
        run._ledger.adjudicate({i: d["label_index"] for i, d in decisions.items()}, f"{MODEL} ({lead})",
                               {i: f"Dawid-Skene posterior {d['posterior']:.2f}" for i, d in decisions.items()})
    return decisions


def _diagonal_share(matrix) -> float | None:
    total = matrix.sum()
    return None if total == 0 else float(matrix.trace() / total)
