"""TokenLedger client for Python: ``Client`` and the typed errors of ``tokenledger.errors``."""

from .client import Client, Watch, new_request_id, shard_index, trace_parent
from .errors import *  # noqa: F401,F403 - the exception classes are part of the API
from ._generated.tokenledger.v1 import ledger_pb2 as pb

__all__ = ["Client", "Watch", "new_request_id", "shard_index", "trace_parent", "pb"]
