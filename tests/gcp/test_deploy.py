"""`deploy` with the real client libraries against the fake control plane: what it sends, in which order, and
that it sends nothing that changes anything when nothing changed."""

from __future__ import annotations

import pytest

from ltmctl.gcp.fake.cloudbuild import CloudBuildApi
from ltmctl.gcp.fake.iap import IapApi
from ltmctl.gcp.fake.pubsub import PubSubApi
from ltmctl.gcp.fake.run import CloudRunApi
from tests.gcp.deploy_support import (
    API_IAP_RESOURCE,
    API_SERVICE,
    IAP_AGENT,
    IAP_MEMBERS,
    INGEST_SERVICE,
    REGION,
    deploy,
    env_of,
    first,
    project_dir,
    provisioned,
    run_policies,
)
from tests.gcp.support import BUILDER_SA, INGEST_SUB, INVOKER_SA, NUMBER, PROJECT, STAGING_BUCKET

ACCESSOR = "roles/iap.httpsResourceAccessor"


@pytest.fixture
def config_path(fake, tmp_path, monkeypatch):
    """Overrides tests/gcp/conftest.py's: a checkout with IAP members and ingest sizes in its config."""
    return project_dir(tmp_path, fake.endpoint, monkeypatch)


@pytest.fixture
def resolved(config_path):
    from ltmctl import config

    return config.load(config_path, "dev")


@pytest.fixture
def clients(fake, resolved):
    with provisioned(fake, resolved) as c:
        yield c


def _created(fake, service_id):
    (request,) = [r for r in fake.find("POST", r"/services$") if r.query.get("serviceId") == service_id]
    return request.body


def test_first_deploy_creates_everything_in_dependency_order(fake, resolved, clients):
    result = deploy(resolved, clients)

    # Sources staged, then built, then the services rolled out, then who may call them, then delivery and IAP.
    order = [first(fake, "POST", r"^/upload/storage/v1/b/my-project-id-ltm-sources/o$"),
             first(fake, "POST", rf"/locations/{REGION}/builds$"),
             first(fake, "POST", rf"/locations/{REGION}/services$"),
             first(fake, "POST", r"/services/ltm-ingest:setIamPolicy$"),
             first(fake, "PATCH", r"/subscriptions/ltm-events-ingest$"),
             first(fake, "POST", r"/iap_web/cloud_run-us-central1/services/ltm-api:setIamPolicy$")]
    assert order == sorted(order)
    assert first(fake, "POST", r"/services/ltm-api:setIamPolicy$") < order[-1]

    # Two builds, each a docker build of its own Dockerfile from the repository layout, pushed to the registry.
    builds = {b["tags"][1]: b for b in fake.api(CloudBuildApi).builds}
    for component, directory in (("api", "api_service"), ("ingest", "ingest_fn")):
        step = builds[component]["steps"][0]
        assert step["args"][:3] == ["build", "-f", f"{directory}/Dockerfile"] and step["args"][-1] == "."
        image = step["args"][4]
        assert image.startswith(f"{REGION}-docker.pkg.dev/{PROJECT}/ltm/ltm-{component}:src-")
        assert builds[component]["images"] == [image]
        assert builds[component]["source"]["storageSource"]["object"].startswith(f"sources/{component}-")
        # Run as the builder account provision made, never Cloud Build's default one; with such an account the
        # build must say where its log goes: the staging bucket only, where deploy reads it back.
        assert builds[component]["serviceAccount"] == (
            f"projects/{PROJECT}/serviceAccounts/{BUILDER_SA.split(':', 1)[1]}")
        assert builds[component]["logsBucket"] == f"gs://{STAGING_BUCKET}/cloudbuild-logs"
        assert builds[component]["options"]["logging"] in ("GCS_ONLY", 2)

    # The API: IAP on, 2Gi, 1 CPU, at least one instance, port 8000, its own account, the Cloud Run IAP audience.
    api = _created(fake, "ltm-api")
    container = api["template"]["containers"][0]
    assert api["iapEnabled"] is True
    assert container["resources"]["limits"] == {"memory": "2Gi", "cpu": "1"}
    assert api["template"]["scaling"] == {"minInstanceCount": 1, "maxInstanceCount": 10}
    assert container["ports"] == [{"containerPort": 8000}]
    assert api["template"]["serviceAccount"] == f"ltm-api@{PROJECT}.iam.gserviceaccount.com"
    assert env_of(api) == {"LTM_PROJECT": PROJECT, "LTM_DATASET": "ltm", "LTM_TABLE": "events",
                           "LTM_MAX_BYTES_BILLED": "10000000000",
                           "LTM_IAP_AUDIENCE": f"/projects/{NUMBER}/locations/{REGION}/services/ltm-api"}
    assert not api.get("invokerIamDisabled")

    # The ingest service: internal ingress only, no IAP, bounded concurrency and instances from the config.
    ingest = _created(fake, "ltm-ingest")
    assert ingest["ingress"] in (2, "INGRESS_TRAFFIC_INTERNAL_ONLY")
    assert not ingest.get("iapEnabled")
    assert ingest["template"]["maxInstanceRequestConcurrency"] == 40
    assert ingest["template"]["scaling"]["maxInstanceCount"] == 7
    assert ingest["template"]["serviceAccount"] == f"ltm-ingest@{PROJECT}.iam.gserviceaccount.com"
    assert env_of(ingest) == {"LTM_PROJECT": PROJECT, "LTM_DATASET": "ltm", "LTM_TABLE": "events",
                              "LTM_DLQ_TOPIC": "ltm-events-dlq", "THREADS": "40"}

    # Exactly one invoker per service, and nothing broader (no allUsers, no other roles).
    assert run_policies(fake) == {
        INGEST_SERVICE: [{"role": "roles/run.invoker", "members": [INVOKER_SA]}],
        API_SERVICE: [{"role": "roles/run.invoker", "members": [IAP_AGENT]}],
    }

    # Push with an OIDC token of the invoker, whose audience is the ingest URL; the dead-letter policy stays.
    urls = {o.component: o.url for o in result.components}
    sub = fake.api(PubSubApi).subscriptions[INGEST_SUB]
    assert sub["pushConfig"] == {"pushEndpoint": urls["ingest"], "oidcToken": {
        "serviceAccountEmail": INVOKER_SA.split(":", 1)[1], "audience": urls["ingest"]}}
    assert sub["deadLetterPolicy"]["maxDeliveryAttempts"] == 5

    # The configured members may pass IAP, and only they.
    iap_policy = fake.api(IapApi).policies.policies[API_IAP_RESOURCE]
    assert iap_policy["bindings"] == [{"role": ACCESSOR, "members": list(IAP_MEMBERS)}]

    # The URLs and revisions come back to the caller.
    assert {o.component: o.action for o in result.components} == {"ingest": "created", "api": "created"}
    running = fake.api(CloudRunApi).services
    assert urls == {"ingest": running[INGEST_SERVICE]["uri"], "api": running[API_SERVICE]["uri"]}


