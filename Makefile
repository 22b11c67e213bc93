# release-bot: `make demo` runs releases on the embedded simulator; `make test` runs the checks.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Each demo release runs on its own fresh database (data/demo-NAME.db) and writes data/demo-NAME.json.
DEMO_FLAGS := --approve-as alice --clock-start 2026-11-24T14:00:00Z $(if $(SPEED),--speed $(SPEED))
RELEASE_BOT ?= $(BIN)/release-bot
# After a demo release: its exit code must be $(1), the outcome $(2); anything else stops make.
expect = ; code=$$?; [ $$code -eq $(1) ] || { echo "make demo: expected exit $(1) ($(2)), got $$code" >&2; exit 1; }

.PHONY: install deps demo demo-live test lint clean bench-judge bench-tick bench-ack bench-llm bench-replicas chaos

# The real servers the live demo and its tests run: Debian's prometheus, haproxy and postgresql.
SERVERS := /usr/bin/prometheus /usr/sbin/haproxy /usr/lib/postgresql

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

$(SERVERS):
	@if [ "$$(id -u)" != 0 ]; then echo "$@ is missing: run 'sudo make deps' (Debian: apt-get install prometheus haproxy postgresql)"; exit 1; fi
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus haproxy postgresql
	@# the packages start their own services; the demo and the tests run their own copies
	-service prometheus stop >/dev/null 2>&1; service haproxy stop >/dev/null 2>&1; service postgresql stop >/dev/null 2>&1; true

deps: $(SERVERS)

demo: install
	@# A fresh run: no database or report of an earlier one is read (the summary reads what this run wrote).
	@rm -f data/demo*.db data/demo*.db-* data/demo-*.json
	@echo "== 1/3 a healthy canary release of payments-api 2.4.1 =="
	$(RELEASE_BOT) run 'payments-api 2.4.1 risk=medium ticket=CHG-1234 changes="faster checkout; fix refund rounding"' \
		$(DEMO_FLAGS) --db data/demo-healthy.db --json-out data/demo-healthy.json
	@echo "== 2/3 payments-api 2.4.2 whose error rate triples at 25% of traffic =="
	$(RELEASE_BOT) run 'payments-api 2.4.2 risk=medium ticket=CHG-1240 changes="new ledger client"' \
		$(DEMO_FLAGS) --fault errors:3x@25 --db data/demo-faulty.db --json-out data/demo-faulty.json \
		$(call expect,3,rolled back)
	@echo "== 3/3 payments-api 2.4.3 while payments-db is unhealthy: a critical gate fails =="
	$(RELEASE_BOT) run 'payments-api 2.4.3 risk=low ticket=CHG-1241 changes="fix receipt email" deps=payments-db:unhealthy' \
		$(DEMO_FLAGS) --db data/demo-failed.db --json-out data/demo-failed.json \
		$(call expect,4,failed)
	@$(BIN)/python -m bot.demo_summary data/demo-healthy.json data/demo-faulty.json data/demo-failed.json

# A real canary: two versions of a local service, HAProxy, a load generator and Prometheus.
demo-live: install deps
	$(BIN)/python -m demo.live --out demo-live-report.json

lint: install
	$(BIN)/ruff check bot handlers tests bench demo examples
	$(BIN)/ruff format --check bot handlers tests bench demo examples
	$(BIN)/mypy bot handlers bench demo

test: lint deps
	$(BIN)/pytest
	$(BIN)/python -m bench.chaos --short

# Our judge against Flagger-style and Kayenta-style references, 1,000 seeded runs per scenario.
bench-judge: install
	$(BIN)/python -m bench.judge_bench $(if $(RUNS),--runs $(RUNS)) --markdown bench/results/judge.md

# One reconcile tick's judging over 1,000 active releases, and a 60-minute run judged.
bench-tick: install
	$(BIN)/python -m bench.tick_bench

# Ack latency per kind (release line, dry-run, status, lock, unlock, help, a click): bursts of
# 50 signed requests at once to the running app on loopback, p99 against 100 ms.
bench-ack: install
	$(BIN)/python -m bench.ack_bench

# LLM calls and tokens for one typical canary (fake Messages API); the prefix is cacheable.
bench-llm: install
	$(BIN)/python -m bench.llm_bench

# 3 replicas on one PostgreSQL and one fake Slack against one SQLite process, N active
# releases (N=, default 1,000; SCRAPE=15: metrics scraped as a Prometheus's): a round's time,
# moves per second, the active releases carried at a 10 s tick, Slack calls, failover.
bench-replicas: install
	$(BIN)/python -m bench.replicas_bench $(if $(N),--releases $(N)) $(if $(SCRAPE),--scrape-interval $(SCRAPE))

# Faults injected into real processes on one SQLite file, 20 rounds each (ROUNDS=, SEED=):
# SIGKILL, a second process, Slack/LLM/metrics outages, replays, duplicate commands.
chaos: install
	$(BIN)/python -m bench.chaos $(if $(ROUNDS),--rounds $(ROUNDS)) $(if $(SEED),--seed $(SEED))

clean:
	rm -rf $(VENV) data/*.db data/*.db-* data/demo-*.json demo-live*.json
