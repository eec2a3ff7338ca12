"""`local up/down/status/env` as functions: start the pieces, apply infra, record state; stop exactly those."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ltmctl.config import Resolved
from ltmctl.errors import BackendError, ConfigError, StackNotRunning, UsageError
from ltmctl.local import class_sharing, client_env, processes
from ltmctl.local.pieces import DeliverySettings, Piece, Recording, pieces
from ltmctl.local.processes import Proc

PORT_NAMES = ("pubsub", "bigquery", "bigquery_grpc", "ingest", "api", "ingest_metrics", "delivery", "recorder")
HEALTH_TIMEOUT_S = 90.0

Report = Callable[[str, str], None]  # (piece, what happened)


@dataclass
class PieceState:
    name: str
    pid: int
    start_ticks: int
    port: int
    log: str
    health_path: str
    # Older state files lack these two; defaults keep them readable so `down` still works.
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # only what the piece adds to the caller's environment

    @property
    def proc(self) -> Proc:
        return Proc(self.pid, self.start_ticks)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class StackState:
    environment: str
    project: str
    ports: dict[str, int]
    pieces: dict[str, PieceState]
    started_at: str

    @property
    def pubsub_host(self) -> str:
        return f"127.0.0.1:{self.ports['pubsub']}"

    @property
    def bigquery_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['bigquery']}"

    @property
    def ingest_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['ingest']}/"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def ingest_metrics_url(self) -> str | None:
        port = self.ports.get("ingest_metrics")  # absent in state files of older versions
        return f"http://127.0.0.1:{port}/metrics" if port else None


def iap_keys(resolved: Resolved) -> tuple[Path, Path]:
    """The local IAP key pair (private key, JWK set), made once and kept, so tokens survive restarts."""
    from api_service import iap_local

    folder = resolved.state_dir / "iap"
    private, jwks = folder / iap_local.PRIVATE_KEY_FILE, folder / iap_local.JWKS_FILE
    if private.is_file() and jwks.is_file():
        return private, jwks
    return iap_local.generate_keypair(folder)


def mint_token(resolved: Resolved, email: str, ttl_s: int) -> str:
    """A signed assertion the local API accepts, like the one IAP adds in front of Cloud Run."""
    from api_service import iap_local
    from ltmctl.local.pieces import local_audience

    private, _ = iap_keys(resolved)
    return iap_local.mint_from_file(private, local_audience(resolved.env.project), email, ttl_s)


def state_file(resolved: Resolved) -> Path:
    return resolved.state_dir / "state.json"


def read_state(resolved: Resolved) -> StackState | None:
    path = state_file(resolved)
    hint = (f"Stop any leftover processes of the stack by hand (see `ps -ef`), then delete {path} and run "
            "`ltmctl local up`.")
    try:
        raw = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise BackendError(f"{path} is a directory, not the stack's state file.", hint=hint) from None
    except OSError as exc:
        raise BackendError(f"Cannot read {path}: {exc.strerror or exc}.", hint=hint) from None
    except ValueError as exc:  # not UTF-8, not JSON
        raise BackendError(f"{path} is damaged: {exc}.", hint=hint) from None
    try:
        if not isinstance(raw, dict) or not isinstance(raw.get("pieces"), dict):
            raise TypeError("expected an object whose `pieces` is an object of pieces")
        raw["pieces"] = {name: PieceState(**p) for name, p in raw["pieces"].items()}
        state = StackState(**raw)
        if not isinstance(state.ports, dict):
            raise TypeError("`ports` must be an object")
        return state
    except (ValueError, TypeError, KeyError) as exc:
        raise BackendError(f"{path} is damaged: {exc}.", hint=hint) from None


def _write_state(resolved: Resolved, state: StackState) -> None:
    path = state_file(resolved)
    private_dir(path.parent)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        os.fchmod(out.fileno(), 0o600)  # O_CREAT's mode does not apply to a leftover file
        out.write(json.dumps(asdict(state), indent=2))
    os.replace(tmp, path)


def private_dir(path: Path) -> Path:
    """A directory only its owner can enter: the stack's files hold every stored e-mail address."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)
    return path


