# llm-cost: every target creates or reuses the virtualenv itself.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
ROWS    ?= 10000000
RECORDS ?= 1000000

.PHONY: help install demo test lint golden bench bench-cc bench-large clean

help:  ## show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install llm-cost with its test tools

demo: $(STAMP)  ## cost report of the bundled sample logs (fixtures/sample)
	$(BIN)/llm-cost report fixtures/sample --by month,model --quarantine /tmp/llm-cost-demo-quarantine.jsonl

test: $(STAMP)  ## run the whole test suite
	$(BIN)/python -m pytest

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check analyzer tests bench

golden: $(STAMP)  ## regenerate the golden reports in tests/golden (review the diff!)
	$(BIN)/python -m tests.make_golden

bench: $(STAMP)  ## benchmark: ROWS synthetic requests (default 10 million) in Parquet, CSV and JSONL
	$(BIN)/python bench/bench.py --rows $(ROWS)

bench-cc: $(STAMP)  ## Claude Code tree of RECORDS assistant lines (default 1M, 3.5 GB) vs ccusage (npm, bench only)
	$(BIN)/python bench/bench_claude_code.py --records $(RECORDS)

bench-large: $(STAMP)  ## the Claude Code benchmark at 10M assistant lines (35 GB of disk, more than RAM)
	$(BIN)/python bench/bench_claude_code.py --records 10000000

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info bench/.ccusage
