"""A DVC pipeline as the training code (`entrypoint = "dvc repro [stage]"`), through the console script.

The fixture imitates a public DVC pipeline project: stages that read `params.yaml` (prepare,
train, evaluate), a dvclive-style nested `dvclive/metrics.json`, a YAML metrics file and a plots
file named at dvc.yaml's top level, data added with `dvc add`, and `conf/` mirroring params.yaml.
Each stage appends its name to $PIPELINE_TRACE, so a test sees what really ran.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import (
    DVC,
    VENV_BIN,
    all_runs,
    artifact_paths,
    artifact_text,
    commit_all,
    copy_project,
    dvc,
    embedded_uri,
    git,
    git_status,
    record_of,
    run_cli,
    sh,
    write_pyproject,
)

PARAMS = {"prepare": {"scale": 2}, "train": {"n_est": 100, "seed": 0}, "evaluate": {"threshold": 10}}

PREPARE = """\
import os, pathlib, yaml
p = yaml.safe_load(open("params.yaml"))["prepare"]
rows = [int(x) * p["scale"] for x in open("data/raw.csv")]
pathlib.Path("prepared").mkdir(exist_ok=True)
pathlib.Path("prepared/rows.txt").write_text("\\n".join(map(str, rows)))
if os.environ.get("PIPELINE_TRACE"):
    open(os.environ["PIPELINE_TRACE"], "a").write("prepare\\n")
"""

TRAIN = """\
import json, os, pathlib, sys, yaml
p = yaml.safe_load(open("params.yaml"))["train"]
if p["n_est"] <= 0:
    sys.exit("n_est must be positive")
rows = [int(x) for x in open("prepared/rows.txt")]
pathlib.Path("model").mkdir(exist_ok=True)
pathlib.Path("model/model.txt").write_text(str(sum(rows) * p["n_est"]))
pathlib.Path("dvclive").mkdir(exist_ok=True)
json.dump({"train": {"score": sum(rows) / p["n_est"], "rows": len(rows)}, "step": 0}, open("dvclive/metrics.json", "w"))
if os.environ.get("PIPELINE_TRACE"):
    open(os.environ["PIPELINE_TRACE"], "a").write("train\\n")
"""

EVALUATE = """\
import os, pathlib, yaml
p = yaml.safe_load(open("params.yaml"))["evaluate"]
model = int(open("model/model.txt").read())
pathlib.Path("eval/plots").mkdir(parents=True, exist_ok=True)
yaml.safe_dump({"test": {"above": int(model > p["threshold"]), "model": model}}, open("eval/scores.yaml", "w"))
pathlib.Path("eval/plots/curve.csv").write_text("x,y\\n0,0\\n1,%d\\n" % model)
if os.environ.get("PIPELINE_TRACE"):
    open(os.environ["PIPELINE_TRACE"], "a").write("evaluate\\n")
"""

DVC_YAML = """\
stages:
  prepare:
    cmd: python src/prepare.py
    deps: [src/prepare.py, data/raw.csv]
    params: [prepare.scale]
    outs: [prepared]
  train:
    cmd: python src/train.py
    deps: [src/train.py, prepared]
    params: [train]
    outs: [model/model.txt]
    metrics:
      - dvclive/metrics.json:
          cache: false
  evaluate:
    cmd: python src/evaluate.py
    deps: [src/evaluate.py, model/model.txt]
    params: [evaluate.threshold]
    outs:
      - eval/scores.yaml:
          cache: false
      - eval/plots/curve.csv:
          cache: false
metrics:
  - eval/scores.yaml
plots:
  - eval/plots/curve.csv:
      x: x
      y: y
"""

RAW = "".join(f"{n}\n" for n in range(1, 51))  # sum 1275; prepared: ×scale


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def with_python(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The stages run `python`: the test venv's (reprotrain puts its own first on PATH too)."""
    return {"PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", **(extra or {})}


