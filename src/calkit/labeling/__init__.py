"""People labeling a run together: accounts, leases, the labeling desk, and the worker that trains.

Everything here is plain Python over the run's ledger (its own tables in the same SQLite file,
so an answer, its lease and its request id commit in one transaction); the web application
(calkit.web) is a thin layer over it, and scripts can use it directly.
"""

from calkit.labeling.accounts import Account, Accounts, ROLES
from calkit.labeling.desk import Desk, Lease, Progress as DeskProgress
from calkit.labeling.refusal import Refused
from calkit.labeling.guidelines import Guideline, Guidelines

__all__ = ["Account", "Accounts", "Desk", "DeskProgress", "Guideline", "Guidelines", "Lease", "ROLES", "Refused"]
