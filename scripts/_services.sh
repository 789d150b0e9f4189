# Sourced by scripts/test: Redis and PostgreSQL for the tests, installed and started if missing.
# Point the tests at other servers with WATCHFLOOR_TEST_REDIS_URL / WATCHFLOOR_TEST_POSTGRES_URL.

export WATCHFLOOR_TEST_REDIS_URL="${WATCHFLOOR_TEST_REDIS_URL:-redis://127.0.0.1:6379/15}"
export WATCHFLOOR_TEST_POSTGRES_URL="${WATCHFLOOR_TEST_POSTGRES_URL:-postgresql+asyncpg://postgres@127.0.0.1:5432/test}"
_APT_UPDATED=""

_can_install() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

_apt_install() {
  if [ -z "$_APT_UPDATED" ]; then
    echo "==> apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    _APT_UPDATED=1
  fi
  echo "==> apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

_redis_answers() {
  "$VENV/bin/python" - "$WATCHFLOOR_TEST_REDIS_URL" <<'PY'
import sys, redis
try:
    sys.exit(0 if redis.Redis.from_url(sys.argv[1], socket_timeout=2).ping() else 1)
except Exception:
    sys.exit(1)
PY
}

ensure_redis() {
  _redis_answers && return 0
  case "$WATCHFLOOR_TEST_REDIS_URL" in
    redis://127.0.0.1:6379*|redis://localhost:6379*) ;;
    *) echo "Redis does not answer at $WATCHFLOOR_TEST_REDIS_URL" >&2; return 1 ;;
  esac
  if ! command -v redis-server >/dev/null 2>&1; then
    _can_install || { echo "Redis is missing: install redis-server (or set WATCHFLOOR_TEST_REDIS_URL)" >&2; return 1; }
    _apt_install redis-server
  fi
  echo "==> starting redis-server on 127.0.0.1:6379"
  mkdir -p /tmp/watchfloor-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp/watchfloor-redis --logfile /tmp/watchfloor-redis/redis.log
  for _ in $(seq 50); do _redis_answers && return 0; sleep 0.1; done
  echo "redis-server did not start: see /tmp/watchfloor-redis/redis.log" >&2; return 1
}

_pg_answers() {
  "$VENV/bin/python" - "$WATCHFLOOR_TEST_POSTGRES_URL" <<'PY'
import asyncio, sys, asyncpg
url = sys.argv[1].replace("postgresql+asyncpg://", "postgresql://")
async def main():
    conn = await asyncpg.connect(url, timeout=3)
    await conn.close()
try:
    asyncio.run(main())
except Exception as exc:
    print(f"   PostgreSQL: {type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(1)
PY
}

ensure_postgres() {
  _pg_answers 2>/dev/null && return 0
  case "$WATCHFLOOR_TEST_POSTGRES_URL" in
    *@127.0.0.1:5432/*|*@localhost:5432/*) ;;
    *) _pg_answers; echo "PostgreSQL does not answer at $WATCHFLOOR_TEST_POSTGRES_URL" >&2; return 1 ;;
  esac
  if ! command -v pg_ctlcluster >/dev/null 2>&1; then
    _can_install || { echo "PostgreSQL is missing: install it (or set WATCHFLOOR_TEST_POSTGRES_URL)" >&2; return 1; }
    _apt_install postgresql
  fi
  local version; version="$(ls /etc/postgresql | sort -V | tail -n 1)"
  if ! pg_lsclusters -h 2>/dev/null | grep -q online; then
    echo "==> starting PostgreSQL $version"
    pg_ctlcluster --skip-systemctl-redirect "$version" main start
  fi
  for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
  _pg_answers 2>/dev/null && return 0
  # A stock Debian cluster wants a password over TCP: give the postgres role one for the tests
  # and create the database they use.
  local db="${WATCHFLOOR_TEST_POSTGRES_URL##*/}"
  echo "==> preparing role postgres and database $db for the tests"
  su postgres -c "psql -q -c \"ALTER ROLE postgres PASSWORD 'postgres'\"" >/dev/null
  su postgres -c "psql -q -tc \"SELECT 1 FROM pg_database WHERE datname = '$db'\" | grep -q 1 || createdb $db"
  export WATCHFLOOR_TEST_POSTGRES_URL="postgresql+asyncpg://postgres:postgres@127.0.0.1:5432/$db"
  _pg_answers
}

ensure_chromium() {  # the console's browser test drives Debian's Chromium through Playwright
  local path="${WATCHFLOOR_TEST_CHROMIUM:-/usr/bin/chromium}"
  [ -x "$path" ] && return 0
  _can_install || { echo "Chromium is missing at $path: install Debian's chromium (or set WATCHFLOOR_TEST_CHROMIUM)" >&2; return 1; }
  _apt_install chromium
}
