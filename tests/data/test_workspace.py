"""DataWorkspace end to end on a real folder: add, status, checkout, push/pull, gc, safety."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from arsenale.data import hashing
from arsenale.data import workspace as workspace_module
from arsenale.data.cache import DataRemote
from arsenale.data.chunking import chunk_bytes
from arsenale.data.manifest import Manifest
from arsenale.data.workspace import DataWorkspace
from arsenale.errors import Conflict, IntegrityError, InvalidInput, NotFound
from tests.data.conftest import SMALL, make_workspace, sample_tree, write_tree


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_add_writes_a_stable_manifest_and_checkout_restores(ws: DataWorkspace, project: Path) -> None:
    files = sample_tree()
    write_tree(project / "data", files)
    result = ws.add(project / "data")
    assert (result.manifest, result.files, result.hashed, result.changed) == ("data.ars", 4, 4, True)
    text = (project / "data.ars").read_text()
    raw = json.loads(text)
    assert list(raw) == sorted(raw) and raw["kind"] == "dir" and raw["nfiles"] == 4
    big = next(f for f in raw["files"] if f["path"] == "big.bin")
    assert len(big["chunks"]) > 3 and sum(s for s, _ in big["chunks"]) == 100_000
    assert next(f for f in raw["files"] if f["path"] == "a.txt")["digest"] == hashing.hash_bytes(b"alpha\n")
    assert ws.add(project / "data").changed is False  # same content: manifest untouched
    assert (project / "data.ars").read_text() == text

    shutil.rmtree(project / "data")
    [report] = ws.checkout([project / "data.ars"])
    assert sorted(report.restored) == sorted(files) and report.refetched == []
    assert snapshot(project / "data") == files
    assert all(r.clean for r in ws.status())


def test_single_file_round_trip(ws: DataWorkspace, project: Path) -> None:
    (project / "model.bin").write_bytes(b"weights" * 100)
    ws.add(project / "model.bin")
    manifest = Manifest.read(project / "model.bin.ars")
    assert manifest.kind == "file" and manifest.digest == hashing.hash_bytes(b"weights" * 100)
    (project / "model.bin").unlink()
    [status] = ws.status()
    assert status.missing and not status.clean
    ws.checkout()
    assert (project / "model.bin").read_bytes() == b"weights" * 100


def test_status_reports_changes_and_the_stat_cache_avoids_rehashing(
        ws: DataWorkspace, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tree(project / "data", {f"f{i:03}.txt": f"row {i}\n".encode() for i in range(200)})
    ws.add(project / "data")
    calls: list[str] = []
    real = hashing.hash_small_file
    monkeypatch.setattr(hashing, "hash_small_file", lambda p, s=None: calls.append(str(p)) or real(p, s))
    os.utime(ws.statcache.path.with_name("statcache.db.clock"), ns=(1, 1))  # nothing is racily clean
    [report] = ws.status()
    assert report.clean and report.hashed == 0 and calls == []

    write_tree(project / "data", {"f001.txt": b"changed\n", "new.txt": b"new\n"})
    (project / "data" / "f002.txt").unlink()
    [report] = ws.status()
    assert (report.added, report.removed, report.modified) == (["new.txt"], ["f002.txt"], ["f001.txt"])
    assert report.hashed == 2 and len(calls) == 2  # only the two files whose stat changed
    [again] = ws.status()  # at most the two just-written files again, if they were racily clean
    assert set(calls[2:]) <= {str(project / "data" / n) for n in ("f001.txt", "new.txt")}


def test_corrupted_cache_blob_is_refetched_from_the_remote(ws: DataWorkspace, project: Path) -> None:
    write_tree(project / "data", sample_tree())
    ws.add(project / "data")
    ws.push()
    shutil.rmtree(project / "data")
    entry = Manifest.read(project / "data.ars").by_path()
    for name in ("a.txt", "big.bin"):
        blob = ws.cache.path(entry[name].digest)
        os.chmod(blob, 0o644)
        data = bytearray(blob.read_bytes())
        data[0] ^= 0xFF
        blob.write_bytes(bytes(data))
    [result] = ws.checkout()
    assert sorted(result.refetched) == sorted([entry["a.txt"].digest, entry["big.bin"].digest])
    assert (project / "data" / "a.txt").read_bytes() == b"alpha\n"
    assert hashing.chunk_table_digest(list(entry["big.bin"].chunks or ())) == entry["big.bin"].digest
    assert ws.cache.verify(entry["big.bin"].digest, 100_000, list(entry["big.bin"].chunks or ()))


def test_corrupted_blob_without_remote_is_an_error_and_nothing_is_written(project: Path) -> None:
    ws = make_workspace(project)
    write_tree(project / "data", {"a.txt": b"alpha\n"})
    ws.add(project / "data")
    shutil.rmtree(project / "data")
    blob = ws.cache.path(hashing.hash_bytes(b"alpha\n"))
    os.chmod(blob, 0o644)
    blob.write_bytes(b"evil\n")
    with pytest.raises(IntegrityError, match="corrupt"):
        ws.checkout()
    assert not (project / "data" / "a.txt").exists()


def test_interrupted_push_resumes_without_reuploading(
        ws: DataWorkspace, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_tree(project / "data", {f"f{i}.bin": os.urandom(3000) for i in range(40)})
    ws.add(project / "data")
    assert ws.remote is not None
    uploaded: list[str] = []
    real = DataRemote.upload

    def flaky(self: DataRemote, digest: str, data: bytes) -> None:
        if len(uploaded) >= 10:
            raise ConnectionError("network dropped")
        real(self, digest, data)
        uploaded.append(digest)

    monkeypatch.setattr(DataRemote, "upload", flaky)
    ws.jobs = 1
    with pytest.raises(ConnectionError):
        ws.push()
    monkeypatch.setattr(DataRemote, "upload", lambda self, d, data: (uploaded.append(d), real(self, d, data)))
    result = ws.push()
    assert (result.objects, result.already_there, result.transferred) == (40, 10, 30)
    assert len(uploaded) == len(set(uploaded)) == 40  # nothing sent twice
    assert not [p for p in Path(str(ws.remote.url)).rglob("*") if p.name.endswith(".tmp")]


def test_appending_to_a_large_file_pushes_only_new_chunks(ws: DataWorkspace, project: Path) -> None:
    data = os.urandom(300_000)
    (project / "log.bin").write_bytes(data)
    ws.add(project / "log.bin")
    first = ws.push()
    assert first.transferred > 10
    (project / "log.bin").unlink()
    (project / "log.bin").write_bytes(data + os.urandom(5000))
    ws.add(project / "log.bin")
    second = ws.push()
    # only the old last chunk (at most max_size) is re-cut together with the 5,000 new bytes
    assert second.bytes <= 5000 + SMALL.max_size and second.transferred <= 1 + 5000 // SMALL.min_size + 1
    assert second.already_there >= first.transferred - 1


def test_pull_into_a_fresh_clone(ws: DataWorkspace, project: Path, tmp_path: Path) -> None:
    files = sample_tree()
    write_tree(project / "data", files)
    ws.add(project / "data")
    ws.push()
    clone = tmp_path / "clone"
    clone.mkdir()
    shutil.copy(project / "data.ars", clone / "data.ars")
    other = make_workspace(clone, str(tmp_path / "remote"))
    result = other.pull()
    assert result.transferred == 4 and snapshot(clone / "data") == files
    assert all(r.clean for r in other.status())


def test_checkout_refuses_to_lose_uncached_changes(ws: DataWorkspace, project: Path) -> None:
    write_tree(project / "data", {"a.txt": b"v1\n"})
    ws.add(project / "data")
    write_tree(project / "data", {"a.txt": b"local edit\n", "extra.txt": b"mine\n"})
    with pytest.raises(Conflict, match="a.txt"):
        ws.checkout()
    assert (project / "data" / "a.txt").read_bytes() == b"local edit\n"
    [result] = ws.checkout(force=True)
    assert result.restored == ["a.txt"] and result.removed == ["extra.txt"]
    assert snapshot(project / "data") == {"a.txt": b"v1\n"}


@pytest.mark.parametrize("bad", ["../outside.txt", "/etc/evil", "sub/../../x", "a//b", "./a"])
def test_manifest_paths_that_leave_the_folder_are_refused(ws: DataWorkspace, project: Path, bad: str) -> None:
    digest = ws.cache.add_bytes(b"payload")
    entries = [(bad, 7, digest)]
    raw = {"arsenale_data": 1, "kind": "dir", "path": "data", "nfiles": 1, "size": 7,
           "digest": hashing.tree_digest(entries), "files": [{"path": bad, "size": 7, "digest": digest}]}
    (project / "data.ars").write_text(json.dumps(raw))
    with pytest.raises(InvalidInput, match="relative path"):
        ws.checkout()
    assert not (project.parent / "outside.txt").exists() and not (project / "data").exists()


def test_manifest_target_name_cannot_escape(ws: DataWorkspace, project: Path) -> None:
    raw = {"arsenale_data": 1, "kind": "dir", "path": "..", "nfiles": 0, "size": 0,
           "digest": hashing.tree_digest([]), "files": []}
    (project / "x.ars").write_text(json.dumps(raw))
    with pytest.raises(InvalidInput, match="plain file or folder name"):
        ws.checkout()


def test_symlinked_folder_inside_the_target_is_not_followed_out(ws: DataWorkspace, project: Path,
                                                                tmp_path: Path) -> None:
    write_tree(project / "data", {"sub/a.txt": b"alpha\n"})
    ws.add(project / "data")
    shutil.rmtree(project / "data")
    outside = tmp_path / "outside"
    outside.mkdir()
    (project / "data").mkdir()
    (project / "data" / "sub").symlink_to(outside)
    with pytest.raises(InvalidInput, match="outside"):
        ws.checkout(force=True)
    assert list(outside.iterdir()) == []


def test_gc_removes_only_unreferenced_blobs(ws: DataWorkspace, project: Path) -> None:
    write_tree(project / "data", {"keep.txt": b"keep\n", "old.txt": b"old version\n"})
    ws.add(project / "data")
    write_tree(project / "other", {"x.txt": b"x\n"})
    ws.add(project / "other")
    (project / "data" / "old.txt").unlink()
    write_tree(project / "data", {"new.txt": b"new version\n"})
    ws.add(project / "data")
    (project / "other.ars").unlink()
    dry = ws.gc(dry_run=True)
    assert dry.removed == 2 and ws.cache.has(hashing.hash_bytes(b"old version\n"))
    result = ws.gc()
    assert sorted(result.removed_digests) == sorted(hashing.hash_bytes(b) for b in (b"old version\n", b"x\n"))
    assert result.kept == 2 and ws.cache.has(hashing.hash_bytes(b"keep\n"))
    assert result.bytes_freed == len(b"old version\n")  # x.txt's blob is still the working file's inode
    (project / "data.ars").write_text("{broken")
    with pytest.raises(InvalidInput):
        ws.gc()
    assert ws.cache.has(hashing.hash_bytes(b"keep\n"))


def test_bad_targets(ws: DataWorkspace, project: Path, tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        ws.add(project / "missing")
    (tmp_path / "elsewhere.txt").write_text("x")
    with pytest.raises(InvalidInput, match="outside"):
        ws.add(tmp_path / "elsewhere.txt")
    with pytest.raises(InvalidInput):
        ws.add(project / ".arsenale")
    with pytest.raises(NotFound):
        ws.status([project / "nothing.ars"])
    assert list((project / ".arsenale" / "cache").glob("blobs/*/*")) == []


def test_copy_mode_keeps_working_files_writable(project: Path) -> None:
    ws = make_workspace(project, link_modes=("copy",))
    write_tree(project / "data", {"a.txt": b"alpha\n"})
    result = ws.add(project / "data")
    assert result.stored_by == {"copy": 1}
    assert os.access(project / "data" / "a.txt", os.W_OK) or os.geteuid() == 0
    assert (project / "data" / "a.txt").stat().st_ino != ws.cache.path(hashing.hash_bytes(b"alpha\n")).stat().st_ino


def _add_in_child(root: str, name: str, modes: tuple[str, ...]) -> None:
    ws = make_workspace(Path(root), link_modes=modes)
    ws.add(Path(root) / name)
    ws.close()


@pytest.mark.parametrize("modes", [("reflink", "hardlink", "copy"), ("copy",)], ids=["link", "copy"])
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_concurrent_adds_of_the_same_content(project: Path, method: str, modes: tuple[str, ...]) -> None:
    files = {f"f{i}.bin": bytes([i]) * 5000 for i in range(30)} | {"big.bin": os.urandom(80_000)}
    for i in range(4):
        write_tree(project / f"copy{i}", files)
    ctx = multiprocessing.get_context(method)
    procs = [ctx.Process(target=_add_in_child, args=(str(project), f"copy{i}", modes)) for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    ws = make_workspace(project)
    digests = {Manifest.read(project / f"copy{i}.ars").digest for i in range(4)}
    assert len(digests) == 1
    blobs = list((project / ".arsenale" / "cache" / "blobs").glob("*/*"))
    assert len(blobs) == 1  # big.bin, chunked, stays loose; the 30 small files were packed
    packed = ws.cache.packs.entries()
    assert len(packed) == len(files) - 1
    named = {ws.cache.packs.locate(b.digest).pack for b in packed}  # type: ignore[union-attr]
    assert named == {e.name for e in ws.cache.packs.pack_files()}  # no pack left that no row names
    manifest = Manifest.read(project / "copy0.ars")
    assert all(ws.cache.verify(e.digest, e.size, list(e.chunks) if e.chunks else None) for e in manifest.files)
    assert list((project / ".arsenale" / "cache").rglob(".tmp-*")) == []  # no half-written blob left
    assert all(r.clean for r in ws.status())


# ---- large files enter the cache while they are chunked ----


def _big(project: Path, data: bytes, name: str = "big.bin") -> Path:
    path = project / name
    path.unlink(missing_ok=True)  # never write into a file that may share the cached blob's inode
    path.write_bytes(data)
    return path


def test_a_large_file_is_copied_into_the_cache_as_it_is_chunked(project: Path) -> None:
    ws = make_workspace(project, link_modes=("copy",))
    data = os.urandom(200_000)
    path = _big(project, data)
    result = ws.add(path)
    assert result.stored_by == {"copy": 1} and result.new_blobs == 1
    entry = Manifest.read(project / "big.bin.ars").files[0]
    assert entry.chunks and entry.digest == hashing.chunk_table_digest(chunk_bytes(data, SMALL))
    assert ws.cache.verify(entry.digest, entry.size, list(entry.chunks))
    assert ws.cache.path(entry.digest).stat().st_ino != path.stat().st_ino
    assert list((ws.cache.root / "tmp").iterdir()) == []  # the staged copy was renamed, not left behind
    assert ws.add(path).new_blobs == 0  # the stat cache vouches for it now
    path.unlink()
    ws.checkout()
    assert path.read_bytes() == data


def test_a_file_edited_while_it_is_added_is_stored_as_hashed(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chunks are cut from the cache's own copy: an edit of the working file after the copy was made
    cannot leave a cached blob that does not match its digest."""
    ws = make_workspace(project, link_modes=("copy",))
    before = os.urandom(200_000)
    path = _big(project, before)
    stage = ws.cache.stage

    @contextlib.contextmanager
    def stage_then_edit(src: str, size: int) -> Iterator[Any]:
        with stage(src, size) as staged:
            assert staged is not None and staged.ready is not None
            staged.ready(size)  # the copy is whole...
            with open(src, "r+b") as f:  # ...and then the working file changes
                f.write(b"edited in place")
            yield staged

    monkeypatch.setattr(ws.cache, "stage", stage_then_edit)
    ws.add(path)
    entry = Manifest.read(project / "big.bin.ars").files[0]
    assert entry.digest == hashing.chunk_table_digest(chunk_bytes(before, SMALL))
    assert ws.cache.read_blob(entry.digest) == before
    assert ws.status()[0].modified == ["big.bin"]  # the edit is a change still to add


