"""Module boundaries (STYLE §2), checked by walking imports with `ast`:
shared never imports services; no service imports another; only app.py imports faststream; only the HTTP
client modules import httpx; only store*.py builds SQL; pure modules import no I/O library."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("ingest", "classify", "alert")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _ids(paths: list[Path]) -> list[str]:
    return [str(p.relative_to(ROOT)) for p in paths]


@pytest.mark.parametrize("path", _modules("shared"), ids=_ids(_modules("shared")))
def test_shared_never_imports_services(path: Path) -> None:
    assert not {m for m in _imports(path) if m.startswith(("services", "watchfloor"))}


SERVICE_MODULES = [p for s in SERVICES for p in _modules(f"services/{s}")]


@pytest.mark.parametrize("path", SERVICE_MODULES, ids=_ids(SERVICE_MODULES))
def test_a_service_imports_no_other_service(path: Path) -> None:
    own = path.relative_to(ROOT / "services").parts[0]
    others = {m for m in _imports(path) if m.startswith("services.") and m.split(".")[1] != own}
    assert not others, f"{path.name} reaches into {others}: talk through streams and tables instead"
    assert not {m for m in _imports(path) if m.startswith("watchfloor")}


@pytest.mark.parametrize("path", SERVICE_MODULES, ids=_ids(SERVICE_MODULES))
def test_only_app_imports_faststream(path: Path) -> None:
    if path.name != "app.py":
        assert not {m for m in _imports(path) if m.startswith("faststream")}


HTTP_CLIENT_MODULES = {"fetch.py", "webhook.py"}


@pytest.mark.parametrize("path", SERVICE_MODULES, ids=_ids(SERVICE_MODULES))
def test_only_the_http_modules_import_httpx(path: Path) -> None:
    if path.name not in HTTP_CLIENT_MODULES and path.name != "app.py":
        assert "httpx" not in _imports(path)


@pytest.mark.parametrize("path", SERVICE_MODULES, ids=_ids(SERVICE_MODULES))
def test_only_store_modules_build_sql(path: Path) -> None:
    if not path.name.startswith("store"):
        query_builders = {m for m in _imports(path) if m == "sqlalchemy" or m.startswith("sqlalchemy.dialects")}
        assert not query_builders, f"{path.name} builds SQL: move the query into the service's store"


PURE = {"parse.py", "normalise.py", "schedule.py", "filters.py", "classify.py", "match.py", "place.py",
        "attribution.py", "toll.py", "aliases.py", "evaluate.py", "incidents.py", "signing.py", "rules.py",
        "geofence.py", "spatial.py", "severity.py", "silences.py", "paging.py", "conditions.py", "eventlog.py",
        "lifecycle.py"}


@pytest.mark.parametrize("path", [p for p in SERVICE_MODULES if p.name in PURE],
                         ids=_ids([p for p in SERVICE_MODULES if p.name in PURE]))
def test_pure_modules_do_no_io(path: Path) -> None:
    io = {m for m in _imports(path) if m.split(".")[0] in {"sqlalchemy", "redis", "httpx", "faststream", "fastapi"}}
    assert not io, f"{path.name} is meant to be pure but imports {io}"
