"""A run's labeling guideline, in versions: v1, v2, ...; every answer records the one it followed.

The guideline is Markdown, kept in the run's ledger; a new text makes a new version (the same
text again makes none). The desk stamps each answer with the version current when it was
committed, so labels given under an older guideline can be found and reviewed after a change.
Rendered for the screen by markdown-it with raw HTML off: a guideline cannot inject markup.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from calkit.errors import CalkitError
from calkit.labeling.schema import ensure_desk_tables
from calkit.ledger import utc_now

#: Longest guideline taken, in characters.
MAX_CHARS = 200_000


@dataclass(frozen=True)
class Guideline:
    version: int
    text: str
    created_at: str
    author: str
    note: str | None

    @property
    def label(self) -> str:
        return f"v{self.version}"


class Guidelines:
    """The guideline versions of one run (a :class:`calkit.Run`, or its Ledger)."""

    def __init__(self, run_or_ledger):
        self.ledger = getattr(run_or_ledger, "_ledger", run_or_ledger)
        ensure_desk_tables(self.ledger)

    def set(self, text: str, author: str = "lead", note: str | None = None) -> Guideline:
        """Make ``text`` the current guideline; returns the version (the current one, unchanged,
        when the text is the same)."""
        if not isinstance(text, str) or not text.strip():
            raise CalkitError("a guideline needs some text")
        if len(text) > MAX_CHARS:
            raise CalkitError(f"a guideline has at most {MAX_CHARS:,} characters")
        with self.ledger.transaction() as conn:
            row = conn.execute("SELECT text FROM guidelines ORDER BY version DESC LIMIT 1").fetchone()
            if row is None or row[0] != text:
                conn.execute("INSERT INTO guidelines(text, created_at, author, note) VALUES (?, ?, ?, ?)",
                             (text, utc_now(), author, note))
        return self.current()

    def current(self) -> Guideline | None:
        return self._one("SELECT version, text, created_at, author, note FROM guidelines ORDER BY version DESC LIMIT 1")

    def get(self, version: int) -> Guideline | None:
        if not isinstance(version, int) or not 0 < version < 2**63:
            return None
        return self._one("SELECT version, text, created_at, author, note FROM guidelines WHERE version = ?", (version,))

    def history(self) -> list[Guideline]:
        rows = self.ledger._conn.execute(
            "SELECT version, text, created_at, author, note FROM guidelines ORDER BY version").fetchall()
        return [Guideline(*row) for row in rows]

    def diff(self, old: int, new: int) -> str:
        """A unified diff between two versions' texts."""
        a, b = self.get(old), self.get(new)
        if a is None or b is None:
            raise CalkitError(f"no guideline version {old if a is None else new}")
        return "".join(difflib.unified_diff(a.text.splitlines(keepends=True), b.text.splitlines(keepends=True),
                                            fromfile=a.label, tofile=b.label))

    def _one(self, sql: str, args: tuple = ()) -> Guideline | None:
        row = self.ledger._conn.execute(sql, args).fetchone()
        return None if row is None else Guideline(*row)


def markdown_literal(text: str) -> str:
    """Text shown as written inside Markdown: every ASCII punctuation mark backslash-escaped and
    line breaks kept, so an annotator's question cannot add headings, lists or links."""
    escaped = "".join("\\" + ch if ch in _PUNCTUATION else ch for ch in text.strip())
    return "\\\n".join(line.strip() for line in escaped.splitlines() if line.strip())


_PUNCTUATION = set("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def render(text: str) -> str:
    """The guideline as HTML: Markdown with raw HTML escaped, and unsafe links refused."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False}).render(text)
