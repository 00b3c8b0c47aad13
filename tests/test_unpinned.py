"""`reprotrain run --allow-unpinned`: the run happens, marked unpinned, with the evidence of why.

(The pinned counterpart, tag `true` and no evidence, is test_gate.py::test_pinned_run_then_a_refusal_adds_no_run.)
"""

from __future__ import annotations

import hashlib
import json

from helpers import (
    TRACKED_DATA_FILE,
    artifact_paths,
    artifact_text,
    embedded_uri,
    git_status,
    record_of,
    run_ok,
)

EDIT_MARKER = "# UNPINNED-EDIT-MARKER-5d1c"
BIG = 2 * 1024 * 1024  # over the 1 MB copy limit


def test_allow_unpinned_runs_and_keeps_the_evidence(project):
    with (project / "train.py").open("a") as fh:
        fh.write(EDIT_MARKER + "\n")
    (project / "notes.txt").write_text("small untracked note\n")
    (project / "scratch").mkdir()
    (project / "scratch" / "params.yaml").write_text("lr: 0.3\n")
    (project / "big.bin").write_bytes(b"\x00" * BIG)
    (project / TRACKED_DATA_FILE).unlink()
    status_before = git_status(project)

    _, run = run_ok(project, "--allow-unpinned")
    uri = embedded_uri(project)
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"
    assert run.data.tags["reprotrain.pinned"] == "false"

    record = record_of(uri, run_id)
    assert record["pinned"] is False
    by_path = {p["path"]: p for p in record["problems"]}
    for path, fix in [
        ("train.py", "git commit train.py"),
        ("notes.txt", "git add notes.txt"),
        ("big.bin", "git add big.bin"),
        (TRACKED_DATA_FILE, f"dvc checkout {TRACKED_DATA_FILE}"),
    ]:
        assert path in by_path, f"{path} missing from record problems {record['problems']}"
        assert fix in by_path[path]["fix"], by_path[path]
        assert by_path[path]["message"] and by_path[path]["kind"]

    # git reports an untracked directory as a whole (`scratch/`); naming the file is fine too
    scratch = [
        p
        for p in record["problems"]
        if "scratch/params.yaml".startswith(p["path"].rstrip("/") + "/") or p["path"] == "scratch/params.yaml"
    ]
    assert scratch and "git add scratch" in scratch[0]["fix"], record["problems"]

    paths = artifact_paths(uri, run_id)
    for name in ("diff.patch", "untracked.txt", "untracked.json", "untracked/scratch/params.yaml"):
        assert f"reprotrain/unpinned/{name}" in paths, sorted(paths)
    assert "reprotrain/unpinned/untracked/big.bin" not in paths, "not code or config, and over 1 MB"
    assert "reprotrain/unpinned/untracked/notes.txt" not in paths, "only code and config are kept whole"

    diff = artifact_text(uri, run_id, "reprotrain/unpinned/diff.patch")
    assert "train.py" in diff and f"+{EDIT_MARKER}" in diff, diff

    listed = artifact_text(uri, run_id, "reprotrain/unpinned/untracked.txt").splitlines()
    assert {"notes.txt", "scratch/params.yaml", "big.bin"} <= set(listed), listed
    assert not any(line.startswith(".reprotrain") for line in listed), listed

    assert artifact_text(uri, run_id, "reprotrain/unpinned/untracked/scratch/params.yaml") == "lr: 0.3\n"
    rows = {r["path"]: r for r in json.loads(artifact_text(uri, run_id, "reprotrain/unpinned/untracked.json"))}
    note = rows["notes.txt"]
    assert note["size"] == len("small untracked note\n") and note["kept"] == "name only: not code or config"
    assert note["sha256"] == hashlib.sha256(b"small untracked note\n").hexdigest()
    assert rows["scratch/params.yaml"]["kept"] == "contents"
    assert rows["big.bin"]["kept"].startswith("name only"), rows["big.bin"]

    assert git_status(project) == status_before, "reprotrain changed git status"
    assert (project / "train.py").read_text().endswith(EDIT_MARKER + "\n"), "the working copy is untouched"