def _tighten(folder: Path) -> None:
    """Directories 0700 and files 0600 under folder, also those an older version (or a child) left open."""
    if not folder.is_dir():
        return
    folder.chmod(0o700)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            (Path(root) / name).chmod(0o700)
        for name in files:
            path = Path(root) / name
            if not path.is_symlink():
                path.chmod(0o600)


def choose_ports(resolved: Resolved, port_base: int | None) -> dict[str, int]:
    """Configured ports; --port-base N gives N, N+1, ...; --port-base 0 asks the kernel for free ones."""
    if port_base is None:
        return resolved.env.ports.model_dump()
    if port_base == 0:
        return dict(zip(PORT_NAMES, processes.free_ports(len(PORT_NAMES)), strict=True))
    if not 1024 <= port_base <= 65535 - len(PORT_NAMES):
        raise UsageError(f"--port-base {port_base} is out of range.", hint="Use a value from 1024 to 65530, or 0.")
    return {name: port_base + i for i, name in enumerate(PORT_NAMES)}


def _http_get(url: str, timeout: float = 1.0) -> tuple[int, bytes] | None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback only
            return response.status, response.read(65536)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(65536)
    except (OSError, ValueError):
        return None


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


# How each piece proves it is that piece and not another one answering on its port (a port given twice, or
# reused by something else): each answers a request in a way none of the others does.
IDENTITY: dict[str, tuple[str, Callable[[int, bytes], bool]]] = {
    # The emulator answers its root with a bare "Ok".
    "pubsub": ("/", lambda status, body: status == 200 and body.strip() == b"Ok"),
    # bqemulator's health answer carries its version.
    "bigquery": ("/healthz", lambda status, body: status == 200 and isinstance(_json(body), dict)
                 and _json(body).get("status") == "ok" and "version" in _json(body)),
    # functions-framework serving a CloudEvent function refuses GET (it takes POSTed events only).
    "ingest": ("/", lambda status, body: status == 405),
    # The API's OpenAPI document names it.
    "api": ("/openapi.json", lambda status, body: status == 200 and isinstance(_json(body), dict)
            and _json(body).get("info", {}).get("title") == "LTM events API"),
    # The delivery process's figures name it.
    "delivery": ("/", lambda status, body: status == 200 and isinstance(_json(body), dict)
                 and _json(body).get("service") == "ltm-delivery"),
    "recorder": ("/", lambda status, body: status == 200 and isinstance(_json(body), dict)
                 and _json(body).get("service") == "ltm-metrics-recorder"),
}


def healthy(piece: PieceState) -> bool:
    """Running, answering, and answering as this piece."""
    if not processes.alive(piece.proc):
        return False
    path, looks_right = IDENTITY.get(piece.name, (piece.health_path, lambda status, body: status < 500))
    answer = _http_get(piece.url + path)
    return answer is not None and looks_right(*answer)


def _log_tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


PUBSUB_LOSS = ("The Pub/Sub emulator keeps messages in memory only, so every message it had accepted and not yet "
               "delivered, and every dead letter it held, went with it.")


def _problem(piece: PieceState) -> str:
    if processes.alive(piece.proc):
        return f"{piece.name} (pid {piece.pid}, port {piece.port}) is running but does not answer as itself"
    return f"{piece.name} (port {piece.port}) is not running"


def partly_down(resolved: Resolved, dead: list[PieceState]) -> BackendError:
    """The error for a stack some of whose pieces died: which ones, what was lost, what to do."""
    names = ", ".join(p.name for p in dead)
    message = f"The local stack in {resolved.root} is partly down: " + "; ".join(_problem(p) for p in dead) + "."
    if any(p.name == "pubsub" for p in dead):
        message += " " + PUBSUB_LOSS
        hint = (f"Run `ltmctl local up`: it restarts {names} on the same ports and re-applies infra. Messages "
                "published before the emulator died and not yet stored must be published again.")
    else:
        hint = (f"Run `ltmctl local up`: it restarts only {names}, on the same ports, and leaves the Pub/Sub "
                "emulator and the messages it holds alone.")
    return BackendError(message, hint=hint)


