"""S3 URIs: parsing and formatting (``s3://bucket/key``; ``s3a://`` and ``s3n://`` accepted)."""

from __future__ import annotations

from dataclasses import dataclass

_SCHEMES = ("s3://", "s3a://", "s3n://")


@dataclass(frozen=True, slots=True)
class S3Path:
    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Path:
        for scheme in _SCHEMES:
            if uri.startswith(scheme):
                rest = uri[len(scheme) :]
                break
        else:
            raise ValueError(f"not an S3 URI: {uri!r} (expected s3://bucket/key)")
        bucket, _, key = rest.partition("/")
        if not bucket:
            raise ValueError(f"S3 URI {uri!r} has no bucket (expected s3://bucket/key)")
        return cls(bucket, key)

    @property
    def is_prefix(self) -> bool:
        return self.key == "" or self.key.endswith("/")

    def child(self, key: str) -> S3Path:
        return S3Path(self.bucket, key)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"