def test_a_second_deploy_sends_no_mutating_request(fake, resolved, clients):
    deploy(resolved, clients)
    fake.clear_requests()

    result = deploy(resolved, clients)

    assert fake.mutating_requests() == []
    assert {o.action for o in result.components} == {"unchanged"}
    assert not result.changed


def test_a_changed_file_under_api_service_redeploys_only_the_api(fake, resolved, clients):
    deploy(resolved, clients)
    routes = resolved.root / "api_service" / "routes.py"
    routes.write_text(routes.read_text() + "\n# a change\n")
    fake.clear_requests()

    result = deploy(resolved, clients)

    changed = [(r.method, r.path) for r in fake.mutating_requests()]
    assert {o.component: o.action for o in result.components} == {"ingest": "unchanged", "api": "updated"}
    assert [b["tags"][1] for b in fake.api(CloudBuildApi).builds[2:]] == ["api"]
    assert ("PATCH", f"/v2/{API_SERVICE}") in changed
    assert not [c for c in changed if "ingest" in c[1]]
    # A second revision, labelled with the new source hash.
    api = fake.api(CloudRunApi).services[API_SERVICE]
    assert api["latestReadyRevision"].endswith(result.components[1].revision)
    assert "-00002-" in result.components[1].revision
    assert api["template"]["labels"]["ltm-source-hash"] == result.components[1].source_hash


def test_only_settings_changed_updates_the_service_without_a_build(fake, resolved, clients, config_path):
    deploy(resolved, clients)
    from ltmctl import config

    config_path.write_text(config_path.read_text().replace("max_instances: 7", "max_instances: 9"))
    fake.clear_requests()

    deploy(config.load(config_path, "dev"), clients)

    assert fake.find("POST", r"/builds$") == [] and fake.find("POST", r"^/upload/") == []
    (update,) = fake.find("PATCH", r"/services/")
    assert update.path.endswith("/ltm-ingest")
    assert update.body["template"]["scaling"]["maxInstanceCount"] == 9


