"""The gRPC port with clients this project did not write: grpcio with stubs from grpcio-tools,
grpcio-health-checking's health stubs, grpcio-status for the error details, and Python's ssl module
for a TLS 1.2-only client."""

import os
import socket
import ssl
import subprocess
import sys
import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from google.rpc import error_details_pb2


def call(stub_method, request):
    """The result and the response headers of a unary call."""
    result, rpc = stub_method.with_call(request, timeout=30)
    return result, dict(rpc.initial_metadata())


def test_every_rpc(ledger, stubs):
    pb, service = stubs
    stub = service.LedgerStub(ledger.channel())
    health, _ = call(stub.Health, pb.HealthRequest())
    assert health.status == "serving" and health.principal == "admin"
    # The open gRPC connection shows in the metrics, and so do the calls it made.
    metrics = ledger.metrics()
    assert "tokenledger_grpc_connections 1" in metrics
    assert 'rpc="health"' in metrics
    assert stub.Catalog(pb.CatalogRequest()).version == "demo-2026-11"
    shard_map = stub.ShardMap(pb.ShardMapRequest())
    assert not shard_map.cluster and shard_map.shard_count == health.shard_count and list(shard_map.shards) == []

    settings = pb.TenantSettings()
    settings.plan.allowance = 3_000_000
    settings.plan.period.unit = pb.PERIOD_UNIT_MONTH
    created, headers = call(stub.CreateTenant, pb.CreateTenantRequest(request_id="t-1", tenant="acme", settings=settings))
    assert created.tenant == "acme" and int(headers["tokenledger-lsn"]) > 0
    assert "tokenledger-replayed" not in headers
    again, headers = call(stub.CreateTenant, pb.CreateTenantRequest(request_id="t-1", tenant="acme", settings=settings))
    assert again == created and headers["tokenledger-replayed"] == "true"

    stub.ConfigureTenant(pb.ConfigureTenantRequest(request_id="c-1", tenant="acme", low_balance_threshold=1_000))
    member = pb.SetMemberRequest(request_id="m-1", tenant="acme", member="ana")
    member.budget.cap = 10_000
    member.budget.period.unit = pb.PERIOD_UNIT_DAY
    assert stub.SetMember(member).member.budget.cap == 10_000

    items = pb.PricedItems(items=[pb.PricedItem(feature="transcription", quantity=37)])
    estimate = stub.Estimate(pb.EstimateRequest(tenant="acme", member="ana", items=items.items))
    assert estimate.total == 296 and estimate.affordable
    reserved, headers = call(stub.Reserve, pb.ReserveRequest(request_id="r-1", tenant="acme", hold_id="interview-1",
                                                              member="ana", items=items))
    assert reserved.hold.amount == 296 and reserved.hold.state == pb.HOLD_STATE_HELD
    reserve_lsn = int(headers["tokenledger-lsn"])
    committed, headers = call(stub.Commit, pb.CommitRequest(request_id="k-1", tenant="acme", hold_id="interview-1",
                                                             amount=280))
    assert (committed.captured, committed.released) == (280, 16)
    assert int(headers["tokenledger-lsn"]) > reserve_lsn

    promo = stub.Grant(pb.GrantRequest(request_id="g-1", tenant="acme", amount=500, kind=pb.GRANT_KIND_PROMO)).grant
    purchase = stub.Purchase(pb.PurchaseRequest(request_id="p-1", tenant="acme", money_minor=10_000))
    assert purchase.purchase.amount == 10_000
    assert stub.VoidGrant(pb.VoidGrantRequest(request_id="v-1", tenant="acme", grant_id=promo.id)).voided == 500
    refunded = stub.RefundPurchase(pb.RefundPurchaseRequest(request_id="rp-1", tenant="acme",
                                                            grant_id=purchase.purchase.id))
    assert refunded.voided == 10_000

    stub.Reserve(pb.ReserveRequest(request_id="r-2", tenant="acme", hold_id="report-1", tokens=100))
    partial = stub.Commit(pb.CommitRequest(request_id="k-2", tenant="acme", hold_id="report-1", amount=30, partial=True))
    assert partial.hold.state == pb.HOLD_STATE_HELD
    assert stub.Release(pb.ReleaseRequest(request_id="l-1", tenant="acme", hold_id="report-1")).released == 70
    assert stub.Refund(pb.RefundRequest(request_id="f-1", tenant="acme", hold_id="interview-1", amount=80)).refunded == 80

    stub.Reserve(pb.ReserveRequest(request_id="s-1", tenant="acme", hold_id="session-1", tokens=8, ttl_ms=120_000))
    raised = stub.IncreaseHold(pb.IncreaseHoldRequest(request_id="s-2", tenant="acme", hold_id="session-1", tokens=8))
    assert raised.increased == 8 and raised.hold.amount == 16
    extended = stub.ExtendHold(pb.ExtendHoldRequest(request_id="s-3", tenant="acme", hold_id="session-1", ttl_ms=600_000))
    assert extended.hold.expires_at_ms > raised.hold.expires_at_ms
    listed = stub.ListHolds(pb.ListHoldsRequest(tenant="acme"))
    assert [hold.id for hold in listed.holds] == ["session-1"] and listed.next_after_hold_id == ""
    assert len(stub.ListGrants(pb.ListGrantsRequest(tenant="acme")).grants) >= 1
    assert list(stub.ListTenants(pb.ListTenantsRequest()).tenants) == ["acme"]
    assert stub.Release(pb.ReleaseRequest(request_id="s-4", tenant="acme", hold_id="session-1")).released == 16

    charged, headers = call(stub.Charge, pb.ChargeRequest(request_id="ch-1", tenant="acme", hold_id="charge-1", tokens=25))
    assert charged.charged == 25 and charged.hold.state == pb.HOLD_STATE_COMMITTED and int(headers["tokenledger-lsn"]) > 0
    assert stub.Refund(pb.RefundRequest(request_id="ch-1-refund", tenant="acme", hold_id="charge-1", amount=25)).refunded == 25

    balance = stub.Balance(pb.BalanceRequest(tenant="acme", member="ana"))
    assert balance.spent == 280 + 30 - 80 and balance.member_budget.spent == 200
    history = stub.History(pb.HistoryRequest(tenant="acme", limit=1000))
    assert [e.sequence for e in history.entries] == list(range(1, len(history.entries) + 1))
    installed = stub.InstallCatalog(pb.InstallCatalogRequest(json='{"version": "v2", "features": {"x": {"unit": "u", "rate": 3}}}'))
    assert installed.version == "v2"
    assert len(stub.AdminSnapshot(pb.AdminSnapshotRequest()).snapshot_lsns) == health.shard_count
    audit = stub.AdminAudit(pb.AdminAuditRequest())
    assert audit.tenants == 1 and list(audit.violations) == []
    backup_dir = os.path.join(ledger.directory, "backup")
    backup = stub.AdminBackup(pb.AdminBackupRequest(directory=backup_dir))
    assert backup.directory == backup_dir and backup.tenants == 1


