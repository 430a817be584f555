# Two entry points for a fresh machine (see README.md):
#   make demo   install everything into .venv and analyse a shipped checkpoint
#   make test   install everything into .venv and run the test suite
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export KERAS_BACKEND := torch
export OMP_NUM_THREADS := 1
export MPLBACKEND := Agg

.PHONY: install demo test lint bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/spectra ls data/digits_gru_stable.pt
	$(VENV)/bin/spectra analyze data/digits_gru_stable.pt
	$(VENV)/bin/spectra analyze data/digits_lstm_regular.keras
	$(VENV)/bin/spectra pseudospectra data/digits_gru_stable.pt -o demo-pseudospectra.png --quiet
	@echo "(demo-pseudospectra.png: the pseudospectra of the three GRU gates)"

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -n 2 -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install
	$(PY) benchmarks/analyze_speed.py
	$(PY) benchmarks/load_speed.py
	$(PY) benchmarks/pseudospectra.py --quick
	$(PY) benchmarks/kreiss.py
	$(PY) benchmarks/train.py
	$(PY) benchmarks/track.py --count 24
	-$(PY) benchmarks/gpu.py  # needs CUDA; says so and fails without it

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
