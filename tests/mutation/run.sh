#!/usr/bin/env bash
# Mutation testing of the core (issue 33): mutmut mutates the modules `[tool.mutmut] only_mutate`
# of pyproject.toml names (the flow math, the ParamReL objective and reverse sampling, the latent
# metrics), runs the unit tests its `pytest_add_cli_args_test_selection` names against each
# mutant, and tests/mutation/report.py prints the score per module.
#
# Usage, from the repository root after the README's install:
#   bash tests/mutation/run.sh                               # every module
#   bash tests/mutation/run.sh 'paramrel_jax.metrics.tad*'   # mutmut name patterns
# JOBS=N sets the mutants tested at once (default: the cores). Verdicts are kept in mutants/:
# a rerun tests only mutants whose function or tests changed. Time on 2 cores: README,
# "Mutation testing".
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/pip install -q --require-hashes -r requirements-mutation.lock
# One JAX compilation cache for every mutant's tests (tests/conftest.py): unchanged programs are
# compiled once, a mutated one afresh.
export PARAMREL_MUTATION_COMPILE_CACHE="${PARAMREL_MUTATION_COMPILE_CACHE:-$PWD/mutants-jax-cache}"
.venv/bin/mutmut run --max-children "${JOBS:-$(nproc)}" "$@" > mutants-run.log 2>&1 || {
  tail -c 2000 mutants-run.log; exit 1; }
.venv/bin/python tests/mutation/report.py --survivors
