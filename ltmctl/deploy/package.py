"""The source of one service as Cloud Build gets it: a tar.gz in the repository's own layout, and its content hash.

The archive holds `<service dir>/` and `config/contract/`, because each Dockerfile is written to be built from the
repository root (`docker build -f api_service/Dockerfile .`). It is deterministic: sorted entries, fixed mtimes,
owners and modes, no gzip timestamp; the same files always give the same hash, on any machine. The hash is what
`deploy` compares with the label on the running service to decide that nothing needs building.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path

from ltmctl.errors import UsageError

CONTRACT = "config/contract"
# Build and editor leftovers: they never change what an image does, so they must never change the hash.
_SKIP_DIRS = frozenset({"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".ltm"})
_SKIP_SUFFIXES = (".pyc", ".pyo", "~", ".swp")
# Labels allow 63 characters; 32 hex digits (128 bits) is plenty to tell sources apart.
HASH_CHARS = 32


@dataclass(frozen=True)
class Package:
    component: str
    data: bytes  # tar.gz
    digest: str  # sha256 hex of the uncompressed tar, shortened to HASH_CHARS
    files: tuple[str, ...]

    @property
    def object_name(self) -> str:
        """Where the archive goes in the staging bucket: content-addressed, so an upload is never repeated."""
        return f"sources/{self.component}-{self.digest}.tar.gz"


def source_dirs(root: Path, service_dir: str) -> dict[str, Path]:
    """Archive prefix -> directory on disk, for a repository checkout at `root` or, failing that, the installed
    packages (a wheel carries api_service/ and ingest_fn/ as packages and the contract under ltmctl/_config)."""
    checkout = {service_dir: root / service_dir, CONTRACT: root / CONTRACT}
    if all(p.is_dir() for p in checkout.values()) and (root / service_dir / "Dockerfile").is_file():
        return checkout
    import importlib.util

    spec = importlib.util.find_spec(service_dir)
    installed = Path(spec.origin).parent if spec and spec.origin else None
    if installed and (installed / "Dockerfile").is_file():
        # An editable install is a checkout; a wheel carries the contract in ltmctl/_config.
        for contract in (installed.parent / CONTRACT, Path(__file__).resolve().parents[1] / "_config" / "contract"):
            if contract.is_dir():
                return {service_dir: installed, CONTRACT: contract}
    raise UsageError(f"Cannot find the source of {service_dir}/ (with its Dockerfile) and {CONTRACT}/ "
                     f"under {root}.", hint="Run deploy from the repository checkout, or pass --source DIR.")


def _files(directory: Path) -> list[Path]:
    out = []
    for path in directory.rglob("*"):
        rel = path.relative_to(directory)
        if any(part in _SKIP_DIRS for part in rel.parts) or path.name.endswith(_SKIP_SUFFIXES):
            continue
        if path.is_file():
            out.append(path)
    return out


def package(component: str, root: Path, service_dir: str) -> Package:
    """Build the archive for `component` from `service_dir` and the contract."""
    entries: list[tuple[str, Path]] = []
    for prefix, directory in source_dirs(root, service_dir).items():
        entries.extend((f"{prefix}/{p.relative_to(directory).as_posix()}", p) for p in _files(directory))
    entries.sort()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, path in entries:
            data = path.read_bytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            # Only the executable bit is meaningful; umask and checkout tool must not show up in the hash.
            info.mode = 0o755 if path.stat().st_mode & stat.S_IXUSR else 0o644
            tar.addfile(info, io.BytesIO(data))
    tar_bytes = raw.getvalue()
    digest = hashlib.sha256(tar_bytes).hexdigest()[:HASH_CHARS]
    # Hash the tar, not the gzip: zlib versions may compress differently without the content changing.
    data = gzip.compress(tar_bytes, compresslevel=9, mtime=0)
    return Package(component, data, digest, tuple(name for name, _ in entries))