def status(resolved: Resolved) -> list[dict[str, Any]]:
    state = read_state(resolved)
    if state is None:
        raise StackNotRunning(str(resolved.root))
    rows = [
        {"piece": p.name, "pid": p.pid, "port": p.port, "running": processes.alive(p.proc),
         "healthy": healthy(p), "url": p.url, "log": p.log}
        for p in state.pieces.values()
    ]
    figures = delivery_figures(state)
    recording = _recorder_figures(state)
    for row in rows:
        env = state.pieces[row["piece"]].env
        if row["piece"] == "ingest" and "THREADS" in env:
            row.update(instances=int(env.get("WORKERS", "1")), threads=int(env["THREADS"]))
        if row["piece"] == "recorder" and recording is not None:
            row.update(snapshots=recording["recorded"], every_s=recording["every_s"],
                       recorder_error=recording["last_error"])
        if row["piece"] == "delivery" and figures is not None:
            # backlog: pulled and not yet sent, plus nacked and due back; "more" when the emulator may hold more
            row.update(in_flight=figures["in_flight"], backlog=figures["waiting"] + figures["retrying"],
                       backlog_more=bool(figures["more"]), retrying=figures["retrying"],
                       concurrency=figures["concurrency"], acked=figures["acked"], nacked=figures["nacked"])
    return rows


def _recorder_figures(state: StackState) -> dict[str, Any] | None:
    piece = state.pieces.get("recorder")
    if piece is None or not processes.alive(piece.proc):
        return None
    answer = _http_get(piece.url + "/", timeout=2.0)
    body = _json(answer[1]) if answer is not None and answer[0] == 200 else None
    return body if isinstance(body, dict) and body.get("service") == "ltm-metrics-recorder" else None


def activity(row: dict[str, Any]) -> str:
    """One line of what a piece is doing, for `local status`'s table (the delivery process and the recorder)."""
    if "snapshots" in row:
        failing = f"; last read failed: {row['recorder_error']}" if row["recorder_error"] else ""
        return f"{row['snapshots']:,} snapshots this run, every {row['every_s']:g}s{failing}"
    if "instances" in row:
        return f"{row['instances']} instance{'s' if row['instances'] != 1 else ''} × {row['threads']} requests at once"
    if "in_flight" not in row:
        return ""
    backlog = f"{'≥ ' if row['backlog_more'] else ''}{row['backlog']:,}"
    retrying = f" ({row['retrying']:,} retrying)" if row["retrying"] else ""
    return f"{row['in_flight']}/{row['concurrency']} in flight, backlog {backlog}{retrying}"


def status_problem(resolved: Resolved, rows: list[dict[str, Any]]) -> BackendError | None:
    """What `status` says under its table when a piece is down (None when all are healthy)."""
    state = read_state(resolved)
    bad = {row["piece"] for row in rows if not row["healthy"]}
    if state is None or not bad:
        return None
    return partly_down(resolved, [p for p in state.pieces.values() if p.name in bad])


def running_state(resolved: Resolved) -> StackState:
    """The state of a stack whose every piece is running, for commands that use it; else an error that says
    which piece is down (or StackNotRunning)."""
    state = read_state(resolved)
    if state is None:
        raise StackNotRunning(str(resolved.root))
    dead = [p for p in state.pieces.values() if not processes.alive(p.proc)]
    if len(dead) == len(state.pieces):
        raise StackNotRunning(str(resolved.root))
    if dead:
        raise partly_down(resolved, dead)
    return state


def env_lines(resolved: Resolved) -> list[str]:
    """`export` lines for a shell, and the client files they name (ltmctl.local.client_env)."""
    return client_env.env_lines(resolved, running_state(resolved))


