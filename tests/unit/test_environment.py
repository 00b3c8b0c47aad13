"""core/environment.py and the interpreter's record of where packages came from (issue 19, first part)."""

from __future__ import annotations

import json

from reprotrain.adapters import interpreter
from reprotrain.core.environment import requirement_lines, requirements_text

RECORDED = {
    "python": "3.11.7",
    "implementation": "CPython",
    "platform": "Linux-6.1-x86_64-with-glibc2.36",
    "packages": {"numpy": "2.4.6", "mylib": "0.3.0", "proj": "1.0", "wheelpkg": "2.0", "localdir": "0.1"},
    "sources": {
        "mylib": {"url": "https://github.com/me/mylib.git", "vcs": "git", "commit": "a" * 40},
        "proj": {"url": "file:///home/me/proj", "editable": True},
        "wheelpkg": {"url": "file:///wheels/wheelpkg-2.0-py3-none-any.whl", "archive": True},
        "localdir": {"url": "file:///src/localdir", "editable": False},
    },
    "indexes": ["https://pypi.example/simple", "https://extra.example/simple"],
    "digest": "d" * 64,
}


def test_each_kind_of_origin_is_one_requirement_line():
    lines = requirement_lines(RECORDED)
    assert lines == [
        "localdir @ file:///src/localdir  # 0.1",
        f"mylib @ git+https://github.com/me/mylib.git@{'a' * 40}",
        "numpy==2.4.6",
        "-e file:///home/me/proj  # proj 1.0, editable",
        "wheelpkg @ file:///wheels/wheelpkg-2.0-py3-none-any.whl  # 2.0",
    ]


def test_the_file_names_the_interpreter_the_digest_and_the_indexes():
    text = requirements_text(RECORDED, "r1")
    assert "# CPython 3.11.7 on Linux-6.1-x86_64-with-glibc2.36" in text and f"# digest {'d' * 64}" in text
    assert "--index-url https://pypi.example/simple\n--extra-index-url https://extra.example/simple\n" in text
    old = requirements_text({"python": "3.10.1", "packages": {"a": "1"}}, "r0")
    assert "recorded before reprotrain recorded where packages came from" in old and old.endswith("a==1\n")


def test_direct_url_json_gives_the_origin_without_credentials():
    vcs = {"url": "https://tok:secret123@git.example/me/x.git", "vcs_info": {"vcs": "git", "commit_id": "c" * 40}}
    assert interpreter._source(json.dumps(vcs)) == {
        "url": "https://git.example/me/x.git",
        "vcs": "git",
        "commit": "c" * 40,
    }
    assert interpreter._source(json.dumps({"url": "file:///p", "dir_info": {"editable": True}}))["editable"] is True
    assert interpreter._source(json.dumps({"url": "file:///w.whl", "archive_info": {}}))["archive"] is True
    assert interpreter._source(None) is None and interpreter._source("not json") is None


def test_index_urls_from_the_environment_lose_their_credentials(monkeypatch, tmp_path):
    conf = tmp_path / "pip.conf"
    conf.write_text("[global]\nextra-index-url = https://bob:hunter2hunter2@private.example/simple\n")
    monkeypatch.setenv("PIP_INDEX_URL", "https://alice:pw12345678@idx.example/simple")
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    found = interpreter._indexes()
    assert found[0] == "https://idx.example/simple" and "https://private.example/simple" in found
    assert not any("pw12345678" in u or "hunter2" in u for u in found)


def test_the_digest_covers_what_a_rebuild_needs_and_not_where_it_ran():
    here = interpreter.describe()
    assert here["digest"] == interpreter.rebuild_digest(here)
    assert interpreter.rebuild_digest({**here, "host": "elsewhere", "executable": "/x"}) == here["digest"]
    bumped = {**here, "packages": {**here["packages"], "numpy": "0.0.1"}}
    assert interpreter.rebuild_digest(bumped) != here["digest"]
