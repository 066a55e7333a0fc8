# The two commands a new user needs: `make demo` and `make test`. Both set up the
# virtual environment on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test unit lint venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@echo "Setting up $(VENV): dbt-gemini-batch with its local stack, Airflow and test tools (about a minute, once)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -qq --upgrade pip
	@$(BIN)/python -m pip install -qq -c constraints.txt -e '.[local,test,airflow]'
	@touch $(STAMP)

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh

# Everything CI runs: lint, the unit tests, and the tests on the local stack, by file
# on TEST_WORKERS processes (pytest-xdist), each with a local stack of its own.
TEST_WORKERS ?= 2

test: lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# The loop to run after every change: no server, under a minute.
unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check python tests benchmarks

clean:
	rm -rf $(VENV) .gemini_batch
