"""Pub/Sub API v1 (REST): topics, subscriptions, the IAM policy of each, and publishing (messages kept per topic,
with the ids and publish times Pub/Sub gives them).

A subscription expires as Pub/Sub's do: without `expirationPolicy` it gets the default, a ttl of 31 days; an empty
`expirationPolicy` never expires; one idle (no create, update or delivery change) longer than its ttl on the fake's
clock (`FakeGcp.advance`) is deleted.

A BigQuery subscription is checked when it is created or updated, as Pub/Sub does: the table exists, the identity
that writes (`serviceAccountEmail`, else Pub/Sub's service agent) may write to it, the metadata columns
`writeMetadata` fills are there, and push and BigQuery delivery are not both set.
"""

from __future__ import annotations

from typing import Any

from ltmctl.gcp.fake.server import Api, ApiError, PolicyStore, Request, already_exists, invalid, not_found

_SNAKE = {"ack_deadline_seconds": "ackDeadlineSeconds", "push_config": "pushConfig",
          "dead_letter_policy": "deadLetterPolicy", "retry_policy": "retryPolicy",
          "message_retention_duration": "messageRetentionDuration", "bigquery_config": "bigqueryConfig",
          "expiration_policy": "expirationPolicy", "message_storage_policy": "messageStoragePolicy"}


# What write_metadata writes, and the column types Pub/Sub accepts for each.
DEFAULT_EXPIRATION = {"ttl": "2678400s"}  # 31 days
_METADATA_COLUMNS = {"subscription_name": ("STRING",), "message_id": ("STRING",), "publish_time": ("TIMESTAMP",),
                     "attributes": ("STRING", "JSON")}


def _mask(value: Any) -> list[str]:
    paths = value.get("paths", []) if isinstance(value, dict) else str(value or "").split(",")
    return [_SNAKE.get(p.strip(), p.strip()) for p in paths if p.strip()]


