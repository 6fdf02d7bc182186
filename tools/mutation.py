"""Mutation testing of one fcnn module against the tests that cover it, with cosmic-ray.

cosmic-ray (``pip install -e '.[mutation]'``) makes small changes to the module's
code — a comparison flipped, a number moved by one, an operator swapped, a
``break``/``continue`` exchanged — and runs the given tests once per change. A
change that leaves every test passing *survived*: either the tests miss a real
bug or the change does not alter behaviour (an *equivalent* mutant).

The run happens in a copy of the repository (the working tree's tracked and
untracked-but-not-ignored files) under ``--out``, so the working tree is never
modified, and the session (cosmic-ray's SQLite database) and report stay there:

    python tools/mutation.py fcnn/functional/pool.py tests/functional/test_pool.py \\
        tests/functional/test_output_size_grid.py --out /tmp/mutation/pool

runs every mutant of ``pool.py``; ``--sample 40 --seed 0`` runs a seeded random
sample of 40 (the rest are marked skipped, and the report says it is a sample).
``--retest-survivors`` copies the current tests into an existing session's tree
and runs its surviving mutants again (after tests were added to kill them).
``--retest-survivors`` with a module and tests also replaces the session's list of tests.
Mutants inside annotations of a module that never evaluates them
(``from __future__ import annotations``) are skipped before sampling: they cannot change behaviour.
``--extend N`` adds N more mutants to an existing session's sample.
``--report`` only prints the report of an existing session. The tests run with
``pytest -x`` (a mutant is killed by its first failing test), one process per
mutant, ``-m 'not sweep'``, with a persistent XLA compilation cache shared by
the mutants so the programs a mutant does not change compile once.

The report lists the counts, the score ``killed / (killed + survived)`` and
each survivor's diff; judging which survivors are equivalent is left to the reader.
"""

from __future__ import annotations

import argparse
import json
import random
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _copy_tree(dest: Path) -> None:
    """The working tree's tracked and untracked-but-not-ignored files, copied to ``dest``."""
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def _test_command(tests: list[str], cache: Path) -> str:
    return " ".join([
        "env", f"JAX_COMPILATION_CACHE_DIR={cache}", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0", "OMP_NUM_THREADS=1",
        shlex.quote(sys.executable), "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-n", "0",
        "-o", "addopts=", "-m", "'not sweep'", *map(shlex.quote, tests)])


def _config(module: str, command: str, timeout: float) -> str:
    # TOML basic strings: JSON's escaping is valid TOML whatever quotes a test id brings into the command
    return (f"[cosmic-ray]\nmodule-path = {json.dumps(module)}\ntimeout = {timeout}\nexcluded-modules = []\n"
            f"test-command = {json.dumps(command)}\n\n[cosmic-ray.distributor]\nname = \"local\"\n")


def _cosmic(*args, cwd: Path) -> None:
    subprocess.run([str(Path(sys.executable).parent / "cosmic-ray"), *args], cwd=cwd, check=True)


def _sample(session: Path, n: int, seed: int) -> None:
    """Mark all but a seeded random sample of ``n`` pending mutants as skipped."""
    from cosmic_ray.work_db import use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    with use_db(str(session)) as db:
        ids = sorted(item.job_id for item in db.pending_work_items)
        keep = set(random.Random(seed).sample(ids, min(n, len(ids))))
        skip = [i for i in ids if i not in keep]
        if skip:
            db.set_multiple_results(skip, WorkResult(worker_outcome=WorkerOutcome.SKIPPED))


