# llm-cost: every target creates or reuses the virtualenv itself.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
ROWS    ?= 10000000
RECORDS ?= 1000000
# One example log of each real format, read in one run (each file's format is detected).
DEMO_FORMATS := fixtures/dialects/claude-code fixtures/dialects/anthropic-messages/responses.jsonl \
	fixtures/dialects/anthropic-batch fixtures/dialects/bedrock-invocations fixtures/dialects/vertex-logging \
	fixtures/dialects/otel-genai fixtures/dialects/litellm-spendlogs/litellm_spendlogs.csv

.PHONY: help install lock demo test lint docs golden screenshot bench bench-store bench-cc bench-large clean

help:  ## show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

# constraints.txt pins what is installed, so a new release of a dependency (Polars 2.2 changed what
# `str.find` counts) changes nothing until `make lock` takes it and the tests run on it.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,spark]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install llm-cost with its test tools

lock:  ## constraints.txt: the newest releases pyproject.toml allows (then run make test)
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade -e '.[dev,spark]'
	{ sed -n '1,2p' constraints.txt; $(BIN)/pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt
	touch $(STAMP)

# The quarantine files go to a fresh temporary directory, removed afterwards: the demo leaves no
# file in the work tree, and none at a fixed /tmp path another user could have planted.
demo: $(STAMP)  ## cost reports of the bundled sample logs (fixtures/sample, then one log of each real format)
	@d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT && set -x && \
	$(BIN)/llm-cost report fixtures/sample --by month,model --quarantine "$$d/quarantine.jsonl" && \
	$(BIN)/llm-cost report $(DEMO_FORMATS) --by source --batch-time 2026-11-20T10:00:00Z \
		--quarantine "$$d/formats-quarantine.jsonl"

# Two worker processes (pytest-xdist), a file's tests in one of them (module fixtures such as the
# local Spark session and S3 server start once): most tests wait on a subprocess or a single-threaded
# step, so two halve the wall time on two cores. More cores, up to four workers.
test: $(STAMP)  ## run the whole test suite
	$(BIN)/python -m pytest --numprocesses logical --maxprocesses 4 --dist loadfile

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check analyzer tests bench

docs: $(STAMP)  ## rerun every ```console example in README and docs/ and rewrite its output (review the diff!)
	$(BIN)/python -m tests.test_docs --update

golden: $(STAMP)  ## regenerate the golden reports in tests/golden (review the diff!)
	$(BIN)/python -m tests.make_golden

screenshot: $(STAMP)  ## docs/report.png: the sample logs' HTML report in headless Chromium (apt-get install chromium)
	$(BIN)/python -m tests.chromium screenshot

bench: $(STAMP)  ## benchmark: ROWS synthetic requests (default 10 million) in Parquet, CSV and JSONL
	$(BIN)/python bench/bench.py --rows $(ROWS)

bench-store: $(STAMP)  ## benchmark the store at scale: nights of 1M, 2M, 4M requests; 100 nights; compact; size (~30 min)
	$(BIN)/python bench/bench_store.py

bench-cc: $(STAMP)  ## Claude Code tree of RECORDS assistant lines (default 1M, 3.5 GB) vs ccusage (npm, bench only)
	$(BIN)/python bench/bench_claude_code.py --records $(RECORDS)

bench-large: $(STAMP)  ## the Claude Code benchmark at 10M assistant lines (35 GB of disk, more than RAM)
	$(BIN)/python bench/bench_claude_code.py --records 10000000

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info bench/.ccusage
