"""The process a pipeline job runs in its worktree: `python -m reprotrain.adapters.dvc_runner SPEC`.

Everything that needs DVC happens here, in one process that imports DVC once (as `dvc repro`
itself would), and never in reprotrain's: restore the data from the shared cache, write the
composed params.yaml, `dvc repro`, and read what it made (the outputs' hashes from dvc.lock, the
metrics files) into the results file the job reads back. The exit code is `dvc repro`'s (1 when
the data could not be restored)."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import asdict
from pathlib import Path


def main(spec_path: str, ahead: tuple[str, Path] | None = None) -> int:
    """``ahead``: (project root, its DVC cache dir) as found while the runner waited."""
    from reprotrain.adapters import dvc as dvc_adapter
    from reprotrain.adapters import dvc_pipeline
    from reprotrain.core.pipeline import PARAMS_FILE, plan_from_dict
    from reprotrain.errors import ReprotrainError
    from reprotrain.fileio import write_json

    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    project = Path(spec["project"])
    plan = plan_from_dict(spec["plan"])
    results: dict[str, object] = {}
    site_cache = None
    try:
        cache = ahead[1] if ahead and ahead[0] == spec["root"] else dvc_adapter.cache_dir(Path(spec["root"]))
        results["cache"] = str(cache)  # even when the pipeline fails: its run-cache entries are checked
        fetched = dvc_adapter.restore(
            project,
            cache,
            Path(spec["local_config"]),
            Path(spec["verified_index"]),
            frozenset(plan.made()),  # what the stages make: recomputed when the cache lacks it
        )
        if fetched:
            print(f"reprotrain: pulled from the DVC remote: {', '.join(fetched)}", file=sys.stderr)
        shutil.copyfile(spec["params"], project / PARAMS_FILE)
        import logging

        for name in ("dvc", "dvc_data", "dvc_objects", "scmrepo"):  # restore() quietened them
            logging.getLogger(name).setLevel(logging.INFO)  # as dvc.logger.setup() leaves them
        # not "To track the changes with git, run: git add dvc.lock": the user's working copy has
        # nothing to add (the worktree's dvc.lock is kept with the run)
        logging.getLogger("dvc.repo.scm_context").setLevel(logging.WARNING)
        from dvc.cli import main as dvc_main

        code = int(dvc_main(spec["argv"]))
        if code == 0:
            made = dvc_pipeline.results(project, plan.targets, plan.flags, Path(spec["tree"]))
            site_cache = made.site_cache
            results |= {
                "plan": asdict(made.plan),
                "outputs": [asdict(o) for o in made.outputs],
                "metrics": made.metrics,
                "problems": made.problems,
            }
    except ReprotrainError as exc:
        print(f"reprotrain: error: {exc}", file=sys.stderr)
        code = 1
    finally:
        write_json(Path(spec["results"]), results, default=str)  # a YAML metrics file may hold dates
        dvc_adapter.forget_site_cache(project, site_cache)
    return code


def waiting(launcher: int, request_fd: int, root: str | None = None) -> int:
    """Started ahead of its job (process.Prestarted): import what `dvc repro` needs and find the
    DVC cache of the project at ``root``, then wait for the request (one line of JSON: the spec
    file, the job's working directory and environment) on the pipe ``request_fd``. An end of the
    pipe without a request: the job was not run, nothing is done."""
    import os

    from reprotrain.adapters.process import die_with_parent

    # while it waits it dies with the reprotrain that started it: killed by SIGKILL, that one would
    # never send the request, and a child of its could hold the pipe open
    die_with_parent(launcher)

    import dvc.repo  # noqa: F401  (what main() and `dvc repro` import, here while the job is set up)
    from dvc.cli import parser  # noqa: F401

    from reprotrain.adapters import dvc, dvc_pipeline  # noqa: F401

    for name in ("dvc.repo.reproduce", "dvc.commands.repro", "dvc.repo.graph", "dvc.stage", "dvc.dvcfile"):
        try:
            __import__(name)
        except ImportError:  # another DVC version's layout: imported by DVC itself when needed
            pass
    ahead = None
    if root is not None:
        try:
            ahead = (root, dvc.cache_dir(Path(root)))
        except Exception:  # noqa: BLE001 - main() looks again, and says what is wrong
            pass
    with os.fdopen(request_fd, "rb") as pipe:  # one line: a forked child of reprotrain's may hold the pipe open
        text = pipe.readline()
    if not text.strip():
        return 0
    request = json.loads(text)
    die_with_parent(None)  # from now on the job's own: the watchdog stops it if reprotrain dies
    os.chdir(request["cwd"])
    sys.path[0] = request["cwd"]  # as `python -m` started there would have it
    os.environ.clear()
    os.environ.update(request["env"])
    return main(request["spec"], ahead)


if __name__ == "__main__":
    if sys.argv[1] == "--wait":  # --wait LAUNCHER_PID ROOT REQUEST_FD
        exit_code = waiting(int(sys.argv[2]), int(sys.argv[4]), sys.argv[3])
    else:
        exit_code = main(sys.argv[1])
    import gc

    gc.freeze()  # DVC's objects are not walked once more on the way out (≈0.1 s; as cli.entry does)
    raise SystemExit(exit_code)
