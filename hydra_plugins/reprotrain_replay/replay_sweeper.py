"""`hydra/sweeper=reprotrain_replay`: launch a given list of jobs, exactly as listed, through the
configured launcher.

`reprotrain rerun` of a sweep sends its recorded jobs back through the launcher they ran on. The jobs
are a list once they ran, whichever sweeper chose them (a grid, Optuna's trials): Hydra's sweepers
make their own lists, so this one takes the list from a file. Hydra finds plugins only in the
`hydra_plugins` namespace package, hence this module lives outside `reprotrain`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper

__all__ = ["ReplaySweeper"]

NAME = "reprotrain_replay"


class ReplaySweeper(Sweeper):
    def __init__(self, jobs_file: str = "", **_other_sweepers_keys: Any) -> None:
        # keys a project's config sets for its own sweeper (`hydra.sweeper.n_trials`) are merged
        # into this node too: they belong to the sweep that chose the jobs, not to the replay
        self.jobs_file = jobs_file
        self.config: Any = None
        self.launcher: Any = None
        self.hydra_context: Any = None

    def setup(self, *, hydra_context: Any, task_function: Any, config: Any) -> None:
        from hydra.core.plugins import Plugins

        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from omegaconf import OmegaConf

        if arguments:
            raise ValueError(f"{NAME} launches the jobs of {self.jobs_file} only, not overrides: {arguments}")
        jobs = json.loads(Path(self.jobs_file).read_text(encoding="utf-8"))
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")  # as Hydra's own sweepers do
        batch = [list(job) for job in jobs]
        self.validate_batch_is_legal(batch)  # a job that cannot compose fails here, before any is launched
        results = self.launcher.launch(batch, initial_job_idx=0)
        for result in results:
            _ = result.return_value  # a job's exception is raised, as Hydra's basic sweeper does
        return [results]


# a plain node, not a dataclass: a config's own `hydra.sweeper.*` keys must merge into it
ConfigStore.instance().store(
    group="hydra/sweeper",
    name=NAME,
    node={"_target_": f"{__name__}.{ReplaySweeper.__name__}", "_recursive_": False, "jobs_file": ""},
    provider="reprotrain",
)
