"""The Pub/Sub emulator's class archive, on the real emulator and JVM: written by a first run as it stops, kept only
when whole, mapped by the next start."""

from __future__ import annotations

import os
import shutil
import time
import urllib.request
from pathlib import Path

import pytest

from ltmctl.local import class_sharing, pieces, processes


def run_until_it_serves(argv: list[str], log: Path) -> processes.Proc:
    proc = processes.spawn(argv, log, dict(os.environ), log.parent)
    port = next(a.removeprefix("--port=") for a in argv if a.startswith("--port="))
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1).read()
            return proc
        except OSError:
            assert processes.alive(proc), log.read_text()[-2000:]
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)


@pytest.fixture(scope="module")
def archive(tmp_path_factory, request) -> Path:
    """The archive a first run wrote, kept by the stop that saw it exit."""
    home = tmp_path_factory.mktemp("cache")
    patch = pytest.MonkeyPatch()
    patch.setenv("XDG_CACHE_HOME", str(home))
    request.addfinalizer(patch.undo)
    argv = pieces.pubsub_command(processes.free_ports(1)[0], home / "data")
    written = next((a for a in argv if a.startswith(class_sharing.WRITE_FLAG)), None)
    assert written is not None, argv  # no archive yet: this run writes one as it exits
    proc = run_until_it_serves(argv, home / "first.log")
    assert processes.stop(proc)
    assert class_sharing.keep_written(argv) is True
    kept = list((home / "ltmctl" / "java-classes").iterdir())
    assert [p.suffix for p in kept] == [".jsa"]  # the archive, and no unfinished file left beside it
    return kept[0]


def test_the_next_start_maps_the_archive_the_first_run_wrote(archive: Path, tmp_path: Path) -> None:
    argv = pieces.pubsub_command(processes.free_ports(1)[0], tmp_path / "data")
    assert f"{class_sharing.READ_FLAG}{archive}" in argv
    assert not any(a.startswith(class_sharing.WRITE_FLAG) for a in argv)
    proc = run_until_it_serves(argv, tmp_path / "second.log")
    try:
        assert str(archive) in Path(f"/proc/{proc.pid}/maps").read_text()  # its classes come from the archive
    finally:
        processes.stop(proc)


def test_an_archive_cut_short_is_never_put_in_place(archive: Path, tmp_path: Path, monkeypatch) -> None:
    # A JVM that maps a truncated archive dies of SIGBUS before it serves: the check must catch it.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    argv = pieces.pubsub_command(processes.free_ports(1)[0], tmp_path / "data")
    part = Path(next(a for a in argv if a.startswith(class_sharing.WRITE_FLAG)).removeprefix(class_sharing.WRITE_FLAG))
    part.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])

    assert class_sharing.keep_written(argv) is False
    assert list(part.parent.iterdir()) == []  # nothing put in place, and the unfinished file removed
    assert class_sharing.WRITE_FLAG in " ".join(pieces.pubsub_command(1, tmp_path))  # the next run writes again


def test_an_archive_in_place_is_not_replaced(archive: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    argv = pieces.pubsub_command(processes.free_ports(1)[0], tmp_path / "data")
    part = Path(next(a for a in argv if a.startswith(class_sharing.WRITE_FLAG)).removeprefix(class_sharing.WRITE_FLAG))
    in_place = part.with_name(part.name.rsplit(".", 2)[0] + ".jsa")
    shutil.copyfile(archive, in_place)  # another stack's run put one there meanwhile
    shutil.copyfile(archive, part)
    inode = in_place.stat().st_ino  # a rename over it would change it

    assert class_sharing.keep_written(argv) is False
    assert in_place.stat().st_ino == inode and not part.exists()


def test_no_cache_directory_means_no_archive_not_a_failed_start(tmp_path: Path, monkeypatch) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("a file where the cache directory would go")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    argv = pieces.pubsub_command(1, tmp_path)
    assert not any(a.startswith(("-XX:SharedArchiveFile", "-XX:ArchiveClassesAtExit")) for a in argv)
    assert "-jar" in argv