def new_pipeline(
    root: Path, files: dict[str, str], params: dict, entrypoint: str, *, repo: Path | None = None, targets=()
) -> Path:
    """A committed DVC pipeline project: git (at ``repo``, default ``root``) and DVC (a subdirectory
    when ``repo`` is given), ``files``, params.yaml with ``conf/`` mirroring it, data/raw.csv added,
    `dvc repro` run."""
    repo = repo or root
    root.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    dvc(root, "init", "-q", *(["--subdir"] if repo != root else []))
    dvc(root, "config", "core.analytics", "false")
    files = files | {
        "params.yaml": yaml.safe_dump(params),
        "conf/config.yaml": yaml.safe_dump(params),
        "data/raw.csv": RAW,
        ".gitignore": "__pycache__/\n",
    }
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    write_pyproject(root, name=root.name, entrypoint=entrypoint)
    dvc(root, "add", "-q", "data/raw.csv")
    repro(root, *targets)
    commit_all(repo, "pipeline")
    return root


def build_pipeline(root: Path) -> Path:
    files = {
        "src/prepare.py": PREPARE,
        "src/train.py": TRAIN,
        "src/evaluate.py": EVALUATE,
        "dvc.yaml": DVC_YAML,
        "conf/experiment/more.yaml": "# @package _global_\ntrain:\n  n_est: 300\n",
    }
    return new_pipeline(root, files, PARAMS, "dvc repro")


def repro(root: Path, *targets: str) -> None:
    import subprocess

    env = dict(os.environ) | with_python()
    subprocess.run([str(DVC), "repro", "-q", *targets], cwd=root, env=env, check=True, capture_output=True)


@pytest.fixture(scope="module")
def pipeline_template(tmp_path_factory) -> Path:
    return build_pipeline(tmp_path_factory.mktemp("pipeline") / "pipe")


@pytest.fixture
def pipe(pipeline_template, tmp_path) -> Path:
    return copy_project(pipeline_template, tmp_path / "pipe")


def traced(root: Path, *args: str, command: str = "run", extra: dict[str, str] | None = None):
    """Run reprotrain with a fresh $PIPELINE_TRACE: (result, the stages that ran)."""
    trace = root.parent / "trace.txt"
    trace.unlink(missing_ok=True)
    res = run_cli(command, *args, cwd=root, env=with_python({"PIPELINE_TRACE": str(trace), **(extra or {})}))
    ran = trace.read_text().split() if trace.exists() else []
    return res, ran


def site_caches() -> set[str]:
    """DVC's per-repository directories in its site cache (one per repository path)."""
    return {p.name for p in (Path(os.environ["DVC_SITE_CACHE_DIR"]) / "repo").glob("*")}


def newest(uri: str):
    return max(all_runs(uri), key=lambda r: r.info.start_time)


def worktrees(root: Path) -> list[str]:
    return [line for line in git(root, "worktree", "list", "--porcelain").splitlines() if line.startswith("worktree ")]


