"""The label vocabulary of ../shared/taxonomy.md as data (taxonomy.csv): actor codes with their parent unit and
family, tactic codes with their gravity. Classify and alert read it from here, and nowhere else."""

import csv
from pathlib import Path

with Path(__file__).with_name("taxonomy.csv").open(encoding="utf-8", newline="") as _fh:
    _ROWS = list(csv.DictReader(_fh))

ACTOR_PARENTS: dict[str, str | None] = {r["code"]: r["parent"] or None for r in _ROWS if r["kind"] == "actor"}
"""Every actor code, with its parent (a sub-unit counts as itself and its parent)."""
PARENT: dict[str, str] = {code: parent for code, parent in ACTOR_PARENTS.items() if parent}
FAMILY: dict[str, str] = {r["code"]: r["family"] for r in _ROWS if r["kind"] == "actor"}
JIHADIST = frozenset(code for code, family in FAMILY.items() if family == "jihadist")
STATE = frozenset(code for code, family in FAMILY.items() if family == "state")
MILITIA = frozenset(code for code, family in FAMILY.items() if family == "militia")
TACTICS = frozenset(r["code"] for r in _ROWS if r["kind"] == "tactic")
GRAVE_TACTICS = frozenset(r["code"] for r in _ROWS if r["kind"] == "tactic" and r["severity"] == "grave")
