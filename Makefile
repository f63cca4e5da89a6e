# incidentops — developer entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help install system-deps controlplane lint typecheck check test test-unit test-integration test-e2e \
        crds crds-check run demo bench cluster-up cluster-down cluster-status clean

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-17s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@echo "== creating $(VENV) and installing incidentops with its dev tools"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) install -q --upgrade pip
	@$(PIP) install -q -c constraints.txt -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) ## create the virtualenv and install the project (pinned by constraints.txt)

system-deps: ## Prometheus and Alertmanager from Debian packages (needs root or sudo)
	@bash devtools/system-deps.sh

controlplane: ## build kube-apiserver, controller-manager, scheduler, kubectl, etcd, kwok (cached)
	@bash devtools/build-controlplane.sh >/dev/null

lint: install ## ruff and the import-linter layering contract
	ruff check .
	ruff format --check .
	lint-imports

typecheck: install ## mypy --strict
	mypy

check: lint typecheck crds-check ## everything static

crds: install ## regenerate crds/ and the chart's CRD templates from the pydantic models
	$(PY) -m incidentops.api.v1alpha1.crdgen --out crds --chart helm/incidentops

crds-check: install ## fail if crds/ or the chart's CRDs drifted from the models
	$(PY) -m incidentops.api.v1alpha1.crdgen --out crds --chart helm/incidentops --check

test: install system-deps controlplane ## all tests: unit, integration and e2e on the local control plane
	$(PY) -m pytest tests

test-unit: install ## unit tests only (no cluster)
	$(PY) -m pytest tests/unit

test-integration: install controlplane ## integration tests on the local control plane
	$(PY) -m pytest tests/integration

test-e2e: install system-deps controlplane ## e2e tests with real Prometheus and Alertmanager
	$(PY) -m pytest tests/e2e

cluster-up: install controlplane ## start the local control plane (kubeconfig in .dev/kubeconfig)
	$(PY) -m localenv cluster-up

cluster-down: install ## stop the local control plane, leaving no process behind
	$(PY) -m localenv cluster-down

cluster-status: install ## components, memory, nodes
	$(PY) -m localenv status

run: install ## run the operator locally on 127.0.0.1:8080, no webhook token unless you set one (installs the CRDs)
	$(PY) -m localenv install-crds
	@if [ -z "$${INCIDENTOPS_WEBHOOK_TOKEN}$${INCIDENTOPS_WEBHOOK_TOKEN_SECRET}" ]; then \
	  echo "== make run: webhooks WITHOUT authentication, listening on $${INCIDENTOPS_HTTP_HOST:-127.0.0.1} only" \
	       "(set INCIDENTOPS_WEBHOOK_TOKEN to require a token, INCIDENTOPS_HTTP_HOST=0.0.0.0 to listen on every interface)"; \
	  export INCIDENTOPS_WEBHOOK_AUTH=$${INCIDENTOPS_WEBHOOK_AUTH:-none}; \
	fi; \
	INCIDENTOPS_LOG_FORMAT=$${INCIDENTOPS_LOG_FORMAT:-text} \
	INCIDENTOPS_HTTP_HOST=$${INCIDENTOPS_HTTP_HOST:-127.0.0.1} \
	$(PY) -m incidentops

demo: install system-deps controlplane ## the whole loop, narrated (KEEP=1 leaves it up, AUTO=1 skips the approval)
	$(PY) -m localenv.demo $(if $(KEEP),--keep,) $(if $(AUTO),--automatic,)

bench: install system-deps controlplane ## the alert-storm, remediation, detection-rule, escalation, triage, 10,000-incident and chart benchmarks
	$(PY) bench/storm.py
	$(PY) bench/remediation.py
	$(PY) bench/rules.py
	$(PY) bench/escalation.py
	$(PY) bench/triage_rules.py
	$(PY) bench/triage.py
	$(PY) bench/scale.py
	$(PY) bench/chart.py

clean: ## remove the virtualenv, caches and .dev (not the control-plane build cache)
	-$(PY) -m localenv cluster-down 2>/dev/null
	rm -rf $(VENV) .dev .mypy_cache .ruff_cache .pytest_cache build dist operator/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
