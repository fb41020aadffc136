# Two entry points for a fresh machine (see README): `make smoke` and `make test`.
VENV   := .venv
PYTHON ?= python3
PYTEST := $(VENV)/bin/pytest
LAB    := $(VENV)/bin/viworks-lab

.PHONY: smoke test lab-up lab-down lab-status venv clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet --editable .
	touch $@

venv: $(VENV)/.installed

## The smoke gate against the lab: brings the lab up (cached), runs `pytest -m smoke`, writes reports/.
smoke: venv
	$(LAB) up
	mkdir -p reports
	$(PYTEST) -m smoke --target lab --tb=short --html=reports/report.html --self-contained-html --junitxml=reports/junit.xml --json-summary=reports/summary.json

## The project's own tests: helpers, the lab (up, integration, idempotence, down), the suite end to end.
test: venv
	$(PYTEST) tests

lab-up: venv
	$(LAB) up

lab-down: venv
	$(LAB) down

lab-status: venv
	$(LAB) status

clean:
	rm -rf $(VENV) reports
