"""The pieces of the local stack: how to launch each one and how to tell it is healthy."""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ltmctl.errors import BackendError
from ltmctl.local import class_sharing

INSTALL_PUBSUB_HINT = (
    "Install the Google Cloud CLI and its emulator: `gcloud components install pubsub-emulator` "
    "(or `apt-get install google-cloud-cli-pubsub-emulator`), with Java 17 on PATH. "
    "Or point LTM_PUBSUB_EMULATOR_JAR at cloud-pubsub-emulator-*.jar."
)


@dataclass(frozen=True)
class Piece:
    name: str
    port: int
    argv: list[str]
    health_path: str  # an HTTP GET that answers 2xx once the piece serves
    env: dict[str, str] = field(default_factory=dict)


def _sdk_roots() -> list[Path]:
    roots = [os.environ.get("CLOUDSDK_ROOT_DIR")]
    gcloud = shutil.which("gcloud")
    if gcloud:
        roots.append(str(Path(gcloud).resolve().parent.parent))
    roots += ["/usr/lib/google-cloud-sdk", "/usr/share/google-cloud-sdk", str(Path.home() / "google-cloud-sdk")]
    return [Path(r) for r in roots if r]


def pubsub_command(port: int, data_dir: Path) -> list[str]:
    """The emulator jar run directly by java (starts in under a second), else `gcloud beta emulators`."""
    jar_env = os.environ.get("LTM_PUBSUB_EMULATOR_JAR")
    jars = [Path(jar_env)] if jar_env else []
    for root in _sdk_roots():
        jars += sorted((root / "platform" / "pubsub-emulator" / "lib").glob("cloud-pubsub-emulator-*.jar"))
    java = shutil.which("java")
    for jar in jars:
        if jar.is_file() and java:
            # A small heap: the emulator holds a few thousand messages at most in local use. Its classes come from
            # an archive the first stack wrote (class_sharing.py): half the start's CPU.
            return [java, "-Xms64m", "-Xmx512m", *class_sharing.flags(java, jar), "-jar", str(jar),
                    "--host=127.0.0.1", f"--port={port}"]
    gcloud = shutil.which("gcloud")
    if gcloud and java:
        return [gcloud, "beta", "emulators", "pubsub", "start", f"--host-port=127.0.0.1:{port}",
                f"--data-dir={data_dir}", "--quiet"]
    missing = "Java 17 (java on PATH)" if not java else "the Pub/Sub emulator"
    raise BackendError(f"Cannot start the Pub/Sub emulator: {missing} was not found.", hint=INSTALL_PUBSUB_HINT)


def _require(module: str) -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise BackendError(f"The local stack needs the Python package providing `{module}`, which is not installed.",
                           hint='Install the local extra: pip install -e ".[local]"')


def local_audience(project: str) -> str:
    """The IAP audience the local API expects; shaped like Cloud Run's IAP audience."""
    return f"/projects/{project}/locations/local/services/ltm-api"


@dataclass(frozen=True)
class DeliverySettings:
    """What the delivery process needs to know of the ingest subscription and the function it pushes to."""

    subscription: str  # projects/P/subscriptions/S
    concurrency: int  # requests one function instance serves at once: what the gcp environment deploys with
    instances: int  # function instances (worker processes); the delivery sends up to instances x concurrency
    ack_deadline_s: int
    max_backoff_s: int


@dataclass(frozen=True)
class Recording:
    """Where and how often the metrics recorder keeps snapshots of the services' counters, and its bounds."""

    file: Path
    every_s: float
    max_bytes: int
    max_snapshots: int


