"""The version_base reprotrain gives hydra.main, per installed hydra-core (1.4 is not installable
within scripts/constraints.txt, so its rule is checked here; FACTS.md has what 1.4 does)."""

from __future__ import annotations

import pytest

from reprotrain.adapters.hydra import main_version_base
from reprotrain.errors import UsageError


def test_before_hydra_1_4_the_setting_is_passed() -> None:
    assert main_version_base("1.3.8", "1.3") == {"version_base": "1.3"}
    assert main_version_base("1.3.2", "1.1") == {"version_base": "1.1"}


def test_hydra_1_4_gets_no_version_base_for_current_defaults() -> None:
    assert main_version_base("1.4.0rc3", "1.3") == {}  # no Hydra15MigrationWarning on every run
    assert main_version_base("1.4.0", "1.4") == {}


def test_hydra_1_4_cannot_compose_hydra_1_0_configs() -> None:
    with pytest.raises(UsageError, match="_group_"):
        main_version_base("1.4.0", "1.1")


def test_the_launcher_is_found_on_the_command_line_or_in_the_defaults_list(tmp_path) -> None:
    from reprotrain.adapters.hydra import launcher_choice, parse_args

    (tmp_path / "config.yaml").write_text("defaults:\n  - _self_\n  - override hydra/launcher: submitit_slurm\nx: 1\n")
    (tmp_path / "plain.yaml").write_text("x: 1\n")
    assert launcher_choice(parse_args(["-m", "x=1,2"]), tmp_path, "config") == "submitit_slurm"
    assert launcher_choice(parse_args(["-m", "hydra/launcher=joblib"]), tmp_path, "config") == "joblib"
    assert launcher_choice(parse_args(["-m", "x=1,2"]), tmp_path, "plain") is None
