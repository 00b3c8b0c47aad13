"""The upload tree (adapters.tracking.upload_tree over fileio.walk_tree): what an upload of a
directory sends, with real files in a temporary directory (no store is involved)."""

from __future__ import annotations

import os
import random

from reprotrain.adapters import tracking
from reprotrain.core.secrets import Masker
from reprotrain.fileio import walk_tree


def test_links_out_of_the_tree_are_listed_never_followed(tmp_path):
    src = tmp_path / "out"
    (src / "a").mkdir(parents=True)
    (src / "a" / "f.txt").write_text("x")
    os.symlink("/etc/passwd", src / "passwd")
    os.symlink("a/f.txt", src / "inside")
    os.symlink("nowhere", src / "dangling")
    os.symlink("a", src / "dirlink")
    os.mkfifo(src / "pipe")
    kinds = {e.rel: (e.kind, e.target) for e in walk_tree(src)}
    assert kinds == {
        "a/f.txt": ("file", ""),
        "inside": ("file", "a/f.txt"),
        "passwd": ("link", "/etc/passwd"),
        "dangling": ("link", "nowhere"),
        "dirlink": ("link", "a"),
        "pipe": ("special", ""),
    }
    sent = tracking.upload_tree(src, tmp_path / "up", Masker(["not-there"]))
    assert sorted(p.relative_to(sent).as_posix() for p in sent.rglob("*") if not p.is_dir()) == ["a/f.txt", "inside"]
    assert not any(p.is_symlink() for p in sent.rglob("*"))


def test_streamed_masking_equals_masking_in_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(tracking, "_CHUNK", 7)  # tiny chunks: most secrets straddle two of them
    secrets = ["hunter2pw", "abc|defgh", "S3CR3T-LONGER-ONE", "S3CR3T"]
    rng = random.Random(1)
    text = "".join(rng.choice(["x", "yy\n", *secrets]) for _ in range(500))
    src = tmp_path / "out"
    src.mkdir()
    (src / "f.txt").write_text(text)
    (src / "clean.txt").write_text("nothing here\n" * 50)
    masker = Masker(secrets)
    sent = tracking.upload_tree(src, tmp_path / "up", masker)
    assert (sent / "f.txt").read_text() == masker.text(text)
    assert os.stat(sent / "clean.txt").st_ino == os.stat(src / "clean.txt").st_ino, "a clean file is a hard link"
    assert (src / "f.txt").read_text() == text, "the local file is left as it is"


def test_pruned_directories_are_not_reached_through_links(tmp_path):
    """An output dir that holds a repository: `.git` is never walked, nor followed to by a link."""
    from reprotrain.fileio import NEVER_UPLOADED

    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "config").write_text("[remote]\n")
    (tmp_path / "model.bin").write_bytes(b"w")
    os.symlink(".git/config", tmp_path / "cfg-link")
    pruned: list[str] = []
    entries = {e.rel: e for e in walk_tree(tmp_path, prune=NEVER_UPLOADED, pruned=pruned)}
    assert pruned == [".git"]
    assert entries["model.bin"].kind == "file"
    assert entries["cfg-link"].kind == "link" and entries["cfg-link"].source is None
    assert not any(rel.startswith(".git/") for rel in entries)