def pieces(project: str, ports: dict[str, int], data_dir: Path, pipeline_env: dict[str, str],
           jwks_file: Path, delivery: DeliverySettings, recording: Recording) -> list[Piece]:
    """pipeline_env: LTM_* settings for the services (dataset, table, topics)."""
    for module in ("bqemulator", "functions_framework", "duckdb_extensions", "uvicorn", "fastapi", "jwt"):
        _require(module)
    py = sys.executable
    ingest_source = Path(__file__).resolve().parents[2] / "ingest_fn" / "main.py"
    if not ingest_source.is_file():
        import ingest_fn.main

        ingest_source = Path(ingest_fn.main.__file__)
    service_env = {
        **pipeline_env,
        "LTM_PROJECT": project,
        "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{ports['pubsub']}",
        "BIGQUERY_EMULATOR_HOST": f"http://127.0.0.1:{ports['bigquery']}",
    }
    return [
        Piece("pubsub", ports["pubsub"], pubsub_command(ports["pubsub"], data_dir / "pubsub"), "/"),
        Piece(
            "bigquery", ports["bigquery"],
            [py, "-m", "ltmctl.local.bigquery_main", "start", "--persistent",
             "--data-dir", str(data_dir / "bigquery"), "--project", project,
             "--rest-host", "127.0.0.1", "--rest-port", str(ports["bigquery"]),
             "--grpc-host", "127.0.0.1", "--grpc-port", str(ports["bigquery_grpc"]),
             "--log-format", "json", "--log-level", "warning", "--no-admin"],
            "/healthz",
            # Format extensions cost about 2 s of start-up and nothing here reads Parquet/Avro from files. Its own
            # Prometheus counters: nothing reads them, and counting costs every request (bigquery_main.py).
            {"BQEMU_ENABLE_FORMAT_EXTENSIONS": "false", "BQEMU_METRICS_ENABLED": "false"},
        ),
        Piece(
            "ingest", ports["ingest"],
            # The function as functions-framework loads and converts for it, on a smaller server than its gunicorn
            # and Flask (which cost more CPU per delivery than the function): ingest_server.py says why.
            [py, "-m", "ltmctl.local.ingest_server", "--target", "ingest", "--signature-type", "cloudevent",
             "--source", str(ingest_source), "--host", "127.0.0.1", "--port", str(ports["ingest"])],
            "/",
            # WORKERS and THREADS, functions-framework's variables: one worker per instance, each serving the
            # instance's concurrency, so the deliveries an instance gets are in its function together and its
            # group commit joins them. The workers' counters are summed from files in ingest-metrics/.
            {**service_env, "LTM_METRICS_PORT": str(ports["ingest_metrics"]), "THREADS": str(delivery.concurrency),
             "WORKERS": str(delivery.instances), "PROMETHEUS_MULTIPROC_DIR": str(data_dir / "ingest-metrics")},
        ),
        Piece(
            "api", ports["api"],
            [py, "-m", "uvicorn", "api_service.app:from_env", "--factory", "--host", "127.0.0.1",
             "--port", str(ports["api"]), "--no-access-log", "--log-level", "warning"],
            "/healthz",
            # The app writes its own structured request log; uvicorn's access log would repeat it.
            {**service_env, "LTM_IAP_AUDIENCE": local_audience(project), "LTM_IAP_JWKS_FILE": str(jwks_file)},
        ),
        # After the services it reads; it holds nothing, so its place when stopping does not matter.
        Piece(
            "recorder", ports["recorder"],
            [py, "-m", "ltmctl.local.recorder", "--api", f"http://127.0.0.1:{ports['api']}/metrics",
             "--ingest", f"http://127.0.0.1:{ports['ingest_metrics']}/metrics", "--file", str(recording.file),
             "--every", str(recording.every_s), "--max-bytes", str(recording.max_bytes),
             "--max-snapshots", str(recording.max_snapshots), "--port", str(ports["recorder"])],
            "/",
        ),
        # Last, so `down` stops it first: nothing is delivered to a function that is being stopped.
        Piece(
            "delivery", ports["delivery"],
            [py, "-m", "ltmctl.local.delivery", "--subscription", delivery.subscription,
             "--endpoint", f"http://127.0.0.1:{ports['ingest']}/",
             "--concurrency", str(delivery.instances * delivery.concurrency),
             "--ack-deadline", str(delivery.ack_deadline_s), "--max-backoff", str(delivery.max_backoff_s),
             "--port", str(ports["delivery"])],
            "/",
            {"PUBSUB_EMULATOR_HOST": service_env["PUBSUB_EMULATOR_HOST"]},
        ),
    ]
