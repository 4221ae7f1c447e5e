# Developer tooling for the configmgr.nap collection.
#
# Every target works from a fresh clone: whatever it needs (.venv, the
# dependency collections under .cache/, build/ staging dirs) is created by
# the targets themselves. All paths are absolute, derived from $(CURDIR), and
# every tool is called from .venv/bin explicitly.
#
#   make setup        venv + dependency collections + OS packages
#   make test         unit, sanity, lint, build-check, docs-check (in order)
#   make demo         run playbooks/plan.yml against examples/inventory.yml
#   make help         list all targets

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-builtin-rules --no-print-directory

ROOT := $(CURDIR)

# Absolute path of the interpreter the venv is built from (resolves pyenv
# shims). Prefer python3.11: the sanity run pins --python to the venv's version.
ifndef PYTHON
PYTHON := $(shell python3.11 -c 'import sys; print(sys.executable)' 2>/dev/null || python3 -c 'import sys; print(sys.executable)')
endif

VENV            := $(ROOT)/.venv
VBIN            := $(VENV)/bin
VENV_STAMP      := $(VENV)/.stamp-requirements
CACHE           := $(ROOT)/.cache
BUILD           := $(ROOT)/build
DEP_COLLECTIONS := $(CACHE)/collections
DEP_STAMP       := $(DEP_COLLECTIONS)/.stamp
OWN_COLLECTIONS := $(BUILD)/collections
OWN_LINK        := $(OWN_COLLECTIONS)/ansible_collections/configmgr/nap
REPORT_DIR      := $(ROOT)/nap-report

# All ansible commands run by make see our collection (a symlink to this
# checkout, so edits are live) first, then the dependency collections.
export ANSIBLE_COLLECTIONS_PATH := $(OWN_COLLECTIONS):$(DEP_COLLECTIONS)
# Tools started by our tools (ansible-lint -> ansible-playbook, ...) must find
# the venv's copies; make itself still calls $(VBIN)/<tool> explicitly.
export PATH := $(VBIN):$(PATH)

# OS packages (hack/install-lab-packages.sh): nftables/iproute2 for the Linux
# side and the lab, shellcheck so the `shellcheck` sanity test runs, and the
# daemons the lab runs inside its namespaces; nothing is started on install.

PYTEST_ARGS ?=

# Prerequisite of every check target; `make test` runs setup once and then
# calls the checks with SETUP_DEP empty.
SETUP_DEP ?= setup

.PHONY: help setup venv collections apt demo test unit ps1-check lab-test molecule bench bench-quick sanity lint build-check docs docs-check ee-check clean distclean

help:
	@echo "configmgr.nap make targets:"
	@echo "  setup        venv + collections + apt"
	@echo "  venv         create .venv and install requirements-dev.txt"
	@echo "  collections  install dependency collections offline into .cache/collections"
	@echo "               and link this checkout as build/collections/.../configmgr/nap"
	@echo "  apt          Debian packages (hack/install-lab-packages.sh; only if missing, root only)"
	@echo "  demo         plan examples/inventory.yml -> nap-report/, then the lab before/after converge"
	@echo "  test         unit, ps1-check, lab-test, molecule, sanity, lint, build-check, docs-check, ee-check, bench-quick"
	@echo "  unit         pytest tests/unit"
	@echo "  ps1-check    syntax of every PowerShell script (tree-sitter grammar)"
	@echo "  lab-test     pytest tests/lab (real packets in network namespaces; root)"
	@echo "  molecule     Molecule scenarios (extensions/molecule), 2 at a time; SCENARIOS=name for one"
	@echo "  sanity       ansible-test sanity on a staged copy under build/sanity"
	@echo "  lint         ansible-lint --profile production"
	@echo "  build-check  build, install and run the collection tarball (hack/test-build.sh)"
	@echo "  docs         regenerate docs/flows.md from the catalogue"
	@echo "  docs-check   hack/gen_docs.py --check"
	@echo "  ee-check     ansible-builder create accepts execution-environment.yml"
	@echo "  bench        benchmarks, full run (about an hour); bench-quick: the CI variant (in make test)"
	@echo "  clean        remove build/, nap-report/, tests/output/"
	@echo "  distclean    clean + remove .venv/ and .cache/"

