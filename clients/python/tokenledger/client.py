"""A thread-safe TokenLedger client over TLS 1.3 with pipelining.

One connection carries many calls at once: each request gets a call id, a reader thread matches
replies (which may come in any order) to the waiting callers. Any number of threads may share one
``Client``. A call that fails for a retryable reason (transport failure, ``overloaded``,
``unavailable``) is sent again, on a new connection if needed, with the same request id, so the
ledger never applies it twice.
"""

import contextlib
import contextvars
import os
import queue
import socket
import ssl
import struct
import threading
import time
import uuid

from ._generated.tokenledger.v1 import ledger_pb2 as pb
from . import errors

FRAME_SIZE_MAX = 16 << 20

_trace_parent = contextvars.ContextVar("tokenledger_trace_parent", default=None)


@contextlib.contextmanager
def trace_parent(value):
    """Calls made inside the block (in this thread or asyncio task) carry ``value``, a W3C
    ``traceparent`` ("00-<32 hex trace id>-<16 hex span id>-<2 hex flags>"), in
    ``Request.trace_parent``: when ledgerd exports traces, each call's span is its child. With
    OpenTelemetry, pass the current span's context::

        with tokenledger.trace_parent(f"00-{ctx.trace_id:032x}-{ctx.span_id:016x}-01"):
            client.reserve("acme", "job-1", tokens=296)
    """
    if value is not None and not isinstance(value, str):
        raise TypeError("trace_parent must be a str or None")
    token = _trace_parent.set(value)
    try:
        yield
    finally:
        _trace_parent.reset(token)

GRANT_KINDS = {
    "plan": pb.GRANT_KIND_PLAN, "purchase": pb.GRANT_KIND_PURCHASE, "bonus": pb.GRANT_KIND_BONUS,
    "referral": pb.GRANT_KIND_REFERRAL, "promo": pb.GRANT_KIND_PROMO, "refund": pb.GRANT_KIND_REFUND,
    "adjustment": pb.GRANT_KIND_ADJUSTMENT,
}
GRANT_STATES = {"pending": pb.GRANT_STATE_PENDING, "active": pb.GRANT_STATE_ACTIVE, "expired": pb.GRANT_STATE_EXPIRED,
                "voided": pb.GRANT_STATE_VOIDED}
PERIODS = {"day": pb.PERIOD_UNIT_DAY, "week": pb.PERIOD_UNIT_WEEK, "month": pb.PERIOD_UNIT_MONTH}


def shard_index(tenant, shard_count):
    """The tenant's shard: FNV-1a 64 of the tenant id's UTF-8 bytes modulo ``shard_count`` (what the
    server places tenants by; docs/protocol.md, "ShardMap")."""
    value = 0xCBF29CE484222325
    for byte in tenant.encode("utf-8"):
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value % shard_count


def new_request_id():
    return str(uuid.uuid4())


class _Pending:
    __slots__ = ("event", "response", "error")

    def __init__(self):
        self.event = threading.Event()
        self.response = None
        self.error = None


class _Stream:
    """The replies of a watch: every Response with its call id, until a final one."""

    def __init__(self):
        self.replies = queue.Queue()

    def push(self, response):
        self.replies.put(response)
        which = response.WhichOneof("result")
        return which == "error" or (which == "watch" and response.watch.WhichOneof("update") == "ended")

    def fail(self, error):
        self.replies.put(error)


