# The README's two commands: `make demo` and `make test`. Each sets everything up first.
PY := .venv/bin/python
export AIRFLOW__CORE__LOAD_EXAMPLES ?= False

.PHONY: setup setup-test demo test lint bench airflow lock

setup:
	@bash scripts/bootstrap.sh

# The tests and benchmarks also need a JDK + Maven (Apache Hadoop), PostgreSQL and Redis, installed and started.
setup-test:
	@bash scripts/bootstrap.sh --test

demo: setup
	$(PY) -m airflow_hybrid.cli.demo

test: setup-test
	$(PY) -m ruff check airflow_hybrid dags tests bench
	$(PY) -m pytest -q -p no:cacheprovider

lint: setup
	$(PY) -m ruff check airflow_hybrid dags tests bench

# Re-resolve the pinned versions (then run `make test` before committing constraints.txt).
lock:
	uv pip compile -q pyproject.toml --extra test --universal --python-version 3.10 -o constraints.txt

bench: setup-test
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# Start the Airflow UI (standalone) with this project's DAGs, on the demo's AIRFLOW_HOME.
# The plugin (the Hybrid lake page, the macros) comes with the package (its airflow.plugins entry point).
AIRFLOW_ENV := AIRFLOW_HOME=$${AIRFLOW_HOME:-$(CURDIR)/.demo/airflow} AIRFLOW__CORE__DAGS_FOLDER=$(CURDIR)/dags

airflow: setup
	$(AIRFLOW_ENV) .venv/bin/airflow db migrate
	$(AIRFLOW_ENV) .venv/bin/airflow hybrid devstack up
	$(AIRFLOW_ENV) .venv/bin/airflow standalone
