# The two commands of the README: `make cluster` and `make test`. Both install what they
# need (Debian packages, a virtualenv with the project) and must run as root.
SHELL := /bin/bash
VENV ?= .venv
PYTHON ?= python3
INVENTORY ?= inventory.py
# the lab on the other supported release, deployed and verified by `make test` after the default
BOOKWORM_INVENTORY := inventories/lab-bookworm/inventory.py
# the own-machines deploy, which `make test` runs beside the bookworm lab
OWN_MACHINES_TEST := tests/integration/test_own_machines.py
OWN_MACHINES_LOG := $(VENV)/own-machines-test.log
# the etcd scale-out on scratch containers of its own, which `make test` runs beside the
# read-only tests that need the lab (it checks that the lab is untouched: never beside drills)
SCALE_OUT_TEST := tests/integration/test_etcd_scale_out.py
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

.PHONY: setup test-setup tools browser base lab cluster test lint-and-unit fresh-cluster lab-test lab-read-only-test lab-destructive-test second-release-base scale-out-test own-machines-test second-release-test unit lint verify drills teardown

$(VENV)/.installed: pyproject.toml lab/pyproject.toml
	@dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1 || { \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(SYSTEM_PACKAGES); }
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e . -e ./lab
	touch $@

## the test tools (pytest, ruff, mypy) only where a target runs them: `make cluster` goes without
$(VENV)/.test-installed: $(VENV)/.installed
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

setup: $(VENV)/.installed

test-setup: $(VENV)/.test-installed

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

## Only the lab's base container of INVENTORY's release (no node)
base: setup
	$(PYINFRA) $(INVENTORY) deploys/lxc_base.py --limit lxc_hosts

## The LXC lab: 3 etcd + 3 Patroni containers on this machine
lab: setup
	$(PYINFRA) $(INVENTORY) deploys/lxc_hosts.py --limit lxc_hosts

## The lab and the whole cluster on it
cluster: lab
	$(PYINFRA) $(INVENTORY) deploys/all.py

## Every test. Side by side: the linter and the unit tests, and a clean lab of the default
## release with the whole cluster. Then side by side: the read-only tests that need that lab,
## the etcd scale-out on scratch containers of its own, and the other release's base
## container (no node: it touches no container of the lab). Then the tests that break the
## lab, alone: beside the own-machines deploy, the repository-down test failed twice. Then
## side by side: the own-machines deploy on scratch machines, whose `pgha verify` is the
## default release's read-only verification, and a clean lab of the other release with its
## deploy, its read-only verification and the drills that are not slow (one lab at a time).
test: test-setup tools browser
	$(MAKE) -j2 lint-and-unit fresh-cluster
	$(MAKE) -j3 lab-read-only-test scale-out-test second-release-base
	$(MAKE) lab-destructive-test
	$(MAKE) teardown
	$(MAKE) -j2 own-machines-test second-release-test

## lint and the unit tests, their output in one piece when they end (they run beside the lab's build)
lint-and-unit: test-setup tools
	@$(MAKE) -s lint unit > $(VENV)/unit-test.log 2>&1; status=$$?; cat $(VENV)/unit-test.log; exit $$status

## a lab built anew with the whole cluster
fresh-cluster:
	$(MAKE) teardown
	$(MAKE) cluster

## On the lab: the tests that need the lab or break the cluster on purpose (the other
## read-only ones run on the own-machines cluster, through its `pgha verify`). First, side by
## side, the read-only ones and the etcd scale-out on scratch containers (neither breaks the
## lab); then the destructive ones, one at a time
lab-test: test-setup browser
	$(MAKE) -j2 lab-read-only-test scale-out-test
	$(MAKE) lab-destructive-test

## the destructive tests on the lab, one at a time (those on scratch machines apart)
lab-destructive-test: test-setup browser
	$(PYTEST) tests/integration -v -rs --destructive --durations=25 --ignore=$(OWN_MACHINES_TEST) --ignore=$(SCALE_OUT_TEST) -m destructive

## the read-only tests that need the lab, four processes (as `pgha verify`)
lab-read-only-test: test-setup browser
	@$(VENV)/bin/pgha verify --inventory $(abspath $(INVENTORY)) -v --ignore=$(OWN_MACHINES_TEST) -m "needs_lxc and not destructive" \
		> $(VENV)/lab-read-only-test.log 2>&1; status=$$?; cat $(VENV)/lab-read-only-test.log; exit $$status

scale-out-test: test-setup
	@$(PYTEST) $(SCALE_OUT_TEST) -v -rs --destructive > $(VENV)/scale-out-test.log 2>&1; \
		status=$$?; cat $(VENV)/scale-out-test.log; exit $$status

## The README's "Deploy onto your own machines" on eight scratch machines of the default
## release (their own addresses, names, secrets and CA: it runs beside a lab); its output
## comes in one piece when it ends
own-machines-test: test-setup
	@echo "own-machines test: $(OWN_MACHINES_TEST), output in $(OWN_MACHINES_LOG) until it ends"
	@$(PYTEST) $(OWN_MACHINES_TEST) -v -rs --destructive --durations=10 > $(OWN_MACHINES_LOG) 2>&1; \
		status=$$?; cat $(OWN_MACHINES_LOG); exit $$status

## the second release's base container, built while the first release's lab runs
second-release-base: setup
	$(MAKE) base INVENTORY=$(BOOKWORM_INVENTORY)

## The second release's lab: deploy, read-only verification, the drills that are not slow
second-release-test: test-setup browser
	$(MAKE) cluster INVENTORY=$(BOOKWORM_INVENTORY)
	$(MAKE) verify INVENTORY=$(BOOKWORM_INVENTORY)
	$(MAKE) drills INVENTORY=$(BOOKWORM_INVENTORY) CONFIRM=yes VERIFY_ARGS='-m "destructive and not slow"'

unit: test-setup tools
	$(PYTEST) tests/unit -q

## The linter and the type checker (configured in pyproject.toml)
lint: test-setup
	$(VENV)/bin/ruff check pgha lab deploys bench tests inventory.py inventories
	$(VENV)/bin/mypy

## The read-only verification of a deployed inventory (INVENTORY=...): reads and harmless
## probes only (no failover, restart, configuration change, restore, rebuild): safe on production
verify: test-setup browser
	$(VENV)/bin/pgha verify --inventory $(abspath $(INVENTORY)) -v $(VERIFY_ARGS)

## The destructive drills (failovers, a whole-cluster restore, rebuilt replicas, parameter
## changes) against a test cluster (a lab, or test_cluster = True): only with CONFIRM=yes
drills: test-setup
	@[ "$(CONFIRM)" = yes ] || { echo "make drills fails over, restores and rebuilds $(INVENTORY): run it with CONFIRM=yes, against a test cluster only" >&2; exit 2; }
	PGHA_INVENTORY=$(abspath $(INVENTORY)) $(PYTEST) tests/integration -v -rs -m destructive --destructive $(VERIFY_ARGS)

## Destroy the lab containers (the base container cache is kept)
teardown: setup
	$(VENV)/bin/python -m pghalab.teardown $(INVENTORY)