def test_run_computes_the_composed_config_records_outputs_and_reruns_every_stage(pipe):
    before = {rel: (pipe / rel).read_bytes() for rel in ("dvc.lock", "params.yaml", "model/model.txt")}
    committed_model = yaml.safe_load(before["dvc.lock"])["stages"]["train"]["outs"][0]["md5"]

    res, ran = traced(pipe, "+experiment=more")
    assert res.code == 0, res.describe()
    assert ran == ["train", "evaluate"], "the override reached params.yaml: train and what follows ran, prepare did not"
    assert "not reprotrain's Python" not in res.err, "the stages' `python` is reprotrain's"
    assert "git add" not in res.err + res.out, "no advice to stage the worktree's dvc.lock: nothing of the user's"
    assert git_status(pipe) == "", "the working copy is untouched"
    assert {rel: (pipe / rel).read_bytes() for rel in before} == before
    assert len(worktrees(pipe)) == 1, "the pipeline's worktree is removed"

    uri = embedded_uri(pipe)
    run = newest(uri)
    rid = run.info.run_id
    assert run.info.status == "FINISHED"
    model = str(2550 * 300)
    rec = record_of(uri, rid)
    assert [d["path"] for d in rec["data"]] == ["data/raw.csv"], "inputs only: not the pipeline's own outputs"
    outputs = {o["path"]: o for o in rec["outputs"]}
    assert outputs["model/model.txt"]["hash"] == md5(model) != committed_model
    assert outputs["model/model.txt"]["source"] == "dvc.lock:train"
    assert set(outputs) == {
        "prepared",
        "model/model.txt",
        "dvclive/metrics.json",
        "eval/scores.yaml",
        "eval/plots/curve.csv",
    }
    cached = pipe / ".dvc" / "cache" / "files" / "md5" / md5(model)[:2] / md5(model)[2:]
    assert cached.read_text() == model, "the trained model is in the DVC cache"
    assert [s["name"] for s in rec["pipeline"]["stages"] if s["ran"]] == ["train", "evaluate"]
    assert rec["config"]["resolved"]["train"]["n_est"] == 300
    assert {d.dataset.name for d in run.inputs.dataset_inputs} == {"data/raw.csv"}
    assert f"|model/model.txt={md5(model)}|" in run.data.tags["reprotrain.outputs"]
    # dvclive's nested JSON and the YAML metrics file, flattened with `/`
    assert run.data.metrics["train/score"] == 2550 / 300
    assert run.data.metrics["train/rows"] == 50 and run.data.metrics["step"] == 0
    assert run.data.metrics["test/model"] == 2550 * 300 and run.data.metrics["test/above"] == 1
    kept = artifact_paths(uri, rid)
    assert {"reprotrain/pipeline/dvc.lock", "reprotrain/pipeline/params.yaml"} <= kept
    assert "reprotrain/pipeline/eval/plots/curve.csv" in kept, "the plots file is logged"
    assert "n_est: 300" in artifact_text(uri, rid, "reprotrain/pipeline/dvc.lock")

    shown = run_cli("show", rid, cwd=pipe)
    assert shown.code == 0 and "ran: train, evaluate" in shown.out and f"model/model.txt  {md5(model)}" in shown.out
    for args, found in (
        (("--data", "model/model.txt"), True),  # made it
        (("--data", "data/raw.csv"), True),  # read it
        (("--data", "model/model.txt", "--data-hash", committed_model), False),  # another version
        (("--data-hash", md5(model)), True),
    ):
        listed = run_cli("runs", *args, "--json", cwd=pipe)
        assert listed.code == 0, listed.describe()
        assert (rid in {r["run_id"] for r in json.loads(listed.out)["runs"]}) is found, args

    # the same change again: computed again, never served from DVC's run-cache
    sites = site_caches()  # the project's own is there now (the gate's)
    res, ran = traced(pipe, "+experiment=more")
    assert res.code == 0 and ran == ["train", "evaluate"], res.describe()

    res, ran = traced(pipe, rid, "--verify", command="rerun")
    assert res.code == 0, res.describe()
    assert site_caches() == sites, "DVC's site-cache directories of the removed worktrees are removed too"
    assert res.out.strip().splitlines()[-1] == "REPRODUCED"
    assert ran == ["prepare", "train", "evaluate"], "a rerun recomputes every stage"
    assert "output  model/model.txt" in res.out
    rerun = newest(uri)
    assert record_of(uri, rerun.info.run_id)["pipeline"]["forced"] is True
    assert git_status(pipe) == "" and len(worktrees(pipe)) == 1

    # the run's products into the workspace, as `dvc exp apply` does
    res = run_cli("apply", rid, cwd=pipe)
    assert res.code == 0, res.describe()
    assert (pipe / "model" / "model.txt").read_text() == model
    assert yaml.safe_load((pipe / "params.yaml").read_text())["train"]["n_est"] == 300
    assert "Data and pipelines are up to date" in sh(pipe, str(DVC), "status")
    assert sorted(git_status(pipe).split()) == sorted(
        [
            "M",
            "dvc.lock",
            "M",
            "params.yaml",
            "M",
            "dvclive/metrics.json",
            "M",
            "eval/scores.yaml",
            "M",
            "eval/plots/curve.csv",
        ]
    )
    again = run_cli("apply", rid, cwd=pipe)
    assert again.code == 2 and "changes that apply would overwrite" in again.err, again.describe()


