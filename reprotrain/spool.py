"""What a job still has to log when it ends, delivered now or, if the tracking store is gone,
spooled in the state directory and delivered later by `reprotrain sync`."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from reprotrain.adapters.store_helper import AnyTracker
from reprotrain.adapters.tracking import Tracker, quick_failure
from reprotrain.core.record import MAX_TAG, strip_credentials
from reprotrain.core.secrets import Masker
from reprotrain.errors import ReprotrainError
from reprotrain.fileio import write_json

__all__ = ["FROM_CODE_FILE", "PARAMS_FROM_CODE", "Delivery", "deliver", "log_config_params", "pending", "spool", "sync"]

SPOOL = "spool"


@dataclass
class Delivery:
    tracking_uri: str
    run_id: str
    metrics: dict[str, float]
    timestamp_ms: int
    tags: dict[str, str]
    status: str
    artifacts: list[tuple[str, str | None]] = field(default_factory=list)  # (local dir, artifact path)
    mask_values: list[str] = field(default_factory=list)
    params: dict[str, str] = field(default_factory=dict)  # the flattened config, logged last (see deliver)


PARAMS_FROM_CODE = "reprotrain.params.from_code"  # config keys whose param value the code logged itself
FROM_CODE_FILE = "params-from-code.json"  # ... all of them, under reprotrain/, when the tag cannot hold them


def deliver(tracker: AnyTracker, delivery: Delivery) -> None:
    """Log metrics, params, artifacts and tags, then set the final status last: a run marked
    finished has everything. Each step is idempotent, so a delivery can be retried."""
    masker = Masker(delivery.mask_values)
    tags = dict(delivery.tags)
    if delivery.metrics:
        tracker.log_metrics(delivery.run_id, delivery.metrics, delivery.timestamp_ms)
    if delivery.params:
        own = next((Path(local) for local, path in delivery.artifacts if path == "reprotrain"), None)
        tags |= log_config_params(tracker, delivery.run_id, delivery.params, own)
    for local, artifact_path in delivery.artifacts:
        tracker.log_artifacts(delivery.run_id, Path(local), artifact_path, masker)
    tracker.set_tags(delivery.run_id, tags)
    tracker.terminate(delivery.run_id, delivery.status)


def log_config_params(
    tracker: AnyTracker, run_id: str, params: dict[str, str], staging: Path | None = None
) -> dict[str, str]:
    """Log the config's params after the code has run, except keys the code logged itself: MLflow
    params cannot change, and the code's value stands (the config's is in reprotrain/config.yaml).
    Returns the tag naming the keys whose value differs from the config's; when they are too many
    for a tag, it ends with "..." and ``staging`` gets the whole list as `params-from-code.json`."""
    existing = tracker.get_run(run_id).params
    tracker.log_params(run_id, {k: v for k, v in params.items() if k not in existing})
    differing = sorted(k for k, v in params.items() if k in existing and existing[k] != v)
    if not differing:
        return {}
    if staging is not None and staging.is_dir():
        (staging / FROM_CODE_FILE).write_text(json.dumps(differing, indent=1) + "\n", encoding="utf-8")
    shown, text = differing, json.dumps(differing)
    while len(text) > MAX_TAG:
        shown = shown[: len(shown) // 2]
        text = json.dumps([*shown, "..."])
    return {PARAMS_FROM_CODE: text}


def spool(state_dir: Path, delivery: Delivery) -> Path:
    """Keep the delivery on disk for `reprotrain sync`, holding no secret: its artifact dirs are
    copied, masked, beside it, the tracking URI is kept without credentials, and the file is
    readable by this user only."""
    import shutil

    from reprotrain.adapters.tracking import upload_tree

    directory = state_dir / SPOOL
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"{delivery.run_id}-{uuid.uuid4().hex[:8]}"
    masker = Masker(delivery.mask_values)
    files = directory / f"{name}.files"
    artifacts = []
    try:
        for n, (local, artifact_path) in enumerate(delivery.artifacts):
            # copies, not links: a later run writing into the same output dir must not change them
            artifacts.append((str(upload_tree(Path(local), files / str(n), masker, copy=True)), artifact_path))
        kept = replace(
            delivery, tracking_uri=strip_credentials(delivery.tracking_uri), artifacts=artifacts, mask_values=[]
        )
        path = directory / f"{name}.json"
        write_json(path, asdict(kept), mode=0o600, indent=2)
    except OSError:
        shutil.rmtree(files, ignore_errors=True)  # nothing half-written is left for sync to trip on
        raise
    for local, artifact_path in delivery.artifacts:
        if artifact_path == "reprotrain":
            shutil.rmtree(local, ignore_errors=True)  # the staging dir is ours; the copy replaces it
    return path


def pending(state_dir: Path) -> list[Path]:
    return sorted((state_dir / SPOOL).glob("*.json"))


def sync(state_dir: Path, current_uri: str | None = None) -> tuple[list[str], list[tuple[str, str]]]:
    """Deliver every spooled job. Returns (delivered run IDs, [(run ID, error)]). A delivery for the
    store ``current_uri`` names is made with that URI (its credentials were not kept). One `sync`
    at a time: a second one waits for the first."""
    import fcntl
    import shutil

    from reprotrain.adapters.code_hook import same_store

    done: list[str] = []
    failed: list[tuple[str, str]] = []
    directory = state_dir / SPOOL
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for path in pending(state_dir):
            try:
                raw = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                continue  # delivered by a sync that held the lock before this one
            raw["artifacts"] = [tuple(a) for a in raw.get("artifacts", [])]
            delivery = Delivery(**raw)
            uri = current_uri if current_uri and same_store(current_uri, delivery.tracking_uri) else None
            try:
                with quick_failure():  # a store still down fails in seconds
                    deliver(Tracker(uri or delivery.tracking_uri), delivery)
            except ReprotrainError as exc:
                failed.append((delivery.run_id, str(exc)))
                continue
            path.unlink()
            for local, artifact_path in delivery.artifacts:
                if artifact_path == "reprotrain":  # a staging dir (spooled before copies were kept)
                    shutil.rmtree(local, ignore_errors=True)
            shutil.rmtree(path.with_suffix(".files"), ignore_errors=True)
            done.append(delivery.run_id)
    return done, failed
