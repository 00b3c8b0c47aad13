"""Unit tests: roles of the runs the code created, verification with them, and the hook's store
spelling and start_run decision (with a stand-in for mlflow: the hook only reads two functions)."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from reprotrain.adapters import code_hook
from reprotrain.core.links import LinkedRun, assign_roles, linked_metrics, load_linked, portable_store
from reprotrain.core.verify import (
    EXIT_CODES,
    NOT_REPRODUCED,
    NOTHING_TO_COMPARE,
    REPRODUCED,
    combined_outcome,
    compare,
)


def run(run_id, experiment="exp", start=0, end="after start", **kw):
    end = start + 1 if end == "after start" else end  # one after the other unless told
    return LinkedRun(run_id=run_id, experiment_id="1", experiment=experiment, start_time=start, end_time=end, **kw)


def test_roles_by_place_then_name_or_position():
    runs = [
        run("c", start=30),
        run("a", start=10),
        run("n1", start=5, nested=True, name="fold-0", named=True),
        run("n2", start=6, nested=True, name="fold-1", named=True),
        run("s", experiment="Default", store="sqlite:////x/other.db", start=1),
        run("d1", start=40, name="same", named=True),
        run("d2", start=41, name="same", named=True),
        run("r", start=20, name="bold-fox-12"),  # a name MLflow made up is no role
    ]
    roles = {r.run_id: r.role for r in assign_roles(runs)}
    assert roles == {
        "a": "exp#1",
        "r": "exp#2",
        "c": "exp#3",
        "d1": "exp#4",
        "d2": "exp#5",
        "n1": "nested:fold-0",
        "n2": "nested:fold-1",
        "s": "Default in sqlite:////x/other.db#1",
    }


def test_runs_that_ran_at_the_same_time_share_a_role():
    runs = [
        run("w1", start=10, end=50),
        run("w2", start=11, end=40),
        run("w3", start=45, end=60),  # starts before w1 ended: the same group
        run("after", start=70, end=80),
        run("open", start=90, end=None),  # left running: overlaps whatever starts after it
        run("late", start=95, end=99),
        run("named", start=12, end=13, name="eval", named=True),  # a name tells it apart anyway
    ]
    roles = {r.run_id: r.role for r in assign_roles(runs)}
    assert roles == {
        "w1": "exp#1-4",
        "w2": "exp#1-4",
        "w3": "exp#1-4",
        "after": "exp#5",
        "open": "exp#6-7",
        "late": "exp#6-7",
        "named": "exp:eval",
    }


def test_roles_survive_a_round_trip_through_the_record():
    runs = assign_roles([run("a", metrics={"loss": 0.5}), run("b", start=3)])
    back = load_linked([{**r.to_dict(), "unknown_later_field": 1} for r in runs] + [{"no": "id"}])
    assert back == runs
    assert linked_metrics(back) == {"exp#1": [{"loss": 0.5}], "exp#2": [{}]}


def test_linked_metrics_are_compared_by_role():
    one = {"exp#1": [{"acc": 0.9}]}
    same = compare({}, {}, {}, {}, original_linked=one, rerun_linked={"exp#1": [{"acc": 0.9}]})
    assert same.outcome == REPRODUCED and [c.name for c in same.checks] == ["[exp#1] acc"]
    differs = compare({}, {}, {}, {}, original_linked=one, rerun_linked={"exp#1": [{"acc": 0.8}]})
    assert differs.outcome == NOT_REPRODUCED
    missing = compare({"a": 1.0}, {"a": 1.0}, {}, {}, original_linked={"exp#1": [{}]}, rerun_linked={})
    assert missing.outcome == NOT_REPRODUCED
    assert [(c.kind, c.name, c.ok) for c in missing.failures] == [("run", "exp#1", False)]
    tolerant = compare({}, {}, {}, {}, rtol=0.1, original_linked={"r": [{"x": 1.0}]}, rerun_linked={"r": [{"x": 1.05}]})
    assert tolerant.reproduced


def test_a_group_of_runs_is_compared_whatever_order_its_runs_had():
    a = {"pool#1-2": [{"score": 0.1}, {"score": 0.2}]}
    swapped = compare({}, {}, {}, {}, original_linked=a, rerun_linked={"pool#1-2": [{"score": 0.2}, {"score": 0.1}]})
    assert swapped.reproduced and [c.name for c in swapped.checks] == ["[pool#1-2 1/2] score", "[pool#1-2 2/2] score"]
    other = compare({}, {}, {}, {}, original_linked=a, rerun_linked={"pool#1-2": [{"score": 0.2}, {"score": 0.3}]})
    assert other.outcome == NOT_REPRODUCED
    fewer = compare({}, {}, {}, {}, original_linked=a, rerun_linked={"pool#1-2": [{"score": 0.2}]})
    assert [(c.original, c.rerun) for c in fewer.failures] == [("2 run(s)", "1 run(s)")]


def test_nothing_to_compare_is_not_a_failure():
    files = {"model.pt": "h"}  # produced, but not named in verify_files: not compared
    verdict = compare({}, {}, files, files, original_linked={"exp#1": [{}]}, rerun_linked={"exp#1": [{}]})
    assert verdict.outcome == NOTHING_TO_COMPARE and not verdict.reproduced
    assert EXIT_CODES == {REPRODUCED: 0, NOT_REPRODUCED: 4, NOTHING_TO_COMPARE: 5}


@pytest.mark.parametrize(
    ("outcomes", "jobs", "expected"),
    [
        ([REPRODUCED, REPRODUCED], 2, REPRODUCED),
        ([REPRODUCED, NOTHING_TO_COMPARE], 2, NOTHING_TO_COMPARE),
        ([NOTHING_TO_COMPARE, NOT_REPRODUCED], 2, NOT_REPRODUCED),
        ([REPRODUCED], 2, NOT_REPRODUCED),  # a job without a verdict failed
        ([NOTHING_TO_COMPARE, NOTHING_TO_COMPARE], 2, NOTHING_TO_COMPARE),
    ],
)
def test_a_sweeps_verdict(outcomes, jobs, expected):
    assert combined_outcome(outcomes, jobs) == expected


def test_store_spellings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "m.db"
    assert code_hook.same_store("sqlite:///m.db", f"sqlite:///{db}")
    assert code_hook.same_store(f"sqlite:///{db}?timeout=5", f"sqlite:///{db}")
    assert not code_hook.same_store("sqlite:///m.db", "sqlite:///other.db")
    assert code_hook.same_store("http://USER:pw@Host:80/", "http://host")
    assert code_hook.same_store("https://host/mlflow/", "https://host:443/mlflow")
    assert not code_hook.same_store("http://host:5000", "http://host:5001")
    assert code_hook.same_store(str(tmp_path / "mlruns"), f"file://{tmp_path}/mlruns")
    hook = code_hook.in_process()
    assert hook.absolute_store("sqlite:///m.db") == f"sqlite:///{db}"
    assert hook.absolute_store("http://u:p@h:1") == "http://u:p@h:1", "credentials are kept to reach it"


def fake_mlflow(uri, active=None):
    return SimpleNamespace(get_tracking_uri=lambda: uri, active_run=lambda: active)


@pytest.mark.parametrize(
    ("uri", "args", "env", "active", "expected"),
    [
        ("sqlite:////s/m.db", {}, {}, None, None),
        ("sqlite:////s/other.db", {}, {}, None, "store"),
        ("sqlite:////s/m.db", {"experiment_id": "7"}, {}, None, "experiment"),
        ("sqlite:////s/m.db", {"experiment_id": "1"}, {}, None, None),
        ("sqlite:////s/m.db", {}, {"MLFLOW_EXPERIMENT_ID": "9"}, None, "experiment"),
        ("sqlite:////s/m.db", {"nested": True}, {}, "a run", "nested"),
        ("sqlite:////s/m.db", {"nested": True}, {}, None, None),
        ("sqlite:////s/m.db", {"parent_run_id": "p"}, {}, None, "nested"),
    ],
)
def test_when_start_run_takes_reprotrains_run(monkeypatch, uri, args, env, active, expected):
    hook = code_hook.in_process()
    monkeypatch.setitem(os.environ, hook.STORE, "sqlite:////s/m.db")
    monkeypatch.setitem(os.environ, hook.EXPERIMENT, "1")
    monkeypatch.setitem(os.environ, "MLFLOW_EXPERIMENT_ID", env.get("MLFLOW_EXPERIMENT_ID", "1"))
    assert hook._why_not_ours(fake_mlflow(uri, active), args) == expected


@pytest.mark.parametrize(
    ("command", "blocked"),
    [
        ("python train.py", None),
        ("PYTHONPATH=src python train.py", "PYTHONPATH"),
        ("env PYTHONPATH=src python train.py", "PYTHONPATH"),
        ("cd x && PYTHONPATH=. python t.py", "PYTHONPATH"),
        ("PYTHONPATH=src:$PYTHONPATH python train.py", None),
        ("PYTHONPATH=$PYTHONPATH:src python train.py", None),
        ("PYTHONPATH=src:${PYTHONPATH} python train.py", None),
        ("MY_PYTHONPATH=src python train.py", None),
        ("python -E mlcode.py", "-E"),
        ("python3.11 -u -I t.py --lr 0.1", "-I"),
        ("/usr/bin/python3 -sE t.py", "-E"),
        ("python -m src.train -E", None),  # the module's own flag, after the script
        ("python -u train.py", None),
    ],
)
def test_commands_that_keep_the_hook_out(command, blocked):
    from reprotrain.core.entrypoint import hook_blocked

    found = hook_blocked(command)
    assert (found is None) if blocked is None else (found is not None and blocked in found), found


def test_a_store_inside_the_project_has_one_name_in_any_checkout(tmp_path):
    for root in (tmp_path / "proj", tmp_path / "proj" / ".reprotrain" / "worktrees" / "abc"):
        root.mkdir(parents=True, exist_ok=True)
        assert portable_store(f"sqlite:///{root}/runs/m.db", str(root)) == "sqlite:///<project>/runs/m.db"
        assert portable_store(f"file://{root}/mlruns", str(root)) == "file://<project>/mlruns"
    assert portable_store("sqlite:////elsewhere/m.db", str(tmp_path)) == "sqlite:////elsewhere/m.db"
    assert portable_store("http://host:5000", str(tmp_path)) == "http://host:5000"


def test_start_run_hides_the_offer_from_another_store_and_offers_it_again(monkeypatch):
    """The wrapper around MLflow's start_run, with a stand-in for it that attaches as MLflow does
    (it drops MLFLOW_RUN_ID once it used it)."""
    hook = code_hook.in_process()
    calls = []

    def start_run(run_id=None, experiment_id=None, run_name=None, nested=False, parent_run_id=None, tags=None):
        calls.append((os.environ.get("MLFLOW_RUN_ID"), os.environ.get("MLFLOW_EXPERIMENT_ID")))
        os.environ.pop("MLFLOW_RUN_ID", None)

    store = ["sqlite:////s/other.db"]
    mlflow = SimpleNamespace(get_tracking_uri=lambda: store[0], active_run=lambda: None)
    wrapped = hook._wrap_start_run(start_run, mlflow)
    for key, value in {
        hook.RUN: "run-a",
        "MLFLOW_RUN_ID": "run-a",
        hook.STORE: "sqlite:////s/m.db",
        hook.EXPERIMENT: "1",
        "MLFLOW_EXPERIMENT_ID": "1",
    }.items():
        monkeypatch.setitem(os.environ, key, value)

    wrapped(run_name="elsewhere")  # another store: neither our run nor our store's experiment ID
    assert calls[-1] == (None, None)
    assert os.environ["MLFLOW_RUN_ID"] == "run-a" and os.environ["MLFLOW_EXPERIMENT_ID"] == "1", "offered again"
    os.environ.pop("MLFLOW_RUN_ID")  # the code's end_run of that run drops it, as MLflow does
    store[0] = "sqlite:////s/m.db"
    wrapped()  # back in reprotrain's store: the run is offered again, and taken
    assert calls[-1] == ("run-a", "1")
    wrapped()  # a second run of the code's own after it ended the first: a new run, as in MLflow
    assert calls[-1] == (None, "1")
    wrapped("explicit-id")  # an explicit run ID is the code's business
    assert len(calls) == 4
