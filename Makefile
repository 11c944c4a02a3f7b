# The two commands a new user needs (README): `make demo` and `make test`.
# Both create ./.venv and install the project into it on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_AS := daemon/jobsd/native/run-as

.PHONY: demo test install compile clean-demo

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP) $(RUN_AS)

# Start the daemon on the example jobs in jobs/ (SQLite store, lock and runs in db/demo),
# run `hello` end to end, then keep serving until Ctrl-C. From another shell:
#   export JOBSD_SOCKET=$PWD/db/demo/jobsd.sock; .venv/bin/jobsctl jobs list
demo: compile
	@mkdir -p db/demo
	@set -e; export JOBSD_SOCKET=$(CURDIR)/db/demo/jobsd.sock; \
	$(BIN)/jobsd --jobs-dir jobs --state-dir db/demo --socket db/demo/jobsd.sock & pid=$$!; \
	trap 'kill $$pid 2>/dev/null || true; wait $$pid || true; exit 0' INT TERM; \
	trap 'kill $$pid 2>/dev/null || true' EXIT; \
	for i in $$(seq 150); do \
	  kill -0 $$pid 2>/dev/null || { wait $$pid || true; echo "make demo: jobsd did not start (see above)" >&2; exit 1; }; \
	  [ "$$($(BIN)/jobsctl daemon status --json 2>/dev/null | $(BIN)/python -c 'import json,sys; print(json.load(sys.stdin)["pid"])' 2>/dev/null)" = "$$pid" ] && break; \
	  sleep 0.1; \
	done; \
	echo '$$ jobsctl jobs list'; $(BIN)/jobsctl jobs list; echo; \
	echo '$$ jobsctl jobs run hello --follow'; $(BIN)/jobsctl jobs run hello --follow; echo; \
	echo '$$ jobsctl jobs history hello'; $(BIN)/jobsctl jobs history hello; echo; \
	echo "jobsd is serving (pid $$pid); Ctrl-C stops it. From another shell:"; \
	echo "  export JOBSD_SOCKET=$$JOBSD_SOCKET PATH=$(CURDIR)/$(BIN):\$$PATH"; \
	echo "  jobsctl jobs list"; \
	wait $$pid

# Bytecode for our own sources: with PYTHONDONTWRITEBYTECODE set (as on our CI machines) Python
# never caches it, so each of the suite's ~150 jobsd starts and every jobsctl run compiled daemon/,
# client/ and shared/ again (a third of jobsd's 1.1 s start). compileall only rewrites stale files.
compile: $(STAMP) $(RUN_AS)
	@$(BIN)/python -m compileall -q daemon client shared >/dev/null

# jobsd's own exec wrapper for jobs with `user =` (issue 18; executor.as_user): without a C compiler
# it is not built and jobsd uses util-linux's setpriv, ~1.2 ms slower per spawn.
$(RUN_AS): daemon/jobsd/native/run_as.c
	@if command -v $(CC) >/dev/null; then $(CC) -O2 -Wall -Wextra -Werror -o $@ $<; \
	else echo "make: no C compiler ($(CC)): jobs with user = run through setpriv" >&2; fi

# Four workers: the tests mostly wait on real daemons and real seconds; 3 workers left 2 cores 23 %
# idle (1,029 tests: 242 s with 3, 204 s with 4). worksteal: a few tests take 20-30 s; with the
# default `load` split one worker was left with a queue of them at the end (248 s -> 175 s, 2026-12-03).
test: compile
	$(BIN)/pytest -q -n 4 --dist worksteal

clean-demo:
	rm -rf db/demo
