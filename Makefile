# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_OUT := out/demo
# The demo model is tiny and trained on 128-token windows (bertqa.demo.train.DEMO_ARGS; a test checks).
DEMO_ARGS := --max_seq_length=128 --doc_stride=48 --max_query_length=32 --max_answer_length=12

.PHONY: demo test demo-model clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch 2.13.*: where a CPU-only build of it is at hand (2.13.0+cpu), pip prefers it to PyPI's CUDA build.
	$(PY) -m pip install -q -e '.[cpu,onnx,tensorrt,hf,benchmark,test]' 'torch==2.13.*'
	touch $@

demo: $(VENV)/.installed
	rm -rf $(DEMO_OUT)
	$(PY) template/main.py --input=demo/questions.jsonl --output=$(DEMO_OUT) \
	  --model_path=demo/model --vocab_path=demo/vocab.txt --backend=tensorflow $(DEMO_ARGS)
	$(PY) -m bertqa.demo.show $(DEMO_OUT) demo/questions.jsonl

# Every test (the layers' import contracts included: tests/test_layers.py) on every core; tests marked
# xdist_group share one test process and the models it builds for them.
test: $(VENV)/.installed
	$(PY) -m pytest -q -n auto --dist loadgroup

# Rebuilds demo/ (vocab, model, questions) from scratch; deterministic, 501 s on this 2-core machine.
demo-model: $(VENV)/.installed
	$(PY) -m bertqa.demo.train --output_dir=demo

clean:
	rm -rf out $(VENV)