def test_verify_compares_the_outputs_hashes(pipe):
    """A stage whose output depends on the machine (here an environment variable) while every
    metric agrees: the outputs' DVC hashes tell the rerun apart."""
    (pipe / "src" / "train.py").write_text(
        TRAIN + 'pathlib.Path("model/model.txt").write_text(str(sum(rows)) + os.environ.get("FLAKY", ""))\n'
    )  # whitespace: the evaluate stage still reads the same number
    repro(pipe)
    commit_all(pipe, "flaky")
    res, _ = traced(pipe, extra={"FLAKY": " "})
    assert res.code == 0, res.describe()
    rid = newest(embedded_uri(pipe)).info.run_id
    res, ran = traced(pipe, rid, "--verify", command="rerun", extra={"FLAKY": "  "})
    assert res.code == 4, res.describe()
    assert ran == ["prepare", "train", "evaluate"]
    assert res.out.strip().splitlines()[-1] == "NOT REPRODUCED (1 difference(s))"
    differs = [line for line in res.out.splitlines() if line.rstrip().endswith("DIFFERS")]
    assert [line.split()[:2] for line in differs] == [["output", "model/model.txt"]], res.out


def test_refused_before_anything_is_written(pipe):
    uri = embedded_uri(pipe)
    conf = pipe / "conf" / "config.yaml"
    lacking = {k: v for k, v in PARAMS.items() if k != "evaluate"}
    conf.write_text(yaml.safe_dump(lacking))
    commit_all(pipe, "config lacks evaluate")
    res, ran = traced(pipe)
    assert res.code == 2 and "evaluate.threshold (stage evaluate)" in res.err, res.describe()
    conf.write_text(yaml.safe_dump(PARAMS))
    commit_all(pipe, "config complete")

    for entrypoint, message in (
        ("dvc repro --force", "`--force` is not taken"),
        ("dvc repro nosuch", "cannot be planned"),
        ("dvc repro --nonsense", "not a `dvc repro` flag"),
    ):
        write_pyproject(pipe, name="pipe", entrypoint=entrypoint)
        commit_all(pipe, entrypoint)
        res, ran = traced(pipe)
        assert res.code == 2 and message in res.err, (entrypoint, res.describe())
    write_pyproject(pipe, name="pipe", entrypoint="dvc repro")
    commit_all(pipe, "back")

    (pipe / "src" / "train.py").write_text(TRAIN + "# edited\n")
    res, ran = traced(pipe, "--allow-unpinned")
    assert res.code == 2 and "src/train.py" in res.err and "git add -A && git commit" in res.err, res.describe()
    assert ran == []
    assert not (pipe / ".reprotrain" / "mlflow.db").exists() or all_runs(uri) == [], "no run was opened"
    assert git_status(pipe) == " M src/train.py\n"


def test_stage_targets_a_sweep_and_a_failing_stage(pipe):
    write_pyproject(pipe, name="pipe", entrypoint="dvc repro train")
    commit_all(pipe, "train only")
    res, ran = traced(pipe, "-m", "train.n_est=10,20", "+note=x")
    assert res.code == 0, res.describe()
    assert ran == ["train", "train"], "evaluate is not a target's dependency: never run"
    assert "no stage of the pipeline reads +note=x" in res.err
    uri = embedded_uri(pipe)
    jobs = [r for r in all_runs(uri) if "mlflow.parentRunId" in r.data.tags]
    assert len(jobs) == 2
    made = {record_of(uri, r.info.run_id)["config"]["resolved"]["train"]["n_est"]: r for r in jobs}
    for n_est, run in made.items():
        outputs = {o["path"]: o["hash"] for o in record_of(uri, run.info.run_id)["outputs"]}
        assert outputs["model/model.txt"] == md5(str(2550 * n_est))
        assert "eval/scores.yaml" not in outputs
        assert run.data.metrics["train/score"] == 2550 / n_est
    assert git_status(pipe) == "" and len(worktrees(pipe)) == 1

    res, ran = traced(pipe, "train.n_est=0")
    assert res.code not in (0, 2, 3), res.describe()
    assert "n_est must be positive" in res.err
    failed = newest(uri)
    assert failed.info.status == "FAILED"
    assert failed.data.tags["reprotrain.exit_code"] == str(res.code)
    assert git_status(pipe) == "" and len(worktrees(pipe)) == 1