def _annotation_spans(path: Path) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Source spans of the annotations in a module that never evaluates them
    (``from __future__ import annotations``); empty for any other module."""
    import ast

    tree = ast.parse(path.read_text())
    lazy = any(isinstance(n, ast.ImportFrom) and n.module == "__future__" and
               any(a.name == "annotations" for a in n.names) for n in tree.body)
    if not lazy:
        return []
    spans = []
    for node in ast.walk(tree):
        notes = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            notes.append(node.returns)
        elif isinstance(node, ast.arg):
            notes.append(node.annotation)
        elif isinstance(node, ast.AnnAssign):
            notes.append(node.annotation)
        spans += [((n.lineno, n.col_offset), (n.end_lineno, n.end_col_offset)) for n in notes if n is not None]
    return spans


def _skip_annotations(session: Path, tree: Path) -> int:
    """Mark the mutants inside never-evaluated annotations as skipped: they cannot change behaviour."""
    from cosmic_ray.work_db import use_db
    from cosmic_ray.work_item import WorkerOutcome, WorkResult

    spans, skip = {}, []
    with use_db(str(session)) as db:
        for item in db.pending_work_items:
            m = item.mutations[0]
            path = tree / m.module_path
            if path not in spans:
                spans[path] = _annotation_spans(path)
            if any(lo <= tuple(m.start_pos) and tuple(m.end_pos) <= hi for lo, hi in spans[path]):
                skip.append(item.job_id)
        if skip:
            db.set_multiple_results(skip, WorkResult(worker_outcome=WorkerOutcome.SKIPPED, output="annotation"))
    return len(skip)


def _retest_survivors(out: Path, command: str) -> bool:
    """Refresh the tests in ``out``'s tree and forget the survivors' results so that ``exec`` reruns
    them; False (nothing changed in the session) when the refreshed tests fail on the unmutated tree."""
    from cosmic_ray.work_db import use_db
    from cosmic_ray.work_item import TestOutcome

    shutil.copytree(ROOT / "tests", out / "tree" / "tests", dirs_exist_ok=True)
    if subprocess.run(command, shell=True, cwd=out / "tree").returncode != 0:
        print("the tests fail on the session's unmutated copy (the code moved on?); pass tests that "
              "apply to it", file=sys.stderr)
        return False
    with use_db(str(out / "session.sqlite")) as db:
        survived = [job_id for job_id, result in db.results if result.test_outcome == TestOutcome.SURVIVED]
    # cosmic-ray has no call that forgets a result; a work item without one is pending again
    with sqlite3.connect(out / "session.sqlite") as con:
        con.executemany("DELETE FROM work_results WHERE job_id = ?", [(j,) for j in survived])
    skipped = _skip_annotations(out / "session.sqlite", out / "tree")
    print(f"retesting {len(survived) - skipped} survivors ({skipped} inside annotations skipped)")
    return True


def _extend(out: Path, n: int, seed: int) -> None:
    """Add ``n`` more mutants, drawn with ``seed`` from those the sample left out (none inside
    annotations), to the session."""
    rng, added = random.Random(seed), 0
    while added < n:
        with sqlite3.connect(out / "session.sqlite") as con:
            left = sorted(j for (j,) in con.execute(
                "SELECT job_id FROM work_results WHERE worker_outcome = 'SKIPPED' AND output IS NULL"))
            if not left:
                break
            more = rng.sample(left, min(n - added, len(left)))
            con.executemany("DELETE FROM work_results WHERE job_id = ?", [(j,) for j in more])
        added += len(more) - _skip_annotations(out / "session.sqlite", out / "tree")
    print(f"{added} more mutants added to the sample")


def report(out: Path) -> str:
    """Counts, score and the survivors' diffs of the session in ``out``."""
    from cosmic_ray.work_db import use_db, WorkDB
    from cosmic_ray.work_item import TestOutcome, WorkerOutcome

    with use_db(str(out / "session.sqlite"), WorkDB.Mode.open) as db:
        items = {item.job_id: item for item in db.work_items}
        results = dict(db.results)
    skipped = sum(r.worker_outcome == WorkerOutcome.SKIPPED for r in results.values())
    in_annotations = sum(r.output == "annotation" for r in results.values())
    ran = {j: r for j, r in results.items() if r.worker_outcome != WorkerOutcome.SKIPPED}
    killed = [j for j, r in ran.items() if r.test_outcome == TestOutcome.KILLED]
    survived = [j for j, r in ran.items() if r.test_outcome == TestOutcome.SURVIVED]
    incompetent = [j for j, r in ran.items() if r.test_outcome not in (TestOutcome.KILLED, TestOutcome.SURVIVED)]
    pending = len(items) - len(results)
    module = next(iter(items.values())).mutations[0].module_path if items else "?"
    lines = [f"module: {module}",
             f"mutants: {len(items)} in all, {len(ran)} run" + (f" (a sample; {skipped} skipped)" if skipped else "")
             + (f", {pending} pending" if pending else ""),
             f"skipped inside annotations: {in_annotations}",
             f"killed: {len(killed)}  survived: {len(survived)}  incompetent: {len(incompetent)}"]
    if killed or survived:
        lines.append(f"score: {len(killed)}/{len(killed) + len(survived)} = "
                     f"{100 * len(killed) / (len(killed) + len(survived)):.1f} % killed")
    for j in survived:
        m = items[j].mutations[0]
        lines += ["", f"survived {j}: {m.operator_name} #{m.occurrence} at line {m.start_pos[0]}", ran[j].diff or ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("module", nargs="?", help="the module to mutate, e.g. fcnn/functional/pool.py")
    p.add_argument("tests", nargs="*", help="test files or node ids, fastest and broadest first")
    p.add_argument("--out", required=True, type=Path, help="folder for the copy, the session and the report")
    p.add_argument("--sample", type=int, help="run a seeded random sample of this many mutants")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per mutant (a timeout counts as killed)")
    p.add_argument("--retest-survivors", action="store_true")
    p.add_argument("--extend", type=int, metavar="N", help="add N more mutants to an existing session's sample")
    p.add_argument("--report", action="store_true", help="only print the report of the session in --out")
    a = p.parse_args(argv)
    out = a.out.resolve()
    if not a.report and not a.retest_survivors and not a.extend:
        if not a.module or not a.tests:
            p.error("a module and at least one test path are needed")
        if out.exists():
            p.error(f"--out {out} exists; use --retest-survivors or --report, or another folder")
        (out / "tree").mkdir(parents=True)
        _copy_tree(out / "tree")
        command = _test_command(a.tests, out / "xla_cache")
        (out / "config.toml").write_text(_config(a.module, command, a.timeout))
        # the unmutated baseline must pass (it also fills the compilation cache)
        if subprocess.run(command, shell=True, cwd=out / "tree").returncode != 0:
            print("the tests fail without any mutation; nothing to measure", file=sys.stderr)
            return 1
        _cosmic("init", str(out / "config.toml"), str(out / "session.sqlite"), cwd=out / "tree")
        skipped = _skip_annotations(out / "session.sqlite", out / "tree")
        print(f"{skipped} mutants inside annotations (never evaluated) skipped")
        if a.sample:
            _sample(out / "session.sqlite", a.sample, a.seed)
    if a.extend:
        _extend(out, a.extend, a.seed + 1)
    if a.retest_survivors:
        config = tomllib.loads((out / "config.toml").read_text())["cosmic-ray"]
        command = config["test-command"]
        if a.tests:  # a new list of tests for the survivors
            command = _test_command(a.tests, out / "xla_cache")
            (out / "config.toml").write_text(_config(config["module-path"], command, config["timeout"]))
        if not _retest_survivors(out, command):
            return 1
    if not a.report:
        _cosmic("exec", str(out / "config.toml"), str(out / "session.sqlite"), cwd=out / "tree")
    text = report(out)
    (out / "report.txt").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
