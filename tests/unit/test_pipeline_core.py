"""The pure part of a `dvc repro` entrypoint (core/pipeline.py): parsing, params checks, metric
names, what counts as an input, the outputs tag."""

from __future__ import annotations

import pytest

from reprotrain.core.pipeline import (
    PipelinePlan,
    Stage,
    flatten_metrics,
    inputs_of,
    is_input,
    missing_params,
    outputs_tag,
    parse_repro,
    ran_stages,
    unread_overrides,
)
from reprotrain.core.record import PINNED_BY_GIT, DataOutput

PLAN = PipelinePlan(
    (),
    (),
    (
        Stage("prepare", "prepare", ("prepare.scale",), ("prepared",), deps=("src/prep.py", "data/raw.csv")),
        Stage("train", "train", ("train",), ("model.pkl",), deps=("prepared", "data/images/a.png")),
    ),
)


def test_parse_repro():
    assert parse_repro("python train.py") is None
    assert parse_repro("dvc exp run") is None
    assert parse_repro("dvc repro") == ((), ())
    assert parse_repro("dvc repro train evaluate") == (("train", "evaluate"), ())
    assert parse_repro("dvc repro -s train") == (("train",), ("-s",))
    with pytest.raises(ValueError, match="--force"):
        parse_repro("dvc repro --force")
    with pytest.raises(ValueError, match="run-cache"):
        parse_repro("dvc repro --no-run-cache train")
    with pytest.raises(ValueError, match="knows to be safe"):
        parse_repro("dvc repro --glob 'tr*'")


def test_command_never_takes_the_run_cache():
    assert PLAN.command(("dvc",), force=False) == "dvc repro --no-run-cache"
    plan = PipelinePlan(("train",), ("-s",), PLAN.stages)
    assert plan.command(("/v env/python", "-m", "dvc"), force=True) == (
        "'/v env/python' -m dvc repro -s train --no-run-cache --force"
    )


def test_missing_params_and_whole_file():
    assert missing_params({"prepare": {"scale": 2}, "train": {"lr": 1}}, PLAN) == []
    assert missing_params({"train": {}}, PLAN) == [("prepare", "prepare.scale")]
    whole = PipelinePlan((), (), (Stage("s", "s", None),))
    assert whole.reads_params and missing_params({}, whole) == []
    assert not PipelinePlan((), (), (Stage("s", "s", ()),)).reads_params


def test_unread_overrides():
    assert unread_overrides(["train.lr=1", "prepare.scale=3", "+other=1", "hydra.job.chdir=false"], PLAN) == [
        "+other=1"
    ]
    assert unread_overrides(["prepare=big"], PLAN, choices=["prepare"]) == [], "a group choice is not judged"
    assert unread_overrides(["prepare.other=1"], PLAN) == [], "a sibling of a key read (a foreach's mapping)"
    assert unread_overrides(["model.depth=3"], PLAN) == ["model.depth=3"]
    assert unread_overrides(["prepare=1"], PLAN) == [], "a parent of a key read"
    assert unread_overrides(["x=1"], PipelinePlan((), (), (Stage("s", "s", None),))) == []


def test_flatten_metrics_names_as_dvclive():
    found, warnings = flatten_metrics(
        {"dvclive/metrics.json": {"train": {"loss": 0.5, "acc": {"top1": 0.9}}, "step": 3}, "bad.json": [1, 2]}
    )
    assert found == {"train/loss": 0.5, "train/acc/top1": 0.9, "step": 3}
    assert warnings == ["bad.json: expected an object of metrics, got list; not logged"]
    both, _ = flatten_metrics({"a.json": {"acc": 1, "x": 2}, "b.yaml": {"acc": 3}})
    assert both == {"a.json/acc": 1, "x": 2, "b.yaml/acc": 3}, "a name two files give keeps each file's path"


def test_inputs_are_what_the_stages_do_not_make():
    data = [
        DataOutput("data/raw.csv", "a", 1, None, "data/raw.csv.dvc"),
        DataOutput("prepared", "b.dir", 1, 1, "dvc.lock:prepare"),
        DataOutput("metrics.json", "c", 1, None, "dvc.lock:train" + PINNED_BY_GIT),
        DataOutput("other", "d", 1, None, "dvc.lock:unrelated"),
    ]
    assert [d.path for d in inputs_of(data, PLAN)] == ["data/raw.csv"], "what no stage reads is no input"
    tracked_dir = [DataOutput("proj/data/images", "e.dir", 1, 2, "proj/data/images.dvc")]
    assert inputs_of(tracked_dir, PLAN, prefix="proj/") == tracked_dir, "a directory holding a file a stage reads"
    assert is_input("data/raw.csv", PLAN) and is_input("data", PLAN)
    assert not is_input("prepared", PLAN) and not is_input("prepared/part-0", PLAN) and not is_input("x", PLAN)


def test_outputs_tag_keeps_whole_entries():
    outs = [DataOutput(f"m{i}.bin", "h" * 32, 1, None, "dvc.lock:train") for i in range(3)]
    full = outputs_tag(outs, 1000)
    assert full == "|" + "".join(f"m{i}.bin={'h' * 32}|" for i in range(3))
    cut = outputs_tag(outs, 90)
    assert cut == "|" + "".join(f"m{i}.bin={'h' * 32}|" for i in range(2))


def test_ran_stages_from_the_console():
    console = (
        "Stage 'prepare' didn't change, skipping\nRunning stage 'train':\n> python t.py\n"
        "Running stage 'sub/dvc.yaml:eval':\n"
    )
    assert ran_stages(console) == ["train", "sub/dvc.yaml:eval"]
