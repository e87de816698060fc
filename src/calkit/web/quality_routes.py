"""The lead's data-quality routes: the pilot and its agreement gate, running agreement,
adjudication by Dawid-Skene, and corrections from the label review. A thin layer over
calkit.labeling.pilot, calkit.labeling.quality and calkit.label_review's stored queue."""

from __future__ import annotations

from fastapi import Depends, FastAPI
from pydantic import BaseModel, StrictFloat, StrictInt, StrictStr

from calkit.errors import CalkitError, LabelError
from calkit.labeling import pilot, quality, review_queue
from calkit.labeling.display import describe
from calkit.labeling.refusal import Refused
from calkit.web.auth import Principal, lead_only


class PilotIn(BaseModel):
    items: StrictInt = pilot.DEFAULT_PILOT_ITEMS
    threshold: StrictFloat | StrictInt = pilot.DEFAULT_THRESHOLD


class HoldoutIn(BaseModel):
    items: StrictInt


class ReasonIn(BaseModel):
    reason: StrictStr


class CorrectionIn(BaseModel):
    item_id: StrictInt
    label: StrictInt | StrictStr
    reason: StrictStr = "label review"


def add_quality_routes(app: FastAPI, run) -> None:
    """Register the routes on the application itself (an included router would hide them from
    ``app.routes``, which the test that every route needs a signed-in caller walks)."""
    lead = Depends(lead_only)
    prefix = "/api/lead"

    @app.get(prefix + "/pilot", tags=["lead"],
              summary="The newest pilot: state, answers so far, agreement, disputed items")
    def pilot_report(who: Principal = lead) -> dict:
        return {"pilot": pilot.report(run)}

    @app.post(prefix + "/pilot", tags=["lead"],
              summary="Start a pilot: every annotator labels the same items before scale-up")
    def start_pilot(body: PilotIn, who: Principal = lead) -> dict:
        started = pilot.start(run, who.name, body.items, float(body.threshold))
        return {"pilot": started.to_dict()}

    @app.post(prefix + "/pilot/open", tags=["lead"],
              summary="Open scale-up without the agreement the gate asks for, with a reason")
    def open_gate(body: ReasonIn, who: Principal = lead) -> dict:
        return {"pilot": pilot.open_gate(run, who.name, body.reason).to_dict()}

    @app.post(prefix + "/holdout", tags=["lead"],
              summary="Set random items aside as a validation set people label first (never trained on)")
    def hold_out(body: HoldoutIn, who: Principal = lead) -> dict:
        if not 1 <= body.items <= 100_000:
            raise Refused(422, "bad_count", "hold out 1 to 100000 items")
        try:
            added = run.hold_out(body.items)
        except CalkitError as exc:
            raise Refused(409, "not_held_out", str(exc)) from exc
        return {"added": [int(i) for i in added], **holdout_summary(run)}

    @app.get(prefix + "/agreement", tags=["lead"],
              summary="Agreement on items with several answers; confusion per annotator")
    def agreement_report(who: Principal = lead) -> dict:
        return {**quality.agreement_report(run), "model_decisions": _keyed(quality.model_decisions(run))}

    @app.post(prefix + "/adjudicate", tags=["lead"],
              summary="Decide every disputed item of the open round by Dawid-Skene")
    def adjudicate(who: Principal = lead) -> dict:
        try:
            return {"decided": _keyed(quality.settle_by_model(run, who.name))}
        except LabelError as exc:
            raise Refused(409, "not_accepted", "; ".join(str(v) for v in exc.problems.values())) from exc

    @app.get(prefix + "/review", tags=["lead"], summary="The stored label review: suspect labels, most suspect first")
    def review(who: Principal = lead) -> dict:
        return review_queue.read(run)

    @app.post(prefix + "/review/request", tags=["lead"],
              summary="Ask the worker for a fresh label review (it trains small models)")
    def request_review(who: Principal = lead) -> dict:
        review_queue.request(run)
        return {"requested": True}

    @app.post(prefix + "/review/correct", tags=["lead"],
              summary="Correct a label (any round): a new fact, trained from the next round")
    def correct(body: CorrectionIn, who: Principal = lead) -> dict:
        if not body.reason.strip():
            raise Refused(422, "bad_reason", "a correction needs its reason")
        try:
            run.correct({body.item_id: body.label}, decided_by=who.name, reason=body.reason)
        except LabelError as exc:
            raise Refused(409, "not_accepted", "; ".join(str(v) for v in exc.problems.values())) from exc
        return {"item_id": body.item_id, "corrected": True}



def quality_context(run) -> dict:
    """What the lead's page shows of data quality: the pilot, agreement, the model's decisions
    for disputed items, and the stored label review with a preview of each item."""
    review = review_queue.read(run)
    for entry in review["items"]:
        entry["shown"] = describe(run.dataset.display(entry["item_id"]))
    newest = pilot.report(run)
    for entry in newest["disputed_items"] if newest else ():
        entry["shown"] = describe(run.dataset.display(entry["item_id"]))
    return {"pilot": newest, "agreement": quality.agreement_report(run),
            "model_decisions": quality.model_decisions(run), "review": review,
            "pilot_defaults": {"items": pilot.DEFAULT_PILOT_ITEMS, "threshold": pilot.DEFAULT_THRESHOLD},
            **holdout_summary(run)}


def holdout_summary(run) -> dict:
    """How many items are held out as a validation set, and how many people have labeled."""
    return {"holdout": {"items": len(run._ledger.holdout_ids()), "labeled": len(run._ledger.holdout_labels())}}


def _keyed(decisions: dict[int, dict]) -> list[dict]:
    return [{"item_id": item, **decision} for item, decision in sorted(decisions.items())]
