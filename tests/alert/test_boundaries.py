"""The alert service keeps its seams (STYLE §2): no other service imported, one module per outside world."""

import ast
from pathlib import Path

import pytest

import services.alert

ROOT = Path(services.alert.__file__).parent
MODULES = sorted(p for p in ROOT.glob("*.py"))
PURE = ("evaluate.py", "incidents.py", "signing.py", "rules.py", "geofence.py", "spatial.py", "severity.py",
        "silences.py", "paging.py", "conditions.py")
"""Pure modules: no I/O library; they take `now` and a policy (STYLE §2)."""


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_module_imports_stay_within_bounds(path: Path) -> None:
    imports = _imports(path)
    assert not {m for m in imports if m.startswith(("services.ingest", "services.classify"))}
    if path.name != "app.py":
        assert not {m for m in imports if m.split(".")[0] == "faststream"}, "only app.py uses FastStream"
    if path.name != "webhook.py":
        assert "httpx" not in imports, "only webhook.py uses httpx"
    if not path.name.startswith("store"):
        assert not {m for m in imports if m in ("sqlalchemy", "sqlalchemy.dialects")}, "only store*.py query"
    if path.name in PURE:
        assert not {m for m in imports if m.split(".")[0] in ("redis", "sqlalchemy", "httpx", "fastapi")}
