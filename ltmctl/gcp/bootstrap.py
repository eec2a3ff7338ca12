"""`ltmctl init` below the command layer: can these credentials read the project, which APIs are missing,
enable them, record the environment in the config."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ltmctl.gcp.errors import google_errors

LRO_TIMEOUT_S = 900


@dataclass(frozen=True)
class ProjectCheck:
    project: str
    number: int
    missing_apis: list[str]


def check_project(clients: Any, project: str) -> ProjectCheck:
    """Read the project (proves the credentials work and the id is right) and which required APIs are off."""
    from infra.model import REQUIRED_APIS
    from ltmctl.gcp.provisioning import enabled_apis

    with google_errors(project, f"reading project {project}"):
        found = clients.projects.get_project(name=f"projects/{project}")
    enabled = enabled_apis(clients, project, REQUIRED_APIS)
    return ProjectCheck(project, int(found.name.split("/")[-1]), [a for a in REQUIRED_APIS if a not in enabled])


def enable_apis(clients: Any, project: str, apis: list[str]) -> None:
    """One batch request (Service Usage takes up to 20), waiting on its long-running operation."""
    with google_errors(project, "enabling " + ", ".join(apis)):
        for i in range(0, len(apis), 20):
            operation = clients.service_usage.batch_enable_services(
                request={"parent": f"projects/{project}", "service_ids": apis[i:i + 20]})
            operation.result(timeout=LRO_TIMEOUT_S)


def write_environment(path: Path, name: str, project: str, region: str, number: int) -> bool:
    from ltmctl.gcp.config_edit import write_environment

    return write_environment(path, name, {"project": project, "region": region, "project_number": number})
