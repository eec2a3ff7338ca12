"""The source archive deploy builds from: the repository's layout, and a hash that depends on content only."""

from __future__ import annotations

import gzip
import io
import os
import tarfile

from ltmctl.deploy.package import package
from tests.gcp.deploy_support import copy_sources


def _members(pkg):
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(pkg.data))) as tar:
        return tar.getmembers()


def test_the_archive_has_the_service_and_the_contract_in_the_repository_layout(tmp_path):
    pkg = package("api", copy_sources(tmp_path), "api_service")

    names = [m.name for m in _members(pkg)]
    assert names == sorted(names) == list(pkg.files)
    assert "api_service/Dockerfile" in names and "api_service/requirements.txt" in names
    assert "config/contract/event.schema.json" in names and "config/contract/events_table.json" in names
    assert not [n for n in names if not n.startswith(("api_service/", "config/contract/"))]
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 and m.uname == "" for m in _members(pkg))
    assert pkg.object_name == f"sources/api-{pkg.digest}.tar.gz"


def test_the_hash_depends_on_content_not_on_where_or_when(tmp_path):
    a = copy_sources(tmp_path / "a")
    b = copy_sources(tmp_path / "b")
    os.utime(b / "api_service" / "app.py", (1, 1))
    (b / "api_service" / "__pycache__").mkdir(exist_ok=True)
    (b / "api_service" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"junk")

    first, second = package("api", a, "api_service"), package("api", b, "api_service")
    assert first.digest == second.digest and first.data == second.data

    (b / "api_service" / "app.py").write_text((b / "api_service" / "app.py").read_text() + "\n")
    assert package("api", b, "api_service").digest != first.digest
    # The other service does not see it.
    assert package("ingest", a, "ingest_fn").digest == package("ingest", b, "ingest_fn").digest


def test_a_contract_change_changes_both_services(tmp_path):
    a = copy_sources(tmp_path / "a")
    before = {c: package(c, a, d).digest for c, d in (("api", "api_service"), ("ingest", "ingest_fn"))}
    schema = a / "config" / "contract" / "event.schema.json"
    schema.write_text(schema.read_text() + "\n")
    after = {c: package(c, a, d).digest for c, d in (("api", "api_service"), ("ingest", "ingest_fn"))}
    assert all(before[c] != after[c] for c in before)
