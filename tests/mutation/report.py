"""The mutation score per module, from the verdicts `mutmut run` left under mutants/.

Usage (from the repository root, after `bash tests/mutation/run.sh`):
  .venv/bin/python tests/mutation/report.py [--survivors] [--min 90]

Score = killed / (mutants with a verdict - equivalent ones), where a timeout counts as killed (as
mutmut counts it) and a mutant no test reaches counts as surviving. The equivalent mutants are
listed with their reasons in tests/mutation/equivalent.txt; a name there that mutmut no longer
makes is reported as stale (mutant numbers move when the source changes).
"""

import argparse
import collections
import json
import os
import sys
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# mutmut's exit codes of a mutant's test run (mutmut.__main__.status_by_exit_code).
KILLED, SURVIVED, NO_TESTS, TIMEOUT = {1, 3}, {0}, {5, 33}, {24, -24, 36, 152, 255}


def equivalent_mutants(path: str = os.path.join(HERE, "equivalent.txt")) -> dict[str, str]:
  """mutant name -> why no test can tell it from the original."""
  listed = {}
  for line in open(path).read().splitlines():
    if line.strip() and not line.startswith("#"):
      name, _, reason = line.partition(" ")
      listed[name] = reason.strip()
  return listed


def verdicts(root: str = ROOT) -> dict[str, dict[str, int | None]]:
  """module path -> {mutant name: exit code (None: not run yet)}, for the modules mutmut mutates."""
  config = tomllib.load(open(os.path.join(root, "pyproject.toml"), "rb"))["tool"]["mutmut"]
  result = {}
  for module in config["only_mutate"]:
    meta = os.path.join(root, "mutants", module + ".meta")
    result[module] = json.load(open(meta))["exit_code_by_key"] if os.path.exists(meta) else {}
  return result


def score(codes: dict[str, int | None], equivalent: dict[str, str]) -> dict:
  counts = collections.Counter()
  survivors = []
  for name, code in codes.items():
    if code is None:
      counts["not run"] += 1
    elif name in equivalent:
      counts["equivalent"] += 1
    elif code in KILLED or code in TIMEOUT:
      counts["killed"] += 1
    else:
      counts["no tests" if code in NO_TESTS else "survived"] += 1
      survivors.append(name)
  scored = counts["killed"] + counts["survived"] + counts["no tests"]
  counts["score"] = 100.0 * counts["killed"] / scored if scored else float("nan")
  return {"counts": counts, "survivors": survivors}


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--survivors", action="store_true", help="list the surviving mutants")
  parser.add_argument("--min", type=float, default=None, help="exit 1 below this score (%%)")
  args = parser.parse_args(argv)
  equivalent = equivalent_mutants()
  modules = verdicts()
  made = {name for codes in modules.values() for name in codes}
  print("| module | mutants | killed | survived | no tests | equivalent | not run | score |")
  print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
  failing = []
  for module, codes in modules.items():
    result = score(codes, equivalent)
    c = result["counts"]
    print(
      f"| {module} | {len(codes)} | {c['killed']} | {c['survived']} | {c['no tests']} | "
      f"{c['equivalent']} | {c['not run']} | {c['score']:.1f} % |"
    )
    if args.min is not None and not (c["score"] >= args.min and c["not run"] == 0):
      failing.append(module)
    if args.survivors:
      for name in result["survivors"]:
        print(f"    survived: {name}")
  stale = sorted(set(equivalent) - made)
  for name in stale:
    print(f"stale entry in equivalent.txt (no such mutant now): {name}")
  if failing:
    print(f"below {args.min} % or not fully run: {', '.join(failing)}")
  return 1 if failing or stale else 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
