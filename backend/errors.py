"""Domain errors: what data access and use cases raise, each carrying the HTTP status it answers with.

`backend.api.errors` turns them into the API's JSON error shape; the pages render them as HTML with the same status."""

from __future__ import annotations

from typing import Any


class LookalikeError(Exception):
    """A refusal the caller can explain: a machine-readable `code`, a sentence, and fields that say more."""

    code = "error"
    status = 400

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra


class NotFound(LookalikeError):
    code = "not_found"
    status = 404


class DuplicateSku(LookalikeError):
    code = "duplicate_sku"
    status = 409

    def __init__(self, sku: str | None) -> None:
        super().__init__(f"a product with sku {sku!r} already exists", field="sku")


class InvalidInput(LookalikeError):
    """A value that passed the schema but not a rule across fields (min above max, too many photos)."""

    code = "invalid_field"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", field=field)


class ImageRejected(LookalikeError):
    """An uploaded photo refused by its checks; `kind` says why (file_too_large, unsupported_media_type, ...)."""

    STATUS_OF_KIND = {"file_too_large": 413, "unsupported_media_type": 415}

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = self.code = kind
        self.status = self.STATUS_OF_KIND.get(kind, 400)


class NotIndexed(LookalikeError):
    """A similar-items query on a product or photo that has no vector from the active model yet."""

    code = "not_indexed"
    status = 409


class DuplicatePhoto(LookalikeError):
    """DUPLICATES=reject: a photo is the same file as, or a near-copy of, a photo of another product."""

    code = "duplicate_photo"
    status = 409


class FeedUnreadable(LookalikeError):
    """A catalog feed that cannot be read at all (not a row of it: those are skipped one by one)."""

    code = "invalid_feed"
