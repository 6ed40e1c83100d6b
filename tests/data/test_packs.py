"""Small blobs in pack files: round trips, corruption, gc compaction, push/pull, concurrency, old caches."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import stat
import time
from pathlib import Path

import pytest

from arsenale.data import hashing
from arsenale.data.cache import DataCache
from arsenale.data.manifest import Manifest
from arsenale.data.packs import ENTRY, MAGIC, PACK_MIN_BLOBS, PackStore, read_file, scan_pack
from arsenale.data.workspace import DataWorkspace
from arsenale.errors import Conflict, IntegrityError
from tests.data.conftest import make_workspace, write_tree


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def key(i: int) -> str:
    return f"d{i % 3}/f{i:03}.bin"


def many_files(n: int = 60, tag: str = "") -> dict[str, bytes]:
    """Small files of assorted sizes (all under the test chunking threshold), one empty, two identical."""
    files = {key(i): f"{tag}{i}:".encode() + os.urandom(i * 97) for i in range(n)}
    files["empty.txt"] = b""
    files["twin-a.txt"] = files["twin-b.txt"] = b"same bytes\n"
    return files


def cache_dir(project: Path) -> Path:
    return project / ".arsenale" / "cache"


def loose_files(project: Path) -> list[Path]:
    return [p for p in (cache_dir(project) / "blobs").glob("*/*") if p.is_file()]


def pack_files(project: Path) -> list[Path]:
    return sorted((cache_dir(project) / "packs").glob("*.pack"))


def test_add_packs_small_files_and_checkout_restores_them(ws: DataWorkspace, project: Path) -> None:
    files = many_files()
    write_tree(project / "data", files)
    result = ws.add(project / "data")
    unique = len(set(files.values()))
    assert result.stored_by == {"pack": unique} and result.new_blobs == unique
    assert loose_files(project) == [] and len(pack_files(project)) == 1  # one file for all of them
    assert stat.S_IMODE(pack_files(project)[0].stat().st_mode) == 0o444
    assert len(ws.cache.packs.entries()) == unique
    assert ws.add(project / "data").new_blobs == 0

    shutil.rmtree(project / "data")
    [report] = ws.checkout()
    assert sorted(report.restored) == sorted(files) and report.refetched == []
    assert snapshot(project / "data") == files
    assert os.access(project / "data" / key(1), os.W_OK)  # an own copy, not a link into the pack
    assert all(r.clean for r in ws.status())
    assert list(cache_dir(project).rglob(".tmp-*")) == []


def test_packed_blob_reads(ws: DataWorkspace, project: Path) -> None:
    files = many_files(30)
    write_tree(project / "data", files)
    ws.add(project / "data")
    cache = ws.cache
    digest = hashing.hash_bytes(files[key(10)])
    assert cache.has(digest) and not cache.path(digest).exists()
    assert cache.read_blob(digest) == files[key(10)]
    assert cache.read_range(digest, 3, 10) == files[key(10)][3:13]
    assert cache.read_range(digest, len(files[key(10)]) - 2, 100) == files[key(10)][-2:]
    assert cache.verify(digest, len(files[key(10)]))
    assert not cache.verify(digest, len(files[key(10)]) + 1)
    with cache.as_file(digest) as path:
        assert path.read_bytes() == files[key(10)]
    assert not path.exists()
    wanted = {hashing.hash_bytes(b) for b in files.values()}
    absent = hashing.hash_bytes(b"never added")
    assert cache.has_many(wanted | {absent}) == wanted
    assert cache.remove(digest) == len(files[key(10)]) and not cache.has(digest)


def test_corrupted_pack_entry_is_refetched_at_checkout(ws: DataWorkspace, project: Path) -> None:
    files = many_files(40)
    write_tree(project / "data", files)
    ws.add(project / "data")
    ws.push()
    shutil.rmtree(project / "data")
    digest = hashing.hash_bytes(files[key(20)])
    loc = ws.cache.packs.locate(digest)
    assert loc is not None
    pack = cache_dir(project) / "packs" / loc.pack
    os.chmod(pack, 0o644)
    with open(pack, "r+b") as f:
        f.seek(loc.offset + 5)
        byte = f.read(1)
        f.seek(loc.offset + 5)
        f.write(bytes([byte[0] ^ 0xFF]))
    assert not ws.cache.verify(digest, len(files[key(20)]))
    [result] = ws.checkout()
    assert result.refetched == [digest]
    assert snapshot(project / "data") == files
    assert ws.cache.verify(digest, len(files[key(20)]))  # now a loose, intact copy


def test_corrupted_pack_entry_without_remote_is_an_error(project: Path) -> None:
    ws = make_workspace(project)
    files = many_files(20)
    write_tree(project / "data", files)
    ws.add(project / "data")
    shutil.rmtree(project / "data")
    [pack] = pack_files(project)
    os.chmod(pack, 0o644)
    data = bytearray(pack.read_bytes())
    data[-1] ^= 0xFF  # the last entry's last byte
    pack.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="corrupt"):
        ws.checkout()
    assert not (project / "data").exists()


def test_a_missing_pack_is_refetched(ws: DataWorkspace, project: Path) -> None:
    files = many_files(20)
    write_tree(project / "data", files)
    ws.add(project / "data")
    ws.push()
    shutil.rmtree(project / "data")
    for pack in pack_files(project):
        pack.unlink()
    [result] = ws.checkout()
    assert len(result.refetched) == len(set(files.values()))
    assert snapshot(project / "data") == files


def test_gc_deletes_a_dead_pack_and_rewrites_a_half_dead_one(ws: DataWorkspace, project: Path) -> None:
    gone = many_files(30, tag="gone")
    write_tree(project / "gone", gone)
    ws.add(project / "gone")
    thin = {f"f{i:02}.bin": f"thin{i}".encode() * 200 for i in range(40)}
    write_tree(project / "thin", thin)
    ws.add(project / "thin")
    kept = {f"f{i:02}.bin": f"kept{i}".encode() * 200 for i in range(40)}
    write_tree(project / "kept", kept)
    ws.add(project / "kept")
    packs = {p.name for p in pack_files(project)}
    assert len(packs) == 3
    locate = ws.cache.packs.locate
    pack_of = {name: locate(hashing.hash_bytes(next(iter(files.values())))).pack  # type: ignore[union-attr]
               for name, files in (("gone", gone), ("thin", thin), ("kept", kept))}

    (project / "gone.ars").unlink()
    for i in range(30):  # 30 of 40 dead: rewritten
        (project / "thin" / f"f{i:02}.bin").unlink()
    ws.add(project / "thin")
    for i in range(10):  # 10 of 40 dead: kept as it is
        (project / "kept" / f"f{i:02}.bin").unlink()
    ws.add(project / "kept")

    sizes = {p.name: p.stat().st_size for p in pack_files(project)}
    dry = ws.gc(dry_run=True)
    assert dry.removed == len(set(gone.values())) + 30 + 10
    assert {p.name for p in pack_files(project)} == packs  # nothing touched
    result = ws.gc()
    assert sorted(result.removed_digests) == sorted(dry.removed_digests)
    assert result.kept == 40
    after = {p.name for p in pack_files(project)}
    assert pack_of["gone"] not in after and pack_of["thin"] not in after and pack_of["kept"] in after
    assert len(after) == 2  # the kept pack and the rewrite of the thin one
    new = (after - {pack_of["kept"]}).pop()
    assert sizes[pack_of["thin"]] - (cache_dir(project) / "packs" / new).stat().st_size > 0
    assert result.bytes_freed == dry.bytes_freed > sizes[pack_of["gone"]]
    assert len(ws.cache.packs.entries()) == 40

    for name in ("thin", "kept"):  # the survivors still read back, from the new pack and the old one
        shutil.rmtree(project / name)
    ws.checkout()
    assert snapshot(project / "thin") == {k: v for k, v in thin.items() if int(k[1:3]) >= 30}
    assert snapshot(project / "kept") == {k: v for k, v in kept.items() if int(k[1:3]) >= 10}
    assert all(r.clean for r in ws.status())
    again = ws.gc()  # the kept pack is 1/4 dead: still not worth rewriting
    assert again.removed == 0 and {p.name for p in pack_files(project)} == after


def test_gc_removes_orphan_packs_only_when_stale(ws: DataWorkspace, project: Path) -> None:
    write_tree(project / "data", many_files(20))
    ws.add(project / "data")
    packs = cache_dir(project) / "packs"
    orphan = packs / ("0" * 32 + ".pack")  # renamed into place but never indexed: a writer killed between
    orphan.write_bytes(MAGIC + ENTRY.pack(bytes(32), 3) + b"abc")
    half = packs / ".tmp-deadbeef"
    half.write_bytes(MAGIC + b"torn")
    ws.gc()
    assert orphan.exists() and half.exists()  # maybe a live writer about to index it
    old = time.time() - 2 * 3600
    os.utime(orphan, (old, old))
    os.utime(half, (old, old))
    ws.gc()
    assert not orphan.exists() and not half.exists()
    assert len(pack_files(project)) == 1


def test_push_uploads_packed_blobs_as_objects_and_pull_packs_them(ws: DataWorkspace, project: Path,
                                                                  tmp_path: Path) -> None:
    files = many_files(50) | {"large.bin": os.urandom(100_000)}  # plus one chunked file, loose
    write_tree(project / "data", files)
    ws.add(project / "data")
    pushed = ws.push()
    assert pushed.transferred == pushed.objects and pushed.bytes >= sum(len(b) for b in set(files.values()))
    remote = tmp_path / "remote" / "blobs"
    for name, data in files.items():
        if name != "large.bin":
            digest = hashing.hash_bytes(data)
            assert (remote / digest[:2] / digest[2:]).read_bytes() == data  # one object per blob, as before
    assert ws.push().transferred == 0

    clone = tmp_path / "clone"
    clone.mkdir()
    shutil.copy(project / "data.ars", clone / "data.ars")
    other = make_workspace(clone, str(tmp_path / "remote"))
    result = other.pull()
    assert result.transferred == len(set(files.values()))
    assert snapshot(clone / "data") == files
    assert len(other.cache.packs.entries()) == len(set(files.values())) - 1  # the small ones, packed
    large = Manifest.read(clone / "data.ars").by_path()["large.bin"].digest
    assert [p.name for p in loose_files(clone)] == [large[2:]]
    assert all(r.clean for r in other.status())
    other.close()


def _add_in_child(root: str, name: str) -> None:
    ws = make_workspace(Path(root))
    ws.add(Path(root) / name)
    ws.close()


def test_concurrent_adds_of_one_folder_leave_a_consistent_cache(project: Path) -> None:
    files = many_files(200)
    write_tree(project / "data", files)
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_add_in_child, args=(str(project), "data")) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    ws = make_workspace(project)
    manifest = Manifest.read(project / "data.ars")
    assert len(ws.cache.packs.entries()) == len(set(files.values()))
    assert all(ws.cache.verify(e.digest, e.size) for e in manifest.files)
    named = {ws.cache.packs.locate(e.digest).pack for e in manifest.files}  # type: ignore[union-attr]
    assert named == {p.name for p in pack_files(project)}  # a pack all of whose rows lost the race is gone
    assert list(cache_dir(project).rglob(".tmp-*")) == []
    assert all(r.clean for r in ws.status())
    shutil.rmtree(project / "data")
    ws.checkout()
    assert snapshot(project / "data") == files
    ws.close()


def test_a_cache_written_before_packs_still_reads(project: Path, tmp_path: Path) -> None:
    files = many_files(30)
    write_tree(project / "data", files)
    blobs = cache_dir(project) / "blobs"
    entries = []
    for rel, data in files.items():  # the old layout, by hand: one read-only file per blob, no packs/
        digest = hashing.hash_bytes(data)
        blob = blobs / digest[:2] / digest[2:]
        blob.parent.mkdir(parents=True, exist_ok=True)
        if not blob.exists():
            blob.write_bytes(data)
            os.chmod(blob, 0o444)
        entries.append((rel, len(data), digest))
    from arsenale.data.manifest import FileEntry

    Manifest.build("data", "dir", (FileEntry(*e) for e in entries)).write(project / "data.ars")
    ws = make_workspace(project, str(tmp_path / "remote"))
    assert all(r.clean for r in ws.status())
    shutil.rmtree(project / "data")
    [result] = ws.checkout()
    assert result.refetched == [] and snapshot(project / "data") == files
    assert ws.cache.has_many(e[2] for e in entries) == {e[2] for e in entries}
    assert ws.push().transferred == len(set(files.values()))
    assert ws.add(project / "data").new_blobs == 0  # known loose: nothing packed twice
    assert not (cache_dir(project) / "packs" / "index.db").exists()  # reads never create the index
    assert ws.gc().removed == 0
    (project / "data.ars").unlink()
    assert ws.gc().removed == len(set(files.values())) and loose_files(project) == []
    ws.close()


def test_few_small_files_stay_loose(ws: DataWorkspace, project: Path) -> None:
    write_tree(project / "data", {f"f{i}.txt": f"{i}\n".encode() for i in range(PACK_MIN_BLOBS - 1)})
    result = ws.add(project / "data")
    assert "pack" not in result.stored_by and len(loose_files(project)) == PACK_MIN_BLOBS - 1
    assert pack_files(project) == []


def test_a_file_that_changes_between_hashing_and_packing_is_refused(tmp_path: Path) -> None:
    cache = DataCache(tmp_path / "cache")
    items = []
    for i in range(PACK_MIN_BLOBS):
        path = tmp_path / f"f{i}"
        path.write_bytes(b"x" * i)
        items.append((str(path), hashing.hash_bytes(b"x" * i), i))
    (tmp_path / "f3").write_bytes(b"grown since it was hashed")
    with pytest.raises(Conflict, match="changed while"):
        cache.add_files(items)
    assert cache.packs.entries() == [] and list((tmp_path / "cache" / "packs").iterdir()) == []
    cache.close()


def test_the_index_can_be_rebuilt_from_the_packs(ws: DataWorkspace, project: Path) -> None:
    files = many_files(20)
    write_tree(project / "data", files)
    ws.add(project / "data")
    [pack] = pack_files(project)
    assert sorted(d for d, _, _ in scan_pack(pack)) == sorted({hashing.hash_bytes(b) for b in files.values()})
    ws.cache.close()
    for name in ("index.db", "index.db-wal", "index.db-shm"):
        (cache_dir(project) / "packs" / name).unlink(missing_ok=True)
    store = PackStore(cache_dir(project) / "packs")
    assert store.entries() == [] and store.reindex() == len(set(files.values()))
    store.close()
    shutil.rmtree(project / "data")
    ws.checkout()
    assert snapshot(project / "data") == files


def test_concurrent_packs_of_the_same_blobs_keep_one_copy(tmp_path: Path) -> None:
    blobs = [(hashing.hash_bytes(b), b) for b in (os.urandom(100) for _ in range(20))]
    a, b = PackStore(tmp_path / "packs"), PackStore(tmp_path / "packs")
    assert a.add(blobs) == 20
    assert b.add(blobs[:10]) == 0  # all ignored: its pack is deleted at once
    assert b.add(blobs[5:] + [(hashing.hash_bytes(b"new"), b"new")]) == 1
    assert len(list((tmp_path / "packs").glob("*.pack"))) == 2
    assert all(a.read(d) == data for d, data in blobs)
    a.close()
    b.close()


def test_a_reader_follows_a_blob_moved_by_gc(tmp_path: Path) -> None:
    store = PackStore(tmp_path / "packs")
    blobs = [(hashing.hash_bytes(b), b) for b in (os.urandom(100) for _ in range(20))]
    store.add(blobs)
    old = store.locate(blobs[0][0])
    assert old is not None
    store.compact([d for d, _ in blobs[1:]], stale_before_ns=0)  # 19 of 20 dead: rewritten
    new = store.locate(blobs[0][0])
    assert new is not None and new.pack != old.pack and not (tmp_path / "packs" / old.pack).exists()
    calls = iter([old, new])
    real = store.locate
    store.locate = lambda d: next(calls, None) or real(d)  # type: ignore[method-assign]
    assert store.read(blobs[0][0]) == blobs[0][1]  # looked up again after finding the old pack gone
    store.close()


def test_read_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"")
    assert read_file(path, 0) == b""
    path.write_bytes(b"abc")
    assert read_file(path, 3) == b"abc" and read_file(path, 2) == b"abc" and read_file(path, 5) == b"abc"


def test_tabular_diff_reads_packed_tables(ws: DataWorkspace, project: Path) -> None:
    pytest.importorskip("pyarrow")
    files = {f"t{i:02}.csv": f"id,x\n1,{i}\n".encode() for i in range(20)}
    write_tree(project / "data", files)
    ws.add(project / "data")
    (project / "v1.ars").write_bytes((project / "data.ars").read_bytes())
    write_tree(project / "data", {"t03.csv": b"id,x,y\n1,3,4\n2,5,6\n"})
    ws.add(project / "data")
    d = ws.diff(project / "v1.ars", project / "data.ars")
    assert [c.path for c in d.changed] == ["t03.csv"]
    assert d.tables["t03.csv"]["columns"]["added"] == ["y"] and d.tables["t03.csv"]["rows"]["added"] >= 1
    assert list((cache_dir(project) / "tmp").glob("*")) == []  # the temporary copies are gone
