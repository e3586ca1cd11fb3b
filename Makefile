# The two set-up commands of the README. Each works on a fresh machine with only python3 and pip.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

ANVIL := .cache/anvil/node_modules/.bin/anvil

.PHONY: demo test lint typecheck pytest install anvil contracts clean sim

$(BIN)/python:
	$(PY) -m venv $(VENV)

# Reinstall whenever pyproject.toml changes.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# The hashing loop built ahead of time for this machine (walruspy.core.blake2_batch): commands
# then start without numba's 0.4-0.7 s; without a C compiler numba's JIT serves, as before.
install: $(STAMP)
	@$(BIN)/python -c 'from walruspy.core.blake2_batch import main; main()'

# anvil (an Ethereum node) for the second leg of the chain-client suite. Without npm the tests
# skip that leg with a message saying so; CI installs npm first (.ci/run).
$(ANVIL):
	@if command -v npm >/dev/null 2>&1; then \
		npm install --prefix .cache/anvil --no-audit --no-fund --silent @foundry-rs/anvil; \
	else \
		echo "npm not found: the anvil leg of the chain tests will be skipped"; \
	fi

anvil: $(ANVIL)

# Compile the Vyper contracts into the ABIs and bytecode the package ships (compiled.json); a
# test fails until this is run after a contract changes.
contracts: install
	$(BIN)/python -m walruspy.chain.contracts

demo: install
	$(BIN)/python -m walruspy.demo

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

pytest: install anvil
	$(BIN)/python -m pytest -q

test: lint typecheck pytest

# The deterministic simulator on random seeds until SECONDS of real time are up (issue #16):
# `make sim SECONDS=600 [HOURS=0.25] [FAULTS=mixed] [NODES=4]`. Each run prints its seed and
# result; a failing one prints the command that replays it, and the target fails at the end.
SECONDS ?= 600
HOURS ?= 0.25
FAULTS ?= mixed
NODES ?= 4
sim: install
	@end=$$(( $$(date +%s) + $(SECONDS) )); failed=""; \
	while [ $$(date +%s) -lt $$end ]; do \
		seed=$$(od -An -N4 -tu4 /dev/urandom | tr -d ' '); \
		echo "== seed $$seed"; \
		$(BIN)/python -m walruspy.sim --seed $$seed --virtual-hours $(HOURS) \
			--faults $(FAULTS) --nodes $(NODES) || failed="$$failed $$seed"; \
	done; \
	if [ -n "$$failed" ]; then echo "failed seeds:$$failed"; exit 1; fi; \
	echo "every seed passed"

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