class _Connection:
    """One TLS socket and its reader thread."""

    def __init__(self, host, port, context, server_name, connect_timeout):
        raw = socket.create_connection((host, port), timeout=connect_timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock = context.wrap_socket(raw, server_hostname=server_name)
        except Exception:
            raw.close()
            raise
        self.sock.settimeout(None)
        self.write_lock = threading.Lock()
        self.lock = threading.Lock()
        self.pending = {}
        self.closed_reason = None
        self.reader = threading.Thread(target=self._read_loop, name="tokenledger-reader", daemon=True)
        self.reader.start()

    def send(self, call_id, payload):
        """Sends one request; its reply arrives in the returned ``_Pending``."""
        return self._send(call_id, payload, _Pending())

    def open_stream(self, call_id, payload):
        """Sends a watch; its replies arrive in the returned ``_Stream``."""
        return self._send(call_id, payload, _Stream())

    def _send(self, call_id, payload, waiter):
        with self.lock:
            if self.closed_reason is not None:
                raise errors.ConnectionClosed(self.closed_reason)
            self.pending[call_id] = waiter
        try:
            with self.write_lock:
                self.sock.sendall(struct.pack(">I", len(payload)) + payload)
        except OSError as error:
            self._fail_all(f"write failed: {error}")
        return waiter

    def forget(self, call_id):
        with self.lock:
            self.pending.pop(call_id, None)

    def _read_exact(self, count):
        chunks = []
        while count > 0:
            chunk = self.sock.recv(min(count, 1 << 16))
            if not chunk:
                raise EOFError("closed by the server")
            chunks.append(chunk)
            count -= len(chunk)
        return b"".join(chunks)

    def _read_loop(self):
        try:
            while True:
                (length,) = struct.unpack(">I", self._read_exact(4))
                if length == 0 or length > FRAME_SIZE_MAX:
                    raise errors.ProtocolError(f"a reply frame of {length} bytes")
                response = pb.Response()
                try:
                    response.ParseFromString(self._read_exact(length))
                except Exception as error:  # the protobuf runtime's DecodeError
                    raise errors.ProtocolError(f"a reply that is not a Response: {error}")
                with self.lock:
                    pending = self.pending.get(response.call_id)
                    if isinstance(pending, _Stream):
                        if pending.push(response):
                            del self.pending[response.call_id]
                        continue
                    self.pending.pop(response.call_id, None)
                if pending is not None:
                    pending.response = response
                    pending.event.set()
                elif response.call_id == 0 and response.WhichOneof("result") == "error":
                    # A refusal of the whole connection (unknown principal, bad frame).
                    self._fail_all(errors.from_wire(response.error))
                    return
        except errors.ProtocolError as error:
            self._fail_all(error)
        except (OSError, EOFError, ssl.SSLError, struct.error) as error:
            self._fail_all(f"{error}" or "closed")

    def _fail_all(self, reason):
        with self.lock:
            if self.closed_reason is None:
                self.closed_reason = str(reason)
            pending = list(self.pending.values())
            self.pending.clear()
        for entry in pending:
            error = reason if isinstance(reason, Exception) else errors.ConnectionClosed(str(reason))
            if isinstance(entry, _Stream):
                entry.fail(error)
                continue
            entry.error = error
            entry.event.set()
        # Wake the reader (its recv returns) without giving up the descriptor: closing it under a
        # blocked recv let the number be reused (by a pipe, a file) and the reader read from that.
        try:
            socket.socket.shutdown(self.sock, socket.SHUT_RDWR)
        except OSError:
            pass
        if threading.current_thread() is self.reader:
            self.sock.close()
        else:
            # The reader closes the socket on its way out; a reader that does not come back keeps
            # the descriptor rather than let another file take its number under it.
            self.reader.join(timeout=10)

    @property
    def alive(self):
        return self.closed_reason is None

    def close(self):
        self._fail_all("closed by the client")


class Client:
    """Connects lazily on the first call; use as a context manager or call ``close()``.

    ``data_dir`` picks ledgerd's development material (``<data_dir>/tls/ca.pem``, ``admin.pem``,
    ``admin-key.pem``); ``ca``, ``cert``, ``key`` override it.
    """

    def __init__(self, host="127.0.0.1", port=7443, *, data_dir="./ledger-data", ca=None, cert=None, key=None,
                 server_name=None, timeout=30.0, connect_timeout=10.0, attempts=3, backoff=0.05, servers=(),
                 redirects_max=4):
        tls = os.path.join(data_dir, "tls")
        self.host, self.port = host, port
        # Cluster mode (docs/cluster.md): a connection per node and the shard map (which node
        # serves each shard; from ``shard_map()``, fetched after the first ``wrong_owner``, and
        # from each ``wrong_owner``). A call goes to its tenant's node; one answered ``wrong_owner``
        # goes to the node it names (same request id); a retry after a failure goes to the next
        # of host:port and ``servers`` ("host:port" strings).
        self._addresses = [f"{host}:{port}"] + [a for a in servers if a != f"{host}:{port}"]
        self.redirects_max = redirects_max
        self._connections = {}
        self._shard_count = None
        self._shard_owners = {}
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.attempts, self.backoff = max(1, attempts), backoff
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.minimum_version = ssl.TLSVersion.TLSv1_3
        context.load_verify_locations(ca or os.path.join(tls, "ca.pem"))
        context.load_cert_chain(cert or os.path.join(tls, "admin.pem"), key or os.path.join(tls, "admin-key.pem"))
        self._context = context
        self._server_name = server_name or host
        self._lock = threading.Lock()
        self._next_call_id = 0
        self._closed = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        with self._lock:
            self._closed = True
            connections = list(self._connections.values())
            self._connections = {}
        for connection in connections:
            connection.close()

    def _live(self, address=None):
        """The open connection to the node at ``address`` (None: host:port), or a new one."""
        address = address or self._addresses[0]
        with self._lock:
            if self._closed:
                raise errors.ConnectionClosed("the client was closed")
            connection = self._connections.get(address)
            if connection is not None and connection.alive:
                return connection
            if address == self._addresses[0]:
                host, port, server_name = self.host, self.port, self._server_name
            else:
                host, _, port = address.rpartition(":")
                host = host.strip("[]")
                if not host or not port.isdigit():
                    raise errors.ConnectionFailed(f"{address} is not host:port")
                port, server_name = int(port), self._server_name if self._server_name != self.host else host
            connection = self._connections[address] = self._connect(host, port, server_name)
            return connection

    # Cluster mode: the shard map ---------------------------------------------------------------

    def _address_for(self, tenant):
        """The node to send ``tenant``'s calls to: its shard's node if the map names one."""
        with self._lock:
            if tenant and self._shard_count:
                return self._shard_owners.get(shard_index(tenant, self._shard_count), self._addresses[0])
        return self._addresses[0]

    def _learn(self, error):
        """A ``WrongOwner`` names its shard's node: into the map (with the whole map, fetched from that
        node, the first time). Returns the node, or None."""
        details = error.details or {}
        owner = details.get("address", "")
        if not isinstance(error, errors.WrongOwner) or not owner:
            return None
        with self._lock:
            self._shard_owners[details.get("shard", 0)] = owner
            fetch = self._shard_count is None
        if fetch:
            try:
                self._install(self._call_once("shard_map", pb.ShardMapRequest(), owner).shard_map)
            except errors.TokenLedgerError:
                pass
        return owner

    def _install(self, result):
        if not result.cluster or not result.shard_count:
            return
        with self._lock:
            self._shard_count = result.shard_count
            for owner in result.shards:
                if owner.address:
                    self._shard_owners[owner.shard] = owner.address

    def _forget(self, address, tenant):
        with self._lock:
            if self._shard_count:
                shard = shard_index(tenant, self._shard_count)
                if self._shard_owners.get(shard) == address:
                    del self._shard_owners[shard]

    def shard_map(self):
        """Cluster mode's placement as the node asked knows it (``ShardMapResult``: ``cluster``,
        ``shard_count``, ``shards`` with address, epoch, here); it also becomes this client's map."""
        result = self.call("shard_map", pb.ShardMapRequest())
        self._install(result)
        return result

    def _connect(self, host, port, server_name):
        try:
            return _Connection(host, port, self._context, server_name, self.connect_timeout)
        except (OSError, ssl.SSLError) as error:
            raise errors.ConnectionFailed(f"{host}:{port}: {error}") from None

    def _call_id(self):
        with self._lock:
            self._next_call_id += 1
            return self._next_call_id

    def call(self, field, message):
        """Sends ``Request{<field>: message}`` and returns the reply's result message. Raises a
        ``LedgerError`` subclass for an error reply."""
        return getattr(self.request(field, message), field)

    def request(self, field, message):
        """Like ``call`` but returns the whole ``Response`` (its ``replayed`` flag says whether the
        request id had been seen with the same call)."""
        delay = self.backoff
        tenant = getattr(message, "tenant", "") or None
        address = self._address_for(tenant)
        attempt, redirects = 1, 0
        while True:
            try:
                return self._call_once(field, message, address)
            except errors.WrongOwner as error:
                if tenant is None or redirects >= self.redirects_max:
                    raise
                owner = self._learn(error)
                if not owner:
                    raise
                redirects += 1
                address = owner
            except errors.TokenLedgerError as error:
                if error.retryable and tenant is not None:
                    self._forget(address, tenant)
                if not error.retryable or attempt >= self.attempts or self._closed:
                    raise
                attempt += 1
                index = self._addresses.index(address) if address in self._addresses else -1
                address = self._addresses[(index + 1) % len(self._addresses)]
                time.sleep(delay)
                delay *= 2

    def _build_request(self, field, message):
        """The ``Request`` for one try of a call: a new call id, the current ``trace_parent``."""
        request = pb.Request(call_id=self._call_id())
        parent = _trace_parent.get()
        if parent:
            request.trace_parent = parent
        getattr(request, field).CopyFrom(message)
        return request

    def _call_once(self, field, message, address=None):
        connection = self._live(address)
        request = self._build_request(field, message)
        pending = connection.send(request.call_id, request.SerializeToString())
        if not pending.event.wait(self.timeout):
            connection.forget(request.call_id)
            raise errors.Timeout(f"no reply within {self.timeout} s")
        if pending.error is not None:
            raise pending.error
        response = pending.response
        which = response.WhichOneof("result")
        if which == "error":
            raise errors.from_wire(response.error)
        if which != field:
            raise errors.ProtocolError(f"expected a {field} result, got {which}")
        return response

    # Events -----------------------------------------------------------------------------------

    def watch(self, tenant, *, after=None):
        """Streams the tenant's events: from now (``after`` None) or after an event id (0: every event
        the server still keeps). In cluster mode it opens on the tenant's node, following
        ``wrong_owner`` like a call. Returns a ``Watch``: iterate it for ``WatchUpdate`` messages
        (``started``, then ``event``/``gap``, ``ended`` after ``stop()``). An error reply (e.g.
        ``WrongOwner`` or ``Unavailable`` when the tenant's shard moves) or a lost connection
        raises from the iteration; watch again with ``after=`` the last event id seen to resume
        without loss (event ids are the same on every node). Not retried."""
        address, redirects = self._address_for(tenant), 0
        while True:
            connection = self._live(address)
            request = pb.Request(call_id=self._call_id())
            request.watch.tenant = tenant
            if after is not None:
                request.watch.after_event_id = after
            stream = connection.open_stream(request.call_id, request.SerializeToString())
            watch = Watch(self, connection, request.call_id, stream)
            # The first reply decides: ``started``, or a refusal (followed when it is wrong_owner;
            # else raised by the first ``next``, as a refusal later in the stream would be).
            try:
                watch._first = watch.next(timeout=self.timeout)
            except errors.WrongOwner as error:
                owner = self._learn(error) if redirects < self.redirects_max else None
                if owner:
                    redirects, address = redirects + 1, owner
                    continue
                watch._first = error
            except errors.TokenLedgerError as error:
                watch._first = error
            except queue.Empty:
                connection.forget(request.call_id)
                raise errors.Timeout(f"the watch did not start within {self.timeout} s") from None
            return watch

    # Metering ---------------------------------------------------------------------------------

    def reserve(self, tenant, hold_id, tokens=None, *, items=None, member="", ttl_ms=0, request_id=None):
        """Reserve ``tokens``, or the catalog price of ``items`` ({feature: quantity} or pairs)."""
        message = pb.ReserveRequest(request_id=request_id or new_request_id(), tenant=tenant, hold_id=hold_id,
                                    member=member, ttl_ms=ttl_ms)
        return self.call("reserve", _spend(message, tokens, items))

    def charge(self, tenant, hold_id, tokens=None, *, items=None, member="", request_id=None):
        """Spend ``tokens``, or the catalog price of ``items``, at once: a reserve's checks and a final
        commit's burn-down in one call, with no hold left open. Refundable later by ``hold_id``."""
        message = pb.ChargeRequest(request_id=request_id or new_request_id(), tenant=tenant, hold_id=hold_id,
                                   member=member)
        return self.call("charge", _spend(message, tokens, items))

    def extend_hold(self, tenant, hold_id, ttl_ms, *, request_id=None):
        """A new expiry for an open hold: ``ttl_ms`` from now (1 s to 7 days)."""
        return self.call("extend_hold", pb.ExtendHoldRequest(request_id=request_id or new_request_id(), tenant=tenant,
                                                               hold_id=hold_id, ttl_ms=ttl_ms))

    def increase_hold(self, tenant, hold_id, tokens, *, request_id=None):
        """Hold ``tokens`` more on an open hold, with a reserve's checks: a refusal raises the binding
        limit's error (``BudgetExceeded``, ``InsufficientBalance``, ...) and leaves the hold as it was."""
        return self.call("increase_hold", pb.IncreaseHoldRequest(request_id=request_id or new_request_id(), tenant=tenant,
                                                                   hold_id=hold_id, tokens=tokens))

    def commit(self, tenant, hold_id, amount, *, partial=False, request_id=None):
        return self.call("commit", pb.CommitRequest(request_id=request_id or new_request_id(), tenant=tenant,
                                                    hold_id=hold_id, amount=amount, partial=partial))

    def release(self, tenant, hold_id, *, request_id=None):
        return self.call("release", pb.ReleaseRequest(request_id=request_id or new_request_id(), tenant=tenant,
                                                      hold_id=hold_id))

    def refund(self, tenant, hold_id, amount, *, request_id=None):
        return self.call("refund", pb.RefundRequest(request_id=request_id or new_request_id(), tenant=tenant,
                                                    hold_id=hold_id, amount=amount))

    def estimate(self, tenant, items, *, member=""):
        return self.call("estimate", pb.EstimateRequest(tenant=tenant, member=member, items=_items(items)))

    def balance(self, tenant, *, member=""):
        return self.call("balance", pb.BalanceRequest(tenant=tenant, member=member))

    def history(self, tenant, *, member="", source=None, since_ms=None, after_sequence=0, limit=0):
        message = pb.HistoryRequest(tenant=tenant, member=member, after_sequence=after_sequence, limit=limit)
        if source is not None:
            message.source = GRANT_KINDS[source]
        if since_ms is not None:
            message.since_ms = since_ms
        return self.call("history", message)

    # Administration ---------------------------------------------------------------------------

    def create_tenant(self, tenant, *, plan_allowance=None, plan_period="month", quotas=None, overdraft_limit=0,
                      low_balance_threshold=0, thresholds=(), movement_events=True, request_id=None):
        """``quotas``: {feature: units per plan period}, part of the plan (needs ``plan_allowance``).
        ``thresholds``: further low-balance thresholds, tokens (``1000``) or percentages of the plan
        allowance (``"20%"``). ``movement_events``: events for grants, purchases, captures, charges,
        refunds and voids."""
        settings = pb.TenantSettings(overdraft_limit=overdraft_limit, low_balance_threshold=low_balance_threshold,
                                     low_balance_thresholds=_thresholds(thresholds),
                                     movement_events_off=not movement_events)
        if plan_allowance is not None:
            settings.plan.allowance = plan_allowance
            settings.plan.period.unit = PERIODS[plan_period]
            settings.plan.quotas.extend(_quotas(quotas))
        elif quotas:
            raise ValueError("quotas are part of the plan: give plan_allowance too")
        return self.call("create_tenant", pb.CreateTenantRequest(request_id=request_id or new_request_id(),
                                                                 tenant=tenant, settings=settings))

    def configure_tenant(self, tenant, *, plan_allowance=None, plan_period="month", quotas=None, remove_plan=False,
                         overdraft_limit=None, low_balance_threshold=None, thresholds=None, movement_events=None,
                         request_id=None):
        """``thresholds``: the whole list of further thresholds (``[]`` removes them; None: unchanged)."""
        message = pb.ConfigureTenantRequest(request_id=request_id or new_request_id(), tenant=tenant)
        if thresholds is not None:
            message.low_balance_thresholds.SetInParent()
            message.low_balance_thresholds.thresholds.extend(_thresholds(thresholds))
        if movement_events is not None:
            message.movement_events = movement_events
        if plan_allowance is not None:
            message.set_plan.allowance = plan_allowance
            message.set_plan.period.unit = PERIODS[plan_period]
            message.set_plan.quotas.extend(_quotas(quotas))
        elif quotas:
            raise ValueError("quotas are part of the plan: give plan_allowance too")
        elif remove_plan:
            message.remove_plan = True
        if overdraft_limit is not None:
            message.overdraft_limit = overdraft_limit
        if low_balance_threshold is not None:
            message.low_balance_threshold = low_balance_threshold
        return self.call("configure_tenant", message)

    def set_member(self, tenant, member, *, budget=None, budget_period="month", low_balance_threshold=None,
                   thresholds=(), request_id=None):
        """``thresholds``: further thresholds of the member's own (a percentage is of its budget)."""
        message = pb.SetMemberRequest(request_id=request_id or new_request_id(), tenant=tenant, member=member,
                                      low_balance_thresholds=_thresholds(thresholds))
        if budget is not None:
            message.budget.cap = budget
            message.budget.period.unit = PERIODS[budget_period]
        if low_balance_threshold is not None:
            message.low_balance_threshold = low_balance_threshold
        return self.call("set_member", message)

    def grant(self, tenant, amount, kind, *, expires_at_ms=None, effective_at_ms=None, priority=None, note="",
              scope=(), request_id=None):
        """``scope``: catalog features the grant may pay for; empty: any spending."""
        message = pb.GrantRequest(request_id=request_id or new_request_id(), tenant=tenant, amount=amount,
                                  kind=GRANT_KINDS[kind], note=note, scope=list(scope))
        if expires_at_ms is not None:
            message.expires_at_ms = expires_at_ms
        if effective_at_ms is not None:
            message.effective_at_ms = effective_at_ms
        if priority is not None:
            message.priority = priority
        return self.call("grant", message)

    def purchase(self, tenant, money_minor, *, note="", request_id=None):
        return self.call("purchase", pb.PurchaseRequest(request_id=request_id or new_request_id(), tenant=tenant,
                                                        money_minor=money_minor, note=note))

    def void_grant(self, tenant, grant_id, *, request_id=None):
        return self.call("void_grant", pb.VoidGrantRequest(request_id=request_id or new_request_id(), tenant=tenant,
                                                           grant_id=grant_id))

    def refund_purchase(self, tenant, grant_id, *, request_id=None):
        return self.call("refund_purchase", pb.RefundPurchaseRequest(request_id=request_id or new_request_id(),
                                                                     tenant=tenant, grant_id=grant_id))

    def list_holds(self, tenant, *, member="", after_hold_id="", limit=0):
        """A page of the tenant's open holds (of ``member``), in id order; pass the result's
        ``next_after_hold_id`` as ``after_hold_id`` for the next page ("" when this one is the last)."""
        return self.call("list_holds", pb.ListHoldsRequest(tenant=tenant, member=member, after_hold_id=after_hold_id,
                                                             limit=limit))

    def list_grants(self, tenant, *, state=None, after_grant_id=0, limit=0):
        """A page of the tenant's grants, all or in ``state`` ("pending", "active", "expired", "voided")."""
        message = pb.ListGrantsRequest(tenant=tenant, after_grant_id=after_grant_id, limit=limit)
        if state is not None:
            message.state = GRANT_STATES[state]
        return self.call("list_grants", message)

    def list_tenants(self, *, after_tenant="", limit=0):
        """A page of every tenant, in id order (admin principals only)."""
        return self.call("list_tenants", pb.ListTenantsRequest(after_tenant=after_tenant, limit=limit))

    def catalog(self):
        return self.call("catalog", pb.CatalogRequest())

    def install_catalog(self, json_text):
        return self.call("install_catalog", pb.InstallCatalogRequest(json=json_text))

    def health(self):
        return self.call("health", pb.HealthRequest())

    # Operations (admins) ---------------------------------------------------------------------

    def admin_snapshot(self):
        """Snapshots every shard now; ``snapshot_lsns`` per shard."""
        return self.call("admin_snapshot", pb.AdminSnapshotRequest())

    def admin_audit(self):
        """Runs the conservation audit; ``violations`` is empty when every invariant holds."""
        return self.call("admin_audit", pb.AdminAuditRequest())

    def admin_backup(self, directory):
        """Takes a consistent, verified online backup into ``directory`` (absolute, new) on the
        server's machine; the result says per shard the snapshot and last log positions it holds."""
        return self.call("admin_backup", pb.AdminBackupRequest(directory=directory))


class Watch:
    """One watch stream (see ``Client.watch``)."""

    def __init__(self, client, connection, call_id, stream):
        self.call_id = call_id
        self._client, self._connection, self._stream = client, connection, stream
        self._done = False
        self._first = None  # the first reply (``started``, or the refusal), read by ``Client.watch``

    def __iter__(self):
        return self

    def __next__(self):
        return self.next()

    def next(self, timeout=None):
        """The next update; ``StopIteration`` after ``ended``; ``queue.Empty`` after ``timeout``."""
        if self._first is not None:
            first, self._first = self._first, None
            if isinstance(first, Exception):
                raise first
            return first
        if self._done:
            raise StopIteration
        item = self._stream.replies.get(timeout=timeout)
        if isinstance(item, Exception):
            self._done = True
            raise item
        which = item.WhichOneof("result")
        if which == "error":
            self._done = True
            error = errors.from_wire(item.error)
            self._client._learn(error)
            raise error
        if which != "watch":
            self._done = True
            raise errors.ProtocolError(f"a watch reply with {which}")
        if item.watch.WhichOneof("update") == "ended":
            self._done = True
        return item.watch

    def stop(self):
        """Asks the server to end the watch (the stream then yields ``ended``); False when it had
        ended already. Sent on the watch's own connection."""
        request = pb.Request(call_id=self._client._call_id())
        request.unwatch.watch_call_id = self.call_id
        pending = self._connection.send(request.call_id, request.SerializeToString())
        if not pending.event.wait(self._client.timeout):
            self._connection.forget(request.call_id)
            raise errors.Timeout(f"no reply within {self._client.timeout} s")
        if pending.error is not None:
            raise pending.error
        if pending.response.WhichOneof("result") == "error":
            raise errors.from_wire(pending.response.error)
        return pending.response.unwatch.stopped


def _spend(message, tokens, items):
    """Fills a reserve's or a charge's amount: ``tokens``, or the catalog price of ``items``."""
    if (tokens is None) == (items is None):
        raise ValueError("give tokens or items")
    if tokens is not None:
        message.tokens = tokens
    else:
        message.items.items.extend(_items(items))
    return message


def _items(items):
    pairs = items.items() if isinstance(items, dict) else items
    return [pb.PricedItem(feature=feature, quantity=quantity) for feature, quantity in pairs]


def _quotas(quotas):
    """{feature: limit} or (feature, limit) pairs as PlanQuota messages."""
    pairs = (quotas or {}).items() if isinstance(quotas, dict) or quotas is None else quotas
    return [pb.PlanQuota(feature=feature, limit=limit) for feature, limit in pairs]


def _thresholds(thresholds):
    """Thresholds as Threshold messages: an int is tokens, "20%" a percentage."""
    result = []
    for threshold in thresholds or ():
        if isinstance(threshold, str) and threshold.endswith("%"):
            result.append(pb.Threshold(percent=int(threshold[:-1])))
        else:
            result.append(pb.Threshold(tokens=int(threshold)))
    return result
