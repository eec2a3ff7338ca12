"""Load and strictly validate config/ltm.yaml; every error names file, line and key (exit code 3)."""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from ltmctl.errors import ConfigError

CONFIG_RELPATH = Path("config") / "ltm.yaml"
DEFAULT_ENV = "local"

# Resource names as the services accept them, checked here so a typo fails before any API call.
PubSubName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9._~+%-]{2,254}$")]
BigQueryName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,1023}$")]
ServiceName = Annotated[str, StringConstraints(pattern=r"^[a-z]([a-z0-9-]{0,47}[a-z0-9])?$")]
ProjectId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")]
Port = Annotated[int, Field(ge=1, le=65535)]
Member = Annotated[str, StringConstraints(pattern=r"^(user|group|serviceAccount|domain):\S+$")]
AccountId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")]
RepositoryName = Annotated[str, StringConstraints(pattern=r"^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$")]
OAuthClientId = Annotated[str, StringConstraints(pattern=r"^[0-9]+-[a-z0-9]+\.apps\.googleusercontent\.com$")]
ServiceAccountEmail = Annotated[str, StringConstraints(
    pattern=r"^[a-z0-9][a-z0-9-]{0,62}@[a-z0-9.-]+\.gserviceaccount\.com$")]
BucketName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{1,61}[a-z0-9]$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Retry(_Strict):
    minimum_backoff_s: int = Field(10, ge=0, le=600)
    maximum_backoff_s: int = Field(600, ge=0, le=600)

    @model_validator(mode="after")
    def _ordered(self) -> Retry:
        if self.minimum_backoff_s > self.maximum_backoff_s:
            raise ValueError("minimum_backoff_s must not exceed maximum_backoff_s")
        return self


class Pipeline(_Strict):
    topic: PubSubName = "ltm-events"
    dead_letter_topic: PubSubName = "ltm-events-dlq"
    dead_letter_subscription: PubSubName = "ltm-events-dlq-keep"
    subscription: PubSubName = "ltm-events-ingest"
    ack_deadline_s: int = Field(60, ge=10, le=600)
    max_delivery_attempts: int = Field(5, ge=5, le=100)  # Pub/Sub's own bounds
    retry: Retry = Retry()
    dataset: BigQueryName = "ltm"
    table: BigQueryName = "events"
    location: str = "US"
    ingest_mode: Literal["push", "bigquery"] = "push"


class Ports(_Strict):
    pubsub: Port = 8085
    bigquery: Port = 9050
    bigquery_grpc: Port = 9060
    ingest: Port = 8081
    api: Port = 8000
    ingest_metrics: Port = 9464  # the ingest function's Prometheus endpoint (Prometheus' customary port)
    delivery: Port = 8082  # the local push delivery's status (GET /)
    recorder: Port = 8083  # the metrics recorder's status (GET /)

    @model_validator(mode="after")
    def _distinct(self) -> Ports:
        # Two pieces on one port: the second cannot bind, and a health check of it would reach the first.
        owners: dict[int, str] = {}
        for name, port in self.model_dump().items():
            if port in owners:
                raise ValueError(f"{owners[port]} and {name} both use port {port}; each piece needs its own")
            owners[port] = name
        return self


class MetricsHistory(_Strict):
    """The snapshots of the services' counters the local stack keeps, for `metrics --since/--until`."""

    every_s: float = Field(10.0, ge=0.1, le=3600)
    max_snapshots: int = Field(8640, ge=2)  # a day at the default interval
    max_bytes: int = Field(8_000_000, ge=10_000)


class LocalSettings(_Strict):
    ports: Ports = Ports()
    # Instances of the ingest function the stack runs, as Cloud Run runs several: worker processes, each with its
    # own group commit and `ingest.concurrency` requests at once; the delivery sends instances x concurrency.
    ingest_instances: int = Field(2, ge=1, le=16)
    metrics_history: MetricsHistory = MetricsHistory()