def test_watch_streams_a_threshold_event_and_ends_when_cancelled(ledger, stubs):
    pb, service = stubs
    stub = service.LedgerStub(ledger.channel())
    stub.CreateTenant(pb.CreateTenantRequest(request_id="t", tenant="acme", settings=pb.TenantSettings(low_balance_threshold=500)))
    stub.Grant(pb.GrantRequest(request_id="g", tenant="acme", amount=1_000, kind=pb.GRANT_KIND_PURCHASE))
    stream = stub.Watch(pb.WatchRequest(tenant="acme"), timeout=30)
    started = next(stream).started
    stub.Reserve(pb.ReserveRequest(request_id="r", tenant="acme", hold_id="job", tokens=600))
    stub.Commit(pb.CommitRequest(request_id="k", tenant="acme", hold_id="job", amount=600))
    low = next(stream).event
    assert low.id == started.latest_event_id + 1 and low.WhichOneof("kind") == "low_balance"
    assert (low.low_balance.available, low.low_balance.threshold) == (400, 500)
    stream.cancel()
    with pytest.raises(grpc.RpcError) as cancelled:
        next(stream)
    assert cancelled.value.code() == grpc.StatusCode.CANCELLED
    # The server let the watch go: a new one on the same channel runs and resumes after the event.
    resumed = stub.Watch(pb.WatchRequest(tenant="acme", after_event_id=low.id), timeout=30)
    assert next(resumed).started.events_lost == 0
    resumed.cancel()
    with pytest.raises(grpc.RpcError) as unknown:
        next(stub.Watch(pb.WatchRequest(tenant="nobody"), timeout=30))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def ledger_error(error, pb):
    """The google.rpc.Status details of a failed call: its ErrorInfo and the ledger's own Error."""
    status = rpc_status.from_call(error)
    assert status is not None, "no grpc-status-details-bin"
    info, own = error_details_pb2.ErrorInfo(), pb.Error()
    assert status.details[0].Unpack(info) and status.details[1].Unpack(own)
    assert status.code == error.code().value[0] and status.message == error.details()
    return info, own


