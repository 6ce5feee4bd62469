#!/usr/bin/env bash
# Set up everything airflow-hybrid needs on a fresh Debian/Ubuntu machine: system headers, uv, .venv.
# Idempotent and quick when nothing changed (a stamp keyed on pyproject.toml).
# With --test it also installs and starts the tests' services (scripts/services.sh: a JDK and Maven for
# Apache Hadoop, PostgreSQL, Redis) and the browser and docker/ tests' tools (Chromium, playwright-core,
# docker-compose); the demo needs none of them.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

"$PYTHON" - <<'PY' || { echo "airflow-hybrid needs Python 3.10 to 3.13 (found $($PYTHON --version 2>&1))" >&2; exit 1; }
import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 13) else 1)
PY

# The HDFS provider's Kerberos extra builds gssapi/krb5, which need the Kerberos development headers.
if ! command -v krb5-config >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing the Kerberos development headers (libkrb5-dev) for gssapi ..."
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libkrb5-dev >/dev/null
  else
    echo "missing the Kerberos development headers; run:  sudo apt-get install -y libkrb5-dev" >&2
    exit 1
  fi
fi

if ! command -v uv >/dev/null 2>&1 && ! "$PYTHON" -m uv --version >/dev/null 2>&1; then
  echo "installing uv (fast, reproducible installs of Airflow's large dependency tree) ..."
  "$PYTHON" -m pip install -q uv
fi
UV="uv"; command -v uv >/dev/null 2>&1 || UV="$PYTHON -m uv"

with_services=false
[ "${1:-}" = "--test" ] && with_services=true

stamp="$VENV/.airflow-hybrid-installed"
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16) bytecode"
if ! { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; }; then
  [ -x "$VENV/bin/python" ] || $UV venv -q --python "$PYTHON" "$VENV"
  echo "installing airflow-hybrid and its dependencies into $VENV ..."
  # constraints.txt pins every package to the versions the test suite passed with (`make lock` renews it)
  $UV pip install -q -p "$VENV/bin/python" -e '.[test]' -c constraints.txt
  # Bytecode written once, as pip writes it (uv does not): without it every new process (a task, a worker, a
  # test's subprocess) compiles Airflow, botocore and the rest from source again (import airflow.sdk: 4.4 s
  # instead of 2.0 s here) wherever PYTHONDONTWRITEBYTECODE is set, as on this project's CI machines.
  "$VENV/bin/python" -m compileall -q -j 0 "$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" airflow_hybrid >/dev/null \
    || echo "(some files could not be compiled ahead; Python compiles them when they are imported)"
  echo "$want" > "$stamp"
fi
if $with_services; then
  VENV="$VENV" bash scripts/services.sh
fi

# The browser tests (tests/browser) drive Debian's headless Chromium with playwright-core, pinned in
# tests/browser/package-lock.json (Playwright's own browser download is skipped: it fails on Debian, and
# the tests launch /usr/bin/chromium). The docker/ test validates the compose file with Debian's
# docker-compose (no Docker engine needed). All three are for --test only; each step is skipped when done.
if $with_services; then
  tools=()
  [ -x /usr/bin/chromium ] || tools+=(chromium)
  command -v docker-compose >/dev/null 2>&1 || tools+=(docker-compose)
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || tools+=(nodejs npm)
  if [ ${#tools[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "installing ${tools[*]} from Debian's packages (browser and docker/ tests) ..."
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${tools[@]}" >/dev/null
    else
      echo "the browser and docker/ tests need:  sudo apt-get install -y ${tools[*]}" >&2
      exit 1
    fi
  fi
  node_major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$node_major" -lt 20 ]; then
    echo "playwright-core (tests/browser) needs Node.js >= 20; found $(node --version)" >&2
    exit 1
  fi
  node_stamp=tests/browser/node_modules/.airflow-hybrid-installed
  node_want="$(sha256sum tests/browser/package-lock.json | cut -c1-16)"
  if ! { [ -f "$node_stamp" ] && [ "$(cat "$node_stamp")" = "$node_want" ]; }; then
    echo "installing playwright-core into tests/browser/node_modules (npm ci) ..."
    (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    echo "$node_want" > "$node_stamp"
  fi
fi