class ApiSettings(_Strict):
    service: ServiceName = "ltm-api"
    memory: Annotated[str, StringConstraints(pattern=r"^[0-9]+(Mi|Gi)$")] = "2Gi"
    cpu: Literal["1", "2", "4", "8"] = "1"
    min_instances: int = Field(1, ge=0, le=1000)
    max_instances: int = Field(10, ge=1, le=1000)
    port: Port = 8000
    url: Annotated[str, StringConstraints(pattern=r"^https://\S+$")] | None = None  # set by deploy; for `api`


class IngestSettings(_Strict):
    service: ServiceName = "ltm-ingest"
    concurrency: int = Field(80, ge=1, le=1000)
    max_instances: int = Field(20, ge=1, le=1000)


class IapSettings(_Strict):
    """IAP on the API service. IAP on Cloud Run uses a Google-managed OAuth client, which refuses programmatic
    access: programs get through with a service account's signed JWT, or an ID token of an OAuth client listed
    in the service's IAP settings (`programmatic_clients`, which deploy writes)."""

    members: list[Member] = []
    # OAuth client ids (desktop clients, or the one `gcloud auth application-default login` uses) whose ID tokens
    # IAP accepts from programs; authoritative, like `members`.
    programmatic_clients: list[OAuthClientId] = []
    # The account `ltmctl api` signs its JWT as (IAM Credentials signJwt), for a person calling with their own
    # credentials; unset: the account of Application Default Credentials, if they are a service account's.
    service_account: ServiceAccountEmail | None = None
    # A custom OAuth client for IAP, required in a project outside any organization (secret: at deploy, from
    # $LTM_IAP_OAUTH_CLIENT_SECRET).
    oauth_client_id: OAuthClientId | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_client_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and "client_id" in data:
            raise ValueError("client_id is no longer used: IAP on Cloud Run has a Google-managed OAuth client that "
                             "refuses ID tokens made for it; list your OAuth client in `programmatic_clients`, or "
                             "set `service_account`")
        return data

    @model_validator(mode="after")
    def _account_may_pass(self) -> IapSettings:
        if self.service_account and f"serviceAccount:{self.service_account}" not in self.members:
            raise ValueError(f"service_account {self.service_account} must also be in `members` as "
                             f"serviceAccount:{self.service_account} (IAP lets through only members)")
        return self


class QuerySettings(_Strict):
    max_bytes: int = Field(10_000_000_000, ge=1)
    usd_per_tib: float = Field(6.25, ge=0)


class SloSettings(_Strict):
    latency_p99_ms: float = Field(500, gt=0)
    error_rate: float = Field(0.01, ge=0, le=1)
    oldest_unacked_s: float = Field(300, gt=0)


class MonitoringSettings(_Strict):
    # Where `ltmctl monitoring apply`'s alert policies notify (create channels in the console or with gcloud).
    notification_channels: list[Annotated[str, StringConstraints(
        pattern=r"^projects/[^/]+/notificationChannels/[^/]+$")]] = []
    # The scoping project of a Cloud Monitoring metrics scope that monitors this environment's project: the fleet
    # view then reads every environment of that scope with one query per figure (README, "Fleet view").
    metrics_scope: ProjectId | None = None


class ServiceAccounts(_Strict):
    """Account ids (the part before @PROJECT.iam.gserviceaccount.com) of the pipeline's identities."""

    api: AccountId = "ltm-api"
    ingest: AccountId = "ltm-ingest"
    push_invoker: AccountId = "ltm-push-invoker"
    builder: AccountId = "ltm-builder"  # Cloud Build runs deploy's image builds as this account
    deployer: AccountId = "ltm-deployer"  # the CI/CD trigger (cloudbuild.yaml) runs as this account


class GcpSettings(_Strict):
    # Written by `ltmctl init`; looked up from the project when absent (it names Google's service agents).
    project_number: int | None = Field(None, ge=1)
    artifact_repository: RepositoryName = "ltm"
    staging_bucket: BucketName | None = None  # default: PROJECT-ltm-sources
    service_accounts: ServiceAccounts = ServiceAccounts()


