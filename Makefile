# Two entry points for a fresh machine (see README): `make smoke` and `make test`.
VENV   := .venv
PYTHON ?= python3
PYTEST := $(VENV)/bin/pytest
RUFF   := $(VENV)/bin/ruff
LAB    := $(VENV)/bin/viworks-lab

.PHONY: smoke test lab-up lab-down lab-status venv clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet --editable '.[dev]'
	touch $@

venv: $(VENV)/.installed

# On a fresh machine the virtualenv (network, unpacking) and the lab's base images (mmdebstrap, CPU)
# are the two long poles: the images start building, with the system Python, while pip installs.
PREBUILD := $(PYTHON) -m viworks_lab.base_images & prebuild=$$!; $(MAKE) --no-print-directory venv; venv=$$?; wait $$prebuild; exit $$venv

## The smoke gate against the lab: brings the lab up (cached), runs `pytest -m smoke`, writes reports/.
smoke:
	@$(PREBUILD)
	$(LAB) up
	mkdir -p reports
	$(PYTEST) -m smoke --target lab --tb=short --html=reports/report.html --self-contained-html --junitxml=reports/junit.xml --json-summary=reports/summary.json

## The project's own tests: lint and format (ruff), helpers, the lab (up, integration, idempotence, down), the suite end to end.
test:
	@$(PREBUILD)
	$(RUFF) check .
	$(RUFF) format --check .
	$(PYTEST) tests

lab-up: venv
	$(LAB) up

lab-down: venv
	$(LAB) down

lab-status: venv
	$(LAB) status

clean:
	rm -rf $(VENV) reports