DRAIN_S = 120.0  # about 5,000 waiting messages at the local ingest's pace on two cores


# `down` stops the pieces stage by stage, each stage's together: a piece stops only after those that call it (the
# delivery posts to the function; the recorder reads the services' counters; the services write to BigQuery and
# Pub/Sub), so no piece in use vanishes under a request. One at a time, the stop took 2.5 s.
STOP_STAGES = (("delivery", "recorder"), ("api", "ingest"), ("bigquery", "pubsub"))


def stop_stages(names: list[str]) -> list[list[str]]:
    """`names` in the stages they stop in; a piece of no stage stops first (nothing here calls it)."""
    staged = {name for stage in STOP_STAGES for name in stage}
    stages = [[n for n in names if n not in staged], *([n for n in stage if n in names] for stage in STOP_STAGES)]
    return [stage for stage in stages if stage]


def _stop(piece: PieceState) -> bool:
    stopped = processes.stop(piece.proc)
    class_sharing.keep_written(piece.argv)  # what a JVM wrote as it exited: its classes, for the next start
    return stopped


def stop_pieces(pieces: dict[str, PieceState], report: Report) -> list[tuple[str, bool]]:
    """Stop the pieces stage by stage; (name, was running) for each."""
    stopped: list[tuple[str, bool]] = []
    for stage in stop_stages(list(pieces)):
        together = [pieces[name] for name in stage]
        with ThreadPoolExecutor(len(together)) as pool:  # each stop waits for its piece to exit: wait together
            for piece, was_running in zip(together, pool.map(_stop, together), strict=True):
                stopped.append((piece.name, was_running))
                report(piece.name, "stopped" if was_running else "was not running")
    return stopped


@dataclass
class DownResult:
    stopped: list[tuple[str, bool]] = field(default_factory=list)  # (piece, was running)
    lost: int = 0  # messages waiting in the ingest subscription that went with the emulator (--force)
    lost_more: bool = False  # counting stopped at its bound: at least `lost`
    dead_letters: int = 0  # dead letters that went with the emulator


def down(resolved: Resolved, report: Report | None = None, *, force: bool = False,
         drain_s: float = DRAIN_S) -> DownResult:
    """Stop the pieces recorded in the state file. Safe on a stale file.

    The Pub/Sub emulator holds its messages in memory only: while it holds undelivered messages, `down` waits
    (up to drain_s) for the ingest function to store them, and refuses if some remain, unless `force`."""
    report = report or (lambda piece, what: None)
    state = read_state(resolved)
    result = DownResult()
    if state is None:
        client_env.remove_client_files(resolved)
        return result
    pubsub = state.pieces.get("pubsub")
    if pubsub is not None and processes.alive(pubsub.proc):
        try:
            waiting, more = _drain(resolved, state, 0.0 if force else drain_s, report)
            if waiting and not force:
                at_least = "at least " if more else ""
                raise BackendError(
                    f"{at_least}{waiting:,} message(s) accepted by the Pub/Sub emulator are not yet stored; "
                    f"stopping it now would lose them (it keeps messages in memory only).",
                    hint=_down_hint(state, drain_s))
            result.lost, result.lost_more = waiting, more
            result.dead_letters, _ = _count(resolved, state, resolved.pipeline.dead_letter_subscription)
        except BackendError:
            if not force:
                raise
            report("warning", "could not count the messages the Pub/Sub emulator holds; they are lost")
    result.stopped = stop_pieces(state.pieces, report)
    state_file(resolved).unlink(missing_ok=True)
    client_env.remove_client_files(resolved)  # a shell still pointing at them reaches nothing
    return result