# --------------------------------------------------------------------------
# setup

setup: venv collections apt

venv: $(VENV_STAMP)
	@echo "==> venv: ready ($(VENV))"

# (the grep drops pip's noise about this machine's unused local index dirs)
$(VENV_STAMP): requirements.txt requirements-dev.txt
	@echo "==> venv: creating $(VENV) with $(PYTHON)"
	@test -x "$(VBIN)/python" || "$(PYTHON)" -m venv "$(VENV)"
	@echo "==> venv: installing requirements-dev.txt"
	"$(VBIN)/python" -m pip install --quiet --disable-pip-version-check -r "$(ROOT)/requirements-dev.txt" 2>&1 \
		| { grep -v 'is ignored: it is neither a file nor a directory' || true; }
	@touch "$@"

collections: $(DEP_STAMP)
	@echo "==> collections: ready ($(DEP_COLLECTIONS))"
	@mkdir -p "$(dir $(OWN_LINK))"
	@if [ "$$(readlink "$(OWN_LINK)" 2>/dev/null)" != "$(ROOT)" ]; then \
		echo "==> collections: linking $(OWN_LINK) -> $(ROOT)"; \
		rm -rf "$(OWN_LINK)"; ln -s "$(ROOT)" "$(OWN_LINK)"; \
	fi

$(DEP_STAMP): $(ROOT)/hack/install-collections.sh | $(VENV_STAMP)
	@echo "==> collections: installing dependency collections into $(DEP_COLLECTIONS)"
	"$(ROOT)/hack/install-collections.sh" "$(VBIN)" "$(DEP_COLLECTIONS)"
	@touch "$@"

apt:
	"$(ROOT)/hack/install-lab-packages.sh"

# --------------------------------------------------------------------------
# run

# The demo plans the bundled example, then builds the network-namespace lab, shows an allowed and a
# blocked connection before and after the perimeter is converged and verifies every flow; then deletes a
# rule by hand in the lab router, lets verify name the broken flow, corrects it with drift.yml and verifies
# again. The lab is removed at the end (also on failure). Every nft command runs in the lab's router namespace.
# The plan needs no root; the Debian packages (`make apt`) and the lab do: without root they are skipped.
LAB_INV := $(BUILD)/lab/nap/inventory.yml
demo: venv collections
	@echo "==> demo: ansible-playbook playbooks/plan.yml -> $(REPORT_DIR)"
	cd "$(ROOT)" && "$(VBIN)/ansible-playbook" -i "$(ROOT)/examples/inventory.yml" \
		"$(ROOT)/playbooks/plan.yml" -e nap_report_dir="$(REPORT_DIR)"
	@if [ "$$(id -u)" != 0 ]; then \
		echo "==> demo: the lab part needs root (network namespaces): skipped"; exit 0; \
	fi; \
	"$(MAKE)" apt; \
	echo "==> demo: the lab (network namespaces on this machine)"; \
	cd "$(ROOT)" && trap '"$(VBIN)/ansible-playbook" "$(ROOT)/playbooks/lab.yml" -e nap_lab_state=absent >/dev/null \
			&& echo "==> demo: lab removed"' EXIT; \
		"$(VBIN)/ansible-playbook" "$(ROOT)/playbooks/lab.yml" -e nap_lab_state=present && \
		"$(VBIN)/ansible-playbook" -i "$(LAB_INV)" "$(ROOT)/playbooks/lab_demo.yml" -e nap_lab_demo_keep=true && \
		echo "==> demo: deleting rule IPSEC-HRA-TCP-FWD by hand in the lab router (namespace nap-rtr01)" && \
		handle=$$(ip netns exec nap-rtr01 nft -a list chain inet configmgr_nap forward \
			| sed -n 's/.*"IPSEC-HRA-TCP-FWD|.*# handle \([0-9]*\)$$/\1/p' | head -1) && \
		ip netns exec nap-rtr01 nft delete rule inet configmgr_nap forward handle "$$handle" && \
		echo "==> demo: verify now fails and names the broken flow" && \
		{ "$(VBIN)/ansible-playbook" -i "$(LAB_INV)" "$(ROOT)/playbooks/verify.yml" \
			-e nap_report_dir="$(REPORT_DIR)" 2>&1 | grep -E 'verify: [0-9]+ checks|broken' | head -5 || true; } && \
		echo "==> demo: drift.yml -e nap_drift_correct=true corrects the router" && \
		"$(VBIN)/ansible-playbook" -i "$(LAB_INV)" "$(ROOT)/playbooks/drift.yml" --limit rtr01 \
			-e nap_drift_correct=true | grep -E 'missing|corrected' | head -4 && \
		echo "==> demo: verify again" && \
		"$(VBIN)/ansible-playbook" -i "$(LAB_INV)" "$(ROOT)/playbooks/verify.yml" -e nap_report_dir="$(REPORT_DIR)" \
			| grep -E 'verify: [0-9]+ checks'

