"""Who may label a run: annotators and leads, their sign-in tokens and browser sessions.

A token is shown once, when the account is made, and stored only as its SHA-256 hash: a token
is 256 random bits, so a fast hash is enough (no password to stretch). A browser trades the
token for a session (a cookie holding another random value, also stored hashed) and a CSRF
token that every state-changing request must echo. Revoking an account ends its sessions and
returns its leased items to the queue at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from calkit.answers import annotator_problem
from calkit.errors import CalkitError
from calkit.labeling.schema import ensure_desk_tables
from calkit.ledger import Ledger, utc_now

ROLES = ("lead", "annotator")
#: How long a browser session lasts without signing in again.
SESSION_SECONDS = 7 * 24 * 3600


class AccountError(CalkitError):
    """An account cannot be made, found or changed as asked."""


@dataclass(frozen=True)
class Account:
    name: str
    role: str
    created_at: str
    revoked_at: str | None = None

    @property
    def is_lead(self) -> bool:
        return self.role == "lead"

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class Session:
    account: Account
    csrf_token: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    """The accounts of one run, kept in its ledger."""

    def __init__(self, run_or_ledger):
        """``run_or_ledger``: a :class:`calkit.Run`, or its Ledger."""
        self.ledger: Ledger = getattr(run_or_ledger, "_ledger", run_or_ledger)
        ensure_desk_tables(self.ledger)

    def add(self, name: str, role: str = "annotator") -> str:
        """Make an account; returns its sign-in token, which is not stored and cannot be shown again."""
        if not isinstance(name, str) or annotator_problem(name):
            raise AccountError(annotator_problem(name) if isinstance(name, str) else "a name must be text")
        if role not in ROLES:
            raise AccountError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
        token = secrets.token_urlsafe(32)
        with self.ledger.transaction() as conn:
            found = conn.execute("SELECT revoked_at FROM annotators WHERE name = ?", (name.strip(),)).fetchone()
            if found is not None and found[0] is not None:
                raise AccountError(f"{name.strip()!r} was revoked; choose another name (the answers given under "
                                   "a name stay with it)")
            if found is not None:
                raise AccountError(f"{name.strip()!r} already has an account; for a new sign-in link: "
                                   f"calkit annotators reset RUN {name.strip()}")
            conn.execute("INSERT INTO annotators(name, role, token_hash, created_at) VALUES (?, ?, ?, ?)",
                         (name.strip(), role, token_hash(token), utc_now()))
        return token

    def list(self) -> list[Account]:
        rows = self.ledger._conn.execute(
            "SELECT name, role, created_at, revoked_at FROM annotators ORDER BY created_at, name").fetchall()
        return [Account(*row) for row in rows]

    def get(self, name: str) -> Account | None:
        row = self.ledger._conn.execute(
            "SELECT name, role, created_at, revoked_at FROM annotators WHERE name = ?", (name,)).fetchone()
        return None if row is None else Account(*row)

    def revoke(self, name: str) -> None:
        """End an account: its token and sessions stop working, its leases go back to the queue.
        Its answers stay (they are facts); a lead can overrule them."""
        with self.ledger.transaction() as conn:
            found = conn.execute("UPDATE annotators SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
                                 (utc_now(), name)).rowcount
            if not found:
                known = conn.execute("SELECT revoked_at FROM annotators WHERE name = ?", (name,)).fetchone()
                raise AccountError(f"no account named {name!r}" if known is None else f"{name!r} is already revoked")
            conn.execute("DELETE FROM sessions WHERE annotator = ?", (name,))
            conn.execute("DELETE FROM leases WHERE annotator = ?", (name,))

    def reset(self, name: str) -> str:
        """A new sign-in token for an active account; the old token and its sessions stop working."""
        token = secrets.token_urlsafe(32)
        with self.ledger.transaction() as conn:
            found = conn.execute("UPDATE annotators SET token_hash = ? WHERE name = ? AND revoked_at IS NULL",
                                 (token_hash(token), name)).rowcount
            if not found:
                raise AccountError(f"no active account named {name!r}")
            conn.execute("DELETE FROM sessions WHERE annotator = ?", (name,))
        return token

    def by_token(self, token: str) -> Account | None:
        """The active account a sign-in (or API) token belongs to."""
        if not isinstance(token, str) or not token or len(token) > 200:
            return None
        row = self.ledger._conn.execute(
            "SELECT name, role, created_at, revoked_at FROM annotators WHERE token_hash = ? AND revoked_at IS NULL",
            (token_hash(token),)).fetchone()
        return None if row is None else Account(*row)

    # -- browser sessions ----------------------------------------------------------------------
    def start_session(self, account: Account) -> tuple[str, str]:
        """A new session for a signed-in account: (cookie value, CSRF token)."""
        cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        with self.ledger.transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE expires_at < ?", (time.time(),))
            conn.execute("INSERT INTO sessions(session_hash, annotator, csrf_token, created_at, expires_at) "
                         "VALUES (?, ?, ?, ?, ?)",
                         (token_hash(cookie), account.name, csrf, utc_now(), time.time() + SESSION_SECONDS))
        return cookie, csrf

    def session(self, cookie: str | None) -> Session | None:
        """The live session a cookie stands for (None when unknown, expired or revoked)."""
        if not cookie or len(cookie) > 200:
            return None
        row = self.ledger._conn.execute(
            "SELECT a.name, a.role, a.created_at, a.revoked_at, s.csrf_token FROM sessions s "
            "JOIN annotators a ON a.name = s.annotator "
            "WHERE s.session_hash = ? AND s.expires_at > ? AND a.revoked_at IS NULL",
            (token_hash(cookie), time.time())).fetchone()
        return None if row is None else Session(Account(*row[:4]), row[4])

    def end_session(self, cookie: str | None) -> None:
        if cookie:
            with self.ledger.transaction() as conn:
                conn.execute("DELETE FROM sessions WHERE session_hash = ?", (token_hash(cookie),))


def same_secret(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a CSRF token."""
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())