class EnvironmentSettings(_Strict):
    backend: Literal["local", "gcp"]
    project: ProjectId
    region: str | None = None
    local: LocalSettings | None = None
    api: ApiSettings = ApiSettings()
    ingest: IngestSettings = IngestSettings()
    iap: IapSettings = IapSettings()
    query: QuerySettings = QuerySettings()
    slo: SloSettings = SloSettings()
    monitoring: MonitoringSettings = MonitoringSettings()
    gcp: GcpSettings = GcpSettings()
    # Overrides pipeline.ingest_mode for this environment: a bigquery-mode GCP environment and the local stack
    # (push only: the emulator has no BigQuery subscriptions) can then share one config file.
    ingest_mode: Literal["push", "bigquery"] | None = None

    @model_validator(mode="after")
    def _backend_fields(self) -> EnvironmentSettings:
        if self.backend == "gcp" and not self.region:
            raise ValueError("a gcp environment needs `region`")
        if self.backend == "gcp" and self.local is not None:
            raise ValueError("`local` settings belong to a local environment only")
        if self.backend == "local" and "gcp" in self.model_fields_set:
            raise ValueError("`gcp` settings belong to a gcp environment only")
        return self

    @property
    def staging_bucket(self) -> str:
        return self.gcp.staging_bucket or f"{self.project}-ltm-sources"

    @property
    def ports(self) -> Ports:
        return self.local_settings.ports

    @property
    def local_settings(self) -> LocalSettings:
        return self.local or LocalSettings()


class Config(_Strict):
    pipeline: Pipeline = Pipeline()
    environments: dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]*$")], EnvironmentSettings] = Field(
        min_length=1
    )


@dataclass(frozen=True)
class Resolved:
    """The selected environment with everything it needs to know about where it came from."""

    name: str
    env: EnvironmentSettings
    pipeline: Pipeline
    path: Path  # the config file
    root: Path  # the project directory: local state lives in root/.ltm/

    @property
    def state_dir(self) -> Path:
        return self.root / ".ltm" / self.name

    def as_dict(self) -> dict[str, Any]:
        return {
            "environment": self.name,
            "config_file": str(self.path),
            "pipeline": self.pipeline.model_dump(),
            # `gcp` settings mean nothing to a local environment (and cannot be set on one).
            **self.env.model_dump(exclude_none=True, exclude={"gcp"} if self.env.backend == "local" else None),
        }


def find_config(explicit: str | os.PathLike[str] | None = None, cwd: Path | None = None) -> tuple[Path, Path]:
    """Return (config file, project root): --config, then LTM_CONFIG, then config/ltm.yaml in cwd or a parent,
    then the copy packaged with ltmctl (with the current directory as root)."""
    chosen = explicit or os.environ.get("LTM_CONFIG")
    cwd = (cwd or Path.cwd()).resolve()
    if chosen:
        path = Path(chosen).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"{path}: no such config file.", hint="Pass an existing file to --config / LTM_CONFIG.")
        root = path.parent.parent if path.parent.name == "config" else path.parent
        return path, root
    for directory in (cwd, *cwd.parents):
        if (directory / CONFIG_RELPATH).is_file():
            return directory / CONFIG_RELPATH, directory
    packaged = Path(__file__).parent / "_config" / "ltm.yaml"
    if packaged.is_file():
        return packaged, cwd
    raise ConfigError("No config/ltm.yaml found here or in any parent directory.",
                      hint="Run `ltmctl init` or pass --config PATH.")