def _down_hint(state: StackState, drain_s: float) -> str:
    stuck = [name for name in ("delivery", "ingest", "bigquery")
             if name not in state.pieces or not healthy(state.pieces[name])]
    if stuck:
        return (f"{' and '.join(stuck)} is down, so nothing can store them: run `ltmctl local up` (it restarts "
                "only what died and keeps the emulator's messages), then `ltmctl local down` again. "
                "`ltmctl local down --force` stops anyway and loses them.")
    return (f"They were still arriving after {drain_s:.0f}s: wait and run `ltmctl local down` again, or give it "
            "longer with `--drain-timeout SECONDS`. `ltmctl local down --force` stops anyway and loses them.")


def _count(resolved: Resolved, state: StackState, subscription: str) -> tuple[int, bool]:
    seen, bounded = _waiting_ids(resolved, state, subscription)
    return len(seen), bounded


def _waiting_ids(resolved: Resolved, state: StackState, subscription: str) -> tuple[set[str], bool]:
    from ltmctl import clients
    from ltmctl.local import backlog

    c = clients.for_emulators(state.project, state.pubsub_host, state.bigquery_endpoint)
    try:
        return backlog.waiting_ids(c.subscriber, c.subscriber.subscription_path(state.project, subscription))
    finally:
        c.close()


def delivery_figures(state: StackState, path: str = "/") -> dict[str, Any] | None:
    """What the running delivery process says of itself (ltmctl/local/delivery.py), or None."""
    piece = state.pieces.get("delivery")
    if piece is None or not processes.alive(piece.proc):
        return None
    answer = _http_get(piece.url + path, timeout=2.0)
    body = _json(answer[1]) if answer is not None and answer[0] == 200 else None
    return body if isinstance(body, dict) and body.get("service") == "ltm-delivery" else None


def _held(state: StackState) -> tuple[int, bool] | None:
    """(messages the delivery process holds: waiting to be sent, in flight, or nacked and due back; whether the
    emulator may hold more than that), or None when there is no delivery process to ask."""
    figures = delivery_figures(state)
    if figures is None:
        return None
    return figures["waiting"] + figures["in_flight"] + figures["retrying"], bool(figures["more"])


def _drain(resolved: Resolved, state: StackState, drain_s: float, report: Report) -> tuple[int, bool]:
    """Wait until the ingest subscription holds nothing, for at most drain_s; returns what is left.

    The delivery process says what it holds, and whether the emulator may hold more. Counting what the emulator
    holds means pulling (each pull is a delivery attempt towards the dead-letter policy), so it is done only when
    the delivery process holds nothing, or cannot be asked, or nothing can store the messages, or time is up."""
    subscription = resolved.pipeline.subscription
    deadline = time.monotonic() + drain_s
    needed = [state.pieces.get(name) for name in ("delivery", "ingest", "bigquery")]
    announced, reported = False, time.monotonic()
    while True:
        held = _held(state)
        # Running is enough here: a busy ingest may be slow to answer a health check, and is still storing.
        storing = held is not None and all(p is not None and processes.alive(p.proc) for p in needed)
        if not storing or held == (0, False) or time.monotonic() >= deadline:
            seen, more = _waiting_ids(resolved, state, subscription)
            after = delivery_figures(state, "/retrying")  # and what it pulled while the count held the rest
            if after is not None:
                # A nacked message is in the emulator again once its backoff is over: count it once.
                seen |= set(after["retrying_ids"])
                more = more or bool(after["more"])
            left = len(seen) + (after["waiting"] + after["in_flight"] if after else 0)
            if left == 0 and not more:
                if announced:
                    report("drain", "every waiting message is stored")
                return 0, False
            if not storing or time.monotonic() >= deadline:
                if announced or drain_s > 0:
                    report("drain", f"{'at least ' if more else ''}{left:,} message(s) still waiting")
                return left, more
        else:
            left, more = held
        if not announced:
            announced = True
            report("drain", f"{'at least ' if more else ''}{left:,} message(s) not yet stored; waiting up to "
                            f"{drain_s:.0f}s for them to be delivered")
        elif time.monotonic() - reported >= 5:  # progress, not a line a second
            reported = time.monotonic()
            report("drain", f"{'at least ' if more else ''}{left:,} message(s) not yet stored")
        time.sleep(0.5)


