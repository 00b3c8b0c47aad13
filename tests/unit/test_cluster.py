"""core/cluster.py: which launches may run jobs elsewhere, and what they would not reach."""

from __future__ import annotations

from reprotrain.core.cluster import filesystem_of, out_of_reach, runs_elsewhere

MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
30 22 0:25 / /tmp rw,nosuid shared:5 - tmpfs tmpfs rw
41 22 0:40 / /shared rw,relatime shared:9 - nfs4 server:/export rw,vers=4.2
42 41 0:41 / /shared/scratch rw,relatime shared:10 - lustre 10.0.0.1@tcp:/fs rw
43 22 0:42 / /with\\040space rw - xfs /dev/sdb rw
44 22 0:43 / /tab\\011and\\134slash rw - btrfs /dev/sdc rw
45 22 0:44 / /cray rw - dvs /dev/dvs rw
"""


def test_the_longest_mount_point_that_covers_the_path_names_its_filesystem():
    assert filesystem_of("/home/me/project", MOUNTINFO) == "ext4"
    assert filesystem_of("/tmp", MOUNTINFO) == "tmpfs"
    assert filesystem_of("/tmpfoo/x", MOUNTINFO) == "ext4"  # not under /tmp
    assert filesystem_of("/shared/team/p", MOUNTINFO) == "nfs4"
    assert filesystem_of("/shared/scratch/p/.reprotrain", MOUNTINFO) == "lustre"
    assert filesystem_of("/with space/p", MOUNTINFO) == "xfs"
    assert filesystem_of("/tab\tand\\slash/p", MOUNTINFO) == "btrfs"
    assert filesystem_of("/x", "") == ""


def test_only_cluster_launchers_warn_and_each_thing_out_of_reach_is_one_line():
    assert runs_elsewhere("submitit_slurm") and runs_elsewhere("ray") and not runs_elsewhere("joblib")
    assert not runs_elsewhere(None) and not runs_elsewhere("submitit_local")
    assert out_of_reach("joblib", "sqlite:///p/mlflow.db", "/p/.reprotrain", "ext4") == []
    both = out_of_reach("submitit_slurm", "sqlite:///p/mlflow.db", "/p/.reprotrain", "ext4")
    assert len(both) == 2 and all("\n" not in line for line in both)
    assert "MLFLOW_TRACKING_URI=http://" in both[0] and "sqlite:///p/mlflow.db" in both[0]
    assert "/p/.reprotrain" in both[1] and "ext4" in both[1] and "NFS or Lustre" in both[1]
    assert out_of_reach("ray", None, "/shared/p/.reprotrain", "nfs4") == []
    assert out_of_reach("submitit_slurm", None, "/cray/p/.reprotrain", "dvs") == []
    assert len(out_of_reach("ray", None, "/p/.reprotrain", "tmpfs")) == 1
    assert out_of_reach("ray", None, "/p/.reprotrain", "") == []  # no mount table: nothing is claimed


def test_a_known_launcher_failure_gets_its_fix():
    from reprotrain.core.cluster import launcher_fix

    said = "ValueError: When connecting to an existing cluster, object_store_memory must not be provided."
    assert "+hydra.launcher.ray.init.object_store_memory=null" in launcher_fix("ray", said)
    assert launcher_fix("submitit_slurm", said) is None and launcher_fix("ray", "something else") is None


def test_diff_names_where_two_jobs_ran_when_it_differs():
    from reprotrain.core.diff import diff_where

    node1 = {"host": "node1", "platform": "Linux-6.1-x86_64", "executable": "/shared/venv/bin/python"}
    node2 = {**node1, "host": "node2"}
    assert diff_where(node1, node2) == [{"name": "host", "a": "node1", "b": "node2"}]
    other = {**node2, "executable": "/opt/venv/bin/python", "platform": "Linux-5.15-x86_64"}
    assert [row["name"] for row in diff_where(node1, other)] == ["host", "platform", "executable"]
    assert diff_where(node1, dict(node1)) == []
    assert diff_where(node1, {}) == []  # an older record that names no host: nothing is claimed
