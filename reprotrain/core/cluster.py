"""Launches whose jobs may run on other hosts (pure): what such jobs must reach, and the one-line
warnings when the tracking store or the project's state directory is only on this host's disks."""

from __future__ import annotations

import re

__all__ = ["CLUSTER_LAUNCHERS", "filesystem_of", "launcher_fix", "out_of_reach", "runs_elsewhere"]

# Hydra launchers whose jobs may run on other hosts than the launch
CLUSTER_LAUNCHERS = ("submitit_slurm", "ray", "rq")

# filesystems every node of a cluster may mount: what a job on another node can read and write
SHARED_FILESYSTEMS = {
    "nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph", "fuse.ceph", "glusterfs",
    "fuse.glusterfs", "fuse.sshfs", "fuse.juicefs", "fuse.s3fs", "fuse.gcsfuse", "wekafs", "pvfs2", "orangefs",
    "afs", "ocfs2", "gfs2", "panfs", "fuse.weka", "virtiofs", "9p", "dvs", "fuse.mfs", "fuse.lizardfs",
    "fuse.rclone", "quobyte", "fuse.quobyte",
}  # fmt: skip


def runs_elsewhere(launcher: str | None) -> bool:
    return bool(launcher) and str(launcher).startswith(CLUSTER_LAUNCHERS)


def filesystem_of(path: str, mountinfo: str) -> str:
    """The type of the filesystem ``path`` (absolute, resolved) is on, from /proc/self/mountinfo's text;
    "" when no line covers it."""
    best, fstype = "", ""
    for line in mountinfo.splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[4])  # `\040` is a space
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fstype = point, line.split(" - ", 1)[1].split()[0]
    return fstype


def out_of_reach(launcher: str | None, store: str | None, state_dir: str, state_fs: str) -> list[str]:
    """One line per thing a job on another node may not reach: ``store`` is the tracking store's
    local file (None for a server), ``state_dir`` the project's state directory and ``state_fs``
    its filesystem's type."""
    if not runs_elsewhere(launcher):
        return []
    lines = []
    if store is not None:
        lines.append(
            f"hydra/launcher={launcher} may run the jobs on other hosts, but the tracking store is a local file "
            f"({store}): a job on another node can write to it only if it is on storage every node sees (fix: "
            "export MLFLOW_TRACKING_URI=http://<tracking server>; docs/team-setup.md, section 5)"
        )
    if state_fs and state_fs not in SHARED_FILESYSTEMS:
        lines.append(
            f"hydra/launcher={launcher} may run the jobs on other hosts, but the project's state directory "
            f"{state_dir} is on a {state_fs} filesystem of this host: jobs on another node cannot read their "
            "session there (fix: keep the project on storage every node mounts, such as NFS or Lustre; "
            "docs/team-setup.md, section 5)"
        )
    return lines


# a launcher's known failures, by what its message says, and what fixes them
_KNOWN_FIXES = (
    (
        "ray",
        "object_store_memory must not be provided",
        "add +hydra.launcher.ray.init.object_store_memory=null (hydra-ray-launcher sets it, and Ray refuses "
        "it when joining a running cluster)",
    ),
)


def launcher_fix(launcher: str | None, message: str) -> str | None:
    """What fixes a launcher's failure that is known by its message, if it is one."""
    for name, said, fix in _KNOWN_FIXES:
        if launcher == name and said in message.lower():
            return fix
    return None
