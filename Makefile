# release-bot: `make demo` runs releases on the embedded simulator; `make test` runs the checks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DB := data/demo.db
DEMO_FLAGS := --db $(DEMO_DB) --approve-as alice --clock-start 2026-11-24T14:00:00Z $(if $(SPEED),--speed $(SPEED))

.PHONY: install demo test lint clean bench-judge bench-tick bench-ack bench-llm

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

demo: install
	@rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
	@echo "== 1/3 a healthy canary release of payments-api 2.4.1 =="
	$(BIN)/release-bot run 'payments-api 2.4.1 risk=medium ticket=CHG-1234 changes="faster checkout; fix refund rounding"' \
		$(DEMO_FLAGS) --json-out data/demo-healthy.json
	@echo "== 2/3 payments-api 2.4.2 whose error rate triples at 25% of traffic =="
	$(BIN)/release-bot run 'payments-api 2.4.2 risk=medium ticket=CHG-1240 changes="new ledger client"' \
		$(DEMO_FLAGS) --fault errors:3x@25 --json-out data/demo-faulty.json
	@echo "== 3/3 payments-api 2.4.3 while payments-db is unhealthy: a critical gate fails =="
	$(BIN)/release-bot run 'payments-api 2.4.3 risk=low ticket=CHG-1241 changes="fix receipt email" deps=payments-db:unhealthy' \
		$(DEMO_FLAGS) --json-out data/demo-failed.json || true
	@$(BIN)/python -m bot.demo_summary data/demo-healthy.json data/demo-faulty.json data/demo-failed.json

lint: install
	$(BIN)/ruff check bot handlers tests bench
	$(BIN)/ruff format --check bot handlers tests bench
	$(BIN)/mypy bot handlers bench

test: lint
	$(BIN)/pytest

# Our judge against Flagger-style and Kayenta-style references, 1,000 seeded runs per scenario.
bench-judge: install
	$(BIN)/python -m bench.judge_bench $(if $(RUNS),--runs $(RUNS)) --markdown bench/results/judge.md

# One reconcile tick's judging over 1,000 active releases, and a 60-minute run judged.
bench-tick: install
	$(BIN)/python -m bench.tick_bench

# /release ack latency: 50 signed commands at once to the running app on loopback.
bench-ack: install
	$(BIN)/python -m bench.ack_bench

# LLM calls and tokens for one typical canary (fake Messages API); the prefix is cacheable.
bench-llm: install
	$(BIN)/python -m bench.llm_bench

clean:
	rm -rf $(VENV) data/*.db data/*.db-* data/demo-*.json
