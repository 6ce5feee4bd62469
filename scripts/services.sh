#!/usr/bin/env bash
# Install (from Debian's packages) and start what the tests need beside Python: a JDK >= 17 and Maven for
# Apache Hadoop, the PostgreSQL server (shared cache catalog and migration state, Airflow's metadata DB)
# and the Redis server (Celery broker). Idempotent: what runs is left running. As root it does the work;
# otherwise it prints the exact lines to run and fails.
set -euo pipefail
cd "$(dirname "$0")/.."

PG_USER=${HYBRID_PG_USER:-hybrid}
PG_PASSWORD=${HYBRID_PG_PASSWORD:-hybrid}
PG_DB=${HYBRID_PG_DB:-hybrid_test}

java_ok() {
  command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1 || return 1
  local major
  major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/.*java.specification.version = //p' | cut -d. -f1)
  [ "${major:-0}" -ge 17 ]
}

missing=()
java_ok || missing+=(openjdk-17-jdk-headless maven)
command -v pg_ctlcluster >/dev/null 2>&1 && ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v krb5-config >/dev/null 2>&1 || missing+=(libkrb5-dev)

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else
    echo "airflow-hybrid's tests need this run as root:  sudo $*" >&2; exit 1
  fi
}

if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} from Debian's packages ..."
  as_root bash -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${missing[*]} >/dev/null"
fi

# PostgreSQL: the distribution's cluster, started when down; a password role that may create databases.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  cluster=$(pg_lsclusters -h 2>/dev/null | awk 'NR==1 {print $1" "$2}')
  if [ -z "$cluster" ]; then
    version=$(ls /usr/lib/postgresql | sort -n | tail -n 1)
    as_root pg_createcluster "$version" main >/dev/null
    cluster="$version main"
  fi
  echo "starting PostgreSQL $cluster ..."
  as_root pg_ctlcluster $cluster start
  for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi
as_root su postgres -c "psql -q -v ON_ERROR_STOP=1" <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
END \$\$;
SELECT 'CREATE DATABASE $PG_DB OWNER $PG_USER' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$PG_DB')\gexec
SQL

# Redis on loopback, started when it does not answer.
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis ..."
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no >/dev/null
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

# Apache Hadoop's jars, from Maven Central, resolved once (jvm/pom.xml -> jvm/target/classpath.txt).
"${VENV:-.venv}/bin/python" -c "from airflow_hybrid.devstack.hadoop import hadoop_classpath; hadoop_classpath()"
bash scripts/trino.sh
