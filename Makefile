# `make run` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PLUGIN := examples/webhook-channel
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(PLUGIN)/pyproject.toml 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: run test lint format bench install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	# The example channel plugin (README "Writing a channel"): installed so its tests run.
	$(BIN)/python -m pip install --quiet -e $(PLUGIN)
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

run: $(STAMP)
	@test -f .env || { cp config.example.env .env && echo "created .env from config.example.env (channel: console)"; }
	@$(BIN)/python -m bot sessions list --all --json 2>/dev/null | grep -q . || $(BIN)/python -m bot sessions import examples/sessions.yaml
	$(BIN)/python -m bot run

# Four pytest workers on two cores: most tests wait on real processes (started, killed, timed
# out), so four keep the cores busy; worksteal evens out the long tests. About 10 minutes.
test: $(STAMP)
	@# The tests start thousands of `bot` processes; where PYTHONDONTWRITEBYTECODE is set, none
	@# would cache the bytecode of bot/ and each would compile it again.
	$(BIN)/python -m compileall -q bot examples/webhook-channel >/dev/null
	$(BIN)/python -m pytest -q -n 4 --dist worksteal

lint: $(STAMP)
	$(BIN)/ruff check bot tests benchmarks examples
	$(BIN)/ruff format --check bot tests benchmarks examples
	$(BIN)/mypy
	MYPYPATH=$(PLUGIN) $(BIN)/mypy -p rgb_webhook_channel

format: $(STAMP)
	$(BIN)/ruff format bot tests benchmarks examples
	$(BIN)/ruff check --fix bot tests benchmarks examples

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
