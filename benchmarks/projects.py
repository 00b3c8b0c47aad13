"""Build the benchmark projects: real git + DVC repositories, a training script, and the same
training wired for each tool it is compared with (a hand-written Hydra+MLflow app, an MLproject
for `mlflow run`, a dvc.yaml stage for `dvc exp run`)."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent

TRAIN = '''"""Training: read the config, touch the data, write metrics and a model file."""
import json, os, sys
from pathlib import Path

def main(cfg=None):
    import yaml
    if cfg is None:
        path = os.environ.get("REPROTRAIN_CONFIG")
        cfg = yaml.safe_load(Path(path).read_text()) if path else {"seed": 0, "lr": 0.1, "data": "data"}
    out = Path(os.environ.get("REPROTRAIN_OUTPUT_DIR", "."))
    seen = 0
    for root, _dirs, files in os.walk(cfg["data"]):
        seen += len(files)
    metrics = {"loss": 1.0 / (1 + cfg["seed"]) + float(cfg["lr"]), "files": seen}
    (out / "metrics.json").write_text(json.dumps(metrics))
    (out / "model.json").write_text(json.dumps({"w": [cfg["lr"]] * 10}))
    return metrics["loss"]

if __name__ == "__main__":
    main()
'''

HANDWRITTEN = '''"""What a user would write without reprotrain: a Hydra app that logs its config, metrics and
config file to MLflow, pinning nothing."""
import json
import hydra, mlflow
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

import train

@hydra.main(config_path="conf", config_name="config", version_base="1.3")
def main(cfg):
    with mlflow.start_run():
        resolved = OmegaConf.to_container(cfg, resolve=True)
        mlflow.log_params({k: v for k, v in resolved.items()})
        out = HydraConfig.get().runtime.output_dir
        import os
        os.environ["REPROTRAIN_OUTPUT_DIR"] = out
        loss = train.main(resolved)
        mlflow.log_metrics(json.load(open(os.path.join(out, "metrics.json"))))
        mlflow.log_artifact(os.path.join(out, ".hydra", "config.yaml"))
        return loss

if __name__ == "__main__":
    main()
'''

CONFIG = "seed: 0\nlr: 0.1\ndata: data\n"
MLPROJECT = "name: bench\nentry_points:\n  main:\n    command: python train.py\n"
DVC_YAML = """stages:
  train:
    cmd: python train.py
    deps:
      - data
      - train.py
    outs:
      - model.json:
          cache: false
"""


def sh(cwd: Path, *cmd: str, env: dict[str, str] | None = None) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, env=env, stdout=subprocess.DEVNULL)


def bench_env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@example.invalid",
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@example.invalid",
        MLFLOW_DISABLE_TELEMETRY="true",
        DVC_NO_ANALYTICS="1",
        OPENBLAS_NUM_THREADS="1",
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
    )
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        env.pop(key, None)
    # as installed: pip compiles a package's .pyc files (and DVC's, MLflow's are); an editable
    # checkout gets reprotrain's in the warm-up round, unless a CI-style environment forbids it
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for key in [k for k in env if k.startswith("REPROTRAIN_")]:
        env.pop(key)
    env["XDG_RUNTIME_DIR"] = str(home / "run")  # the store helpers of this benchmark only
    (home / "run").mkdir(parents=True, exist_ok=True, mode=0o700)
    home.mkdir(parents=True, exist_ok=True)
    return env


def build(root: Path, env: dict[str, str], data_files: int, data_bytes: int, source_files: int) -> Path:
    """A committed, pinned project at ``root`` (reused when already built with the same sizes)."""
    stamp = root / ".bench-built"
    want = f"{data_files} {data_bytes} {source_files}"
    if stamp.is_file() and stamp.read_text() == want:
        return root
    shutil.rmtree(root, ignore_errors=True)
    (root / "conf").mkdir(parents=True)
    (root / "data").mkdir()
    sh(root, "git", "init", "-q", "-b", "main", env=env)
    sh(root, str(BIN / "dvc"), "init", "-q", env=env)
    rng = random.Random(7)
    if data_files == 1:
        rows = data_bytes // 40
        with open(root / "data" / "train.csv", "w") as fh:
            fh.write("a,b,c,y\n")
            for _ in range(rows):
                fh.write(f"{rng.random():.6f},{rng.random():.6f},{rng.random():.6f},{rng.random():.6f}\n")
    else:
        per = data_bytes // data_files
        for i in range(data_files):
            sub = root / "data" / f"{i // 1000:02d}"
            sub.mkdir(exist_ok=True)
            (sub / f"{i:05d}.bin").write_bytes(rng.randbytes(per))
    for i in range(source_files):
        pkg = root / "src" / f"pkg{i // 500:02d}"
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / f"mod{i:05d}.py").write_text(f"VALUE = {i}\n\ndef f(x):\n    return x + VALUE\n")
    (root / "train.py").write_text(TRAIN)
    (root / "handwritten.py").write_text(HANDWRITTEN)
    (root / "conf" / "config.yaml").write_text(CONFIG)
    (root / "MLproject").write_text(MLPROJECT)
    (root / "pyproject.toml").write_text(
        '[project]\nname = "bench"\n\n[tool.reprotrain]\nentrypoint = "train.py:main"\n'
    )
    (root / ".gitignore").write_text("/outputs/\n/multirun/\n/mlruns/\n/mlflow.db\n/model.json\n/metrics.json\n")
    sh(root, str(BIN / "dvc"), "add", "-q", "data", env=env)
    sh(root, "git", "add", "-A", env=env)
    sh(root, "git", "commit", "-q", "-m", "bench project", env=env)
    stamp.write_text(want)
    (root / ".git" / "info" / "exclude").write_text("/.bench-built\n")
    return root


def other_tools_copy(project: Path, dest: Path, env: dict[str, str]) -> Path:
    """A clone for `mlflow run` and `dvc exp run` (which write into their workspace), sharing the
    DVC cache so that the data is linked, not copied."""
    if (dest / ".git").is_dir():
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    sh(project.parent, "git", "clone", "-q", str(project), str(dest), env=env)
    sh(dest, str(BIN / "dvc"), "cache", "dir", "--local", str(project / ".dvc" / "cache"), env=env)
    sh(dest, str(BIN / "dvc"), "config", "--local", "cache.type", "hardlink,symlink", env=env)
    sh(dest, str(BIN / "dvc"), "checkout", "-q", env=env)
    (dest / "dvc.yaml").write_text(DVC_YAML)
    sh(dest, "git", "add", "dvc.yaml", env=env)
    sh(dest, "git", "commit", "-q", "-m", "dvc stage", env=env)
    return dest


PIPELINE_STAGES = {
    "src/prepare.py": (
        "import yaml\np = yaml.safe_load(open('params.yaml'))['prepare']\n"
        "rows = [float(x.split(',')[0]) * p['scale'] for x in open('data/raw.csv').readlines()[1:]]\n"
        "open('prepared.txt', 'w').write('\\n'.join(map(str, rows)))\n"
    ),
    "src/train.py": (
        "import json, yaml\np = yaml.safe_load(open('params.yaml'))['train']\n"
        "rows = [float(x) for x in open('prepared.txt')]\n"
        "open('model.txt', 'w').write(str(sum(rows) * p['lr']))\n"
        "json.dump({'train': {'loss': sum(rows) / len(rows) * p['lr']}}, open('metrics.json', 'w'))\n"
    ),
    "src/evaluate.py": (
        "import json\nm = float(open('model.txt').read())\n"
        "json.dump({'test': {'score': m / 1000}}, open('scores.json', 'w'))\n"
    ),
}
PIPELINE_YAML = """stages:
  prepare:
    cmd: python src/prepare.py
    deps: [src/prepare.py, data/raw.csv]
    params: [prepare.scale]
    outs: [prepared.txt]
  train:
    cmd: python src/train.py
    deps: [src/train.py, prepared.txt]
    params: [train.lr]
    outs: [model.txt]
    metrics: [{metrics.json: {cache: false}}]
  evaluate:
    cmd: python src/evaluate.py
    deps: [src/evaluate.py, model.txt]
    metrics: [{scores.json: {cache: false}}]
