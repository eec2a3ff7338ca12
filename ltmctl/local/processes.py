"""Start detached processes, recognise them later by pid *and* start time, and stop them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Proc:
    pid: int
    start_ticks: int  # /proc/<pid>/stat field 22: tells our process from a later one that reused the pid


def _stat(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces; everything after its closing paren is space-separated.
    return raw[raw.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def spawn(argv: list[str], log: Path, env: dict[str, str], cwd: Path) -> Proc:
    """Start argv in its own session (its own process group), detached from the terminal, output to log."""
    log.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "ab") as out:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a log an older version left
        # umask: what the child creates (bqemulator's data, the emulator's files) is its owner's only; the logs
        # and data hold every stored e-mail address.
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=cwd, start_new_session=True, umask=0o077)
    return Proc(proc.pid, start_ticks(proc.pid) or 0)


def alive(proc: Proc) -> bool:
    fields = _stat(proc.pid)
    return fields is not None and fields[0] != "Z" and int(fields[19]) == proc.start_ticks


def _group_members(proc: Proc) -> list[int]:
    """Live processes in the group that proc led, started no earlier than it (children outlive a killed leader)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields and fields[0] != "Z" and int(fields[2]) == proc.pid and int(fields[19]) >= proc.start_ticks:
            members.append(int(entry.name))
    return members


def stop(proc: Proc, grace_s: float = 5.0) -> bool:
    """SIGTERM the process group, then SIGKILL what is left after grace_s. False if nothing was running."""
    ticks = start_ticks(proc.pid)
    if ticks is not None and ticks != proc.start_ticks:
        return False  # the pid (and so the group id) now belongs to a process we did not start
    if not _group_members(proc):
        return False
    for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 2.0)):
        for pid in _group_members(proc):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            _reap(proc.pid)
            if not _group_members(proc):
                return True
            time.sleep(0.05)
    return True


def _reap(pid: int) -> None:
    # A child of this very process (tests, `demo`) stays a zombie until waited for.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers themselves do: connections of a stopped server in TIME_WAIT must not count as "in use".
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """Ports the kernel hands out as free right now, distinct from each other."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()
