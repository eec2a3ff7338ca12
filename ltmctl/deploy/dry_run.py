"""`deploy --dry-run`: the same deploy code, in-process, against a fake Google Cloud; the requests it sends.

No credentials and no network: the clients talk to a FakeGcp on loopback, as the project's owner. The fake
starts as a freshly provisioned project (`ltmctl provision` is applied to it first, and its requests are not
shown) with nothing deployed, so the list is what a first deploy sends. What runs in the real project is not
known to a dry run; ask `ltmctl status` for that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# A placeholder when the config does not record the project number (ltmctl init writes it).
PLACEHOLDER_NUMBER = 123456789012


def plan_requests(resolved: Any, *, components: list[str], images: dict[str, str], force: bool,
                  root: Path) -> tuple[Any, list[dict[str, Any]]]:
    """(the deploy result, every request deploy sent) against a provisioned, empty fake project."""
    from ltmctl.deploy.clients import DeployClients
    from ltmctl.deploy.deployer import deploy
    from ltmctl.deploy.target import target_for
    from ltmctl.gcp import provisioning
    from ltmctl.gcp.fake import FakeGcp

    env = resolved.env
    number = env.gcp.project_number or PLACEHOLDER_NUMBER
    with FakeGcp(env.project, str(number)) as fake, \
            DeployClients.for_endpoint(env.project, fake.endpoint, fake.token_for(fake.owner)) as clients:
        provisioned = provisioning.target(resolved, clients)
        provisioning.apply(provisioned, provisioning.plan(provisioned))
        fake.clear_requests()
        result = deploy(target_for(resolved, number), clients, components=components, images=images, force=force,
                        root=root, poll_s=0)
        return result, [_request(r) for r in fake.requests]


def _request(r: Any) -> dict[str, Any]:
    out = r.as_dict()
    out["mutating"] = r.mutating
    return out