def _require_push_mode(resolved: Resolved) -> None:
    """The Pub/Sub emulator has no BigQuery subscriptions: it accepts a bigquery_config on create, but delivers
    nothing to BigQuery (the messages wait to be pulled) and refuses it on update. Running push instead would
    test something other than what the config says, so refuse."""
    if resolved.pipeline.ingest_mode != "bigquery":
        return
    from ltmctl.config import ingest_mode_key, key_line

    key = ingest_mode_key(resolved)
    line = key_line(resolved.path, key)
    raise ConfigError(
        f"{resolved.path}:{line}: {'.'.join(key)}: bigquery is not available on the local stack: the Pub/Sub "
        "emulator has no BigQuery subscriptions (it would keep every message unread).",
        hint="Keep `pipeline.ingest_mode: push` (the default) and set `ingest_mode: bigquery` on the GCP "
             f"environment that wants it (environments.NAME.ingest_mode), not on {resolved.name!r}.")


def up(resolved: Resolved, port_base: int | None = None, report: Report | None = None) -> tuple[StackState, bool]:
    """Start the stack, or restart only the pieces of it that died, on the ports it was started with.
    Returns (state, whether anything was started).

    A healthy Pub/Sub emulator is never restarted: it holds its messages in memory only."""
    _require_push_mode(resolved)
    report = report or (lambda piece, what: None)
    existing = read_state(resolved)
    if existing is not None:
        # --port-base 0 means "any free ports": the ones the stack has are as good as any.
        ports = _complete(existing.ports) if port_base in (None, 0) else choose_ports(resolved, port_base)
        running = [p.name for p in existing.pieces.values() if processes.alive(p.proc)]
        # A piece newer than the stack (the recorder) gets a port of its own; the running ones keep theirs.
        if running and any(ports.get(name) != port for name, port in existing.ports.items()):
            raise UsageError(
                f"The local stack runs on other ports ({_port_list(existing.ports)}); moving it would restart "
                "the Pub/Sub emulator and lose the messages it holds.",
                hint="Run `ltmctl local up` without --port-base to keep its ports, or `ltmctl local down` first "
                     "(it waits for waiting messages to be stored) and then `up --port-base N`.")
        if running:
            existing.ports = ports
            return _repair(resolved, existing, report)
        if "pubsub" in existing.pieces:
            report("warning", "The Pub/Sub emulator of the earlier run had died. " + PUBSUB_LOSS)
        report("stack", "no piece of the earlier run is running; starting afresh"
                        + (" on the same ports" if ports == existing.ports else ""))
        down(resolved, force=True)  # ends leftover children of dead leaders, removes the state file
    else:
        ports = choose_ports(resolved, port_base)
    _check_ports_free(ports.items())

    data_dir = _prepare_dirs(resolved)
    started: dict[str, PieceState] = {}
    try:
        for piece in _wanted(resolved, ports):
            started[piece.name] = _start(piece, data_dir / "logs", resolved.root)
            report(piece.name, f"starting on port {piece.port}")
        _wait_healthy(list(started.values()), report)
        state = StackState(resolved.name, resolved.env.project, ports, started,
                           datetime.now(UTC).isoformat(timespec="seconds"))
        # Written before infra so that `down` can clean up even if applying fails or is interrupted.
        _write_state(resolved, state)
        _apply_infra(resolved, state, report)
    except BaseException:
        for piece in started.values():
            _stop(piece)
        state_file(resolved).unlink(missing_ok=True)
        raise
    return state, True


