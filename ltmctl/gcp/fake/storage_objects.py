"""Cloud Storage objects: upload (multipart and media) and download, next to `storage.StorageApi`'s buckets.

What google-cloud-storage sends for objects up to 8 MiB (`blob.upload_from_string/filename/file` with a known
size) is one `POST /upload/storage/v1/b/{bucket}/o?uploadType=multipart` whose body is `multipart/related`: a JSON
metadata part, then the bytes. `blob.download_as_bytes()` without a prior reload asks for
`GET /download/storage/v1/b/{bucket}/o/{name}?alt=media`; after a reload it follows the object's `mediaLink`,
which points at the same route. Resumable uploads (objects over 8 MiB) are not served: deploy's archives are far
smaller.

Metadata lives in `StorageApi.objects[bucket][name]`, so listing and deleting there see uploaded objects; the bytes
live here, in `StorageObjectsApi.data`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import quote

from ltmctl.gcp.fake.server import Api, ApiError, Request, etag, invalid
from ltmctl.gcp.fake.storage import StorageApi

_NOW = "2024-01-01T00:00:00.000Z"


@dataclass
class Media:
    """An answer in bytes, not JSON: the fake's server writes `data` with `content_type` and `headers` as-is."""

    data: bytes
    content_type: str = "application/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)


def _crc32c(data: bytes) -> str:
    import google_crc32c

    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


class StorageObjectsApi(Api):
    discovery = ("storage.v1",)
    service = "storage.googleapis.com"
    title = "Cloud Storage API"
    legacy_errors = True

    def __init__(self, fake) -> None:
        super().__init__(fake)
        self.data: dict[tuple[str, str], bytes] = {}

    def routes(self):
        return [
            ("POST", "/upload/storage/v1/b/{bucket}/o", self.upload),
            ("GET", "/download/storage/v1/b/{bucket}/o/{name*}", self.download),
        ]

    @property
    def _buckets(self) -> StorageApi:
        return self.fake.api(StorageApi)

    def put(self, bucket: str, name: str, data: bytes, content_type: str = "application/octet-stream",
            metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        """Store an object as an upload would; other fakes (Cloud Build's logs) write through this too."""
        objects = self._buckets.objects.get(bucket)
        if objects is None:
            raise ApiError(404, "NOT_FOUND", "The specified bucket does not exist.")
        previous = objects.get(name)
        generation = str(int(previous["generation"]) + 1) if previous else str(1_700_000_000_000_000 +
                                                                            self.fake.next_id())
        quoted = quote(name, safe="")
        obj = {**(metadata or {}), "kind": "storage#object", "id": f"{bucket}/{name}/{generation}", "name": name,
               "bucket": bucket, "generation": generation, "metageneration": "1", "contentType": content_type,
               "size": str(len(data)), "md5Hash": base64.b64encode(hashlib.md5(data).digest()).decode(),
               "crc32c": _crc32c(data), "etag": etag(self.fake.next_id()), "storageClass": "STANDARD",
               "timeCreated": _NOW, "updated": _NOW,
               "selfLink": f"{self.fake.endpoint}/storage/v1/b/{bucket}/o/{quoted}",
               "mediaLink": f"{self.fake.endpoint}/download/storage/v1/b/{bucket}/o/{quoted}"
                            f"?generation={generation}&alt=media"}
        objects[name] = obj
        self.data[(bucket, name)] = data
        return obj

    def upload(self, req: Request, bucket: str):
        self._buckets.get(req, bucket)
        kind = req.query.get("uploadType", "")
        if kind == "multipart":
            metadata, data, content_type = self._multipart(req)
        elif kind == "media":
            metadata, data = {"name": req.query.get("name", "")}, req.raw
            content_type = req.headers.get("Content-Type") or "application/octet-stream"
        else:
            raise invalid(f"uploadType={kind or '(none)'} is not supported by the fake (use multipart or media).")
        name = metadata.pop("name", "") or req.query.get("name", "")
        if not name:
            raise invalid("Required: object name.")
        exists = name in self._buckets.objects[bucket]
        wanted = req.query.get("ifGenerationMatch")
        if wanted is not None and (wanted == "0" and exists or wanted != "0" and (
                not exists or self._buckets.objects[bucket][name]["generation"] != wanted)):
            raise ApiError(412, "FAILED_PRECONDITION", "At least one of the pre-conditions you specified did not "
                                                       "hold.", reason="conditionNotMet")
        metadata.pop("crc32c", None)
        metadata.pop("md5Hash", None)
        return self.put(bucket, name, data, metadata.pop("contentType", None) or content_type, metadata)

    @staticmethod
    def _multipart(req: Request) -> tuple[dict[str, Any], bytes, str]:
        content_type = next((v for k, v in req.headers.items() if k.lower() == "content-type"), "")
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + req.raw)
        parts = list(message.iter_parts()) if message.is_multipart() else []
        if len(parts) != 2:
            raise invalid("A multipart upload has exactly two parts: metadata, then media.")
        metadata = json.loads(parts[0].get_payload(decode=True) or b"{}")
        return metadata, parts[1].get_payload(decode=True) or b"", parts[1].get_content_type()

    def download(self, req: Request, bucket: str, name: str):
        obj = self._buckets.get_object(req, bucket, name)
        data = self.data.get((bucket, name), b"")
        return Media(data, obj.get("contentType", "application/octet-stream"),
                     {"x-goog-hash": f"crc32c={obj['crc32c']},md5={obj['md5Hash']}",
                      "x-goog-generation": obj["generation"], "x-goog-stored-content-length": str(len(data))})