def test_a_file_that_shrinks_while_it_is_added_is_refused_and_leaves_nothing(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = make_workspace(project, link_modes=("copy",))
    path = _big(project, os.urandom(200_000))
    walk = workspace_module.walk_files

    def walk_then_truncate(target: str) -> list[Any]:
        found = walk(target)
        os.truncate(path, 100_000)  # after its size was taken
        return found

    monkeypatch.setattr(workspace_module, "walk_files", walk_then_truncate)
    with pytest.raises(Conflict, match="shrank"):
        ws.add(path)
    assert not (project / "big.bin.ars").exists()
    cache = project / ".arsenale" / "cache"
    assert [p for p in cache.rglob("*") if p.is_file() and p.parent.name != "packs"] == []


def test_a_touched_large_file_is_hashed_in_place_and_copied_only_if_it_changed(
        project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = make_workspace(project, link_modes=("copy",))
    data = os.urandom(200_000)
    path = _big(project, data)
    ws.add(path)
    staged: list[str] = []
    stage = ws.cache.stage

    def counted(src: str, size: int) -> Any:
        staged.append(src)
        return stage(src, size)

    monkeypatch.setattr(ws.cache, "stage", counted)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # touched: same size, same last version
    result = ws.add(path)
    assert (result.hashed, result.new_blobs, result.changed, staged) == (1, 0, False, [])
    other = os.urandom(len(data))  # same size, new bytes: hashed in place first, then copied
    _big(project, other)
    result = ws.add(path)
    assert result.stored_by == {"copy": 1} and staged == []
    grown = other + os.urandom(50_000)  # a new size: copied while it is hashed
    _big(project, grown)
    result = ws.add(path)
    assert result.stored_by == {"copy": 1} and len(staged) == 1
    for entry_data in (data, other, grown):
        digest = hashing.chunk_table_digest(chunk_bytes(entry_data, SMALL))
        assert ws.cache.read_blob(digest) == entry_data