def _repair(resolved: Resolved, state: StackState, report: Report) -> tuple[StackState, bool]:
    """Restart only the pieces that died (or hang), with today's commands on the recorded ports; then re-apply
    infra, which changes nothing unless the Pub/Sub emulator was restarted."""
    wanted = {piece.name: piece for piece in _wanted(resolved, state.ports)}
    dead = [p for p in state.pieces.values() if not _answers(p, within_s=HUNG_S)]
    hung_pubsub = next((p for p in dead if p.name == "pubsub" and processes.alive(p.proc)), None)
    if hung_pubsub is not None:
        # Restarting it would throw away every message it holds: that is for the user to decide.
        raise BackendError(
            f"The Pub/Sub emulator (pid {hung_pubsub.pid}, port {hung_pubsub.port}) runs but does not answer; "
            f"`up` does not restart it, as that would lose the messages it holds. Last lines of "
            f"{hung_pubsub.log}:\n{_log_tail(hung_pubsub.log)}",
            hint="If it does not recover, `ltmctl local down --force` stops the stack (losing those messages), "
                 "then `ltmctl local up`.")
    missing = [name for name in wanted if name not in state.pieces]
    if not dead and not missing:
        return state, False
    names = [p.name for p in dead] + missing
    if "pubsub" in names:
        report("warning", "The Pub/Sub emulator had died. " + PUBSUB_LOSS)
        kept = ""
    else:
        kept = "; the Pub/Sub emulator and the messages it holds are left alone"
    report("stack", f"restarting what is down: {', '.join(names)}{kept}")
    for piece in dead:
        _stop(piece)  # a hung piece, or the children a killed leader left behind
    _check_ports_free(((name, wanted[name].port) for name in names), wait_s=10.0)
    data_dir = _prepare_dirs(resolved)
    started: dict[str, PieceState] = {}
    try:
        for name in names:
            started[name] = _start(wanted[name], data_dir / "logs", resolved.root)
            report(name, f"starting on port {wanted[name].port}")
        _wait_healthy(list(started.values()), report)
    except BaseException:
        for piece in started.values():
            _stop(piece)
        raise
    state.pieces = {name: started.get(name) or state.pieces[name] for name in wanted}
    _write_state(resolved, state)
    _apply_infra(resolved, state, report)
    return state, True


HUNG_S = 5.0  # a running piece must fail to answer this long before `up` restarts it (it may just be busy)


def _answers(piece: PieceState, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while processes.alive(piece.proc):
        if healthy(piece):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return False


def _complete(ports: dict[str, int]) -> dict[str, int]:
    # State files of older versions lack later ports (ingest_metrics): give those a free one.
    missing = [name for name in PORT_NAMES if name not in ports]
    return {**ports, **dict(zip(missing, processes.free_ports(len(missing)), strict=True))} if missing else ports


def _port_list(ports: dict[str, int]) -> str:
    return ", ".join(f"{name} {port}" for name, port in ports.items())


def _check_ports_free(ports: Any, wait_s: float = 0.0) -> None:
    for name, port in ports:
        # A killed piece's port may stay taken a moment by children that are still exiting.
        deadline = time.monotonic() + wait_s
        while not processes.port_free(port):
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"Port {port} ({name}) is already in use.",
                    hint="Stop what uses it, or pick other ports with `ltmctl local up --port-base N` "
                         "(N, N+1, ... are used) or `--port-base 0` for free ones.")
            time.sleep(0.1)


def _prepare_dirs(resolved: Resolved) -> Path:
    data_dir = private_dir(resolved.state_dir)
    iap_keys(resolved)
    for sub in ("bigquery", "pubsub", "logs"):
        private_dir(data_dir / sub)
    _tighten(data_dir)
    return data_dir


def _wanted(resolved: Resolved, ports: dict[str, int]) -> list[Piece]:
    from ltmctl import pipeline

    _, jwks_file = iap_keys(resolved)
    p = resolved.pipeline
    delivery = DeliverySettings(f"projects/{resolved.env.project}/subscriptions/{p.subscription}",
                                resolved.env.ingest.concurrency, resolved.env.local_settings.ingest_instances,
                                p.ack_deadline_s, p.retry.maximum_backoff_s)
    h = resolved.env.local_settings.metrics_history
    recording = Recording(history_file(resolved), h.every_s, h.max_bytes, h.max_snapshots)
    return pieces(resolved.env.project, ports, resolved.state_dir, pipeline.service_env(resolved), jwks_file,
                  delivery, recording)


