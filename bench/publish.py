"""publish: `ltmctl publish --count 20000` on the local stack, against a `gcloud pubsub topics publish` loop
(100 messages) and against the bare google-cloud-pubsub client with default settings (20000 messages, one process).
Both rates are messages from the first publish to the last confirmed result; ltmctl generates, checks and
serialises its events inside that window (in publishing.workers_for() processes), the bare client's are ready.
Targets: ≥ 1000× the gcloud loop, ≥ 1× the bare client."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

from bench.common import local_stack, ltmctl_script, report

COUNT = 20_000
GCLOUD_LOOP = 100


def _bare_client(state, topic: str, payloads: list[bytes]) -> float:
    from ltmctl.clients import publisher_for_emulator

    publisher = publisher_for_emulator(state.pubsub_host)  # the client's default batch settings
    started = time.perf_counter()
    futures = [publisher.publish(topic, data) for data in payloads]
    for future in futures:
        future.result(timeout=120)
    elapsed = time.perf_counter() - started
    publisher.stop()
    return len(payloads) / elapsed


def _gcloud_loop(state, topic_name: str, payload: str) -> float:
    gcloud = shutil.which("gcloud")
    env = {**os.environ, "CLOUDSDK_API_ENDPOINT_OVERRIDES_PUBSUB": f"http://{state.pubsub_host}/",
           "CLOUDSDK_AUTH_DISABLE_CREDENTIALS": "true", "CLOUDSDK_CORE_PROJECT": state.project,
           "CLOUDSDK_CORE_DISABLE_PROMPTS": "1"}
    started = time.perf_counter()
    for _ in range(GCLOUD_LOOP):
        subprocess.run([gcloud, "pubsub", "topics", "publish", topic_name, f"--message={payload}"], env=env,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return GCLOUD_LOOP / (time.perf_counter() - started)


def run() -> dict:
    from ltmctl import publishing, synthetic

    with local_stack() as (resolved, state, clients):
        p = resolved.pipeline
        topic = f"projects/{state.project}/topics/{p.topic}"
        # No subscriber: every figure is publishing alone, not publishing while the ingest function works.
        clients.subscriber.delete_subscription(request={"subscription": f"projects/{state.project}/subscriptions/"
                                                                        f"{p.subscription}"})
        payloads = [json.dumps(e, separators=(",", ":")).encode() for e in synthetic.events(COUNT, seed=1)]
        bare = _bare_client(state, topic, payloads)
        started = time.perf_counter()
        result = subprocess.run([ltmctl_script(), "--config", str(resolved.path), "publish", "--count", str(COUNT),
                                 "--seed", "2", "-o", "json"], capture_output=True, text=True, check=True)
        wall = time.perf_counter() - started
        summary = json.loads(result.stdout)
        gcloud = _gcloud_loop(state, p.topic, payloads[0].decode())
    ours = summary["msgs_per_s"]
    vs_gcloud, vs_bare = ours / gcloud, ours / bare
    met = vs_gcloud >= 1000 and vs_bare >= 1
    return report("publish", [
        ("ltmctl publish msgs/s", float(ours)), ("ltmctl publish wall s (incl. start-up)", wall),
        ("ltmctl published", summary["published"]),
        ("ltmctl publishing processes", publishing.workers_for(COUNT)), ("bare client msgs/s", bare),
        ("gcloud loop msgs/s", gcloud), ("ltmctl / bare client", vs_bare),
    ], ratio_name="ltmctl / gcloud loop", ratio=vs_gcloud, target="≥ 1000 and ≥ 1 vs bare", met=met)


if __name__ == "__main__":
    run()
