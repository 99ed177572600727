# The two commands of the README: `make cluster` and `make test`. Both install what they
# need (Debian packages, a virtualenv with the project) and must run as root.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
INVENTORY ?= inventory.py
# the lab on the other supported release, deployed and verified by `make test` after the default
BOOKWORM_INVENTORY := inventories/lab-bookworm/inventory.py
# extra pytest arguments of `make verify` and `make drills` (e.g. VERIFY_ARGS='-k etcd')
VERIFY_ARGS ?=
# `make drills` breaks the cluster on purpose: it runs only with CONFIRM=yes
CONFIRM ?=
PYINFRA := $(VENV)/bin/pyinfra -y
PYTEST := $(VENV)/bin/pytest
# Debian packages the control machine needs before pyinfra runs (the lab deploy installs LXC)
SYSTEM_PACKAGES := python3 python3-venv openssh-client make
# The monitoring's checkers for the unit tests (promtool, amtool, the blackbox exporter's
# --config.check), taken out of Debian's packages without installing them (no daemon starts
# on this machine), and the headless browser of the overview page's test
TOOLS := $(VENV)/tools/bin
TOOL_PACKAGES := prometheus prometheus-alertmanager prometheus-blackbox-exporter
BROWSER_PACKAGES := chromium

.PHONY: setup tools browser lab cluster test unit lint integration verify drills teardown

$(VENV)/.installed: pyproject.toml lab/pyproject.toml
	@dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1 || { \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(SYSTEM_PACKAGES); }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]' -e ./lab
	touch $@

setup: $(VENV)/.installed

$(TOOLS)/promtool: | $(VENV)/.installed
	rm -rf $(VENV)/tools/debs && mkdir -p $(VENV)/tools/debs $(TOOLS)
	cd $(VENV)/tools/debs && { apt-get download -q $(TOOL_PACKAGES) 2>/dev/null || { apt-get update -q && apt-get download -q $(TOOL_PACKAGES); }; }
	for deb in $(VENV)/tools/debs/*.deb; do dpkg-deb -x $$deb $(VENV)/tools/root; done
	cp $(VENV)/tools/root/usr/bin/promtool $(VENV)/tools/root/usr/bin/amtool $(VENV)/tools/root/usr/bin/prometheus-blackbox-exporter $(TOOLS)/
	rm -rf $(VENV)/tools/debs $(VENV)/tools/root

tools: $(TOOLS)/promtool

## Debian's chromium on this machine, for the overview page's test (a real headless browser)
browser:
	@dpkg -s $(BROWSER_PACKAGES) >/dev/null 2>&1 || { \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $(BROWSER_PACKAGES); }

## The LXC lab: 3 etcd + 3 Patroni containers on this machine
lab: setup
	$(PYINFRA) $(INVENTORY) deploys/lxc_hosts.py --limit lxc_hosts

## The lab and the whole cluster on it
cluster: lab
	$(PYINFRA) $(INVENTORY) deploys/all.py

## Every test: unit tests; a clean trixie lab, the full deploy and every integration test
## (the destructive drills included: the lab is a test cluster); then a clean bookworm lab,
## the deploy, the read-only verification and the drills that are not slow (one lab at a time)
test: setup tools browser lint
	$(PYTEST) tests/unit -q
	$(MAKE) teardown
	$(MAKE) cluster
	$(PYTEST) tests/integration -v -rs --destructive --durations=25
	$(MAKE) teardown
	$(MAKE) cluster INVENTORY=$(BOOKWORM_INVENTORY)
	$(MAKE) verify INVENTORY=$(BOOKWORM_INVENTORY)
	$(MAKE) drills INVENTORY=$(BOOKWORM_INVENTORY) CONFIRM=yes VERIFY_ARGS='-m "destructive and not slow"'

unit: setup tools
	$(PYTEST) tests/unit -q

## The linter and the type checker (configured in pyproject.toml)
lint: setup
	$(VENV)/bin/ruff check pgha lab deploys bench tests inventory.py inventories
	$(VENV)/bin/mypy

## The read-only verification of a deployed inventory (INVENTORY=...): reads and harmless
## probes only (no failover, restart, configuration change, restore, rebuild): safe on production
verify: setup browser
	PGHA_INVENTORY=$(abspath $(INVENTORY)) $(PYTEST) tests/integration -v -rs -m "not destructive" $(VERIFY_ARGS)

## The destructive drills (failovers, a whole-cluster restore, rebuilt replicas, parameter
## changes) against a test cluster (a lab, or test_cluster = True): only with CONFIRM=yes
drills: setup
	@[ "$(CONFIRM)" = yes ] || { echo "make drills fails over, restores and rebuilds $(INVENTORY): run it with CONFIRM=yes, against a test cluster only" >&2; exit 2; }
	PGHA_INVENTORY=$(abspath $(INVENTORY)) $(PYTEST) tests/integration -v -rs -m destructive --destructive $(VERIFY_ARGS)

## Destroy the lab containers (the base container cache is kept)
teardown: setup
	$(VENV)/bin/python -m pghalab.teardown $(INVENTORY)