def test_a_changed_concurrency_reaches_cloud_run_and_the_function_s_threads(fake, resolved, clients, config_path):
    # Cloud Run sends up to the concurrency; functions-framework serves THREADS at once: they must move together.
    deploy(resolved, clients)
    from ltmctl import config

    config_path.write_text(config_path.read_text().replace("concurrency: 40", "concurrency: 120"))
    fake.clear_requests()

    deploy(config.load(config_path, "dev"), clients)

    (update,) = fake.find("PATCH", r"/services/")
    assert update.path.endswith("/ltm-ingest")
    assert update.body["template"]["maxInstanceRequestConcurrency"] == 120
    assert env_of(update.body)["THREADS"] == "120"
    running = fake.api(CloudRunApi).services[INGEST_SERVICE]
    assert running["template"]["maxInstanceRequestConcurrency"] == 120 and env_of(running)["THREADS"] == "120"


def test_a_member_taken_out_of_iap_members_loses_access_and_nothing_else_changes(fake, resolved, clients,
                                                                                  config_path):
    deploy(resolved, clients)
    resource = API_IAP_RESOURCE
    # Someone else's intent on the same resource: another role, and a conditional accessor binding.
    policy = fake.api(IapApi).policies.get(resource)
    others = [{"role": "roles/iap.admin", "members": ["user:ops@example.com"]},
              {"role": ACCESSOR, "members": ["user:temp@example.com"],
               "condition": {"title": "temporary", "expression": "request.time < timestamp('2027-01-01T00:00:00Z')"}}]
    fake.api(IapApi).policies.set(resource, {**policy, "bindings": policy["bindings"] + others})
    from ltmctl import config

    config_path.write_text(config_path.read_text().replace(f"{IAP_MEMBERS[0]}, ", ""))
    result = deploy(config.load(config_path, "dev"), clients)

    bindings = fake.api(IapApi).policies.policies[resource]["bindings"]
    assert [b for b in bindings if b not in others] == [{"role": ACCESSOR, "members": [IAP_MEMBERS[1]]}]
    assert [b for b in bindings if b in others] == others
    assert any(IAP_MEMBERS[0] in line and "revoked" in line for line in result.access)
    # Config and policy agree again: the next deploy sends nothing.
    fake.clear_requests()
    deploy(config.load(config_path, "dev"), clients)
    assert fake.mutating_requests() == []


def test_force_rebuilds_and_rolls_out_what_is_unchanged(fake, resolved, clients):
    deploy(resolved, clients)
    fake.clear_requests()

    result = deploy(resolved, clients, components=("api",), force=True)

    assert [b["tags"][1] for b in fake.api(CloudBuildApi).builds[2:]] == ["api"]
    assert [o.action for o in result.components] == ["updated"]


def test_an_image_given_is_deployed_without_building(fake, resolved, clients):
    image = f"{REGION}-docker.pkg.dev/{PROJECT}/ltm/ltm-api:ci-123"

    result = deploy(resolved, clients, components=("api",), images={"api": image})

    assert fake.find("POST", r"/builds$") == [] and fake.find("POST", r"^/upload/") == []
    assert _created(fake, "ltm-api")["template"]["containers"][0]["image"] == image
    assert [o.image for o in result.components] == [image]
    # The same image again is no change; another one is an update.
    fake.clear_requests()
    deploy(resolved, clients, components=("api",), images={"api": image})
    assert fake.mutating_requests() == []
    deploy(resolved, clients, components=("api",), images={"api": image.replace("ci-123", "ci-124")})
    assert len(fake.find("PATCH", r"/services/ltm-api$")) == 1


def test_build_log_lines_stream_while_the_build_runs(fake, resolved, clients):
    from ltmctl.deploy.progress import Recorder

    progress = Recorder()
    deploy(resolved, clients, components=("api",), progress=progress)

    lines = [line for component, line in progress.lines if component == "api"]
    assert "FETCHSOURCE" in lines and lines[-1] == "DONE"
    assert any("build -f api_service/Dockerfile" in line for line in lines)
    assert any("building" in s for s in progress.steps) and any("success" in s for s in progress.steps)


def test_a_build_as_a_service_account_without_a_logs_choice_is_refused_as_google_does(fake, resolved, clients,
                                                                                     config_path):
    from google.api_core.exceptions import BadRequest, InvalidArgument

    from ltmctl.deploy import build as builds
    from ltmctl.deploy.package import package
    from ltmctl.deploy.target import target_for

    target = target_for(resolved, int(NUMBER))
    pkg = package("api", config_path.parent.parent, "api_service")
    request = builds.build_request(PROJECT, REGION, STAGING_BUCKET, pkg, "api_service", "img", target.builder)
    del request["logs_bucket"], request["options"]
    with pytest.raises((BadRequest, InvalidArgument), match="logs_bucket"):
        builds.start(clients.cloud_build, PROJECT, REGION, "api", request)
