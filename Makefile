# The commands a person types. Everything installs into .venv from requirements.lock,
# so a fresh machine gets exactly the versions the tests ran with.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
EXPERIMENT ?= experiments/digits_mlp.toml

.PHONY: run test lint format bench curriculum docs clean lock

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "dlcore needs Python 3.11+, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]"
	$(BIN)/python -m dlcore.native build
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/dlcore run $(EXPERIMENT)

test: $(STAMP)
	JAX_PLATFORMS=cpu $(BIN)/python -m pytest -n 2 --dist loadfile -q

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format . && $(BIN)/ruff check --fix .

# The benchmarks compare against PyTorch when the `bench` extra (torch, CPU build) is present.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev,bench]"
	$(BIN)/python -m benchmarks all --readme

# Every shipped experiment once (~30 min on 2 CPU cores), then the README's curriculum table;
# python -m curriculum --only NAME... reruns some and merges their rows.
curriculum: $(STAMP)
	$(BIN)/python -m curriculum


# The documentation site into site/ (docs/, mkdocs.yml); --strict makes any warning an error.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# Regenerate the lock after changing dependency ranges in pyproject.toml.
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e' > requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache site
