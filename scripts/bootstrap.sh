#!/usr/bin/env bash
# Set up everything airflow-hybrid needs on a fresh Debian/Ubuntu machine: system headers, uv, .venv.
# Idempotent and quick when nothing changed (a stamp keyed on pyproject.toml).
# With --test it also installs and starts the tests' services (scripts/services.sh: a JDK and Maven for
# Apache Hadoop, PostgreSQL, Redis); the demo needs none of them.
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
want="$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)"
if ! { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/python" ]; }; then
  [ -x "$VENV/bin/python" ] || $UV venv -q --python "$PYTHON" "$VENV"
  echo "installing airflow-hybrid and its dependencies into $VENV ..."
  # constraints.txt pins every package to the versions the test suite passed with (`make lock` renews it)
  $UV pip install -q -p "$VENV/bin/python" -e '.[test]' -c constraints.txt
  echo "$want" > "$stamp"
fi
if $with_services; then
  VENV="$VENV" bash scripts/services.sh
fi
