"""Mutation testing of the breaker core with mutmut 3; writes bench/results/mutation.json.

    python bench/mutation.py                       # mutate every core file in the config, then report
    python bench/mutation.py breaker/breakerpanel/_window.py    # mutate only these files (results: mutants/)
    python bench/mutation.py --report-only         # just rebuild the report from mutants/
    python bench/mutation.py --not-killed          # test again only the mutants no test killed last time

mutmut reads its configuration ([tool.mutmut] in pyproject.toml, else [mutmut] in setup.cfg): the
source paths, the files to mutate (``only_mutate``) and the fast unit tests it runs. Files given on the
command line narrow ``only_mutate`` for this run. It runs with one worker by default (``--max-children``).

mutmut names a mutant by its file's path, so it supports sources at the top (``./``) or under ``src/``
only; the core lives at ``breaker/breakerpanel/`` and imports as ``breakerpanel``. So mutmut runs in a
staging directory, ``.mutation/``, that holds a copy of the core at ``src/breakerpanel/``, the tests and
the demo (symlinks), and the project's ``pyproject.toml`` with the core's path rewritten. Reports name
the files by their place in the repository.

The report counts a mutant as killed when a test failed or it timed out (an infinite loop is caught),
as survived when every test passed; mutants no test reaches are counted separately (``no_tests``) and
as not killed in the score. Surviving mutants are listed with file:line and their diff. A file some of
whose mutants were not tested yet is reported as ``partial`` and left out of the totals.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "mutation.json"
CORE = "breaker/breakerpanel/"
STAGE = ROOT / ".mutation"
STAGED_CORE = "src/breakerpanel/"

KILLED = {"killed", "timeout", "caught by type check"}
NOT_KILLED = {"survived", "no tests", "suspicious", "segfault"}


def _function_first_line(source_file: Path, mutant_name: str) -> int | None:
    """The first line (decorators included) of the function a mutant belongs to."""
    # Keys look like breaker._window.xǁCountWindowǁcounts__mutmut_3 or breaker._state.x_helper__mutmut_1.
    qual = mutant_name.rpartition("__mutmut_")[0].rpartition(".")[2]
    if "ǁ" in qual:
        _, cls, func = qual.split("ǁ")
    else:
        cls, func = None, qual.removeprefix("x_")
    tree = ast.parse(source_file.read_text())
    scope: list[ast.stmt] = tree.body
    if cls is not None:
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name == cls:
                scope = node.body
                break
    for node in scope:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == func:
            return min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return None


def _mutated_line(source_file: Path, mutant_name: str, diff: str) -> int | None:
    start = _function_first_line(source_file, mutant_name)
    if start is None:
        return None
    hunk = re.search(r"^@@ -(\d+)", diff, re.MULTILINE)
    if not hunk:
        return start
    line = int(hunk.group(1))
    for text in diff.splitlines()[3:]:
        if text.startswith("-"):
            break
        line += 1
    return start + line - 1


def _in_repository(path: Path | str) -> str:
    """A staged path (``src/breakerpanel/_window.py``) as the repository names it."""
    text = Path(path).as_posix()
    return CORE + text.removeprefix(STAGED_CORE) if text.startswith(STAGED_CORE) else text


def _staged(path: str) -> str:
    """A repository path (``breaker/breakerpanel/_window.py``) as mutmut sees it in the stage."""
    text = Path(path).as_posix()
    return STAGED_CORE + text.removeprefix(CORE) if text.startswith(CORE) else text


def stage() -> None:
    """Lay out .mutation/ for mutmut: the core under src/, the tests and the demo, the config."""
    STAGE.mkdir(exist_ok=True)
    core = STAGE / STAGED_CORE
    # A copy that keeps modification times: mutmut mutates again only the files that changed.
    if core.exists():
        shutil.rmtree(core)
    shutil.copytree(ROOT / CORE, core, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("tests", "demo"):
        link = STAGE / name
        if not link.is_symlink():
            link.symlink_to(ROOT / name, target_is_directory=True)
    config = (ROOT / "pyproject.toml").read_text().replace(CORE, STAGED_CORE)
    (STAGE / "pyproject.toml").write_text(config)


def report(elapsed_s: float | None) -> dict[str, object]:
    from mutmut.configuration import config
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code
    from mutmut.utils.file_utils import walk_mutatable_files

    per_file: dict[str, dict[str, object]] = {}
    survivors: list[dict[str, object]] = []
    totals: Counter[str] = Counter()
    for path in walk_mutatable_files():
        meta = STAGE / "mutants" / (str(path) + ".meta")
        if not meta.exists():
            continue
        data = SourceFileMutationData(path=path)
        data.load()
        if not data.exit_code_by_key:
            continue
        statuses = Counter(status_by_exit_code[code] for code in data.exit_code_by_key.values())
        partial = statuses.get("not checked", 0) > 0
        if partial:
            unchecked = statuses["not checked"]
            print(f"{_in_repository(path)}: {unchecked} mutants not checked: left out of the total", file=sys.stderr)
        killed = sum(statuses[s] for s in KILLED)
        survived = statuses["survived"]
        counted = killed + sum(statuses[s] for s in NOT_KILLED)
        per_file[_in_repository(path)] = {
            "killed": killed,
            "survived": survived,
            "no_tests": statuses["no tests"],
            "timeout": statuses["timeout"],
            "other": {s: n for s, n in statuses.items() if s not in KILLED | {"survived", "no tests"}},
            "score": round(100 * killed / counted, 1) if counted else None,
        }
        if partial:  # a file counts in the total once all of its mutants were tested
            per_file[_in_repository(path)]["partial"] = True
        else:
            totals.update(
                {"killed": killed, "survived": survived, "no_tests": statuses["no tests"], "counted": counted}
            )
        for key, code in sorted(data.exit_code_by_key.items()):
            if status_by_exit_code[code] not in NOT_KILLED:
                continue
            try:
                diff = get_diff_for_mutant(key, path=path)
            except Exception as exc:  # mutmut cannot always find the function again (e.g. nested ones)
                diff = f"(no diff: {exc})"
            survivors.append(
                {
                    "mutant": key,
                    "status": status_by_exit_code[code],
                    "location": f"{_in_repository(path)}:{_mutated_line(STAGE / path, key, diff)}",
                    "diff": diff,
                }
            )
    counted = totals["counted"]
    result: dict[str, object] = {
        "tool": "mutmut 3",
        "killed": totals["killed"],
        "survived": totals["survived"],
        "no_tests": totals["no_tests"],
        "score": round(100 * totals["killed"] / counted, 1) if counted else None,
        "target": 85.0,
        "files": per_file,
        "tests": config().pytest_add_cli_args_test_selection,
        "surviving_mutants": survivors,
    }
    if elapsed_s is not None:
        result["last_run_s"] = round(elapsed_s, 1)
    return result


def _not_killed(files: list[str]) -> list[str]:
    """The names of the mutants (of ``files``, or of every file) whose last result was not a kill."""
    from mutmut.mutation.data import SourceFileMutationData
    from mutmut.stats import status_by_exit_code
    from mutmut.utils.file_utils import walk_mutatable_files

    wanted = {_staged(f) for f in files}
    names: list[str] = []
    for path in walk_mutatable_files():
        if wanted and str(path) not in wanted:
            continue
        if not (STAGE / "mutants" / (str(path) + ".meta")).exists():
            continue
        data = SourceFileMutationData(path=path)
        data.load()
        names += sorted(k for k, code in data.exit_code_by_key.items() if status_by_exit_code[code] in NOT_KILLED)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", help="mutate only these files (default: only_mutate from the config)")
    parser.add_argument("--max-children", type=int, default=1, help="parallel mutant workers (default 1)")
    parser.add_argument("--report-only", action="store_true", help="do not run mutmut; report what mutants/ holds")
    parser.add_argument("--min-score", type=float, default=None, help="exit 1 when the score is below this")
    parser.add_argument(
        "--not-killed",
        action="store_true",
        help="test again only the mutants that survived or had no tests last time (after adding tests)",
    )
    args = parser.parse_args(argv)

    stage()
    os.chdir(STAGE)  # mutmut works in the current directory (reads the config, writes mutants/)
    elapsed = None
    if not args.report_only:
        from mutmut.__main__ import _run
        from mutmut.utils.file_utils import walk_mutatable_files

        for path in walk_mutatable_files():
            # A plain copy left by a run that did not mutate this file would pass for an up-to-date mutant.
            copy = STAGE / "mutants" / path
            if copy.exists() and not (STAGE / "mutants" / (str(path) + ".meta")).exists():
                copy.unlink()
        # Which tests reach which function is recorded once per run: a stale record says "no tests".
        (STAGE / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
        # Every configured file is mutated (cheap); files named here narrow which mutants are tested.
        # mutmut's names drop the src. prefix: breakerpanel._window.*
        patterns = [".".join(Path(_staged(f).removeprefix("src/")).with_suffix("").parts) + ".*" for f in args.files]
        if args.not_killed:
            # mutmut keeps a mutant's last result unless the mutant is named: name each one.
            patterns = _not_killed(args.files)
            print(f"testing again {len(patterns)} mutants that no test killed last time")
        started = time.monotonic()
        if patterns or not args.not_killed:  # no patterns means every mutant to mutmut
            _run(patterns, args.max_children)
        elapsed = time.monotonic() - started

    result = report(elapsed)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(
        f"mutation score {result['score']}% (killed {result['killed']}, survived {result['survived']}, "
        f"no tests {result['no_tests']}) -> {RESULTS.relative_to(ROOT)}"
    )
    for name, counts in result["files"].items():  # type: ignore[attr-defined]
        print(f"  {name}: {counts}")
    if args.min_score is not None and (result["score"] or 0) < args.min_score:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