def test_errors_carry_the_ledger_code_and_details(ledger, stubs):
    pb, service = stubs
    stub = service.LedgerStub(ledger.channel())
    stub.CreateTenant(pb.CreateTenantRequest(request_id="t", tenant="acme"))
    stub.Grant(pb.GrantRequest(request_id="g", tenant="acme", amount=1_000, kind=pb.GRANT_KIND_PROMO))

    with pytest.raises(grpc.RpcError) as poor:
        stub.Reserve(pb.ReserveRequest(request_id="r", tenant="acme", hold_id="h", tokens=5_000))
    assert poor.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    info, own = ledger_error(poor.value, pb)
    assert (info.reason, info.domain) == ("INSUFFICIENT_BALANCE", "tokenledger.v1")
    assert dict(info.metadata) == {"available": "1000", "requested": "5000"}
    assert own.code == pb.ERROR_CODE_INSUFFICIENT_BALANCE and own.balance.available == 1_000

    member = pb.SetMemberRequest(request_id="m", tenant="acme", member="ana")
    member.budget.cap = 100
    member.budget.period.unit = pb.PERIOD_UNIT_DAY
    stub.SetMember(member)
    with pytest.raises(grpc.RpcError) as budget:
        stub.Reserve(pb.ReserveRequest(request_id="r2", tenant="acme", hold_id="h2", member="ana", tokens=300))
    assert budget.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info, own = ledger_error(budget.value, pb)
    assert info.reason == "BUDGET_EXCEEDED" and info.metadata["remaining"] == "100" and info.metadata["cap"] == "100"
    assert int(info.metadata["resets_at_ms"]) == own.budget.resets_at_ms > 0

    with pytest.raises(grpc.RpcError) as invalid:
        stub.Reserve(pb.ReserveRequest(request_id="r3", tenant="acme", hold_id="", tokens=1))
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert ledger_error(invalid.value, pb)[0].reason == "INVALID_ARGUMENT"

    with pytest.raises(grpc.RpcError) as conflict:
        stub.Reserve(pb.ReserveRequest(request_id="r", tenant="acme", hold_id="other", tokens=1))
    assert conflict.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert ledger_error(conflict.value, pb)[0].reason == "IDEMPOTENCY_CONFLICT"

    # A plan quota: 2 cover images a month; the third is RESOURCE_EXHAUSTED with the quota.
    quota = pb.CreateTenantRequest(request_id="q", tenant="quota")
    quota.settings.plan.allowance = 1_000
    quota.settings.plan.period.unit = pb.PERIOD_UNIT_MONTH
    quota.settings.plan.quotas.add(feature="cover_image", limit=2)
    stub.CreateTenant(quota)
    images = pb.ChargeRequest(request_id="c1", tenant="quota", hold_id="c1")
    images.items.items.add(feature="cover_image", quantity=2)
    stub.Charge(images)
    images = pb.ChargeRequest(request_id="c2", tenant="quota", hold_id="c2")
    images.items.items.add(feature="cover_image", quantity=1)
    with pytest.raises(grpc.RpcError) as exceeded:
        stub.Charge(images)
    assert exceeded.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info, own = ledger_error(exceeded.value, pb)
    assert info.reason == "QUOTA_EXCEEDED"
    assert {key: info.metadata[key] for key in ("feature", "used", "limit", "requested")} == {
        "feature": "cover_image", "used": "2", "limit": "2", "requested": "1"}
    assert own.code == pb.ERROR_CODE_QUOTA_EXCEEDED and own.quota.resets_at_ms > 0
    balance = stub.Balance(pb.BalanceRequest(tenant="quota"))
    assert [(q.feature, q.used, q.limit) for q in balance.quotas] == [("cover_image", 2, 2)]


def test_a_tenant_principal_sees_only_its_tenant(ledger, stubs):
    pb, service = stubs
    admin = service.LedgerStub(ledger.channel())
    for tenant in ("acme", "globex"):
        admin.CreateTenant(pb.CreateTenantRequest(request_id=f"t-{tenant}", tenant=tenant))
        admin.Grant(pb.GrantRequest(request_id=f"g-{tenant}", tenant=tenant, amount=1_000, kind=pb.GRANT_KIND_PROMO))
    web = service.LedgerStub(ledger.channel(ledger.tenant))
    assert web.Health(pb.HealthRequest()).principal == "acme-web"
    assert web.Balance(pb.BalanceRequest(tenant="acme")).available == 1_000
    answers = {}
    for tenant in ("globex", "nobody"):
        with pytest.raises(grpc.RpcError) as refused:
            web.Balance(pb.BalanceRequest(tenant=tenant))
        info, own = ledger_error(refused.value, pb)
        answers[tenant] = (refused.value.code(), refused.value.details().replace(tenant, "X"), info.reason, own.code)
    assert answers["globex"] == answers["nobody"]
    assert answers["globex"][0] == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as denied:
        web.CreateTenant(pb.CreateTenantRequest(request_id="t-x", tenant="acme2"))
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as listing:
        web.ListTenants(pb.ListTenantsRequest())
    assert listing.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.RpcError) as other:
        web.ListHolds(pb.ListHoldsRequest(tenant="globex"))
    assert other.value.code() == grpc.StatusCode.NOT_FOUND


