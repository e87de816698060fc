"""The labeling web application: a thin layer over calkit.Run and calkit.labeling.

Pages are rendered on the server (Jinja2, autoescaped); the little JavaScript there is lives in
static files (the Content-Security-Policy forbids inline script) and uses the same JSON API
under /api that scripts call with ``Authorization: Bearer TOKEN``. This process never trains:
the worker does (calkit.labeling.worker).
"""

from __future__ import annotations

import contextlib
import html
import functools
import threading
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, Field, StrictInt, StrictStr
from starlette.exceptions import HTTPException as StarletteHTTPException

from calkit import __version__
from calkit.labeling import overview
from calkit.labeling.accounts import Accounts
from calkit.labeling.desk import DEFAULT_LEASE_SECONDS, Desk, Refused
from calkit.labeling.display import describe, image_bytes
from calkit.labeling.guidelines import Guidelines, markdown_literal, render
from calkit.labeling.worker import read_worker_status, tail_log
from calkit.report import forecast_line
from calkit.web.auth import COOKIE, BodyLimit, Principal, authenticate, lead_only, security_headers
from calkit.web.charts import learning_curve_svg
from calkit.web.quality_routes import add_quality_routes, quality_context

HERE = Path(__file__).parent
#: Accuracy points below which the lead's page suggests stopping (`calkit serve --stop-below`).
DEFAULT_STOP_BELOW = 0.5
#: Keys of the class buttons, in class order.
CLASS_KEYS = "1234567890abcdefghijklmnopqrstuvwxyz"


class LabelIn(BaseModel):
    item_id: StrictInt
    label: StrictInt | StrictStr = Field(description="class name, or class index")
    request_id: StrictStr = Field(description="unique per change: a repeat returns the first response")


class SkipIn(BaseModel):
    item_id: StrictInt
    reason: StrictStr = "can't tell"
    request_id: StrictStr


class UndoIn(BaseModel):
    request_id: StrictStr


class QuestionIn(BaseModel):
    item_id: StrictInt
    text: StrictStr
    request_id: StrictStr


class AnswerIn(BaseModel):
    text: StrictStr


class ResolveIn(BaseModel):
    item_id: StrictInt
    label: StrictInt | StrictStr
    reason: StrictStr


class SignInIn(BaseModel):
    token: StrictStr


