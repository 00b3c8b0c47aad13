"""`reprotrain lineage` (issue 20, point 4) of a two-step chain, through the console script: a
pipeline run A prepares data from data/raw.csv; its product, applied and committed, is what a
training run B reads; A is rerun and verified. The lineage of data/raw.csv shows raw -> A (its
rerun, REPRODUCED) -> the prepared data A made -> B; the run's lineage is logged beside it as a
picture; --json has the edges."""

from __future__ import annotations

import json

from helpers import all_runs, artifact_paths, commit_all, embedded_uri, record_of, run_cli, write_pyproject
from test_pipeline import new_pipeline

PREPARE = """\
import pathlib, yaml
p = yaml.safe_load(open("params.yaml"))["prepare"]
rows = [int(x) * p["scale"] for x in open("data/raw.csv")]
pathlib.Path("prepared").mkdir(exist_ok=True)
pathlib.Path("prepared/rows.txt").write_text("\\n".join(map(str, rows)))
"""

DVC_YAML = """\
stages:
  prepare:
    cmd: python src/prepare.py
    deps: [src/prepare.py, data/raw.csv]
    params: [prepare.scale]
    outs: [prepared]
"""

TRAIN = """\
import json, os, mlflow
rows = [int(x) for x in open("prepared/rows.txt")]
json.dump({"total": sum(rows)}, open(os.path.join(os.environ["REPROTRAIN_OUTPUT_DIR"], "metrics.json"), "w"))
with mlflow.start_run():  # reprotrain's run: the model is logged from it
    mlflow.create_external_model(name="chain-model")
"""


def newest(uri: str, before: set[str]) -> str:
    (run,) = [r for r in all_runs(uri) if r.info.run_id not in before]
    return run.info.run_id


def test_the_lineage_of_a_two_step_chain(tmp_path):
    root = new_pipeline(
        tmp_path / "chain", {"src/prepare.py": PREPARE, "dvc.yaml": DVC_YAML}, {"prepare": {"scale": 2}}, "dvc repro"
    )
    uri = embedded_uri(root)
    res = run_cli("run", "prepare.scale=3", cwd=root)
    assert res.code == 0, res.describe()
    a = newest(uri, set())
    made = {o["path"]: o["hash"] for o in record_of(uri, a)["outputs"]}["prepared"]
    raw = {o["path"]: o["hash"] for o in record_of(uri, a)["data"]}["data/raw.csv"]

    assert run_cli("apply", a, cwd=root).code == 0  # A's product into the workspace, committed
    (root / "train.py").write_text(TRAIN)
    write_pyproject(root, name=root.name, entrypoint="python train.py")
    commit_all(root, "train on the prepared data")
    before = {r.info.run_id for r in all_runs(uri)}
    res = run_cli("run", cwd=root)
    assert res.code == 0, res.describe()
    b = newest(uri, before)
    assert {o["path"]: o["hash"] for o in record_of(uri, b)["data"]}["prepared"] == made, "B read what A made"

    before = {r.info.run_id for r in all_runs(uri)}
    res = run_cli("rerun", a, "--verify", cwd=root)
    assert res.code == 0 and "REPRODUCED" in res.out, res.describe()
    a2 = newest(uri, before)

    tree = run_cli("lineage", "data/raw.csv", cwd=root)
    assert tree.code == 0, tree.describe()
    lines = tree.out.splitlines()
    assert lines[0] == f"data/raw.csv @ {raw[:12]}", tree.out
    text = tree.out
    assert f"used by run {a[:12]}" in text and f"rerun {a2[:12]}" in text and "REPRODUCED" in text, text
    at_made = next(i for i, line in enumerate(lines) if f"made prepared @ {made[:12]}" in line)
    assert any(f"used by run {b[:12]}" in line for line in lines[at_made + 1 :]), text
    assert "logged model chain-model  models:/m-" in text, text

    graph = run_cli("lineage", a, "--json", "--html", str(tmp_path / "a.html"), cwd=root)
    assert graph.code == 0, graph.describe()
    data = json.loads(graph.out)
    edges = {(e["from"], e["to"], e["kind"]) for e in data["edges"]}
    assert (f"data/raw.csv@{raw}", a, "input") in edges and (a, f"prepared@{made}", "output") in edges
    assert (f"prepared@{made}", b, "input") in edges and (a, a2, "rerun") in edges
    (b_node,) = [r for r in data["runs"] if r["run_id"] == b]
    assert [m["name"] for m in b_node["models"]] == ["chain-model"]
    assert data["artifact"] == "reprotrain/lineage/lineage.html"
    assert "reprotrain/lineage/lineage.html" in artifact_paths(uri, a)
    page = (tmp_path / "a.html").read_text()
    assert page.startswith("<!doctype html>") and "<svg" in page and a[:12] in page and b[:12] in page

    version = run_cli("lineage", f"prepared@{made[:8]}", cwd=root)
    assert version.code == 0 and f"used by run {b[:12]}" in version.out, version.describe()
    unknown = run_cli("lineage", "data/nothing.csv", cwd=root)
    assert unknown.code == 1 and "no run used or made data/nothing.csv" in unknown.err, unknown.describe()