# --------------------------------------------------------------------------
# tests

# Sub-makes keep the order even under `make -j`.
test: setup
	@start=$$(date +%s); $(MAKE) unit SETUP_DEP=; echo "==> test: unit took $$(( $$(date +%s) - start )) s"
	@start=$$(date +%s); $(MAKE) ps1-check SETUP_DEP=; echo "==> test: ps1-check took $$(( $$(date +%s) - start )) s"
	@start=$$(date +%s); $(MAKE) lab-test SETUP_DEP=; echo "==> test: lab-test took $$(( $$(date +%s) - start )) s"
	@start=$$(date +%s); $(MAKE) molecule SETUP_DEP=; echo "==> test: molecule took $$(( $$(date +%s) - start )) s"
	@start=$$(date +%s); $(MAKE) sanity SETUP_DEP=; echo "==> test: sanity took $$(( $$(date +%s) - start )) s"
	@start=$$(date +%s); $(MAKE) lint SETUP_DEP=; echo "==> test: lint took $$(( $$(date +%s) - start )) s"
	@start=$$(date +%s); $(MAKE) build-check SETUP_DEP=; echo "==> test: build-check took $$(( $$(date +%s) - start )) s"
	@start=$$(date +%s); $(MAKE) docs-check SETUP_DEP=; echo "==> test: docs-check took $$(( $$(date +%s) - start )) s"
	@start=$$(date +%s); $(MAKE) ee-check SETUP_DEP=; echo "==> test: ee-check took $$(( $$(date +%s) - start )) s"
	@start=$$(date +%s); $(MAKE) bench-quick SETUP_DEP=; echo "==> test: bench-quick took $$(( $$(date +%s) - start )) s"
	@echo "==> test: all checks passed"

# pytest exit code 5 (no tests collected) is a failure on purpose.
# PYTHONPATH makes `ansible_collections.configmgr.nap...` and the dependency
# collections importable without the ansible-test wrapper.
unit: $(SETUP_DEP)
	@echo "==> unit: pytest tests/unit"
	cd "$(ROOT)" && PYTHONPATH="$(OWN_COLLECTIONS):$(DEP_COLLECTIONS)" \
		"$(VBIN)/python" -m pytest "$(ROOT)/tests/unit" -q -p no:cacheprovider -n 2 $(PYTEST_ARGS)

# PowerShell cannot be installed here: its syntax is checked with a tree-sitter grammar from PyPI.
ps1-check: $(SETUP_DEP)
	@echo "==> ps1-check: hack/check_ps1.py"
	cd "$(ROOT)" && "$(VBIN)/python" "$(ROOT)/hack/check_ps1.py"

# Real packets: tests that build their own network namespaces (root, nft, ip) and remove them. Two workers, one
# test file each (--dist loadfile): every file's lab has its own namespace prefix, so they never meet.
lab-test: $(SETUP_DEP)
	@echo "==> lab-test: pytest tests/lab (network namespaces, root)"
	cd "$(ROOT)" && PYTHONPATH="$(OWN_COLLECTIONS):$(DEP_COLLECTIONS)" \
		"$(VBIN)/python" -m pytest "$(ROOT)/tests/lab" -q -p no:cacheprovider -n 2 --dist loadfile $(PYTEST_ARGS)