def test_refused_clients(ledger, stubs):
    pb, service = stubs
    for channel in (ledger.channel(with_certificate=False), ledger.channel(ledger.foreign)):
        with pytest.raises(grpc.RpcError) as refused:
            service.LedgerStub(channel).Health(pb.HealthRequest(), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    # A certificate of the right CA whose name is no principal: every call is unauthenticated.
    with pytest.raises(grpc.RpcError) as stranger:
        service.LedgerStub(ledger.channel(ledger.stranger)).Health(pb.HealthRequest(), timeout=10)
    assert stranger.value.code() == grpc.StatusCode.UNAUTHENTICATED

    # TLS 1.2 at most, with a valid client certificate and ALPN h2: the handshake fails.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(ledger.ca)
    context.load_cert_chain(*ledger.admin)
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", ledger.port), timeout=10) as raw:
        with pytest.raises(ssl.SSLError):
            with context.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.recv(1)
    # The same client allowed TLS 1.3 gets through, and the server kept serving.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ledger.ca)
    context.load_cert_chain(*ledger.admin)
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", ledger.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            assert tls.version() == "TLSv1.3" and tls.selected_alpn_protocol() == "h2"
    assert service.LedgerStub(ledger.channel()).Health(pb.HealthRequest()).status == "serving"


def test_health_service_and_drain(ledger, stubs):
    health = health_pb2_grpc.HealthStub(ledger.channel())
    assert health.Check(health_pb2.HealthCheckRequest(service="")).status == health_pb2.HealthCheckResponse.SERVING
    ledger_service = health_pb2.HealthCheckRequest(service="tokenledger.v1.Ledger")
    assert health.Check(ledger_service).status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as unknown:
        health.Check(health_pb2.HealthCheckRequest(service="nope"))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
    stream = health.Watch(ledger_service, timeout=30)
    assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
    # SIGTERM: the stream hears NOT_SERVING as the drain begins, and ledgerd exits cleanly.
    stopper = threading.Thread(target=ledger.process.send_signal, args=(15,))
    stopper.start()
    assert next(stream).status == health_pb2.HealthCheckResponse.NOT_SERVING
    stopper.join()
    assert ledger.process.wait(timeout=60) == 0


FRAMED_COMMIT = """
import sys
sys.path.insert(0, sys.argv[1])
import tokenledger
with tokenledger.Client("127.0.0.1", int(sys.argv[2]), data_dir=sys.argv[3]) as framed:
    committed = framed.commit("acme", "both", 250)
    assert (committed.captured, committed.released) == (250, 50), committed
    # The request id gRPC used, over the framed port: replayed, nothing changes.
    again = framed.request("reserve", tokenledger.pb.ReserveRequest(request_id="r", tenant="acme", hold_id="both", tokens=300))
    assert again.replayed
print("ok")
"""


def test_both_ports_serve_one_ledger(ledger, stubs):
    pb, service = stubs
    stub = service.LedgerStub(ledger.channel())
    stub.CreateTenant(pb.CreateTenantRequest(request_id="t", tenant="acme"))
    stub.Grant(pb.GrantRequest(request_id="g", tenant="acme", amount=1_000, kind=pb.GRANT_KIND_PROMO))
    stub.Reserve(pb.ReserveRequest(request_id="r", tenant="acme", hold_id="both", tokens=300))
    # The project's framed client, in a process of its own (its package is also named tokenledger).
    client = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
                          "clients", "python")
    framed = subprocess.run([sys.executable, "-c", FRAMED_COMMIT, client, str(ledger.framed_port), ledger.data_dir],
                            capture_output=True, text=True, timeout=60)
    assert framed.returncode == 0 and framed.stdout.strip() == "ok", framed.stderr
    balance = stub.Balance(pb.BalanceRequest(tenant="acme"))
    assert (balance.spent, balance.reserved) == (250, 0)
