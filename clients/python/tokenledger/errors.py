"""Typed exceptions: one class per wire error code, plus transport failures.

Every server error is a ``LedgerError`` subclass named after its code (``BudgetExceeded`` for
``budget_exceeded``); ``code``, ``message`` and ``details`` carry what the server said. Transport
failures (``ConnectionFailed``, ``ConnectionClosed``, ``Timeout``) are ``TransportError``s.
"""

from ._generated.tokenledger.v1 import ledger_pb2 as pb


class TokenLedgerError(Exception):
    """Base class of everything this client raises."""

    retryable = False


class TransportError(TokenLedgerError):
    """The call may not have reached the server, or its reply was lost. Safe to retry with the
    same request id."""

    retryable = True


class ConnectionFailed(TransportError):
    pass


class ConnectionClosed(TransportError):
    pass


class Timeout(TransportError):
    pass


class ProtocolError(TokenLedgerError):
    """The server sent something that is not a valid reply."""


class LedgerError(TokenLedgerError):
    """The server answered with an error. ``details`` is a dict for budget, plan, balance, limit,
    owner and quota errors (e.g. ``{"remaining": 3, "cap": 10, "resets_at_ms": ...}``), else None."""

    code = "unspecified"

    def __init__(self, message, details=None, wire_code=0):
        super().__init__(f"{self.code}: {message}")
        self.message = message
        self.details = details
        self.wire_code = wire_code


class InvalidArgument(LedgerError):
    code = "invalid_argument"


class Unauthenticated(LedgerError):
    code = "unauthenticated"


class PermissionDenied(LedgerError):
    code = "permission_denied"


class NotFound(LedgerError):
    code = "not_found"


class AlreadyExists(LedgerError):
    code = "already_exists"


class InsufficientBalance(LedgerError):
    code = "insufficient_balance"


class BudgetExceeded(LedgerError):
    code = "budget_exceeded"


class PlanLimitReached(LedgerError):
    code = "plan_limit_reached"


class AlreadyCommitted(LedgerError):
    code = "already_committed"


class AlreadyReleased(LedgerError):
    code = "already_released"


class Expired(LedgerError):
    code = "expired"


class IdempotencyConflict(LedgerError):
    code = "idempotency_conflict"


class LimitExceeded(LedgerError):
    code = "limit_exceeded"


class Overloaded(LedgerError):
    code = "overloaded"
    retryable = True


class Unavailable(LedgerError):
    code = "unavailable"
    retryable = True


class WrongOwner(LedgerError):
    """Cluster mode: another node serves the tenant's shard. ``details`` holds ``shard``,
    ``address`` (host:port of its framed port) and ``epoch``: send the call there with the same
    request id."""

    code = "wrong_owner"


class QuotaExceeded(LedgerError):
    """A plan quota of the period cannot count the items. ``details`` holds ``feature``, ``used``,
    ``limit``, ``resets_at_ms`` and ``requested``."""

    code = "quota_exceeded"


_BY_WIRE_CODE = {
    pb.ERROR_CODE_INVALID_ARGUMENT: InvalidArgument,
    pb.ERROR_CODE_UNAUTHENTICATED: Unauthenticated,
    pb.ERROR_CODE_PERMISSION_DENIED: PermissionDenied,
    pb.ERROR_CODE_NOT_FOUND: NotFound,
    pb.ERROR_CODE_ALREADY_EXISTS: AlreadyExists,
    pb.ERROR_CODE_INSUFFICIENT_BALANCE: InsufficientBalance,
    pb.ERROR_CODE_BUDGET_EXCEEDED: BudgetExceeded,
    pb.ERROR_CODE_PLAN_LIMIT_REACHED: PlanLimitReached,
    pb.ERROR_CODE_ALREADY_COMMITTED: AlreadyCommitted,
    pb.ERROR_CODE_ALREADY_RELEASED: AlreadyReleased,
    pb.ERROR_CODE_EXPIRED: Expired,
    pb.ERROR_CODE_IDEMPOTENCY_CONFLICT: IdempotencyConflict,
    pb.ERROR_CODE_LIMIT_EXCEEDED: LimitExceeded,
    pb.ERROR_CODE_OVERLOADED: Overloaded,
    pb.ERROR_CODE_UNAVAILABLE: Unavailable,
    pb.ERROR_CODE_WRONG_OWNER: WrongOwner,
    pb.ERROR_CODE_QUOTA_EXCEEDED: QuotaExceeded,
}


def from_wire(error):
    """The exception for a wire ``Error`` message. An unknown code becomes ``Unavailable`` so that
    a newer server cannot break an older client."""
    cls = _BY_WIRE_CODE.get(error.code)
    which = error.WhichOneof("details")
    details = None
    if which is not None:
        part = getattr(error, which)
        details = {field.name: getattr(part, field.name) for field in part.DESCRIPTOR.fields}
        details.setdefault("kind", which)
    if cls is None:
        return Unavailable(f"unknown error code {error.code}: {error.message}", details, error.code)
    return cls(error.message, details, error.code)