def create_app(run_path: str | Path, lease_seconds: float = DEFAULT_LEASE_SECONDS, secure_cookies: bool = False,
               dataset=None, stop_below: float = DEFAULT_STOP_BELOW) -> FastAPI:
    """The application for one run (opened here; it must have been created with oracle people).
    ``dataset``: the run's Dataset object, for runs made from one rather than a name or path.
    ``stop_below``: the lead's page suggests stopping when more labels are worth fewer accuracy
    points than this (calkit.learning_curve)."""
    from calkit.run import Run

    run = Run.open(run_path, dataset=dataset)
    if run.config.oracle != "people":
        run.close()
        from calkit.errors import ConfigError
        raise ConfigError(f"{run_path} was created with oracle {run.config.oracle!r}, so its labels come from the "
                          "dataset; to label in the browser, create a run with --oracle people "
                          "(calkit run --dataset ... --oracle people --out RUN) and serve that")
    desk = Desk(run, lease_seconds=lease_seconds)
    accounts = Accounts(run._ledger)
    guidelines = Guidelines(run)
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        run.close()

    app = FastAPI(title="calkit labeling", version=__version__, docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan,
                  description="Label what active learning selects. Authenticate with `Authorization: Bearer TOKEN` "
                              "(from `calkit annotators add`).")
    app.state.run, app.state.desk, app.state.accounts = run, desk, accounts
    app.state.secure_cookies = secure_cookies
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.middleware("http")(security_headers)
    app.add_middleware(BodyLimit)
    user = Depends(authenticate)
    lead = Depends(lead_only)
    image_cache = _ImageCache(run)

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"where": ".".join(str(p) for p in e.get("loc", ())), "problem": e.get("msg")} for e in exc.errors()]
        return JSONResponse({"error": "bad_request", "message": "the request body is not what this route takes",
                             "details": details}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 401 and not request.url.path.startswith("/api"):
            return RedirectResponse("/signin", status_code=303)
        if exc.status_code == 403 and not request.url.path.startswith("/api"):
            return HTMLResponse(f"<!doctype html><title>not allowed</title><link rel=stylesheet href=/static/style.css>"
                                f"<main><section class=card><h1>Not allowed</h1><p>{html.escape(str(exc.detail))}."
                                "</p><p><a href=/>Back to labeling</a></p></section></main>", status_code=403)
        code = {401: "not_signed_in", 403: "forbidden", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "error")
        return JSONResponse({"error": code, "message": str(exc.detail)}, status_code=exc.status_code)

    # -- pages ----------------------------------------------------------------------------------
    @app.get("/signin", response_class=HTMLResponse, include_in_schema=False)
    def signin_page(request: Request) -> Response:
        return templates.TemplateResponse(request, "signin.html", {"run": run.path.name})

    @app.post("/signin", include_in_schema=False)
    def signin(body: SignInIn, request: Request) -> Response:
        account = accounts.by_token(body.token)
        if account is None:
            return JSONResponse({"error": "bad_token", "message": "this sign-in link is not valid (revoked, or "
                                 "mistyped); ask the lead for a new one"}, status_code=401)
        cookie, _ = accounts.start_session(account)
        response = JSONResponse({"signed_in": account.name, "next": "/lead" if account.is_lead else "/"})
        response.set_cookie(COOKIE, cookie, httponly=True, samesite="strict", secure=app.state.secure_cookies,
                            max_age=7 * 24 * 3600, path="/")
        return response

    @app.post("/signout", include_in_schema=False)
    def signout(request: Request, who: Principal = user) -> Response:
        desk.release(who.name)
        accounts.end_session(request.cookies.get(COOKIE))
        response = JSONResponse({"signed_out": who.name})
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def label_page(request: Request, who: Principal = user) -> Response:
        current = guidelines.current()
        return templates.TemplateResponse(request, "label.html", {
            **_page(run, who), "guideline": current, "guideline_html": render(current.text) if current else ""})

    @app.get("/lead", response_class=HTMLResponse, include_in_schema=False)
    def lead_page(request: Request, who: Principal = lead) -> Response:
        rounds = overview.rounds(run)
        context = {**_page(run, who), "rounds": rounds, "annotators": overview.annotators(run),
                   "skips": overview.skips(run)[:200], "questions": desk.search_questions("", limit=200),
                   "needs_lead": [{**n, "shown": describe(run.dataset.display(n["item_id"]))}
                                  for n in overview.unsettled_needing_lead(run)], "log": tail_log(run.path, 40),
                   "worker": read_worker_status(run.path), "curve": learning_curve_svg(rounds),
                   "forecast": forecast_line(run.metrics(), _worth(run), stop_below),
                   "progress": desk.progress(who.name), "classes": list(run.class_names),
                   "guidelines": _guideline_history(guidelines), **quality_context(run)}
        return templates.TemplateResponse(request, "lead.html", context)

    # -- the JSON API ---------------------------------------------------------------------------------
    @app.get("/api/openapi.json", tags=["meta"])
    def openapi(who: Principal = user) -> dict:
        return app.openapi()

    @app.get("/api/next", tags=["labeling"], summary="Lease the next item to label")
    def next_item(suggest: bool = False, who: Principal = user) -> dict:
        """``suggest=true`` adds the newest model's guess, where the worker made one (off by
        default: a guess on screen pulls answers towards it)."""
        lease = desk.next(who.name)
        body = {"classes": _classes(run), "progress": desk.progress(who.name).to_dict(), "model": _model(run)}
        if lease is None:
            return {**body, "item": None, "why": desk.why_none(who.name)}
        item = _item(run, lease)
        if suggest:
            item["suggestion"] = desk.suggestion(lease.item_id)
        return {**body, "item": item}

    @app.post("/api/labels", tags=["labeling"], summary="Answer a leased item (acknowledged once committed)")
    def post_label(body: LabelIn, who: Principal = user) -> dict:
        return desk.submit(who.name, body.item_id, body.label, body.request_id)

    @app.post("/api/skip", tags=["labeling"], summary="Pass on a leased item, with a reason")
    def post_skip(body: SkipIn, who: Principal = user) -> dict:
        return desk.skip(who.name, body.item_id, body.reason, body.request_id)

    @app.post("/api/undo", tags=["labeling"], summary="Take back your previous answer in the open round")
    def post_undo(body: UndoIn, who: Principal = user) -> dict:
        lease = desk.undo(who.name, body.request_id)
        return {"item": {**_item(run, lease), "suggestion": desk.suggestion(lease.item_id)}, "classes": _classes(run)}

    @app.post("/api/questions", tags=["labeling"], summary="Ask the lead a question about an item")
    def post_question(body: QuestionIn, who: Principal = user) -> dict:
        return desk.ask(who.name, body.item_id, body.text, body.request_id)

    @app.get("/api/questions", tags=["labeling"], summary="Search the question log (every word, in question or answer)")
    def questions(q: str = "", who: Principal = user) -> dict:
        return {"questions": desk.search_questions(q[:200], limit=50, viewer=None if who.is_lead else who.name)}

    @app.post("/api/lead/questions/{question_id}/answer", tags=["lead"], summary="Answer a question")
    def answer_question(question_id: int, body: AnswerIn, who: Principal = lead) -> dict:
        return desk.answer_question(who.name, question_id, body.text)

    @app.post("/api/lead/questions/{question_id}/promote", tags=["lead"],
              summary="Add an answered question to the guideline (a new version)")
    def promote_question(question_id: int, who: Principal = lead) -> dict:
        found = desk.question(question_id) if -2**63 <= question_id < 2**63 else None
        if found is None:
            raise Refused(404, "unknown_question", f"no question {question_id}")
        if not found["answer"]:
            raise Refused(409, "not_answered", f"question {question_id} has no answer to add")
        current = guidelines.current()
        addition = (f"**Q{question_id} (item {found['item_id']}):** {markdown_literal(found['text'])}\n\n"
                    f"**A:** {markdown_literal(found['answer'])}\n")
        heading = "## From the question log"
        text = (current.text.rstrip() + "\n\n") if current else ""
        if f"**Q{question_id} (item " in text:
            raise Refused(409, "already_added", f"question {question_id} is in the guideline already ({current.label})")
        if heading not in text:
            text += heading + "\n\n"
        version = guidelines.set(text + addition, author=who.name, note=f"question {question_id}")
        return {"guideline": version.label}

    @app.get("/api/progress", tags=["labeling"], summary="This round, the whole budget, yours; the model's state")
    def progress(who: Principal = user) -> dict:
        status = run.status()
        current = guidelines.current()
        return {"progress": desk.progress(who.name).to_dict(), "run": {"state": status.state, "round": status.round,
                "rounds": len(run.plan)}, "model": _model(run), "guideline": current.label if current else None}

    @app.get("/api/guideline", tags=["labeling"], summary="The current guideline (Markdown and safe HTML)")
    def guideline(who: Principal = user) -> dict:
        current = guidelines.current()
        if current is None:
            return {"version": None}
        return {"version": current.label, "created_at": current.created_at, "markdown": current.text,
                "html": render(current.text)}

    @app.get("/api/items/{item_id}/image", tags=["labeling"], summary="An asked item's image (by id only)")
    def item_image(item_id: int, who: Principal = user) -> Response:
        if desk.item_round(item_id) is None:  # also None for ids outside 64 bits
            raise Refused(404, "unknown_item", f"item {item_id} was never asked in this run")
        try:
            data, media = image_cache.get(item_id)
        except ValueError as exc:
            raise Refused(404, "not_an_image", str(exc)) from exc
        return Response(data, media_type=media, headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/api/lead/resolve", tags=["lead"], summary="Decide an item's label (a lead), with a reason")
    def resolve(body: ResolveIn, who: Principal = lead) -> dict:
        from calkit.errors import LabelError

        try:
            run.resolve({body.item_id: body.label}, decided_by=who.name, reason=body.reason)
        except LabelError as exc:
            raise Refused(409, "not_accepted", "; ".join(str(v) for v in exc.problems.values())) from exc
        return {"item_id": body.item_id, "resolved": True}

    @app.get("/api/lead/overview", tags=["lead"], summary="Rounds, annotators, skips, questions, worker")
    def lead_overview(who: Principal = lead) -> dict:
        return {"rounds": overview.rounds(run), "annotators": overview.annotators(run), "skips": overview.skips(run),
                "questions": desk.search_questions("", limit=1000), "needs_lead": overview.unsettled_needing_lead(run),
                "worker": read_worker_status(run.path), "log": tail_log(run.path, 100)}

    add_quality_routes(app, run)

    @app.get("/api/export.csv", tags=["lead"], summary="Every label with its provenance, as CSV")
    def export_csv(who: Principal = lead) -> Response:
        return PlainTextResponse(overview.export_csv(overview.export_rows(run)), media_type="text/csv",
                                 headers={"Content-Disposition": 'attachment; filename="labels.csv"'})

    @app.get("/api/export.jsonl", tags=["lead"], summary="Every label with its provenance, as JSON lines")
    def export_jsonl(who: Principal = lead) -> Response:
        return PlainTextResponse(overview.export_jsonl(overview.export_rows(run)), media_type="application/x-ndjson",
                                 headers={"Content-Disposition": 'attachment; filename="labels.jsonl"'})

    @app.get("/api/export.label-studio.json", tags=["lead"],
             summary="The asked items as Label Studio tasks: answers, decisions, the model's guesses")
    def export_label_studio(who: Principal = lead) -> Response:
        from calkit.label_studio import export_tasks

        return JSONResponse(export_tasks(run), headers={"Content-Disposition": 'attachment; filename="tasks.json"'})

    @app.get("/api/export.label-studio.xml", tags=["lead"], summary="The Label Studio labeling config for those tasks")
    def export_label_studio_config(who: Principal = lead) -> Response:
        from calkit.label_studio import labeling_config

        return Response(labeling_config(run), media_type="application/xml",
                        headers={"Content-Disposition": 'attachment; filename="config.xml"'})

    return app


def _guideline_history(guidelines: Guidelines) -> list[dict]:
    """Every version, newest first, each with its diff from the one before."""
    versions = guidelines.history()
    out = []
    for before, g in zip([None] + versions[:-1], versions):
        out.append({"label": g.label, "created_at": g.created_at, "author": g.author, "note": g.note,
                    "diff": guidelines.diff(before.version, g.version) if before else g.text})
    return out[::-1]


def _worth(run) -> int:
    """How many more labels the forecast prices: 1,000, or what the pool has left."""
    asked = len(run._ledger.queried_ids())
    return max(1, min(1000, run.dataset.pool_size - asked))


def _page(run, who: Principal) -> dict:
    return {"who": who.name, "is_lead": who.is_lead, "csrf": who.csrf or "", "run": run.path.name,
            "version": __version__}


def _classes(run) -> list[dict]:
    """Class buttons and their keys: a class named by one key (the digits "0"-"9") is that key;
    otherwise 1-9, 0, then letters, in class order."""
    names = list(run.class_names)
    own = [n.lower() for n in names]
    if all(len(k) == 1 and k in CLASS_KEYS for k in own) and len(set(own)) == len(own):
        keys = own
    else:
        keys = [CLASS_KEYS[i] if i < len(CLASS_KEYS) else None for i in range(len(names))]
    return [{"index": i, "name": name, "key": key} for i, (name, key) in enumerate(zip(names, keys))]


def _item(run, lease) -> dict:
    shown = describe(run.dataset.display(lease.item_id))
    if shown["kind"] == "image":
        shown["url"] = f"/api/items/{lease.item_id}/image"
    return {"id": lease.item_id, "round": lease.round, "rank": lease.rank, "lease_expires": lease.expires_at,
            "undo": lease.undo, "your_answer": lease.your_answer, "display": shown}


def _model(run) -> dict:
    """The model's version (rounds trained) and what the worker is doing."""
    worker = read_worker_status(run.path)
    keep = ("state", "round", "epoch", "max_epochs", "seconds_left", "seen_seconds_ago", "last_accuracy", "error")
    return {"version": len(run._ledger.trained_rounds()), "worker": {k: worker.get(k) for k in keep if k in worker}}


class _ImageCache:
    """Rendered images by item id (the pool does not change while a run lives)."""

    def __init__(self, run, size: int = 512):
        self.run = run
        self._get = functools.lru_cache(maxsize=size)(self._render)
        self._lock = threading.Lock()

    def _render(self, item_id: int) -> tuple[bytes, str]:
        return image_bytes(self.run.dataset.display(item_id))

    def get(self, item_id: int) -> tuple[bytes, str]:
        with self._lock:
            return self._get(item_id)
