"""Cloud Storage JSON API v1: buckets, and object metadata (listing and deleting).

Object upload (`POST /upload/storage/v1/b/{bucket}/o`, multipart or resumable) is left for the deploy step to
add: it stores objects in `StorageApi.objects[bucket][name]`, which listing and deleting here already read.
"""

from __future__ import annotations

from typing import Any

from ltmctl.gcp.fake.server import Api, ApiError, PolicyStore, Request, etag, invalid

_NOW = "2024-01-01T00:00:00.000Z"


class StorageApi(Api):
    discovery = ("storage.v1",)
    service = "storage.googleapis.com"
    title = "Cloud Storage API"
    legacy_errors = True

    def __init__(self, fake) -> None:
        super().__init__(fake)
        self.buckets: dict[str, dict[str, Any]] = {}
        self.objects: dict[str, dict[str, dict[str, Any]]] = {}  # bucket -> object name -> metadata
        self.policies = PolicyStore(fake)  # bucket name -> IAM policy
        # Bucket names are global: these exist in some other project, which the caller has no access to.
        self.foreign: set[str] = set()

    def routes(self):
        return [
            ("POST", "/storage/v1/b", self.create),
            ("GET", "/storage/v1/b", self.list),
            ("GET", "/storage/v1/b/{bucket}", self.get),
            ("PATCH", "/storage/v1/b/{bucket}", self.patch),
            ("PUT", "/storage/v1/b/{bucket}", self.patch),
            ("DELETE", "/storage/v1/b/{bucket}", self.delete),
            ("GET", "/storage/v1/b/{bucket}/iam", self.get_iam_policy),
            ("PUT", "/storage/v1/b/{bucket}/iam", self.set_iam_policy),
            ("GET", "/storage/v1/b/{bucket}/o", self.list_objects),
            ("GET", "/storage/v1/b/{bucket}/o/{name*}", self.get_object),
            ("DELETE", "/storage/v1/b/{bucket}/o/{name*}", self.delete_object),
        ]

    def _foreign(self, bucket: str, permission: str = "storage.buckets.get") -> None:
        if bucket in self.foreign:
            caller = self.fake.owner.split(":", 1)[-1]
            raise ApiError(403, "PERMISSION_DENIED",
                           f"{caller} does not have {permission} access to the Google Cloud Storage bucket. "
                           f"Permission '{permission}' denied on resource (or it may not exist).",
                           reason="forbidden")

    def _get(self, bucket: str) -> dict[str, Any]:
        self._foreign(bucket)
        if bucket not in self.buckets:
            raise ApiError(404, "NOT_FOUND", "The specified bucket does not exist.")
        return self.buckets[bucket]

    def create(self, req: Request):
        body = dict(req.data or {})
        name = body.get("name", "")
        if not name or len(name) > 63 or name != name.lower():
            raise invalid(f"Invalid bucket name: '{name}'")
        if name in self.foreign:
            raise ApiError(409, "ALREADY_EXISTS", "The requested bucket name is not available. The bucket namespace "
                                                  "is shared by all users of the system. Please select a different "
                                                  "name and try again.", reason="conflict")
        if name in self.buckets:
            raise ApiError(409, "ALREADY_EXISTS", "Your previous request to create the named bucket succeeded "
                                                  "and you already own it.", reason="conflict")
        pid = self.fake.project_id(req.query.get("project", self.fake.project))
        bucket = {"storageClass": "STANDARD", **body, "kind": "storage#bucket", "id": name, "name": name,
                  "selfLink": f"{self.fake.endpoint}/storage/v1/b/{name}",
                  "projectNumber": self.fake.projects[pid], "location": body.get("location", "US").upper(),
                  "locationType": "region" if "-" in body.get("location", "US") else "multi-region",
                  "metageneration": "1", "etag": etag(self.fake.next_id()), "timeCreated": _NOW, "updated": _NOW}
        self.buckets[name] = bucket
        self.objects[name] = {}
        # A new bucket's policy: the project's basic roles through the legacy bucket and object roles (the
        # "convenience values"), which is how a project owner reaches a bucket at all: roles/owner itself holds no
        # storage.buckets.getIamPolicy and no storage.objects.* (https://cloud.google.com/storage/docs/access-control/iam#convenience-values).
        owners = [f"projectEditor:{pid}", f"projectOwner:{pid}"]
        self.policies.policies[name] = {"version": 1, "etag": etag(self.fake.next_id()), "bindings": [
            {"role": "roles/storage.legacyBucketOwner", "members": owners},
            {"role": "roles/storage.legacyBucketReader", "members": [f"projectViewer:{pid}"]},
            {"role": "roles/storage.legacyObjectOwner", "members": owners},
            {"role": "roles/storage.legacyObjectReader", "members": [f"projectViewer:{pid}"]}]}
        return bucket

    def list(self, req: Request):
        return {"kind": "storage#buckets", "items": list(self.buckets.values())}

    def get(self, req: Request, bucket: str):
        return self._get(bucket)

    def patch(self, req: Request, bucket: str):
        current = self._get(bucket)
        for key, value in (req.data or {}).items():
            if key in ("name", "location", "id", "projectNumber"):
                continue
            if value is None:
                current.pop(key, None)
            else:
                current[key] = value
        current["metageneration"] = str(int(current["metageneration"]) + 1)
        current["etag"] = etag(self.fake.next_id())
        return current

    def delete(self, req: Request, bucket: str):
        self._get(bucket)
        if self.objects.get(bucket):
            raise ApiError(409, "FAILED_PRECONDITION", "The bucket you tried to delete is not empty.",
                           reason="conflict")
        del self.buckets[bucket]
        self.objects.pop(bucket, None)
        self.policies.drop(bucket)
        return 204, {}

    def _policy(self, bucket: str, policy: dict[str, Any]) -> dict[str, Any]:
        return {"kind": "storage#policy", "resourceId": f"projects/_/buckets/{bucket}", **policy}

    def get_iam_policy(self, req: Request, bucket: str):
        self._get(bucket)
        return self._policy(bucket, self.policies.get(bucket))

    def set_iam_policy(self, req: Request, bucket: str):
        self._get(bucket)
        body = {k: v for k, v in (req.data or {}).items() if k not in ("kind", "resourceId")}
        return self._policy(bucket, self.policies.set(bucket, body))

    def list_objects(self, req: Request, bucket: str):
        self._get(bucket)
        prefix = req.query.get("prefix", "")
        items = [o for n, o in sorted(self.objects[bucket].items()) if n.startswith(prefix)]
        return {"kind": "storage#objects", "items": items}

    def get_object(self, req: Request, bucket: str, name: str):
        self._get(bucket)
        if name not in self.objects[bucket]:
            raise ApiError(404, "NOT_FOUND", f"No such object: {bucket}/{name}")
        return self.objects[bucket][name]

    def delete_object(self, req: Request, bucket: str, name: str):
        self.get_object(req, bucket, name)
        del self.objects[bucket][name]
        return 204, {}
