"""`deploy --dry-run`: the same deploy code, in-process, against a fake Google Cloud; the requests it sends.

No credentials and no network: the clients talk to a FakeGcp on loopback, as the project's owner. The fake
starts as a freshly provisioned project (`ltmctl provision` is applied to it first, and its requests are not
shown) with nothing deployed, so the plan is a first deploy's and the list is what it sends. What runs in the
real project is not known to a dry run; `ltmctl deploy --plan` reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# A placeholder when the config does not record the project number (ltmctl init writes it).
PLACEHOLDER_NUMBER = 123456789012


def plan_requests(resolved: Any, *, components: list[str], images: dict[str, str], force: bool,
                  root: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(deploy --plan's rows, every request deploy then sent) against a provisioned, empty fake project."""
    from ltmctl.deploy.clients import DeployClients
    from ltmctl.deploy.deployer import deploy
    from ltmctl.deploy.plan import plan
    from ltmctl.deploy.target import target_for
    from ltmctl.gcp import provisioning
    from ltmctl.gcp.fake import FakeGcp

    env = resolved.env
    number = env.gcp.project_number or PLACEHOLDER_NUMBER
    with FakeGcp(env.project, str(number)) as fake, \
            DeployClients.for_endpoint(env.project, fake.endpoint, fake.token_for(fake.owner)) as clients:
        provisioned = provisioning.target(resolved, clients)
        provisioning.apply(provisioned, provisioning.plan(provisioned))
        target = target_for(resolved, number)
        rows, _ = plan(target, clients, components=components, images=images, force=force, root=root)
        fake.clear_requests()
        deploy(target, clients, components=components, images=images, force=force, root=root, poll_s=0)
        return rows, [_request(r) for r in fake.requests]


def _request(r: Any) -> dict[str, Any]:
    out = r.as_dict()
    if r.parsed is not None:
        # As Google reads the body: enum names where the REST clients send numbers (`"logging": "GCS_ONLY"`).
        out["body"] = r.parsed
    out["mutating"] = r.mutating
    return out
