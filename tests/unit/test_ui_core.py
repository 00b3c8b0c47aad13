"""Unit tests of core/ui.py: what the MLflow UI shows, from plain values."""

from __future__ import annotations

import json

from reprotrain.core.record import PINNED_BY_GIT, DataOutput, GitInfo, RunRecord
from reprotrain.core.ui import (
    Original,
    best_job,
    clip_name,
    dataset_profile,
    dataset_source,
    description_with_verdict,
    is_ours,
    rerun_name,
    run_description,
    run_name,
    sweep_job_name,
    sweep_name,
    with_best,
)


def _record(**changes: object) -> RunRecord:
    values: dict[str, object] = dict(
        run_id="r1",
        pinned=True,
        problems=[],
        git=GitInfo("a" * 40, "main", "https://example.com/x.git"),
        data=[DataOutput("data/x.csv", "b" * 32, 10, None, "data/x.csv.dvc")],
        config_name="config",
        config_dir="conf",
        overrides=["model.lr=0.1"],
        hydra_overrides=[],
        choices={},
        resolved={"model": {"lr": 0.1}},
        command={"argv": ["reprotrain", "run", "model.lr=0.1"]},
        environment={},
        reprotrain_version="0",
    )
    values.update(changes)
    return RunRecord(**values)  # type: ignore[arg-type]


def test_run_names():
    assert run_name(["+experiment=x", "model.lr=0.1"], "config", "config") == "+experiment=x model.lr=0.1"
    assert run_name([], "config", "config") == "config"
    assert run_name(["seed=1"], "other", "config") == "other seed=1"
    assert sweep_name(["model.lr=0.1,0.2"]) == "sweep: model.lr=0.1,0.2"
    assert sweep_job_name(["+experiment=x", "model.lr=0.2"], ["+experiment=x", "model.lr=0.1,0.2"], "c") == (
        "+experiment=x: model.lr=0.2"
    )
    assert sweep_job_name(["model.lr=0.2"], ["model.lr=0.1,0.2"], "c") == "model.lr=0.2"
    original = Original("f" * 32, "+experiment=x", "1")
    assert rerun_name(original) == "rerun of +experiment=x"
    assert rerun_name(original, ["seed=2"]) == "rerun of +experiment=x with seed=2"
    assert rerun_name(Original("f" * 32, "", "1")) == "rerun of ffffffffffff"


def test_names_are_short():
    name = run_name([f"key{i}=value{i}" for i in range(30)], "config", "config")
    assert len(name) == 80 and name.endswith("…")
    assert clip_name("a\nb") == "a b"


def test_description_of_a_rerun_links_its_original_and_takes_its_verdict_once():
    original = Original("f" * 32, "first [try]", "7")
    note = run_description(_record(), "n" * 32, "s3://bucket/store", original)
    route = f"#/experiments/7/runs/{'f' * 32}?workflowType=machine_learning"
    assert note.startswith(f"- **rerun of** [first (try)]({route})")
    assert "`data/x.csv`: `bbbbbbbbbbbb`, from `data/x.csv.dvc`" in note
    assert "DVC remote `s3://bucket/store`" in note
    assert f"`reprotrain rerun {'n' * 32} --verify`" in note
    assert is_ours(note) and not is_ours("my own notes") and not is_ours(None)
    verified = description_with_verdict(description_with_verdict(note, "not-reproduced", 3), "reproduced", 2)
    lines = verified.splitlines()
    assert lines[1] == "- **verdict** reproduced (rerun --verify, 2 check(s); reprotrain/verification.json)"
    assert verified.count("**verdict**") == 1


def test_description_of_an_unpinned_run_lists_its_problems():
    from reprotrain.core.pin import Problem

    problem = Problem("modified", "train.py", "modified", "git commit")
    note = run_description(_record(pinned=False, problems=[problem]), "x")
    assert "**pinned** no: launched with --allow-unpinned; 1 problem(s):" in note
    assert "train.py: modified (fix: git commit)" in note


def test_sweep_best_job():
    results = [
        {"run_id": "a", "value": 0.5},
        {"run_id": "b", "value": 0.25},
        {"run_id": "c", "value": None},
        {"run_id": "", "value": 0.0},
    ]
    assert best_job(results, "minimize").run_id == "b"  # type: ignore[union-attr]
    assert best_job(results, "maximize").run_id == "a"  # type: ignore[union-attr]
    assert best_job([{"run_id": "a"}], "minimize") is None
    note = "- **sweep over** `x=1,2`\n- **commit** `c`\n"
    assert with_best(with_best(note, "- **best job** one"), "- **best job** two").splitlines() == [
        "- **sweep over** `x=1,2`",
        "- **best job** two",
        "- **commit** `c`",
    ]


def test_dataset_source_and_profile():
    file = DataOutput("data/x.csv", "h" * 32, 10, None, "data/x.csv.dvc")
    assert json.loads(dataset_source(file, "s3://b")) == {
        "path": "data/x.csv",
        "hash": "h" * 32,
        "dvc_file": "data/x.csv.dvc",
        "remote": "s3://b",
    }
    assert json.loads(dataset_profile(file, "")) == {"size": 10, "nfiles": 1, "dvc_file": "data/x.csv.dvc"}
    stage = DataOutput("out/model.pkl", "h" * 32, 5, None, "dvc.lock:train")
    assert json.loads(dataset_source(stage, ""))["stage"] == "train"
    assert json.loads(dataset_profile(stage, ""))["dvc_stage"] == "train (dvc.lock)"
    directory = DataOutput("data/d", "h" * 32 + ".dir", None, None, "data/d.dvc")
    assert json.loads(dataset_profile(directory, "")) == {"dvc_file": "data/d.dvc"}  # nothing unknown shown
    in_git = DataOutput("m.json", "h" * 32, 2, None, "dvc.lock:eval" + PINNED_BY_GIT)
    assert json.loads(dataset_profile(in_git, "s3://b"))["dvc_remote"] == "none: kept in git"
