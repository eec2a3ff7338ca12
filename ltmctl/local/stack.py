"""`local up/down/status/env` as functions: start the pieces, apply infra, record state; stop exactly those."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ltmctl.config import Resolved
from ltmctl.errors import BackendError, ConfigError, StackNotRunning, UsageError
from ltmctl.local import processes
from ltmctl.local.pieces import Piece, pieces
from ltmctl.local.processes import Proc

PORT_NAMES = ("pubsub", "bigquery", "bigquery_grpc", "ingest", "api", "ingest_metrics")
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

    _require_local(resolved)
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
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state), indent=2))
    os.replace(tmp, path)


def _require_local(resolved: Resolved) -> None:
    if resolved.env.backend != "local":
        raise UsageError(f"Environment {resolved.name!r} is a {resolved.env.backend} environment; "
                         "`ltmctl local` manages local environments only.",
                         hint="Use --env local (or another environment with `backend: local`).")


def choose_ports(resolved: Resolved, port_base: int | None) -> dict[str, int]:
    """Configured ports; --port-base N gives N, N+1, ...; --port-base 0 asks the kernel for free ones."""
    if port_base is None:
        return resolved.env.ports.model_dump()
    if port_base == 0:
        return dict(zip(PORT_NAMES, processes.free_ports(len(PORT_NAMES)), strict=True))
    if not 1024 <= port_base <= 65535 - len(PORT_NAMES):
        raise UsageError(f"--port-base {port_base} is out of range.", hint="Use a value from 1024 to 65530, or 0.")
    return {name: port_base + i for i, name in enumerate(PORT_NAMES)}


def _http_status(url: str, timeout: float = 1.0) -> int | None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback only
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, ValueError):
        return None


def healthy(piece: PieceState) -> bool:
    if not processes.alive(piece.proc):
        return False
    status = _http_status(piece.url + piece.health_path)
    # The ingest function answers only CloudEvents; any answer short of 5xx means it is serving.
    return status is not None and status < 500


def _log_tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def status(resolved: Resolved) -> list[dict[str, Any]]:
    _require_local(resolved)
    state = read_state(resolved)
    if state is None:
        raise StackNotRunning(str(resolved.root))
    return [
        {"piece": p.name, "pid": p.pid, "port": p.port, "running": processes.alive(p.proc),
         "healthy": healthy(p), "url": p.url, "log": p.log}
        for p in state.pieces.values()
    ]


def running_state(resolved: Resolved) -> StackState:
    """The state of a stack whose every piece is running, for commands that use it; else StackNotRunning."""
    _require_local(resolved)
    state = read_state(resolved)
    if state is None or not all(processes.alive(p.proc) for p in state.pieces.values()):
        raise StackNotRunning(str(resolved.root))
    return state


def env_lines(resolved: Resolved) -> list[str]:
    state = running_state(resolved)
    p = resolved.pipeline
    values = {
        "PUBSUB_EMULATOR_HOST": state.pubsub_host,
        "BIGQUERY_EMULATOR_HOST": state.bigquery_endpoint,
        "LTM_ENV": resolved.name,
        "LTM_PROJECT": state.project,
        "LTM_TOPIC": p.topic,
        "LTM_DATASET": p.dataset,
        "LTM_TABLE": p.table,
        "LTM_DLQ_TOPIC": p.dead_letter_topic,
        "LTM_DLQ_SUBSCRIPTION": p.dead_letter_subscription,
        "LTM_INGEST_URL": state.ingest_url,
        "LTM_API_URL": state.api_url,
    }
    if state.ingest_metrics_url:
        values["LTM_INGEST_METRICS_URL"] = state.ingest_metrics_url
    import shlex

    return [f"export {key}={shlex.quote(value)}" for key, value in values.items()]


def down(resolved: Resolved, report: Report | None = None) -> list[tuple[str, bool]]:
    """Stop the pieces recorded in the state file; returns (piece, was running). Safe on a stale file."""
    _require_local(resolved)
    state = read_state(resolved)
    if state is None:
        return []
    results = []
    for piece in reversed(list(state.pieces.values())):
        stopped = processes.stop(piece.proc)
        results.append((piece.name, stopped))
        if report:
            report(piece.name, "stopped" if stopped else "was not running")
    state_file(resolved).unlink(missing_ok=True)
    return results


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
    """Start the stack (or find it running). Returns (state, started)."""
    _require_local(resolved)
    _require_push_mode(resolved)
    report = report or (lambda piece, what: None)
    existing = read_state(resolved)
    if existing is not None:
        if all(healthy(p) for p in existing.pieces.values()):
            return existing, False
        report("stack", "stopping the leftovers of an earlier run")
        down(resolved)

    ports = choose_ports(resolved, port_base)
    for name, port in ports.items():
        if not processes.port_free(port):
            raise BackendError(f"Port {port} ({name}) is already in use.",
                               hint="Stop what uses it, or pick other ports with `ltmctl local up --port-base N` "
                                    "(N, N+1, ... are used) or `--port-base 0` for free ones.")

    from ltmctl import pipeline

    data_dir = resolved.state_dir
    log_dir = data_dir / "logs"
    _, jwks_file = iap_keys(resolved)
    wanted = pieces(resolved.env.project, ports, data_dir, pipeline.service_env(resolved), jwks_file)
    for sub in ("bigquery", "pubsub"):
        (data_dir / sub).mkdir(parents=True, exist_ok=True)
    started: dict[str, PieceState] = {}
    try:
        for piece in wanted:
            started[piece.name] = _start(piece, log_dir, resolved.root)
            report(piece.name, f"starting on port {piece.port}")
        _wait_healthy(list(started.values()), report)
        state = StackState(resolved.name, resolved.env.project, ports, started,
                           datetime.now(UTC).isoformat(timespec="seconds"))
        # Written before infra so that `down` can clean up even if applying fails or is interrupted.
        _write_state(resolved, state)
        _apply_infra(resolved, state, report)
    except BaseException:
        for piece in started.values():
            processes.stop(piece.proc)
        state_file(resolved).unlink(missing_ok=True)
        raise
    return state, True


def restart_piece(resolved: Resolved, name: str, *, stop_only: bool = False) -> PieceState:
    """Stop one piece and (unless stop_only) start it again with the same command and port.

    Used to take BigQuery away under load and bring it back; the Pub/Sub emulator keeps nothing, so
    restarting it would need infra re-applied (use `local down` and `up` for that).
    """
    state = read_state(resolved)
    if state is None or name not in state.pieces:
        raise UsageError(f"No piece named {name!r} in the local stack.")
    piece = state.pieces[name]
    processes.stop(piece.proc)
    if stop_only:
        return piece
    again = _start(Piece(name, piece.port, piece.argv, piece.health_path, piece.env),
                   Path(piece.log).parent, resolved.root)
    _wait_healthy([again], lambda *_: None)
    state.pieces[name] = again
    _write_state(resolved, state)
    return again


def _start(piece: Piece, log_dir: Path, cwd: Path) -> PieceState:
    log = log_dir / f"{piece.name}.log"
    env = {**os.environ, **piece.env}
    # The services must not inherit a caller's emulator settings that point elsewhere.
    if piece.name in ("pubsub", "bigquery"):
        env.pop("PUBSUB_EMULATOR_HOST", None)
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
        resources = desired(pipeline.spec(resolved, push_endpoint=state.ingest_url))
        apply(resources, providers_for(c.publisher, c.subscriber, c.bigquery),
              on_change=lambda ch: report("infra", f"{ch.action} {ch.resource.key}"))
    except InfraError as exc:
        raise BackendError(exc.message, hint=exc.hint) from None
    finally:
        c.close()
