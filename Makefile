# liftlock — the README's two commands are `make demo` and `make test`.
# Everything they need is installed here: the venv, the Pulumi toolchain (Go build, cached outside
# the work tree), the Docker engine when a target needs it.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.liftlock-installed
# The bundle `make image` bakes in.
BUNDLE ?= bundle
# Runs a command under the engine environment (PATH, file:// backend, passphrase, plugin flags).
ENGINE := eval "$$($(BIN)/liftlock env)" &&

# What `make demo` runs on: the engine, the Kubernetes provider and the embedded cluster's
# node and control plane (staging rolls out there). The rest (actionlint, kube-score, gitleaks)
# serves the tests.
DEMO_TOOLS := pulumi kubernetes kube-apiserver etcd

.PHONY: stacks test-infra image help bootstrap venv toolchain demo-tools dockerd bundle test test-fast lint demo clean lock

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@echo "[bootstrap] Python venv in $(VENV) (pinned by requirements.lock) ..."
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
	    -c requirements.lock -e '.[all,dev]' --config-settings editable_mode=compat
	@touch $@

venv: $(STAMP) ## the Python virtual environment with liftlock and its pinned dependencies

toolchain: venv ## build (or reuse) the pinned Go tools (pulumi, kubernetes provider, kube-apiserver + node, etcd, actionlint, kube-score)
	@LIFTLOCK_VENV_BIN=$(abspath $(BIN)) bash toolchain/build.sh

demo-tools: venv ## build (or reuse) only the Go tools the demo uses ($(DEMO_TOOLS))
	@LIFTLOCK_VENV_BIN=$(abspath $(BIN)) bash toolchain/build.sh $(DEMO_TOOLS)

dockerd: ## make sure a local Docker engine is running (installs docker.io when missing)
	@bash toolchain/dockerd.sh

bootstrap: venv toolchain ## venv + toolchain

bundle: venv ## the model bundle in bundle/ (dvc repro: a no-op when it is up to date)
	@$(ENGINE) $(BIN)/dvc repro

test: bootstrap dockerd bundle ## set up everything and run the whole test suite
	@$(ENGINE) $(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: venv ## unit tests only (no engine, no containers)
	@$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: venv ## ruff + mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy liftlock ml policies infra

demo: demo-tools dockerd ## the whole loop on the embedded default
	@$(ENGINE) $(BIN)/liftlock demo

image: venv dockerd ## build the serving image of $(BUNDLE) (default bundle/) and push it to the embedded registry
	$(BIN)/liftlock cluster up --registry-only
	$(BIN)/python -m infra.components.image_builder --bundle $(BUNDLE)

.PHONY: train
train: venv ## reproduce the training pipeline (dvc repro) into bundle/ and push to the local remote
	@PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro
	@PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc push --quiet

stacks: bootstrap ## create the dev, staging and prod stacks on the local backend (.pulumi-state/)
	@mkdir -p .pulumi-state
	@$(ENGINE) for stack in dev staging prod; do \
	    pulumi stack select --create "$$stack" --non-interactive >/dev/null && echo "stack $$stack: ready"; \
	done

test-infra: bootstrap dockerd ## the environments tests (stack config, components, real engine)
	@$(ENGINE) $(BIN)/python -m pytest -p no:xdist tests/infra $(PYTEST_ARGS)

lock: ## re-pin requirements.lock from the current venv
	$(BIN)/python -m pip freeze --exclude-editable --disable-pip-version-check | grep -v '^-e ' > requirements.lock

clean: ## remove the venv, tools links and local state (not the toolchain cache)
	rm -rf $(VENV) .tools .pulumi-state