# Molecule: one scenario per role (+ drift) under extensions/molecule, each on a lab of its own (its
# own namespace prefix), two at a time. One scenario: make molecule SCENARIOS=perimeter
SCENARIOS ?= $(notdir $(patsubst %/molecule.yml,%,$(wildcard $(ROOT)/extensions/molecule/*/molecule.yml)))
molecule: $(SETUP_DEP)
	@echo "==> molecule: $(SCENARIOS)"
	@mkdir -p "$(BUILD)/molecule"
	@cd "$(ROOT)/extensions" && printf '%s\n' $(SCENARIOS) | xargs -P 2 -I{} sh -c \
		'if "$(VBIN)/molecule" test -s {} > "$(BUILD)/molecule/{}.log" 2>&1; then echo "==> molecule: {} passed"; \
		 else echo "==> molecule: {} FAILED (log: build/molecule/{}.log)"; tail -40 "$(BUILD)/molecule/{}.log"; exit 255; fi'

# ansible-test must run from .../ansible_collections/configmgr/nap, so
# hack/sanity.sh stages a copy of the git-visible files (tracked + untracked
# not ignored) into build/sanity/ansible_collections/configmgr/nap, links the
# dependency collections beside it and runs `ansible-test sanity` for the
# venv's Python. ansible-test's pip bootstrap download is replaced by an
# offline stand-in (hack/get_pip_standin.py); the per-test venvs it creates
# under ~/.ansible/test/venv are pip-installed from PyPI once, then reused.
# What cannot run here, because pwsh (PowerShell) cannot be installed on these
# machines (no Microsoft package feed, no Debian package, and npm's `pwsh`
# downloads the binary from GitHub at install time, which is unreachable):
#   pslint            skipped entirely (PSScriptAnalyzer runs under pwsh).
#   validate-modules  for *.ps1 modules only the argument-spec comparison
#                     (docs vs. $spec, introspected by running pwsh) is skipped:
#                     ansible-test runs it on all other plugin files and
#                     hack/validate_ps1_modules.py runs the same validator,
#                     minus that one check, on the *.ps1 modules.
sanity: $(SETUP_DEP)
	@echo "==> sanity: ansible-test sanity"
	"$(ROOT)/hack/sanity.sh" "$(VBIN)"

lint: $(SETUP_DEP)
	@echo "==> lint: ansible-lint --profile production"
	cd "$(ROOT)" && "$(VBIN)/ansible-lint" --profile production

build-check: $(SETUP_DEP)
	@echo "==> build-check: build, install and run the collection tarball"
	"$(ROOT)/hack/test-build.sh" "$(VBIN)"

docs: $(SETUP_DEP)
	@echo "==> docs: hack/gen_docs.py (docs/flows.md from the catalogue)"
	cd "$(ROOT)" && "$(VBIN)/python" "$(ROOT)/hack/gen_docs.py"

docs-check: $(SETUP_DEP)
	@echo "==> docs-check: hack/gen_docs.py --check"
	cd "$(ROOT)" && "$(VBIN)/python" "$(ROOT)/hack/gen_docs.py" --check

ee-check: $(SETUP_DEP)
	@echo "==> ee-check: ansible-builder create accepts execution-environment.yml"
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
		cp "$(ROOT)"/{execution-environment.yml,bindep.txt,requirements.txt,requirements.yml} "$$tmp"/ && \
		cd "$$tmp" && "$(VBIN)/ansible-builder" create --output-filename Containerfile >/dev/null && \
		test -s context/Containerfile && echo "==> ee-check: context/Containerfile created"

# Benchmarks (bench/README.md): ours against the per-rule way, side by side in one run; ratios are printed,
# never asserted. `make bench` is the full run (about an hour); bench-quick (under a minute on an idle machine) is in make test.
bench: $(SETUP_DEP)
	@echo "==> bench: bench/run.py (full; writes bench/results.md and results.json)"
	cd "$(ROOT)" && "$(VBIN)/python" bench/run.py

bench-quick: $(SETUP_DEP)
	@echo "==> bench-quick: bench/run.py --quick"
	cd "$(ROOT)" && "$(VBIN)/python" bench/run.py --quick --out "$(BUILD)/bench"

# --------------------------------------------------------------------------

clean:
	@echo "==> clean: build/ nap-report/ tests/output/"
	rm -rf "$(BUILD)" "$(REPORT_DIR)" "$(ROOT)/tests/output"

distclean: clean
	@echo "==> distclean: .venv/ .cache/"
	rm -rf "$(VENV)" "$(CACHE)"
