"""One exception tree for the whole platform.

    ArsenaleError                 500, exit 1
    ├── InvalidInput              400, exit 2   (bad names, values, filters, paths)
    │   ├── InvalidFilter         400, exit 2
    │   └── UnprocessableInput    422, exit 2   (input breaking a model's contract)
    ├── NotFound                  404, exit 3
    ├── Conflict                  409, exit 4   (already exists, immutable value changed)
    ├── Unauthenticated           401, exit 5   (missing, malformed, expired or revoked token)
    ├── Forbidden                 403, exit 5   (unsafe load refused, tampered artifact, role too low)
    │   └── IntegrityError        403, exit 5
    ├── RateLimited               429, exit 6   (too many requests for this token: retry later)
    ├── BackendUnavailable        503, exit 6   (database or server unreachable)
    ├── WorkerCrashed             503, exit 6   (a model worker died holding the batch: retry)
    └── ModelFailed               500, exit 1   (the model raised on input that passed its contract)

Each error knows its HTTP status and CLI exit code, so the server and the CLI
map them in exactly one place. `to_dict`/`from_dict` let the HTTP client raise
the same class the embedded store would have raised.
"""

from __future__ import annotations

TYPE_CHECKING = False  # `typing` is not imported at run time: see arsenale/__init__.py
if TYPE_CHECKING:
    from typing import Any, ClassVar


class ArsenaleError(Exception):
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1
    code: ClassVar[str] = "INTERNAL_ERROR"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error_code": self.code, "message": self.message}
        if self.field:
            body["field"] = self.field
        return body

    @staticmethod
    def from_dict(body: dict[str, Any]) -> "ArsenaleError":
        cls = _BY_CODE.get(str(body.get("error_code")), ArsenaleError)
        return cls(str(body.get("message", "unknown error")), field=body.get("field"))


class InvalidInput(ArsenaleError):
    http_status = 400
    exit_code = 2
    code = "INVALID_PARAMETER_VALUE"


class InvalidFilter(InvalidInput):
    code = "INVALID_FILTER"


class UnprocessableInput(InvalidInput):
    """Well-formed input that breaks the model's contract (a missing column, a wrong type): HTTP 422."""

    http_status = 422
    code = "INVALID_INPUT_DATA"


class NotFound(ArsenaleError):
    http_status = 404
    exit_code = 3
    code = "RESOURCE_DOES_NOT_EXIST"


class Conflict(ArsenaleError):
    http_status = 409
    exit_code = 4
    code = "RESOURCE_ALREADY_EXISTS"


class Forbidden(ArsenaleError):
    http_status = 403
    exit_code = 5
    code = "PERMISSION_DENIED"


class IntegrityError(Forbidden):
    code = "INTEGRITY_ERROR"


class Unauthenticated(ArsenaleError):
    """No usable credentials: missing, malformed, unknown, expired or revoked."""

    http_status = 401
    exit_code = 5
    code = "UNAUTHENTICATED"


class RateLimited(ArsenaleError):
    http_status = 429
    exit_code = 6
    code = "RATE_LIMITED"


class BackendUnavailable(ArsenaleError):
    http_status = 503
    exit_code = 6
    code = "BACKEND_UNAVAILABLE"


class WorkerCrashed(ArsenaleError):
    """A model worker died while it held the batch; the caller may retry (HTTP 503, Retry-After)."""

    http_status = 503
    exit_code = 6
    code = "WORKER_CRASHED"


class ModelFailed(ArsenaleError):
    """The model itself raised on a batch that passed the contract (HTTP 500, the server keeps serving)."""

    http_status = 500
    code = "MODEL_FAILED"


_BY_CODE: dict[str, type[ArsenaleError]] = {
    c.code: c
    for c in (ArsenaleError, InvalidInput, InvalidFilter, UnprocessableInput, NotFound, Conflict, Forbidden,
              IntegrityError, Unauthenticated, RateLimited, BackendUnavailable, WorkerCrashed, ModelFailed)
}
