"""The command line as people type it: a mistyped reprotrain option, Hydra's completion installer,
`run --help` naming the project, shell completion of reprotrain and of the project's Hydra config."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from helpers import REPROTRAIN, cli_env, copy_project, run_cli


@pytest.fixture(scope="module")
def demo(template_project, tmp_path_factory):
    return copy_project(template_project, tmp_path_factory.mktemp("ux") / "demo")


def one_line(res) -> str:
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.err and "usage:" not in res.err, res.describe()
    return lines[0]


@pytest.mark.parametrize(
    "typed, meant",
    [("--alow-unpinned", "--allow-unpinned"), ("--require-pushd", "--require-pushed"), ("--multirn", "--multirun")],
)
def test_a_mistyped_option_names_the_one_meant(demo, typed, meant):
    res = run_cli("run", typed, "model.lr=0.1", cwd=demo)
    assert res.code == 2, res.describe()
    assert f"unknown option {typed}: did you mean {meant}?" in one_line(res)
    assert not (demo / ".reprotrain" / "mlflow.db").exists(), "refused before any run"


def test_an_unknown_option_with_nothing_near(demo):
    res = run_cli("run", "--zzz=1", cwd=demo)
    assert res.code == 2 and "unknown option --zzz" in one_line(res) and "did you mean" not in res.err


def test_reprotrains_flags_take_no_value_and_a_bare_query_is_one_line(demo):
    res = run_cli("run", "--allow-unpinned=yes", cwd=demo)
    assert res.code == 2 and "--allow-unpinned takes no value" in one_line(res)
    query = run_cli("run", "-sc", "query=bash", cwd=demo)
    assert query.code == 2 and "COMP_LINE" in one_line(query)


def test_hydra_completion_install_is_refused_with_reprotrains_own(demo):
    for args in (("-sc", "install=bash"), ("--shell-completion", "install=zsh"), ("--shell-completion=install=bash",)):
        res = run_cli("run", *args, cwd=demo)
        assert res.code == 2, res.describe()
        assert "reprotrain completion bash" in one_line(res)


def test_run_help_names_the_project_not_reprotrains_module(demo):
    res = run_cli("run", "--help", cwd=demo)
    assert res.code == 0, res.describe()
    assert "launch is powered by Hydra" not in res.out
    assert "demo is powered by Hydra" in res.out, res.out
    assert "--allow-unpinned" in res.out


def test_run_help_keeps_the_app_name_of_the_projects_own_config(template_project, tmp_path):
    demo = copy_project(template_project, tmp_path / "demo")
    config = demo / "conf" / "config.yaml"
    config.write_text(config.read_text() + "hydra:\n  help:\n    app_name: Forecaster\n")
    res = run_cli("run", "--help", cwd=demo)
    assert res.code == 0, res.describe()
    assert "Forecaster is powered by Hydra" in res.out, res.out


def complete(demo, line: str) -> list[str]:
    """COMPREPLY of the bash function `reprotrain completion bash` installs, for ``line``."""
    words = line.split(" ")
    script = subprocess.run([str(REPROTRAIN), "completion", "bash"], capture_output=True, text=True, check=True).stdout
    probe = (
        f"{script}\nCOMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}; "
        f"COMP_LINE={line!r}; _reprotrain_complete; printf '%s\\n' \"${{COMPREPLY[@]}}\""
    )
    env = cli_env(demo, {"PATH": f"{REPROTRAIN.parent}:/usr/bin:/bin"})
    done = subprocess.run(["bash", "-c", probe], cwd=demo, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [w for w in done.stdout.splitlines() if w]


def test_bash_completion_of_commands_options_and_hydra_config(demo):
    assert complete(demo, "reprotrain r") == ["run", "rerun", "runs"]
    assert complete(demo, "reprotrain runs --sta") == ["--status", "--stale"]
    assert "FAILED" in complete(demo, "reprotrain runs --status ")
    assert complete(demo, "reprotrain show ") == ["last"]
    assert complete(demo, "reprotrain run --allow") == ["--allow-unpinned"]
    assert "model." in complete(demo, "reprotrain run mo"), "Hydra completes the project's config keys"
    assert "model.lr=" in complete(demo, "reprotrain run model.l")
    assert complete(demo, "reprotrain rerun last --ver") == ["--verify"]
    assert "model." in complete(demo, "reprotrain run --allow-unpinned mo"), "reprotrain's options are not Hydra's"
    assert "model." in complete(demo, "reprotrain run --timeout 30 -m mo")
    assert "--shell-completion" not in complete(demo, "reprotrain run --")


def test_zsh_script_is_the_bash_function_through_bashcompinit(demo):
    res = run_cli("completion", "zsh", cwd=demo)
    assert res.code == 0 and "bashcompinit" in res.out and "_reprotrain_complete" in res.out, res.describe()
    bad = run_cli("completion", "fish", cwd=demo)
    assert bad.code == 2, bad.describe()


def complete_zsh(demo, line: str) -> tuple[str, list[str]]:
    """In a real zsh: the completer `eval "$(reprotrain completion zsh)"` registers for reprotrain,
    and the candidates it gives for ``line`` called as bashcompinit's `_bash_complete` calls it
    (ksh arrays, COMP_WORDS from zsh's words)."""
    words = line.split(" ")
    probe = (
        'eval "$(reprotrain completion zsh)" || exit 9\n'
        'print -r -- "registered: ${_comps[reprotrain]}"\n'
        f"setopt ksharrays; COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
        f'COMP_LINE={line!r}; _reprotrain_complete; print -rl -- "${{COMPREPLY[@]}}"'
    )
    env = cli_env(demo, {"PATH": f"{REPROTRAIN.parent}:/usr/bin:/bin", "HOME": str(demo.parent)})
    done = subprocess.run(
        ["zsh", "-f", "-c", probe],
        cwd=demo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    first, *rest = done.stdout.splitlines()
    return first, [w for w in rest if w]


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed (.ci/run installs it)")
def test_zsh_completion_in_a_real_zsh(demo):
    registered, found = complete_zsh(demo, "reprotrain r")
    assert registered == "registered: _bash_complete -o nospace -o default -F _reprotrain_complete", registered
    assert found == ["run", "rerun", "runs"], found
    assert complete_zsh(demo, "reprotrain runs --sta")[1] == ["--status", "--stale"]
    assert "model.lr=" in complete_zsh(demo, "reprotrain run model.l")[1]


def test_a_group_that_does_not_exist_is_noted_not_silently_a_key(demo):
    res = run_cli("run", "+trainer=fast", "--cfg", "job", cwd=demo)
    assert res.code == 0, res.describe()
    assert "+trainer=fast adds a plain key trainer='fast'" in res.err and "conf/trainer/fast.yaml" in res.err
    assert "trainer: fast" in res.out
    for quiet in ("+trainer_steps=7", "++trainer=fast", "+model.extra=fast", "+experiment=other"):
        again = run_cli("run", quiet, "--cfg", "job", cwd=demo)
        assert "adds a plain key" not in again.err, (quiet, again.describe())


def test_diff_names_a_global_group_as_the_likely_cause(demo):
    """`+experiment=fast` (`# @package _global_`) sets model.lr: no key of that name was overridden."""
    import json

    ids = []
    for args in (("seed=1",), ("+experiment=fast", "seed=1")):
        res = run_cli("run", *args, cwd=demo)
        assert res.code == 0, res.describe()
        ids.append(json.loads(run_cli("show", "last", "--json", cwd=demo).out)["run_id"])
    diff = run_cli("diff", *ids, cwd=demo)
    assert diff.code == 0, diff.describe()
    line = next(x for x in diff.out.splitlines() if x.strip().startswith("model.lr:"))
    assert line.endswith("(set by a config group? b: +experiment=fast)"), diff.out
    assert "seed:" not in diff.out, "the same seed: no row"
