# The two commands of the README: `make cluster` and `make test`. Both install what they
# need (Debian packages, a virtualenv with the project) and must run as root.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
INVENTORY ?= inventory.py
# the lab on the other supported release, deployed and verified by `make test` after the default
BOOKWORM_INVENTORY := inventories/lab-bookworm/inventory.py
# extra pytest arguments of `make verify` (e.g. VERIFY_ARGS='-m "not slow"')
VERIFY_ARGS ?=
PYINFRA := $(VENV)/bin/pyinfra -y
PYTEST := $(VENV)/bin/pytest
# Debian packages the control machine needs before pyinfra runs (the lab deploy installs LXC)
SYSTEM_PACKAGES := python3 python3-venv openssh-client make

.PHONY: setup lab cluster test unit integration verify teardown

$(VENV)/.installed: pyproject.toml
	@dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1 || { \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(SYSTEM_PACKAGES); }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

## The LXC lab: 3 etcd + 3 Patroni containers on this machine
lab: setup
	$(PYINFRA) $(INVENTORY) deploys/lxc_hosts.py --limit lxc_hosts

## The lab and the whole cluster on it
cluster: lab
	$(PYINFRA) $(INVENTORY) deploys/all.py

## Every test: unit tests; a clean trixie lab, the full deploy and every integration test;
## then a clean bookworm lab, the deploy and the verification run (one lab at a time)
test: setup
	$(PYTEST) tests/unit -q
	$(MAKE) teardown
	$(MAKE) cluster
	$(PYTEST) tests/integration -v
	$(MAKE) teardown
	$(MAKE) cluster INVENTORY=$(BOOKWORM_INVENTORY)
	$(MAKE) verify INVENTORY=$(BOOKWORM_INVENTORY) VERIFY_ARGS='-m "not slow"'

unit: setup
	$(PYTEST) tests/unit -q

## The verification run alone, against an already deployed inventory (INVENTORY=...)
verify: setup
	PGHA_INVENTORY=$(abspath $(INVENTORY)) $(PYTEST) tests/integration -v $(VERIFY_ARGS)

## Destroy the lab containers (the base container cache is kept)
teardown: setup
	$(VENV)/bin/python -m pgha.lab.teardown $(INVENTORY)