"""
PIPELINE_PARAMS = "prepare:\n  scale: 2\ntrain:\n  lr: 0.1\n"


def build_pipeline(root: Path, env: dict[str, str], rows: int = 20_000) -> Path:
    """A three-stage DVC pipeline project (prepare, train, evaluate) reading params.yaml, with
    `conf/` mirroring it and `entrypoint = "dvc repro"`; its outputs committed."""
    stamp = root / ".bench-built"
    if stamp.is_file() and stamp.read_text() == str(rows):
        return root
    shutil.rmtree(root, ignore_errors=True)
    (root / "conf").mkdir(parents=True)
    (root / "data").mkdir()
    sh(root, "git", "init", "-q", "-b", "main", env=env)
    sh(root, str(BIN / "dvc"), "init", "-q", env=env)
    rng = random.Random(11)
    lines = "".join(f"{rng.random():.6f},{rng.random():.6f}\n" for _ in range(rows))
    (root / "data" / "raw.csv").write_text("a,b\n" + lines)
    for rel, text in PIPELINE_STAGES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    (root / "dvc.yaml").write_text(PIPELINE_YAML)
    (root / "params.yaml").write_text(PIPELINE_PARAMS)
    (root / "conf" / "config.yaml").write_text(PIPELINE_PARAMS)
    (root / "pyproject.toml").write_text('[project]\nname = "pipe"\n\n[tool.reprotrain]\nentrypoint = "dvc repro"\n')
    sh(root, str(BIN / "dvc"), "add", "-q", "data/raw.csv", env=env)
    sh(root, str(BIN / "dvc"), "repro", "-q", env=env | {"PATH": f"{BIN}{os.pathsep}{env['PATH']}"})
    sh(root, "git", "add", "-A", env=env)
    sh(root, "git", "commit", "-q", "-m", "pipeline", env=env)
    stamp.write_text(str(rows))
    (root / ".git" / "info" / "exclude").write_text("/.bench-built\n")
    return root


def pipeline_copy(project: Path, dest: Path, env: dict[str, str]) -> Path:
    """A clone of the pipeline project for `dvc repro` and `dvc exp run`, which write into their
    workspace; its own cache (the outputs are committed there by `dvc repro`)."""
    if (dest / ".git").is_dir():
        return dest
    shutil.rmtree(dest, ignore_errors=True)
    sh(project.parent, "git", "clone", "-q", str(project), str(dest), env=env)
    sh(dest, str(BIN / "dvc"), "cache", "dir", "--local", str(project / ".dvc" / "cache"), env=env)
    sh(dest, str(BIN / "dvc"), "checkout", "-q", env=env)
    return dest
