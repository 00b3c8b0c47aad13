"""Unit tests of the pure core: plain values in, plain values out (no git, DVC, MLflow, Hydra)."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

from reprotrain.core.config import config_digest, flatten_params, interpolate_command, lookup, seeds
from reprotrain.core.entrypoint import parse_entrypoint
from reprotrain.core.pin import dvc_status_problems, git_status_problems, parse_porcelain_v2
from reprotrain.core.record import (
    DataOutput,
    GitInfo,
    RunRecord,
    data_digest,
    parse_metrics,
    run_tags,
    strip_credentials,
)
from reprotrain.errors import UsageError

SHA = "a" * 40


def porcelain(*records: str, oid: str = SHA, head: str = "main") -> str:
    return "\0".join([f"# branch.oid {oid}", f"# branch.head {head}", *records]) + "\0"


def test_clean_status_has_no_problems_and_reads_commit_and_branch():
    state = parse_porcelain_v2(porcelain())
    assert (state.commit, state.branch) == (SHA, "main")
    assert git_status_problems(state) == []


def test_every_dirty_entry_is_a_problem_with_path_and_fix():
    out = porcelain(
        f"1 .M N... 100644 100644 100644 {SHA} {SHA} src/train.py",
        f"1 A. N... 000000 100644 100644 {'0' * 40} {SHA} new file.py",
        f"2 R. N... 100644 100644 100644 {SHA} {SHA} R100 b.py",
        "a.py",
        f"1 .M SC.. 160000 160000 160000 {SHA} {SHA} vendor/lib",
        f"1 .M S.M. 160000 160000 160000 {SHA} {SHA} vendor/other",
        "? notes.txt",
    )
    problems = git_status_problems(parse_porcelain_v2(out))
    kinds = [(p.kind, p.path) for p in problems]
    assert kinds == [
        ("modified", "src/train.py"),
        ("staged", "new file.py"),
        ("staged", "b.py"),
        ("submodule-moved", "vendor/lib"),
        ("submodule-dirty", "vendor/other"),
        ("untracked", "notes.txt"),
    ]
    assert "git commit" in problems[0].fix and "src/train.py" in problems[0].fix
    assert "'notes.txt'" not in problems[-1].fix and "git add notes.txt" in problems[-1].fix


def test_no_commit_and_detached_head():
    state = parse_porcelain_v2(porcelain(oid="(initial)", head="(detached)"))
    assert state.commit is None and state.branch is None
    assert [p.kind for p in git_status_problems(state)] == ["no-commit"]


def test_dvc_status_problems_name_path_and_fix():
    status = {
        "data/x.csv.dvc": [{"changed outs": {"data/x.csv": "modified"}}],
        "data/img.dvc": [{"changed outs": {"data/img": "deleted"}}],
        "train": [{"changed deps": {"src/prep.py": "modified"}}, "always changed"],
    }
    problems = dvc_status_problems(status, lock_stages={"train"})
    by_path = {p.path: p for p in problems}
    assert set(by_path) == {"data/x.csv", "data/img", "src/prep.py"}
    assert "dvc checkout data/x.csv" in by_path["data/x.csv"].fix
    assert "dvc add data/x.csv && git commit data/x.csv.dvc" in by_path["data/x.csv"].fix
    assert by_path["data/img"].kind == "data-missing"
    assert "dvc repro train" in by_path["src/prep.py"].fix


def test_digests_are_order_independent_and_sensitive():
    a = DataOutput("data/a.csv", "1" * 32, 10, None, "data/a.csv.dvc")
    b = DataOutput("data/b", "2" * 32 + ".dir", 20, 2, "data/b.dvc")
    assert data_digest([a, b]) == data_digest([b, a])
    assert data_digest([a]) != data_digest([a, b])
    assert config_digest({"a": 1, "b": {"c": 2}}) == config_digest({"b": {"c": 2}, "a": 1})
    assert config_digest({"a": 1}) != config_digest({"a": 1.5})


def test_flatten_params_clips_long_values_and_keeps_lists_as_json():
    params = flatten_params({"model": {"lr": 0.1, "layers": [1, 2]}, "text": "x" * 100_000, "none": None})
    assert params["model.lr"] == "0.1"
    assert json.loads(params["model.layers"]) == [1, 2]
    assert len(params["text"]) == 6000
    assert params["none"] == "null"


def test_interpolate_command_quotes_values_and_reports_missing_keys():
    cfg = {"model": {"lr": 0.1, "name": "two words"}, "layers": [4, 8]}
    cmd = interpolate_command("python train.py --lr ${model.lr} --name ${model.name} --l ${layers.1} $${HOME}", cfg)
    assert cmd == "python train.py --lr 0.1 --name 'two words' --l 8 ${HOME}"
    with pytest.raises(UsageError, match="model.missing"):
        interpolate_command("python t.py ${model.missing}", cfg)
    assert lookup(cfg, "layers.0") == 4


def test_parse_entrypoint_kinds():
    assert parse_entrypoint("pkg.train:main").module == "pkg.train"
    assert parse_entrypoint("src/train.py:main").function == "main"
    command = parse_entrypoint("python train.py --lr ${model.lr}")
    assert not command.is_callable and command.job_name == "train"


def test_strip_credentials():
    assert strip_credentials("https://user:t0k3n@github.com/o/r.git") == "https://github.com/o/r.git"
    assert strip_credentials("https://t0k3n@host:8443/r") == "https://host:8443/r"
    assert strip_credentials("git@github.com:o/r.git") == "git@github.com:o/r.git"


def test_parse_metrics_keeps_numbers_only():
    metrics, warnings = parse_metrics({"loss": 0.5, "acc": 1, "name": "x", "flag": True}, "m.json")
    assert metrics == {"loss": 0.5, "acc": 1.0}
    assert len(warnings) == 2
    assert parse_metrics([1, 2], "m.json")[0] == {}


def test_record_and_tags_agree():
    record = RunRecord(
        run_id="r1",
        pinned=True,
        problems=[],
        git=GitInfo(SHA, "main", "https://host/r.git"),
        data=[DataOutput("d.csv", "1" * 32, 1, None, "d.csv.dvc")],
        config_name="config",
        config_dir="conf",
        overrides=["+experiment=x"],
        hydra_overrides=[],
        choices={"experiment": "x"},
        resolved={"seed": 3, "model": {"init_seed": 4, "lr": 0.1}},
        command={"argv": ["reprotrain", "run"]},
        environment={"python": "3.11"},
        reprotrain_version="0",
    )
    data = json.loads(record.to_json())
    tags = run_tags(record)
    assert data["schema"] == 1 and data["config"]["digest"] == tags["reprotrain.config.digest"]
    assert data["data_digest"] == tags["reprotrain.data.digest"]
    assert tags["mlflow.source.git.commit"] == SHA and tags["reprotrain.pinned"] == "true"
    assert json.loads(tags["reprotrain.overrides"]) == ["+experiment=x"]
    assert seeds(record.resolved) == {"seed": 3, "model.init_seed": 4}


def test_core_imports_no_heavy_library():
    code = (
        "import sys, reprotrain.core.pin, reprotrain.core.record, reprotrain.core.config, "
        "reprotrain.core.entrypoint; "
        "print(sorted(m for m in ('git', 'dvc', 'mlflow', 'hydra', 'omegaconf') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_public_api_is_sorted_and_complete():
    import reprotrain

    assert reprotrain.__all__ == sorted(reprotrain.__all__)
    # submodules become attributes of the package once anything imports them (other tests do):
    # they are the package's layout, not its API
    public = {
        n
        for n in dir(reprotrain)
        if not n.startswith("_") and n != "annotations" and not isinstance(getattr(reprotrain, n), types.ModuleType)
    }
    assert public <= set(reprotrain.__all__)


def test_show_text_of_a_run_and_of_a_sweep_share_their_header():
    from reprotrain.render import run_text

    common = {
        "status": "FINISHED",
        "exit_code": 0,
        "git": {"commit": "c0ffee", "branch": ""},
        "pinned": False,
        "problems": [{"kind": "modified", "path": "train.py", "message": "modified", "fix": "git commit train.py"}],
        "data_digest": "d" * 64,
    }
    run = run_text(
        common
        | {
            "run_id": "r1",
            "config": {"dir": "conf", "name": "config", "digest": "e" * 64, "overrides": ["lr=0.1"]},
            "command": {"executed": "python train.py"},
            "metrics": {"acc": 0.5},
        }
    )
    sweep = run_text(common | {"run_id": "s1", "kind": "sweep", "overrides": ["seed=1,2"], "jobs": []})
    for text, label in ((run, "run        r1"), (sweep, "sweep      s1")):
        lines = text.splitlines()
        assert lines[0] == label
        assert lines[1] == "status     FINISHED  exit 0"
        assert lines[3] == "commit     c0ffee  branch (detached)"
        assert lines[4] == "pinned     NO"
    assert "overrides  lr=0.1" in run and "acc  0.5" in run and "train.py" in run
    assert "overrides  seed=1,2" in sweep and "jobs       0" in sweep