def load(explicit: str | os.PathLike[str] | None = None, env: str | None = None) -> Resolved:
    """Find, parse and validate the config, and select an environment (--env, LTM_ENV, then `local`)."""
    path, root = find_config(explicit)
    parsed = _parse(read_text(path), path)
    config = parsed.config
    name = env or os.environ.get("LTM_ENV") or DEFAULT_ENV
    if name in parsed.bases:
        raise ConfigError(f"{path}:{parsed.lines[('bases', name)]}: bases.{name}: is a base (settings that "
                          "environments share through `extends`), not an environment; it cannot be selected.",
                          hint=f"Choose an environment that extends it, or add one with `extends: {name}` under "
                               "`environments:`.")
    if name not in config.environments:
        known = ", ".join(sorted(config.environments))
        raise ConfigError(f"{path}: environment {name!r} is not defined (defined: {known}).",
                          hint="Choose one with --env NAME, or add it under `environments:`.")
    chosen = config.environments[name]
    pipeline = config.pipeline
    if chosen.ingest_mode is not None:
        pipeline = pipeline.model_copy(update={"ingest_mode": chosen.ingest_mode})
    return Resolved(name=name, env=chosen, pipeline=pipeline, path=path, root=root)


def check(explicit: str | os.PathLike[str] | None = None) -> tuple[Path, Config]:
    """Find the config and validate every environment in it, each merged with what it extends, selecting none;
    one ConfigError lists every problem."""
    path, _ = find_config(explicit)
    return path, parse(read_text(path), path)


def read_text(path: Path) -> str:
    """The config file as text; a byte that is not UTF-8 is named by line and column, not a traceback."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}.",
                          hint="Pass a readable file to --config / LTM_CONFIG.") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(f"{path}:{line}: byte 0x{raw[exc.start]:02x} at column {column} is not UTF-8; "
                          "the config must be UTF-8 text.",
                          hint="Re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`).") from None


def ingest_mode_key(resolved: Resolved) -> tuple[str, ...]:
    """Where the environment's ingest mode is set: its own `ingest_mode`, or the pipeline's."""
    if resolved.env.ingest_mode is not None:
        return ("environments", resolved.name, "ingest_mode")
    return ("pipeline", "ingest_mode")


def key_line(path: Path, key: tuple[str, ...]) -> int:
    """The line of `key` (e.g. ("pipeline", "ingest_mode")) in the config file, or of its nearest parent; 1 if
    none is written there (the value is a default). A key an environment inherits is found where it is written:
    in the base (or environment) it `extends`."""
    try:
        lines, data = _compose(path.read_text(encoding="utf-8"), path)
        chains = _inherit(data, lines, path).chains if isinstance(data, dict) else {}
    except (OSError, ValueError, yaml.YAMLError, ConfigError):
        return 1
    if len(key) >= 2 and key[0] == "environments" and key[1] in chains:
        return _origin(lines, chains[key[1]], key[2:])[0]
    return _line_of(lines, key)


def value_origins(resolved: Resolved) -> dict[str, str]:
    """Where each setting of the environment (dotted, as `as_dict` shows it) is written: `environments.NAME` or
    `bases.BASE` with the line, or `default` when no entry of its chain sets it."""
    lines, data = _compose(read_text(resolved.path), resolved.path)
    chains = _inherit(data, lines, resolved.path).chains if isinstance(data, dict) else {}
    chain = chains.get(resolved.name, [("environments", resolved.name)])
    shown = {k: v for k, v in resolved.as_dict().items() if k not in ("environment", "config_file", "pipeline")}
    found: dict[str, str] = {}

    def walk(value: Any, rest: tuple[str, ...]) -> None:
        if isinstance(value, dict) and value:
            for key, inner in value.items():
                walk(inner, (*rest, str(key)))
            return
        line, source = _origin(lines, chain, rest, exact=True)
        found[".".join(rest)] = f"{'.'.join(source)} (line {line})" if source else "default"

    walk(shown, ())
    return found


def inherited_settings(text: str, path: Path, name: str) -> dict[str, Any]:
    """Environment `name` as written, merged with what it `extends`, unvalidated (for `init`, which edits the
    file); {} when the file does not define it."""
    lines, data = _compose(text, path)
    envs = _inherit(data, lines, path).data.get("environments") if isinstance(data, dict) else None
    value = envs.get(name) if isinstance(envs, dict) else None
    return value if isinstance(value, dict) else {}


def parse(text: str, path: Path) -> Config:
    """Parse YAML text into a validated Config, each environment merged with what it `extends`; errors carry
    `file:line: key: problem`, every problem in the file at once."""
    return _parse(text, path).config


MAX_NODES = 20_000  # far more than any config holds; a file expanding to more through aliases is refused
MAX_CHAIN = 16  # `extends` links from an environment to its furthest base
# Inheritance multiplies like aliases do (fifty environments each carry a copy of their base): the environments
# as merged, which validation walks one by one, are bounded too.
MAX_RESOLVED_NODES = 10 * MAX_NODES
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]*$")  # environment and base names

Key = tuple[str, ...]


@dataclass(frozen=True)
class _Parsed:
    config: Config
    lines: dict[Key, int]
    bases: frozenset[str]


@dataclass
class _Inheritance:
    data: dict[str, Any]  # the file's data without `bases`, each environment merged with what it extends
    chains: dict[str, list[Key]]  # environment -> its own key, then each entry it inherits from, nearest first
    bases: frozenset[str]
    problems: list[str]
    dropped: bool = False  # an environment with a broken `extends` is left out of validation


def _parse(text: str, path: Path) -> _Parsed:
    lines, data = _compose(text, path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}:1: the config must be a mapping with `pipeline` and `environments`.")
    inherited = _inherit(data, lines, path)
    problems = list(inherited.problems)
    config = None
    try:
        config = Config.model_validate(inherited.data)
    except ValidationError as exc:
        # With an environment left out for its broken `extends`, "no environments" is not a problem of its own.
        errors = [e for e in exc.errors() if not (inherited.dropped and e["loc"] == ("environments",))]
        problems += _describe_all(errors, lines, inherited.chains, path)
    if problems or config is None:
        raise ConfigError("\n".join(problems),
                          hint="Fix the keys named above; `ltmctl config validate` re-checks the file.")
    return _Parsed(config=config, lines=lines, bases=inherited.bases)


def _compose(text: str, path: Path) -> tuple[dict[Key, int], Any]:
    """The line of every key in the file, and its data."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        # Aliases are shared when loaded but walked once per use here (and by validation): the walk is bounded
        # and comes before anything expands them, so an alias bomb is refused instead of hanging.
        lines: dict[Key, int] = {}
        if node is not None:
            _index_lines(node, (), lines, path)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}{line}: not valid YAML: {problem}.",
                          hint="Fix the YAML syntax at that line.") from None
    return lines, data