def test_rerun_from_a_second_clone_with_the_dvc_remote(pipe, tmp_path):
    from rerun_helpers import dvc_remote

    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(pipe, "remote", "add", "origin", str(bare))
    dvc_remote(pipe, tmp_path / "dvc-store")
    git(pipe, "push", "-q", "origin", "main")
    store = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'shared.db'}"}
    res, _ = traced(pipe, "train.n_est=50", extra=store)
    assert res.code == 0, res.describe()
    rid = newest(store["MLFLOW_TRACKING_URI"]).info.run_id

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(bare), str(clone))
    res, ran = traced(clone, rid, "--verify", command="rerun", extra=store)
    assert res.code == 0, res.describe()
    assert res.out.strip().splitlines()[-1] == "REPRODUCED"
    assert ran == ["prepare", "train", "evaluate"]
    assert git_status(clone) == "" and len(worktrees(clone)) == 1
    assert not (clone / "model" / "model.txt").exists(), "the clone's workspace never had the data pulled"
    shutil.rmtree(tmp_path / "dvc-store")


def test_a_secret_param_never_stays_in_dvcs_run_cache_and_apply_says_why_it_cannot(pipe):
    """`${oc.env:API_TOKEN}` in a section a stage reads: params.yaml in the worktree must hold the
    real value (the stage needs it), but DVC's run-cache entry, the artifacts and the record never."""
    conf = yaml.safe_load((pipe / "conf" / "config.yaml").read_text())
    conf["train"]["api_token"] = "${oc.env:API_TOKEN}"
    (pipe / "conf" / "config.yaml").write_text(yaml.safe_dump(conf))
    params = yaml.safe_load((pipe / "params.yaml").read_text())
    params["train"]["api_token"] = "placeholder"
    (pipe / "params.yaml").write_text(yaml.safe_dump(params))
    repro(pipe)
    commit_all(pipe, "a token")
    secret = "sekrit-XYZ-1234567890"
    res, ran = traced(pipe, extra={"API_TOKEN": secret})
    assert res.code == 0 and "train" in ran, res.describe()
    leaks = [p for p in pipe.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert leaks == [], leaks
    rid = newest(embedded_uri(pipe)).info.run_id
    res = run_cli("apply", rid, cwd=pipe)
    assert res.code == 2 and "hold secret values" in res.err, res.describe()
    assert git_status(pipe) == ""


def test_apply_that_cannot_fetch_the_outputs_puts_everything_back(pipe):
    res, _ = traced(pipe, "train.n_est=7")
    assert res.code == 0, res.describe()
    uri = embedded_uri(pipe)
    rid = newest(uri).info.run_id
    made = {o["path"]: o["hash"] for o in record_of(uri, rid)["outputs"]}["model/model.txt"]
    (pipe / ".dvc" / "cache" / "files" / "md5" / made[:2] / made[2:]).unlink()
    before = (pipe / "model" / "model.txt").read_text()
    res = run_cli("apply", rid, cwd=pipe)
    assert res.code == 1 and "apply it there, commit, and `dvc push`" in res.err, res.describe()
    assert git_status(pipe) == ""
    assert (pipe / "model" / "model.txt").read_text() == before, "the committed output is back"
    assert "Data and pipelines are up to date" in sh(pipe, str(DVC), "status")
    res, _ = traced(pipe, "train.n_est=8")
    assert res.code == 0, res.describe()
    (pipe / "notes.txt").write_text("mine")  # an untracked file apply does not write is no obstacle
    res = run_cli("apply", newest(uri).info.run_id, cwd=pipe)
    assert res.code == 0, res.describe()
    assert (pipe / "notes.txt").read_text() == "mine"


def test_a_stale_dvc_lock_and_a_missing_output_are_no_reason_to_refuse(pipe):
    """The stages run again in a worktree of the commit: a committed dvc.lock that no longer
    matches the code, or an output not checked out here, do not stop a pipeline run."""
    (pipe / "src" / "evaluate.py").write_text(EVALUATE + "# a comment: the lock is now stale\n")
    commit_all(pipe, "stale lock")
    (pipe / "model" / "model.txt").unlink()
    res, ran = traced(pipe)
    assert res.code == 0, res.describe()
    assert ran == ["evaluate"], "only the stale stage ran again"
    res, ran = traced(pipe, command="check")
    assert res.code == 3, "the gate alone still says the workspace is not as pinned"


def test_inputs_are_what_the_targeted_stages_read(pipe):
    write_pyproject(pipe, name="pipe", entrypoint="dvc repro prepare")
    commit_all(pipe, "prepare only")
    res, ran = traced(pipe, "prepare.scale=3")
    assert res.code == 0 and ran == ["prepare"], res.describe()
    uri = embedded_uri(pipe)
    rec = record_of(uri, newest(uri).info.run_id)
    assert [d["path"] for d in rec["data"]] == ["data/raw.csv"]
    assert [o["path"] for o in rec["outputs"]] == ["prepared"]
    listed = run_cli("runs", "--data", "model/model.txt", "--json", cwd=pipe)
    assert json.loads(listed.out)["runs"] == [], "the run neither read nor made the model"


FOREACH_YAML = """\
stages:
  fit:
    foreach: ${models}
    do:
      cmd: python fit.py ${item} ${key} ${scale}
      deps: [fit.py, data/raw.csv]
      outs:
        - out/${key}.txt
"""
FIT = """\
import os, sys, pathlib
pathlib.Path("out").mkdir(exist_ok=True)
total = sum(int(x) for x in open("data/raw.csv")) * int(sys.argv[1]) * int(sys.argv[3])
pathlib.Path("out/%s.txt" % sys.argv[2]).write_text(str(total))
if os.environ.get("PIPELINE_TRACE"):
    open(os.environ["PIPELINE_TRACE"], "a").write("fit@%s\\n" % sys.argv[2])
"""


def test_templated_params_and_a_foreach_grown_by_an_override(tmp_path):
    """No `params:` key: the stages read params.yaml through `${...}` templating (DVC tracks those),
    and `foreach: ${models}` gets a stage more when an override adds a model."""
    params = {"models": {"a": 1, "b": 2}, "scale": 1}
    root = new_pipeline(tmp_path / "fe", {"dvc.yaml": FOREACH_YAML, "fit.py": FIT}, params, "dvc repro")
    res, ran = traced(root, "scale=3", "+models.c=4")
    assert res.code == 0, res.describe()
    assert "no stage of the pipeline reads" not in res.err, "scale is read through templating"
    assert sorted(ran) == ["fit@a", "fit@b", "fit@c"]
    uri = embedded_uri(root)
    rec = record_of(uri, newest(uri).info.run_id)
    outputs = {o["path"]: o["hash"] for o in rec["outputs"]}
    assert outputs["out/c.txt"] == md5(str(1275 * 4 * 3)), "the stage the override made is recorded"
    assert {s["name"] for s in rec["pipeline"]["stages"]} == {"fit@a", "fit@b", "fit@c"}
    assert git_status(root) == ""


SUB_YAML = """\
stages:
  subtrain:
    cmd: python step.py
    deps: [step.py, ../data/raw.csv]
    params:
      - ../params.yaml:
          - train.n_est
    outs: [out.txt]
"""
STEP = """\
import os, pathlib, yaml
n = yaml.safe_load(open("../params.yaml"))["train"]["n_est"]
pathlib.Path("out.txt").write_text(str(sum(int(x) for x in open("../data/raw.csv")) * n))
if os.environ.get("PIPELINE_TRACE"):
    open(os.environ["PIPELINE_TRACE"], "a").write("subtrain\\n")
"""


def test_a_dvc_project_in_a_subdirectory_with_stages_in_a_sub_dvc_yaml(tmp_path):
    """`dvc init --subdir` in `proj/` of the repository, the stage in `proj/sub/dvc.yaml`: paths are
    recorded from the repository's root, as the data's are; rerun and apply find everything."""
    repo = tmp_path / "mono"
    root = new_pipeline(
        repo / "proj",
        {"sub/dvc.yaml": SUB_YAML, "sub/step.py": STEP},
        {"train": {"n_est": 100}},
        "dvc repro sub/dvc.yaml:subtrain",
        repo=repo,
        targets=("sub/dvc.yaml:subtrain",),
    )
    res, ran = traced(root, "train.n_est=3")
    assert res.code == 0 and ran == ["subtrain"], res.describe()
    uri = embedded_uri(root)
    rid = newest(uri).info.run_id
    rec = record_of(uri, rid)
    assert [d["path"] for d in rec["data"]] == ["proj/data/raw.csv"]
    assert {o["path"]: o["hash"] for o in rec["outputs"]} == {"proj/sub/out.txt": md5(str(1275 * 3))}
    listed = run_cli("runs", "--data", "proj/sub/out.txt", "--json", cwd=root)
    assert [r["run_id"] for r in json.loads(listed.out)["runs"]] == [rid], listed.describe()
    res, ran = traced(root, rid, "--verify", command="rerun")
    assert res.code == 0 and ran == ["subtrain"], res.describe()
    assert res.out.strip().splitlines()[-1] == "REPRODUCED"
    res = run_cli("apply", rid, cwd=root)
    assert res.code == 0, res.describe()
    assert (root / "sub" / "out.txt").read_text() == str(1275 * 3)
    assert "n_est: 3" in (root / "sub" / "dvc.lock").read_text()
    assert "Data and pipelines are up to date" in sh(root, str(DVC), "status")


ENV_STAGE = """\
import json, os, yaml
yaml.safe_load(open("params.yaml"))["prepare"]
seen = {k: os.environ.get(k) for k in ("REPROTRAIN_RUN_ID", "MLFLOW_RUN_ID", "PYTHONPATH", "RT_MARK")}
pid, runner = os.getppid(), None
while pid > 1 and runner is None:  # the pipeline runner this stage runs under: started ahead (--wait) or not
    cmdline = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\\0")
    if b"reprotrain.adapters.dvc_runner" in cmdline:
        runner = "ahead" if b"--wait" in cmdline else "for the job"
    pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
seen["runner"] = runner
if os.environ.get("PIPELINE_TRACE"):
    open(os.environ["PIPELINE_TRACE"], "a").write(json.dumps(seen | {"cwd": os.getcwd()}) + "\\n")
open("seen.txt", "w").write("seen")
"""


OTHER_PYTHON = "/usr/bin/python3"


@pytest.mark.skipif(not os.path.exists(OTHER_PYTHON), reason="needs a second Python at /usr/bin/python3")
def test_stages_run_with_each_jobs_environment_whether_its_runner_was_started_ahead_or_not(tmp_path):
    """The first job's runner is started while the launch sets the job up and gets the job's
    environment over a pipe; a sweep's second job starts its own. Each stage sees its own run."""
    files = {
        "src/env.py": ENV_STAGE,
        # another Python first (the hook notes it): the record still describes reprotrain's, whose
        # Python the pipeline's runner is
        "dvc.yaml": f"stages:\n  env:\n    cmd: {OTHER_PYTHON} -c pass && python src/env.py\n"
        "    deps: [src/env.py]\n    params: [prepare.scale]\n    outs: [seen.txt]\n",
    }
    root = new_pipeline(tmp_path / "envpipe", files, {"prepare": {"scale": 1}}, "dvc repro")
    trace = tmp_path / "trace.txt"
    res = run_cli(
        "run", "-m", "prepare.scale=2,3", cwd=root, env=with_python({"PIPELINE_TRACE": str(trace), "RT_MARK": "m-1"})
    )
    assert res.code == 0, res.describe()
    seen = [json.loads(line) for line in trace.read_text().splitlines()]
    jobs = sorted((r for r in all_runs(embedded_uri(root)) if "mlflow.parentRunId" in r.data.tags), key=_started)
    assert [s["REPROTRAIN_RUN_ID"] for s in seen] == [r.info.run_id for r in jobs], res.describe()
    assert [s["MLFLOW_RUN_ID"] for s in seen] == [r.info.run_id for r in jobs]
    assert [s["runner"] for s in seen] == ["ahead", "for the job"], seen
    other = f"the pipeline's stages ran {OTHER_PYTHON}, not reprotrain's Python ({VENV_BIN / 'python'})"
    assert res.err.count(other) == 2, res.describe()  # one line per job, naming the other Python once
    for run in jobs:
        assert record_of(embedded_uri(root), run.info.run_id)["environment"]["executable"] == str(VENV_BIN / "python")
    for s in seen:
        assert s["RT_MARK"] == "m-1"
        assert "code_site" in (s["PYTHONPATH"] or ""), s  # the MLflow hook reaches the stages' Pythons
        assert Path(s["cwd"]).is_relative_to(root / ".reprotrain" / "worktrees"), s
    assert git_status(root) == ""
    assert _runners_in(root) == []


def _started(run) -> int:
    return run.info.start_time


def _runners_in(root: Path) -> list[int]:
    """Pipeline runners (python -m reprotrain.adapters.dvc_runner) whose working directory is ``root``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if b"reprotrain.adapters.dvc_runner" in cmdline and Path(cwd) == root.resolve():
            found.append(int(entry))
    return found


@pytest.mark.parametrize("how", ["refused", "killed"])
def test_the_runner_started_ahead_never_outlives_its_launch(pipe, tmp_path, how):
    """Refused by the gate (the runner was started before it), or SIGKILLed while the job is set
    up and the runner waits for it: no runner is left, nothing ran. (A runner also ends when the
    pipe's end closes: tests/test_prestarted.py shows it is killed when nothing closes it.)"""
    from fault_inject import at_phase
    from helpers import wait_for

    if how == "refused":
        (pipe / "stray.txt").write_text("untracked\n")
        res, ran = traced(pipe)
        assert res.code == 3 and "stray.txt" in res.err, res.describe()
    else:
        res, ran = traced(pipe, extra=at_phase(tmp_path, "pipeline-compose", "kill"))
        assert res.code in (-9, 137), res.describe()
    assert ran == []
    assert wait_for(lambda: _runners_in(pipe) == [], 10), f"runners left: {_runners_in(pipe)}"
    assert worktrees(pipe) == [f"worktree {pipe.resolve()}"] or worktrees(pipe) == [f"worktree {pipe}"]
    assert git_status(pipe) == ("?? stray.txt\n" if how == "refused" else "")


def test_a_pipeline_projects_gate_is_vouched_for_by_the_memo(pipe, tmp_path):
    """The stages' uncached outputs (metrics and plots files, which git keeps) are remembered with
    the rest: an unchanged pipeline project's gate imports no DVC; one of them edited is refused."""
    res, _ = traced(pipe)  # makes the state directory, where the memo lives
    assert res.code == 0, res.describe()
    import time

    time.sleep(2.2)  # the memo keeps only files changed more than 2 s before the check
    res = run_cli("check", "--json", cwd=pipe)
    assert res.code == 0, res.describe()
    assert (pipe / ".reprotrain" / "data-memo.json").is_file()
    fake = tmp_path / "no-dvc"
    (fake / "dvc").mkdir(parents=True)
    (fake / "dvc" / "__init__.py").write_text("raise ImportError('the gate imported dvc')\n")
    trusted = run_cli("check", "--json", cwd=pipe, env={"PYTHONPATH": str(fake)})
    assert trusted.code == 0, trusted.describe()
    assert json.loads(trusted.out)["data"] == json.loads(res.out)["data"]
    assert any(d["path"] == "dvclive/metrics.json" for d in json.loads(res.out)["data"]), res.out
    (pipe / "eval" / "scores.yaml").write_text("test: {above: 0}\n")
    res = run_cli("check", cwd=pipe)
    assert res.code == 3 and "eval/scores.yaml" in res.err + res.out, res.describe()
