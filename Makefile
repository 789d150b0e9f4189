# Conveniences over the two README commands (which need only bash and Python 3.11).
.PHONY: up test bench lint
up:
	./scripts/up
test:
	./scripts/test
lint:
	.venv/bin/ruff check .
bench:
	.venv/bin/python bench/classify.py && .venv/bin/python bench/pipeline.py