def _inherit(data: dict[str, Any], lines: dict[Key, int], path: Path) -> _Inheritance:
    """Merge each environment onto the entry (a base or another environment) it `extends`, recursively: mappings
    merge key by key at any depth, the child winning; lists and values are replaced whole."""
    problems: list[str] = []

    def problem(key: Key, text: str) -> None:
        message = f"{path}:{_line_of(lines, key)}: {'.'.join(key)}: {text}"
        if message not in problems:  # a broken base is met once per environment that extends it
            problems.append(message)

    raw_bases = data.get("bases") or {}
    if not isinstance(raw_bases, dict):
        problem(("bases",), "must be a mapping of base names to the settings they share.")
        raw_bases = {}
    envs = data.get("environments")
    entries: dict[str, tuple[Key, Any]] = {}
    for name, value in raw_bases.items():
        key = ("bases", str(name))
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            problem(key, "a base's name is lower-case letters, digits, '-' and '_', starting with a letter.")
        elif isinstance(envs, dict) and name in envs:
            problem(key, f"an environment has the same name, so `extends: {name}` would be ambiguous.")
        elif not isinstance(value, dict):
            problem(key, "must be a mapping of the settings it shares.")
        else:
            entries[name] = (key, value)
    bases = frozenset(entries)
    rest = {k: v for k, v in data.items() if k != "bases"}
    if not isinstance(envs, dict):
        return _Inheritance(rest, {}, bases, problems)
    for name, value in envs.items():
        entries.setdefault(str(name), (("environments", str(name)), value))

    chains: dict[str, list[str]] = {}
    for name in entries:
        chain, broken = _follow(name, entries, lines)
        if broken:
            problem(*broken)
        else:
            chains[name] = chain

    merged: dict[str, Any] = {}

    def resolve(name: str) -> Any:
        if name not in merged:
            value = entries[name][1]
            own = {k: v for k, v in value.items() if k != "extends"} if isinstance(value, dict) else value
            merged[name] = _merge(resolve(value["extends"]), own) if len(chains[name]) > 1 else own
        return merged[name]

    budget = [MAX_RESOLVED_NODES]
    out: dict[Any, Any] = {}
    env_chains: dict[str, list[Key]] = {}
    dropped = False
    for original, _ in envs.items():
        name = str(original)
        if name not in chains:
            dropped = True
            continue
        out[original] = resolve(name)
        if not _within(out[original], budget):
            raise ConfigError(f"{path}:{_line_of(lines, ('environments', name))}: environments.{name}: with what "
                              f"they inherit, the environments hold more than {MAX_RESOLVED_NODES:,} values; "
                              "refused rather than expanded.",
                              hint="Fewer environments, or smaller bases (or fewer YAML aliases in them).")
        env_chains[name] = [entries[n][0] for n in chains[name]]
    return _Inheritance({**rest, "environments": out}, env_chains, bases, problems, dropped)


