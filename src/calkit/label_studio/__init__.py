"""Interchange with Label Studio: a run's items, answers, decisions and model guesses as Label
Studio tasks, the matching labeling config, and Label Studio exports read back as label facts.

Why this shape:

* Label Studio keeps a task's ``data`` and ``meta`` on import, and of an annotation only its
  ``result``, ``ground_truth``, ``was_cancelled``, ``lead_time`` and ``completed_by``; and it
  refuses a ``completed_by`` that is neither a member's id nor ``{"email": ...}`` of a member.
  So calkit's annotator names cannot ride in ``completed_by``: each exported annotation carries
  its provenance in a ``calkit`` object (read back from calkit's own files) and the task's
  ``meta["calkit_annotations"]`` holds the same, keyed by the id of the annotation's choice
  (the ``result`` region id, which Label Studio keeps), so an export that went through Label
  Studio still names the calkit annotator of every answer left unchanged there.
* Everything read back goes through the ledger's own submit path (``Ledger.submit`` with
  :class:`LabelFact`, source ``label-studio``), so its rules hold: items of the open round,
  classes in range, the same answer again changes nothing. One bad task is reported, never fatal.
* A file's names prove nobody's identity: its decisions are recorded as decided by
  ``label-studio (<name>)``, its answers never replace an answer given in calkit itself, and
  nothing is imported while a pilot's agreement gate is closed (pilot answers come from the desk).
"""

from calkit.label_studio.export import IMAGE_ROUTE, SOURCE, export_tasks, item_kind, labeling_config
from calkit.label_studio.importer import ImportResult, import_tasks

__all__ = ["IMAGE_ROUTE", "ImportResult", "SOURCE", "export_tasks", "import_tasks", "item_kind", "labeling_config"]