def history_file(resolved: Resolved) -> Path:
    """Where the stack's recorder keeps its metrics snapshots (`metrics --since/--until`)."""
    return resolved.state_dir / "metrics" / "history.jsonl"


def restart_piece(resolved: Resolved, name: str, *, stop_only: bool = False) -> PieceState:
    """Stop one piece and (unless stop_only) start it again with the same command and port.

    Used to take BigQuery away under load and bring it back; the Pub/Sub emulator keeps nothing, so
    restarting it would need infra re-applied (`ltmctl local up` does that).
    """
    state = read_state(resolved)
    if state is None or name not in state.pieces:
        raise UsageError(f"No piece named {name!r} in the local stack.")
    piece = state.pieces[name]
    _stop(piece)
    if stop_only:
        return piece
    again = _start(Piece(name, piece.port, piece.argv, piece.health_path, piece.env),
                   Path(piece.log).parent, resolved.root)
    _wait_healthy([again], lambda *_: None)
    state.pieces[name] = again
    _write_state(resolved, state)
    return again


def _code_root() -> str:
    """The directory this ltmctl is imported from: the pieces run `python -m` on its packages, and must get
    this very code (a source checkout or a worktree), not another copy installed in the same environment."""
    import ltmctl

    return str(Path(ltmctl.__file__).resolve().parent.parent)


def _start(piece: Piece, log_dir: Path, cwd: Path) -> PieceState:
    log = log_dir / f"{piece.name}.log"
    env = {**os.environ, **piece.env}
    # The services must not inherit a caller's emulator settings that point elsewhere.
    if piece.name in ("pubsub", "bigquery"):
        env.pop("PUBSUB_EMULATOR_HOST", None)
    inherited = [entry for entry in os.environ.get("PYTHONPATH", "").split(os.pathsep) if entry]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([_code_root(), *inherited]))
    proc = processes.spawn(piece.argv, log, env, cwd)
    return PieceState(piece.name, proc.pid, proc.start_ticks, piece.port, str(log), piece.health_path,
                      piece.argv, piece.env)


def _wait_healthy(started: list[PieceState], report: Report) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    waiting = {p.name: p for p in started}
    while waiting:
        for name, piece in list(waiting.items()):
            if not processes.alive(piece.proc):
                raise BackendError(f"The {name} process exited during start-up. Last lines of {piece.log}:\n"
                                   f"{_log_tail(piece.log)}", hint="Fix the cause shown in the log and retry.")
            if healthy(piece):
                report(name, f"healthy at {piece.url}")
                del waiting[name]
        if time.monotonic() > deadline:
            names = ", ".join(waiting)
            raise BackendError(f"Timed out after {HEALTH_TIMEOUT_S:.0f}s waiting for: {names}.",
                               hint=f"See the logs in {Path(started[0].log).parent}.")
        time.sleep(0.1)


def _apply_infra(resolved: Resolved, state: StackState, report: Report) -> None:
    # Every up re-applies: the Pub/Sub emulator forgets topics and subscriptions when it stops.
    from infra.apply import apply
    from infra.errors import InfraError
    from infra.model import desired
    from infra.providers import providers_for
    from ltmctl import clients, pipeline

    c = clients.for_emulators(state.project, state.pubsub_host, state.bigquery_endpoint)
    try:
        # A pull subscription: the stack's delivery process pushes its messages, as Pub/Sub's push does on Google
        # Cloud (the emulator's own push delivers two at a time); see ltmctl/local/delivery.py.
        resources = desired(pipeline.spec(resolved, push_endpoint=None))
        apply(resources, providers_for(c.publisher, c.subscriber, c.bigquery),
              on_change=lambda ch: report("infra", f"{ch.action} {ch.resource.key}"))
    except InfraError as exc:
        raise BackendError(exc.message, hint=exc.hint) from None
    finally:
        c.close()