class PubSubApi(Api):
    discovery = ("pubsub.v1",)
    service = "pubsub.googleapis.com"
    title = "Cloud Pub/Sub API"

    def __init__(self, fake) -> None:
        super().__init__(fake)
        self.topics: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.active: dict[str, float] = {}  # subscription -> last activity on the fake's clock
        self.policies = PolicyStore(fake)
        self.published: dict[str, list[dict[str, Any]]] = {}  # topic -> PubsubMessage JSON, as stored
        # subscription -> ackId -> [message, leased]: what a pull subscription holds, from its creation on (a push or
        # BigQuery subscription is delivered by the test that plays Pub/Sub's part, not from here).
        self.backlog: dict[str, dict[str, list[Any]]] = {}

    def routes(self):
        t = "/v1/projects/{project}/topics"
        s = "/v1/projects/{project}/subscriptions"
        return [
            ("GET", t, self.list_topics),
            ("PUT", t + "/{topic}", self.create_topic),
            ("GET", t + "/{topic}", self.get_topic),
            ("PATCH", t + "/{topic}", self.update_topic),
            ("DELETE", t + "/{topic}", self.delete_topic),
            ("GET", t + "/{topic}/subscriptions", self.topic_subscriptions),
            ("GET", t + "/{topic}:getIamPolicy", self.get_topic_policy),
            ("POST", t + "/{topic}:setIamPolicy", self.set_topic_policy),
            ("POST", t + "/{topic}:publish", self.publish),
            ("GET", s, self.list_subscriptions),
            ("PUT", s + "/{sub}", self.create_subscription),
            ("GET", s + "/{sub}", self.get_subscription),
            ("PATCH", s + "/{sub}", self.update_subscription),
            ("DELETE", s + "/{sub}", self.delete_subscription),
            ("POST", s + "/{sub}:modifyPushConfig", self.modify_push_config),
            ("POST", s + "/{sub}:pull", self.pull),
            ("POST", s + "/{sub}:acknowledge", self.acknowledge),
            ("POST", s + "/{sub}:modifyAckDeadline", self.modify_ack_deadline),
            ("GET", s + "/{sub}:getIamPolicy", self.get_subscription_policy),
            ("POST", s + "/{sub}:setIamPolicy", self.set_subscription_policy),
        ]

    # --- topics ----------------------------------------------------------------------------------------------

    def _topic(self, project: str, topic: str) -> str:
        name = f"projects/{self.fake.project_id(project)}/topics/{topic}"
        if name not in self.topics:
            raise not_found(topic)
        return name

    def list_topics(self, req: Request, project: str):
        prefix = f"projects/{self.fake.project_id(project)}/topics/"
        return {"topics": [t for n, t in sorted(self.topics.items()) if n.startswith(prefix)]}

    def create_topic(self, req: Request, project: str, topic: str):
        name = f"projects/{self.fake.project_id(project)}/topics/{topic}"
        if name in self.topics:
            raise already_exists(name)
        self.topics[name] = {**(req.data or {}), "name": name, "state": "ACTIVE"}
        return self.topics[name]

    def get_topic(self, req: Request, project: str, topic: str):
        return self.topics[self._topic(project, topic)]

    def update_topic(self, req: Request, project: str, topic: str):
        name = self._topic(project, topic)
        body = req.data or {}
        given = body.get("topic") or {}
        for key in _mask(body.get("updateMask")):
            if key in given:
                self.topics[name][key] = given[key]
            else:
                self.topics[name].pop(key, None)
        return self.topics[name]

    def delete_topic(self, req: Request, project: str, topic: str):
        name = self._topic(project, topic)
        del self.topics[name]
        self.policies.drop(name)
        for sub in self.subscriptions.values():
            if sub["topic"] == name:
                sub["topic"] = "_deleted-topic_"
        return {}

    def topic_subscriptions(self, req: Request, project: str, topic: str):
        name = self._topic(project, topic)
        return {"subscriptions": sorted(n for n, s in self.subscriptions.items() if s["topic"] == name)}

    def get_topic_policy(self, req: Request, project: str, topic: str):
        return self.policies.get(self._topic(project, topic))

    def set_topic_policy(self, req: Request, project: str, topic: str):
        return self.policies.set(self._topic(project, topic), (req.data or {}).get("policy", {}))

    def publish(self, req: Request, project: str, topic: str):
        """Pub/Sub refuses a batch with a message that has neither data nor attributes, or more than 1000."""
        name = self._topic(project, topic)
        messages = (req.data or {}).get("messages") or []
        if not messages:
            raise invalid("The request contains no messages.")
        if len(messages) > 1000:
            raise invalid(f"The value for message_count is too large. You passed {len(messages)} in the request, "
                          "but the maximum value is 1000.")
        for message in messages:
            if not message.get("data") and not message.get("attributes"):
                raise invalid("Some messages are empty. Each message must contain non-empty data, or at least one "
                              "attribute.")
        import datetime

        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        ids = []
        for message in messages:
            ids.append(str(self.fake.next_id()))
            stored = {**message, "messageId": ids[-1], "publishTime": now}
            self.published.setdefault(name, []).append(stored)
            for sub_name, sub in self.subscriptions.items():
                if sub.get("topic") == name:
                    self.backlog.setdefault(sub_name, {})[f"ack-{self.fake.next_id()}"] = [stored, False]
        return {"messageIds": ids}

    # --- subscriptions ---------------------------------------------------------------------------------------

    def _expire(self) -> None:
        """Delete every subscription idle longer than its expiration ttl, as Pub/Sub does."""
        for name, sub in list(self.subscriptions.items()):
            ttl = (sub.get("expirationPolicy") or {}).get("ttl")
            if ttl and self.fake.clock - self.active.get(name, 0.0) > float(ttl.rstrip("s")):
                del self.subscriptions[name]
                self.active.pop(name, None)
                self.policies.drop(name)

    def _touch(self, name: str) -> None:
        self.active[name] = self.fake.clock

    def _sub(self, project: str, sub: str) -> str:
        self._expire()
        name = f"projects/{self.fake.project_id(project)}/subscriptions/{sub}"
        if name not in self.subscriptions:
            raise not_found(sub)
        return name

    def _check_topics(self, body: dict[str, Any]) -> None:
        for ref in (body.get("topic"), (body.get("deadLetterPolicy") or {}).get("deadLetterTopic")):
            if ref and ref not in self.topics:
                raise not_found(ref.rsplit("/", 1)[-1])

    def _check_delivery(self, sub: dict[str, Any]) -> None:
        config = sub.get("bigqueryConfig") or {}
        if not config.get("table"):
            return
        if (sub.get("pushConfig") or {}).get("pushEndpoint"):
            raise invalid("A subscription can have only one delivery type: push_config and bigquery_config are "
                          "both set.")
        if config.get("useTopicSchema") and config.get("useTableSchema"):
            raise invalid("use_topic_schema and use_table_schema cannot be enabled at the same time.")
        from ltmctl.gcp.fake.bigquery import BigQueryApi

        bigquery = self.fake.api(BigQueryApi)
        table = bigquery.table(config["table"])
        if table is None:
            raise not_found(config["table"])
        writer = config.get("serviceAccountEmail") or \
            f"service-{self.fake.project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"
        if not bigquery.can_write(table, f"serviceAccount:{writer}"):
            raise ApiError(400, "FAILED_PRECONDITION", f"The service account {writer} does not have permission to "
                                                       f"write to the BigQuery table {config['table']}.")
        columns = {f["name"]: f["type"] for f in (table.get("schema") or {}).get("fields", [])}
        wanted = dict(_METADATA_COLUMNS) if config.get("writeMetadata") else {}
        if not (config.get("useTableSchema") or config.get("useTopicSchema")):
            wanted["data"] = ("BYTES", "STRING", "JSON")
        wrong = [n for n, types in wanted.items() if columns.get(n) not in types]
        if wrong:
            raise invalid(f"Incompatible table schema for {config['table']}: missing or mistyped column(s) "
                          f"{', '.join(wrong)}.")

    def list_subscriptions(self, req: Request, project: str):
        self._expire()
        prefix = f"projects/{self.fake.project_id(project)}/subscriptions/"
        return {"subscriptions": [s for n, s in sorted(self.subscriptions.items()) if n.startswith(prefix)]}

    def create_subscription(self, req: Request, project: str, sub: str):
        self._expire()
        name = f"projects/{self.fake.project_id(project)}/subscriptions/{sub}"
        if name in self.subscriptions:
            raise already_exists(name)
        body = dict(req.data or {})
        if not body.get("topic"):
            raise invalid("topic is required.")
        self._check_topics(body)
        self._check_delivery(body)
        # Defaults as Pub/Sub fills them in; a retry policy is only present when one was given.
        self.subscriptions[name] = {
            "ackDeadlineSeconds": 10, "messageRetentionDuration": "604800s",
            "expirationPolicy": dict(DEFAULT_EXPIRATION), "pushConfig": {},
            **body, "name": name, "state": "ACTIVE",
        }
        self._touch(name)
        return self.subscriptions[name]

    def get_subscription(self, req: Request, project: str, sub: str):
        return self.subscriptions[self._sub(project, sub)]

    def update_subscription(self, req: Request, project: str, sub: str):
        name = self._sub(project, sub)
        body = req.data or {}
        given = body.get("subscription") or {}
        paths = _mask(body.get("updateMask"))
        if not paths:
            raise invalid("update_mask must name at least one field.")
        self._check_topics({k: v for k, v in given.items() if k == "deadLetterPolicy"})
        updated = dict(self.subscriptions[name])
        for key in paths:
            if key in ("name", "topic"):
                raise invalid(f"Field {key} cannot be updated.")
            if key == "expirationPolicy":  # {} is a value here: never expire; absent, the default again
                updated[key] = given[key] if key in given else dict(DEFAULT_EXPIRATION)
            elif given.get(key) not in (None, {}):
                updated[key] = given[key]
            elif key == "pushConfig":
                updated[key] = {}
            else:
                updated.pop(key, None)
        self._check_delivery(updated)
        self.subscriptions[name] = updated
        self._touch(name)
        return updated

    def delete_subscription(self, req: Request, project: str, sub: str):
        name = self._sub(project, sub)
        del self.subscriptions[name]
        self.backlog.pop(name, None)
        self.active.pop(name, None)
        self.policies.drop(name)
        return {}

    def pull(self, req: Request, project: str, sub: str):
        """Up to maxMessages messages not leased to anyone, each leased until acknowledged or released (the fake
        has no ack-deadline clock: a lease ends by acknowledge or modifyAckDeadline 0). Empty when none."""
        name = self._sub(project, sub)
        wanted = int((req.data or {}).get("maxMessages") or 0)
        if wanted <= 0:
            raise invalid("max_messages must be a positive integer.")
        out = []
        for ack_id, entry in self.backlog.get(name, {}).items():
            if len(out) == wanted:
                break
            if not entry[1]:
                entry[1] = True
                out.append({"ackId": ack_id, "message": entry[0], "deliveryAttempt": 1})
        self._touch(name)
        return {"receivedMessages": out} if out else {}

    def _leases(self, req: Request, project: str, sub: str) -> tuple[dict[str, list[Any]], list[str]]:
        name = self._sub(project, sub)
        ack_ids = (req.data or {}).get("ackIds") or []
        if not ack_ids:
            raise invalid("No ack ids specified.")
        return self.backlog.get(name, {}), ack_ids

    def acknowledge(self, req: Request, project: str, sub: str):
        held, ack_ids = self._leases(req, project, sub)
        for ack_id in ack_ids:
            held.pop(ack_id, None)  # an unknown or expired ack id is ignored, as Pub/Sub does
        return {}

    def modify_ack_deadline(self, req: Request, project: str, sub: str):
        held, ack_ids = self._leases(req, project, sub)
        if int((req.data or {}).get("ackDeadlineSeconds") or 0) == 0:
            for ack_id in ack_ids:
                if ack_id in held:
                    held[ack_id][1] = False
        return {}

    def modify_push_config(self, req: Request, project: str, sub: str):
        name = self._sub(project, sub)
        self.subscriptions[name]["pushConfig"] = (req.data or {}).get("pushConfig") or {}
        self._touch(name)
        return {}

    def get_subscription_policy(self, req: Request, project: str, sub: str):
        return self.policies.get(self._sub(project, sub))

    def set_subscription_policy(self, req: Request, project: str, sub: str):
        return self.policies.set(self._sub(project, sub), (req.data or {}).get("policy", {}))
