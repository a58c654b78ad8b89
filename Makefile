# The README's commands. Each creates .venv (and installs the project into it) when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch/torchvision pinned to the releases this project is tested with (pyproject admits a range).
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
SPACE ?= tune_spaces/quickstart.yaml
NAME ?= $(basename $(notdir $(SPACE)))
PYTEST_ARGS ?=

.PHONY: venv sweep train test test-fast lint format clean

$(BIN)/deepnets: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

venv: $(BIN)/deepnets

# The main job: the quickstart sweep (embedded digits data, no download, ~4 min on 2 cores).
# Re-running it continues the same experiment (--resume) instead of refusing to overwrite it.
sweep: venv
	@if [ -f runs/$(NAME)/tuner.pkl ]; then \
		$(BIN)/python jobs/sweep.py --space $(SPACE) --storage runs --name $(NAME) --resume; \
	else \
		$(BIN)/python jobs/sweep.py --space $(SPACE) --storage runs --name $(NAME); \
	fi

test: venv
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: venv
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache *.egg-info
