# Both targets create .venv and install the project into it when needed.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
	echo $$p; break; fi; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench reliability env-example

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "crm-tui needs Python 3.11 or newer on the PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,demo]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/crm-tui --demo

lint: $(STAMP)
	$(BIN)/ruff check crm_tui tests benchmarks tools
	$(BIN)/ruff format --check crm_tui tests benchmarks tools

# Three workers (pytest-xdist) on two cores: the suite often waits on servers, subprocesses
# and latency it injects, and a third worker fills that time (8.6 min instead of 11.9 here).
# Each worker starts its own PostgreSQL for the team-mode tests (team/scratch_server.py).
test: lint
	$(BIN)/python -m pytest -q -n 3

# The full-size figures quoted in the README (several minutes each on two cores).
bench: $(STAMP)
	$(BIN)/python benchmarks/store_bench.py --contacts 1000000
	$(BIN)/python benchmarks/search_bench.py --sizes 100000 1000000
	$(BIN)/python benchmarks/sync_bench.py --contacts 100000
	$(BIN)/python benchmarks/tui_bench.py --contacts 1000000 --sync-contacts 100000
	$(BIN)/python benchmarks/cli_bench.py --sizes 10000,1000000
	$(BIN)/python benchmarks/dedup_bench.py --sizes 100000 1000000 --quality 2000
	$(BIN)/python benchmarks/load_bench.py --contacts 100000
	$(BIN)/python benchmarks/import_bench.py --mb 50
	$(BIN)/python benchmarks/incremental_bench.py --contacts 100000 --contacts 1000000
	$(BIN)/python benchmarks/writeback_bench.py --contacts 20000 --edits 1000
	$(BIN)/python benchmarks/pipeline_bench.py --deals 200000
	$(BIN)/python benchmarks/remap_bench.py --contacts 100000
	$(BIN)/python benchmarks/heap_bench.py
	$(BIN)/python benchmarks/index_open_bench.py --size 1000000
	$(BIN)/python benchmarks/browse_bench.py --contacts 1000000
	$(BIN)/python benchmarks/fold_bench.py

# The reliability suite at full size (more contacts, more crash points); its report
# replaces the README's "Reliability" section.
reliability: $(STAMP)
	CRM_TEST_FULL=1 CRM_TEST_REPORT=1 $(BIN)/python -m pytest -q tests/test_reliability.py tests/test_overlap.py \
		tests/test_hostile_records.py tests/test_import_files.py tests/test_invisible_text.py \
		tests/test_export_safety.py tests/test_data_dir.py tests/test_hostile_settings.py \
		tests/test_config_files.py tests/test_cli_contract.py tests/test_doctor.py
	$(BIN)/python -m tests.helpers.reliability

# .env.example from every source's declared settings (a test checks it is current).
env-example: $(STAMP)
	$(BIN)/python -m crm_tui.envexample > .env.example