def _follow(name: str, entries: dict[str, tuple[Key, Any]], lines: dict[Key, int]
            ) -> tuple[list[str], tuple[Key, str] | None]:
    """The names `name` inherits from, itself first; or where and why its chain of `extends` is broken."""
    chain = [name]
    while True:
        key, value = entries[chain[-1]]
        if not isinstance(value, dict) or "extends" not in value:
            return chain, None
        parent = value["extends"]
        where = (*key, "extends")
        if not isinstance(parent, str):
            kind = "nothing" if parent is None else f"a {type(parent).__name__}"
            return chain, (where, f"must name one environment or base (a string), not {kind}.")
        if parent not in entries:
            close = difflib.get_close_matches(parent, list(entries), n=1)
            known = f"did you mean {close[0]!r}?" if close else "define it under `bases:` or `environments:`."
            return chain, (where, f"no environment or base is named {parent!r}; {known}")
        if parent in chain:
            # Named once, where the circle's first `extends` is written, whichever environment leads into it.
            circle = chain[chain.index(parent):]
            start = min(range(len(circle)), key=lambda i: _line_of(lines, (*entries[circle[i]][0], "extends")))
            circle = circle[start:] + circle[:start]
            return chain, ((*entries[circle[0]][0], "extends"),
                           f"`extends` goes round in a circle ({' → '.join([*circle, circle[0]])}); an entry "
                           "cannot inherit from itself.")
        if len(chain) > MAX_CHAIN:
            return chain, ((*entries[name][0], "extends"),
                           f"more than {MAX_CHAIN} `extends` in a row ({name} → {chain[1]} → … → {parent}); "
                           "refused. Flatten the chain of bases.")
        chain.append(parent)


def _merge(base: Any, child: Any) -> Any:
    """`child` over `base`: mappings merged key by key at any depth, anything else replaced whole. Neither input
    is changed (aliased YAML values are shared between entries)."""
    if not (isinstance(base, dict) and isinstance(child, dict)):
        return child
    out = dict(base)
    for key, value in child.items():
        out[key] = _merge(base[key], value) if key in base else value
    return out


