"""`reprotrain rerun RUN_ID --verify [--rtol R] [--atol A]`: metrics and `verify_files` outputs of
the rerun against the original's; the table, the `reprotrain.reproduced` tag, verification.json,
exit 0 or 4."""

from __future__ import annotations

import pytest
from helpers import artifact_json, artifact_paths, copy_project
from rerun_helpers import (
    assert_no_worktree_left,
    assert_same_identity,
    get_run,
    launch,
    rerun,
    run_ids,
    setup_rerun_project,
    store_of,
)

METRICS = {"rows", "total", "image_bytes", "lr", "layers", "code_version", "score"}
FILES = {"model.txt", "preds/val.csv"}


class Originals:
    """One project; original runs launched on first use, one per kind of training: `none`
    (deterministic), random in a metric (`metric`), in a verified output file (`file`), and by a
    tiny relative amount in a metric (`tiny`)."""

    def __init__(self, root):
        self.root = root
        self.uri = store_of(root)
        self._ids: dict[str, str] = {}

    def __getitem__(self, mode: str) -> str:
        if mode not in self._ids:
            self._ids[mode] = launch(self.root, f"noise={mode}")
        return self._ids[mode]


@pytest.fixture(scope="module")
def originals(template_project, tmp_path_factory):
    root = copy_project(template_project, tmp_path_factory.mktemp("verify") / "demo")
    setup_rerun_project(root)
    return Originals(root)


def table(out: str) -> dict[tuple[str, str], str]:
    """The verify table's rows: (kind, name) -> "ok" / "DIFFERS"."""
    rows = {}
    for line in out.splitlines():
        cells = line.split()
        if len(cells) >= 3 and cells[0] in ("metric", "file"):
            rows[(cells[0], cells[1])] = cells[-1]
    return rows


def verified(o, mode: str, *args: str, code: int):
    """Rerun the original of ``mode`` with --verify ARGS; exit ``code``; returns (result, new run)."""
    original = o[mode]
    before = run_ids(o.uri)
    res = rerun(o.root, original, "--verify", *args)
    assert res.code == code, res.describe()
    new_ids = run_ids(o.uri) - before
    assert len(new_ids) == 1, res.describe()
    new = get_run(o.uri, new_ids.pop())
    assert new.data.tags.get("reprotrain.rerun_of") == o[mode]
    assert new.info.status == "FINISHED", "the training itself succeeded either way"
    assert_same_identity(get_run(o.uri, o[mode]), new)
    assert_no_worktree_left(o.root)
    return res, new


def test_deterministic_training_is_reproduced(originals):
    o = originals
    res, new = verified(o, "none", code=0)
    assert res.out.strip().splitlines()[-1] == "REPRODUCED", res.describe()
    rows = table(res.out)
    assert set(rows) == {("metric", m) for m in METRICS} | {("file", f) for f in FILES}, res.out
    assert set(rows.values()) == {"ok"}, res.out
    assert ("file", "stamp.txt") not in rows, "only outputs matching verify_files are compared"
    assert new.data.tags["reprotrain.reproduced"] == "true"
    payload = artifact_json(o.uri, new.info.run_id, "reprotrain/verification.json")
    assert payload["reproduced"] is True
    assert payload["original"] == o["none"] and payload["rerun"] == new.info.run_id
    assert {(c["kind"], c["name"]) for c in payload["checks"]} == set(rows)
    assert all(c["ok"] for c in payload["checks"])
    assert new.data.metrics == get_run(o.uri, o["none"]).data.metrics


def test_random_metric_is_not_reproduced(originals):
    o = originals
    res, new = verified(o, "metric", code=4)
    assert "NOT REPRODUCED" in res.out, res.describe()
    rows = table(res.out)
    assert rows[("metric", "score")] == "DIFFERS", res.out
    assert rows[("metric", "rows")] == "ok" and rows[("file", "model.txt")] == "ok", res.out
    assert [k for k, v in rows.items() if v != "ok"] == [("metric", "score")], res.out
    assert new.data.tags["reprotrain.reproduced"] == "false"
    payload = artifact_json(o.uri, new.info.run_id, "reprotrain/verification.json")
    assert payload["reproduced"] is False
    assert [c["name"] for c in payload["checks"] if not c["ok"]] == ["score"]


def test_differing_verified_output_file_is_not_reproduced(originals):
    o = originals
    res, new = verified(o, "file", code=4)
    assert "NOT REPRODUCED" in res.out, res.describe()
    rows = table(res.out)
    assert [k for k, v in rows.items() if v != "ok"] == [("file", "model.txt")], res.out
    assert all(rows[("metric", m)] == "ok" for m in METRICS), res.out
    assert new.data.tags["reprotrain.reproduced"] == "false"
    payload = artifact_json(o.uri, new.info.run_id, "reprotrain/verification.json")
    assert [(c["kind"], c["name"]) for c in payload["checks"] if not c["ok"]] == [("file", "model.txt")]


def test_tolerance_accepts_a_small_difference(originals):
    o = originals
    res, new = verified(o, "tiny", code=4)
    assert table(res.out)[("metric", "score")] == "DIFFERS", "exact by default"
    assert new.data.tags["reprotrain.reproduced"] == "false"

    res, new = verified(o, "tiny", "--rtol", "1e-6", code=0)
    assert res.out.strip().splitlines()[-1] == "REPRODUCED", res.describe()
    assert new.data.tags["reprotrain.reproduced"] == "true"
    payload = artifact_json(o.uri, new.info.run_id, "reprotrain/verification.json")
    assert payload["reproduced"] is True and payload["rtol"] == 1e-6


def test_rerun_without_verify_gives_no_verdict(originals):
    o = originals
    original = o["metric"]
    before = run_ids(o.uri)
    res = rerun(o.root, original)
    assert res.code == 0, res.describe()
    assert "REPRODUCED" not in res.out
    (new_id,) = run_ids(o.uri) - before
    new = get_run(o.uri, new_id)
    assert new.data.tags["reprotrain.rerun_of"] == o["metric"]
    assert "reprotrain.reproduced" not in new.data.tags
    assert "reprotrain/verification.json" not in artifact_paths(o.uri, new_id)


def test_negative_tolerance_is_a_usage_error(project):
    res = rerun(project, "0123456789abcdef0123456789abcdef", "--verify", "--rtol", "-0.1")
    assert res.code == 2, res.describe()
    assert "--rtol" in res.err
