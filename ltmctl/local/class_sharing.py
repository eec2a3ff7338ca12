"""Class data sharing for the Pub/Sub emulator's JVM: its classes loaded once, mapped by every later start.

The emulator's jar is 40 MB of classes; loading and verifying them is most of its start: 2.1 s of CPU on two
cores where every piece of the stack starts at once (measured). Java 17 can write the classes a run loaded to an
archive when it exits (-XX:ArchiveClassesAtExit) and map that archive at the next start (-XX:SharedArchiveFile):
the emulator then answers after 0.66 s instead of 1.5, with 0.9 s of CPU instead of 2.1.

The first stack a machine starts writes the archive when it stops (about 1.3 s more at that `down`, once). It is
kept per user, keyed by the java binary and the jar (path, size, time), in $XDG_CACHE_HOME/ltmctl (~/.cache/ltmctl):
a new JDK or emulator version writes a new one. Deleting the directory is always safe.

A JVM given a truncated archive dies with SIGBUS before it serves anything, so an archive is only ever put in place
whole: the JVM writes it under a name of its own, and the stop that saw it exit checks it (a JVM that maps it with
-Xshare:on and -XX:+VerifySharedSpaces, which checksums every region) and renames it into place, atomically.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

WRITE_FLAG = "-XX:ArchiveClassesAtExit="
READ_FLAG = "-XX:SharedArchiveFile="
QUIET = "-Xlog:cds*=off"  # writing it warns of every class it cannot keep (old class files in the jar)
STALE_PART_S = 3600.0  # an unfinished archive this old belongs to no running JVM


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ltmctl" / "java-classes"


def archive_for(java: str, jar: Path) -> Path:
    key = hashlib.sha256()
    for path in (Path(java).resolve(), jar.resolve()):
        stat = path.stat()
        key.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return cache_dir() / f"{jar.stem}-{key.hexdigest()[:16]}.jsa"


def flags(java: str, jar: Path) -> list[str]:
    """The JVM flags that map the archive, or that write it at exit when there is none yet."""
    try:
        archive = archive_for(java, jar)
        if archive.is_file():
            return [f"{READ_FLAG}{archive}", QUIET]
        archive.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        for part in archive.parent.glob(f"{archive.stem}.*.part"):
            if time.time() - part.stat().st_mtime > STALE_PART_S:
                part.unlink(missing_ok=True)
    except OSError:
        return []  # no cache directory (a read-only home): the emulator starts as it would without
    return [f"{WRITE_FLAG}{archive.with_name(f'{archive.stem}.{uuid.uuid4().hex[:12]}.part')}", QUIET]


def keep_written(argv: list[str]) -> bool:
    """After the JVM started with `argv` has exited: put the archive it wrote in place if it is whole. True when
    it did. The unfinished file is removed either way."""
    part = next((Path(a.removeprefix(WRITE_FLAG)) for a in argv if a.startswith(WRITE_FLAG)), None)
    if part is None or not part.is_file():
        return False
    archive = part.with_name(part.name.rsplit(".", 2)[0] + ".jsa")  # NAME.<run>.part -> NAME.jsa
    try:
        if archive.exists() or not _maps_whole(argv[0], _classpath(argv), part):
            return False
        os.replace(part, archive)
        return True
    finally:
        part.unlink(missing_ok=True)


def _classpath(argv: list[str]) -> str:
    return argv[argv.index("-jar") + 1] if "-jar" in argv else ""


def _maps_whole(java: str, classpath: str, archive: Path) -> bool:
    with tempfile.TemporaryDirectory() as scratch:  # where a JVM that crashes on it writes its hs_err file
        try:
            result = subprocess.run(
                [java, f"{READ_FLAG}{archive}", "-Xshare:on", "-XX:+VerifySharedSpaces", "-XX:-CreateCoredumpOnCrash",
                 f"-XX:ErrorFile={scratch}/hs_err.log", "-cp", classpath, "-version"],
                cwd=scratch, capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return False
    return result.returncode == 0