def _within(value: Any, budget: list[int]) -> bool:
    """Count `value`'s nodes against the shared budget; False once it is spent."""
    stack = [value]
    while stack:
        budget[0] -= 1
        if budget[0] < 0:
            return False
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _index_lines(node: yaml.Node, prefix: Key, lines: dict[Key, int], path: Path,
                 seen_nodes: list[int] | None = None) -> None:
    seen_nodes = seen_nodes if seen_nodes is not None else [0]
    seen_nodes[0] += 1
    if seen_nodes[0] > MAX_NODES:
        dotted = ".".join(prefix) or "(top level)"
        raise ConfigError(f"{path}:{node.start_mark.line + 1}: {dotted}: the file expands to more than "
                          f"{MAX_NODES:,} values through YAML aliases (*name); refused rather than expanded.",
                          hint="Write the values out, or use fewer nested aliases.")
    lines.setdefault(prefix, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            if key in seen:
                # PyYAML keeps the last duplicate silently; a strict config refuses it.
                dotted = ".".join((*prefix, key))
                raise ConfigError(f"{path}:{key_node.start_mark.line + 1}: {dotted}: duplicate key.")
            seen.add(key)
            lines[(*prefix, key)] = key_node.start_mark.line + 1
            _index_lines(value_node, (*prefix, key), lines, path, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _index_lines(item, (*prefix, str(i)), lines, path, seen_nodes)


def _line_of(lines: dict[Key, int], key: Key) -> int:
    """The line of `key`, or of its nearest written parent; 1 when none is written."""
    return next((lines[key[:n]] for n in range(len(key), 0, -1) if key[:n] in lines), 1)


def _origin(lines: dict[Key, int], chain: list[Key], rest: Key, exact: bool = False) -> tuple[int, Key | None]:
    """(line, entry) where an environment's key `rest` is written: the environment itself or the nearest entry of
    its chain that writes it. A key none writes falls back to its nearest written parent, then to the
    environment's own line; with `exact`, to (1, None)."""
    for n in range(len(rest), len(rest) - 1 if exact else 0, -1):
        for entry in chain:
            if (*entry, *rest[:n]) in lines:
                return lines[(*entry, *rest[:n])], entry
    return (1, None) if exact else (_line_of(lines, chain[0]), chain[0])


def _describe_all(errors: list[Any], lines: dict[Key, int], chains: dict[str, list[Key]], path: Path) -> list[str]:
    """One `file:line: key: problem` per problem. An environment's problem names the line where the offending
    value is written, in a base when it is inherited; fifty environments inheriting one bad value make one
    line, naming the first and counting the rest."""
    groups: dict[tuple[Any, ...], list[tuple[str, str, str]]] = {}  # (key, environment, note) per problem
    for err in errors:
        loc = tuple(str(part) for part in err["loc"])
        # Pydantic appends validator names (e.g. "function-after[...]") that are not keys of the file.
        loc = tuple(part for part in loc if "[" not in part)
        message = _message(err)
        chain = chains.get(loc[1]) if len(loc) >= 2 and loc[0] == "environments" else None
        if chain is None:
            groups.setdefault((_line_of(lines, loc), loc, message, None), []).append(
                (".".join(loc) or "(top level)", "", ""))
            continue
        line, source = _origin(lines, chain, loc[2:])
        note = ""
        if source != chain[0]:
            note = f"inherited from {'.'.join(source or ())}"
        elif err["type"] == "missing" and len(chain) > 1:
            note = f"set neither here nor in {', '.join('.'.join(entry) for entry in chain[1:])}"
        groups.setdefault((line, loc[2:], message, source), []).append((".".join(loc), loc[1], note))
    described = []
    for (line, _, message, _), members in groups.items():
        key, _, note = members[0]
        notes = [note] if note else []
        if len(members) > 1:
            others = [env for _, env, _ in members[1:]]
            shown = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
            notes.append(f"the same in {len(others)} more environment{'s' if len(others) > 1 else ''}: {shown}")
        described.append(f"{path}:{line}: {key}: {message}" + (f" ({'; '.join(notes)})" if notes else ""))
    return described


def _message(err: dict[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    return str(err["msg"]).removeprefix("Value error, ")
