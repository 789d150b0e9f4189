# Sourced by scripts/up and scripts/test: creates .venv with Python >= 3.11 and installs watchfloor into it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"

find_python() {
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
       "$candidate" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 14) else 1)' 2>/dev/null; then
      echo "$candidate"; return 0
    fi
  done
  echo "watchfloor needs Python 3.11 to 3.13 on PATH (python3.11 or python3)" >&2
  return 1
}

ensure_venv() {  # $1: pip extras, e.g. "[test]" or ""
  local extras="${1:-}"
  local stamp="$VENV/.installed$extras"
  if [ ! -x "$VENV/bin/python" ]; then
    local py; py="$(find_python)"
    echo "==> creating $VENV with $($py --version)"
    "$py" -m venv "$VENV"
  fi
  # Reinstall only when pyproject.toml changed since the last install.
  if [ ! -f "$stamp" ] || [ "$ROOT/pyproject.toml" -nt "$stamp" ]; then
    echo "==> installing watchfloor$extras into .venv (first time takes a minute)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT$extras"
    touch "$stamp"
  fi
}
