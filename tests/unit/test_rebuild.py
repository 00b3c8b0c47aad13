"""The rebuild plan of a recorded environment (core/rebuild.py): each thing that cannot be rebuilt
is named with its fix, --force leaves it out, the project's package comes from the worktree."""

from __future__ import annotations

from reprotrain.core.rebuild import cache_key, plan_rebuild, python_excluded, unserved, unserved_problems

RECORDED = {
    "python": "3.11.7",
    "implementation": "CPython",
    "platform": "Linux-6.1-x86_64-with-glibc2.36",
    "machine": "x86_64",
    "packages": {"demo": "0.1.0", "numpy": "1.26.4", "rtlocal": "0.3"},
    "sources": {
        "demo": {"url": "file:///home/a/demo", "editable": True},
        "rtlocal": {"url": "file:///wheels/rtlocal-0.3-py3-none-any.whl", "archive": True},
    },
}


def plan(**kw):
    args = dict(
        machine="x86_64",
        system="Linux",
        python_found="3.11.7",
        python_given=False,
        project_name="demo",
        exists=lambda p: True,
        force=False,
        in_worktree=lambda relative: relative == ".",
    )
    return plan_rebuild(RECORDED, **(args | kw))


def test_the_project_comes_from_the_worktree_and_the_rest_as_recorded():
    p = plan()
    assert p.problems == [] and p.from_worktree == {"demo": "."} and p.python == "3.11.7"
    assert p.requirements == {
        "numpy": "numpy==1.26.4",
        "rtlocal": "rtlocal @ file:///wheels/rtlocal-0.3-py3-none-any.whl  # 0.3",
    }


def test_a_missing_python_names_the_install_and_python_flag():
    p = plan(python_found=None)
    assert [x.kind for x in p.problems] == ["python"] and "uv python install 3.11.7" in p.problems[0].fix
    near = plan(python_found="3.11.9")
    assert "--python 3.11.9" in near.problems[0].fix
    assert plan(python_found="3.12.1", python_given=True).problems == []
    assert "--python" in plan(python_found=None, python_given=True).problems[0].message


def test_platform_mismatch_and_gone_paths_are_refused_unless_forced():
    p = plan(machine="aarch64", exists=lambda path: not path.endswith(".whl"))
    assert sorted(x.kind for x in p.problems) == ["local-path", "platform"]
    assert all("--force" in x.fix for x in p.problems)
    forced = plan(machine="aarch64", exists=lambda path: not path.endswith(".whl"), force=True)
    assert forced.problems == [] and forced.skipped == ["rtlocal"] and "rtlocal" not in forced.requirements
    assert cache_key("d" * 64, "3.11.7", []) != cache_key("d" * 64, "3.11.7", ["rtlocal"])


def test_unserved_packages_are_read_from_uv_and_pip():
    uv = "  cause: Because there is no version of six==99.0 and you require six==99.0, we can conclude"
    uv2 = "  cause: Because rtpkgzz was not found in the package registry and you require rtpkgzz==1.0"
    pip = "ERROR: No matching distribution found for rtpin==1.0"
    assert unserved(uv) == ["six"] and unserved(uv2) == ["rtpkgzz"] and unserved(pip) == ["rtpin"]
    assert unserved("error: failed to build") == []


def test_a_mac_is_the_same_platform_as_itself():
    mac = RECORDED | {"platform": "macOS-14.2-arm64-arm-64bit", "machine": "arm64"}
    args = dict(python_found="3.11.7", python_given=False, project_name=None, exists=lambda p: True, force=False)
    assert plan_rebuild(mac, machine="arm64", system="Darwin", **args).problems == []
    assert [p.kind for p in plan_rebuild(mac, machine="arm64", system="Linux", **args).problems] == ["platform"]


def test_installer_output_and_its_log_lose_index_passwords_and_tokens(tmp_path, monkeypatch):
    from reprotrain.adapters.envbuild import _run

    monkeypatch.setenv("PIP_INDEX_URL", "https://alice:s3cr3t-pw@idx.example/simple")
    echoed = "GET https://alice:s3cr3t-pw@idx.example/simple/rtpin/ 401; GET https://tok3n-abc@x.example/ 401"
    proc = _run(["sh", "-c", f"echo '{echoed}' >&2; echo s3cr3t-pw"], tmp_path / "log")
    logged = (tmp_path / "log").read_text()
    for text in (proc.stdout, proc.stderr, logged):
        assert "s3cr3t" not in text and "tok3n" not in text, text
    assert "https://alice:****@idx.example/simple" in proc.stderr


def test_packages_inside_the_recorded_root_come_from_the_worktree_when_the_commit_has_them():
    recorded = RECORDED | {
        "packages": {"demo": "0.1.0", "libx": "2.0", "gone": "1", "outside": "3"},
        "sources": {
            "demo": {"url": "file:///home/a/demo", "editable": True},
            "libx": {"url": "file:///home/a/demo/libs/x", "editable": True},
            "gone": {"url": "file:///home/a/demo/untracked/gone", "editable": True},
            "outside": {"url": "file:///home/a/demo-sibling/o", "editable": True},
        },
    }
    args = dict(machine="x86_64", system="Linux", python_found="3.11.7", python_given=False, force=False)
    p = plan_rebuild(
        recorded,
        **args,
        project_name=None,  # setup.py only: no name in pyproject.toml
        exists=lambda path: not path.endswith("gone"),
        recorded_root="/home/a/demo",
        in_worktree=lambda relative: relative in (".", "libs/x"),
    )
    assert p.from_worktree == {"demo": ".", "libx": "libs/x"}
    assert "outside" in p.requirements, "a sibling directory is not the repository's"
    assert [x.name for x in p.problems] == ["gone"], "not in the commit and not here: named"


def test_a_version_excluded_by_requires_python_is_not_called_unserved():
    local = "ERROR: Package 'rtold' requires a different Python: 3.11.7 not in '>=3.99'"  # pip, a file
    index = (  # pip, an index
        "ERROR: Ignored the following versions that require a different python version: 1.0 Requires-Python >=3.99\n"
        "ERROR: No matching distribution found for rtold==1.0"
    )
    gone = "ERROR: No matching distribution found for rtgone==2.0"
    for output in (local, index):
        assert unserved(output) == ["rtold"] and python_excluded(output) == ["rtold"]
    assert python_excluded(gone) == [] and unserved(gone) == ["rtgone"]
    problems = unserved_problems(["rtold", "rtgone"], "3.11.7", ["rtold"])
    assert [p.kind for p in problems] == ["requires-python", "unserved"]
    assert "does not install on Python 3.11.7" in problems[0].message and "--force" in problems[0].fix


def test_a_subdirectory_is_followed_and_a_vcs_source_keeps_its_commit():
    recorded = RECORDED | {
        "packages": {"libx": "1", "viavcs": "2"},
        "sources": {
            "libx": {"url": "file:///home/a/demo", "subdirectory": "libs/x"},
            "viavcs": {"url": "file:///home/a/demo/libs/v", "vcs": "git", "commit": "c" * 40},
        },
    }
    args = dict(machine="x86_64", system="Linux", python_found="3.11.7", python_given=False, force=False)
    p = plan_rebuild(
        recorded,
        **args,
        project_name=None,
        exists=lambda path: True,
        recorded_root="/home/a/demo/",
        in_worktree=lambda relative: True,
        canonical=lambda path: path.rstrip("/"),
    )
    assert p.from_worktree == {"libx": "libs/x"}
    assert p.requirements == {"viavcs": f"viavcs @ git+file:///home/a/demo/libs/v@{'c' * 40}"}
