"""The Python client against a live ledgerd: every call, typed errors, pipelining, retries."""

import os
import shutil
import tempfile
import threading

import pytest

import tokenledger
from tokenledger import pb


def test_every_call(ledger):
    with ledger.client() as client:
        health = client.health()
        assert health.status == "serving" and health.principal == "admin"
        assert client.catalog().version == "demo-2026-11"

        client.create_tenant("acme", plan_allowance=3_000_000)
        client.configure_tenant("acme", low_balance_threshold=1_000)
        member = client.set_member("acme", "ana", budget=10_000, budget_period="day").member
        assert member.budget.cap == 10_000

        estimate = client.estimate("acme", {"transcription": 37}, member="ana")
        assert estimate.total == 296 and estimate.affordable
        hold = client.reserve("acme", "interview-1", items={"transcription": 37}, member="ana").hold
        assert hold.amount == 296 and hold.state == pb.HOLD_STATE_HELD
        committed = client.commit("acme", "interview-1", 280)
        assert (committed.captured, committed.released) == (280, 16)

        promo = client.grant("acme", 500, "promo", note="welcome").grant
        purchase = client.purchase("acme", 10_000)
        assert purchase.purchase.amount == 10_000 and purchase.bonus.amount == 750
        assert client.void_grant("acme", promo.id).voided == 500
        refunded = client.refund_purchase("acme", purchase.purchase.id)
        assert refunded.voided == 10_000 and refunded.money_refund_minor == 10_000

        client.reserve("acme", "report-1", 100)
        assert client.commit("acme", "report-1", 30, partial=True).hold.state == pb.HOLD_STATE_HELD
        assert client.release("acme", "report-1").released == 70
        assert client.refund("acme", "interview-1", 80).refunded == 80

        client.reserve("acme", "session-1", 8, ttl_ms=120_000)
        raised = client.increase_hold("acme", "session-1", 8)
        assert raised.increased == 8 and raised.hold.amount == 16
        extended = client.extend_hold("acme", "session-1", 600_000)
        assert extended.hold.expires_at_ms > raised.hold.expires_at_ms
        with pytest.raises(tokenledger.InvalidArgument):
            client.extend_hold("acme", "session-1", 0)
        with pytest.raises(tokenledger.InsufficientBalance) as poor:
            client.increase_hold("acme", "session-1", 10**12)
        assert poor.value.details["requested"] == 10**12
        assert client.release("acme", "session-1").released == 16

        client.reserve("acme", "open-b", 5)
        client.reserve("acme", "open-a", 5, member="ana")
        first = client.list_holds("acme", limit=1)
        assert [h.id for h in first.holds] == ["open-a"]
        assert first.next_after_hold_id == "open-a"
        rest = client.list_holds("acme", after_hold_id=first.next_after_hold_id)
        assert [h.id for h in rest.holds] == ["open-b"] and rest.next_after_hold_id == ""
        assert [h.id for h in client.list_holds("acme", member="ana").holds] == ["open-a"]
        assert all(g.state == pb.GRANT_STATE_ACTIVE for g in client.list_grants("acme", state="active").grants)
        assert "acme" in client.list_tenants().tenants
        with pytest.raises(tokenledger.LimitExceeded):
            client.list_tenants(limit=1001)
        with pytest.raises(KeyError):
            client.list_grants("acme", state="nope")
        client.release("acme", "open-a")
        client.release("acme", "open-b")

        charged = client.charge("acme", "image-1", items={"cover_image": 1}, member="ana")
        assert charged.charged == charged.hold.captured > 0 and charged.hold.state == pb.HOLD_STATE_COMMITTED
        assert client.refund("acme", "image-1", charged.charged).refunded == charged.charged
        with pytest.raises(tokenledger.AlreadyExists):
            client.charge("acme", "image-1", tokens=1)
        with pytest.raises(ValueError):
            client.charge("acme", "image-2")

        balance = client.balance("acme", member="ana")
        assert balance.spent == 280 + 30 - 80
        assert balance.meter.total == 3_000_000
        # A refund gives budget back when the capture was in the current period (docs/semantics.md).
        assert balance.member_budget.spent == 280 - 80
        history = client.history("acme", limit=1000)
        assert [e.sequence for e in history.entries] == list(range(1, len(history.entries) + 1))
        assert client.install_catalog('{"version": "v2", "features": {"x": {"unit": "u", "rate": 3}}}').version == "v2"
        assert client.estimate("acme", [("x", 4)]).total == 12
        assert len(client.admin_snapshot().snapshot_lsns) == health.shard_count
        audit = client.admin_audit()
        assert audit.tenants == 1 and list(audit.violations) == []
        backup_dir = os.path.join(tempfile.mkdtemp(prefix="tokenledger-py-backup-"), "backup")
        backup = client.admin_backup(backup_dir)
        assert backup.directory == backup_dir and backup.tenants == 1
        assert len(backup.shards) == health.shard_count and all(s.last_lsn >= s.snapshot_lsn for s in backup.shards)
        assert os.path.isfile(os.path.join(backup_dir, "manifest"))
        shutil.rmtree(os.path.dirname(backup_dir))


def test_typed_errors(ledger):
    with ledger.client(attempts=1) as client:
        client.create_tenant("acme")
        client.grant("acme", 100, "promo")
        client.set_member("acme", "ana", budget=5)
        with pytest.raises(tokenledger.InvalidArgument):
            client.reserve("acme", "zero", 0)
        with pytest.raises(tokenledger.NotFound):
            client.balance("nobody")
        with pytest.raises(tokenledger.AlreadyExists):
            client.create_tenant("acme")
        with pytest.raises(tokenledger.InsufficientBalance) as poor:
            client.reserve("acme", "big", 1_000)
        assert poor.value.details == {"available": 100, "requested": 1_000, "kind": "balance"}
        with pytest.raises(tokenledger.BudgetExceeded) as budget:
            client.reserve("acme", "b", 10, member="ana")
        assert budget.value.details["cap"] == 5 and budget.value.details["resets_at_ms"] > 0
        client.reserve("acme", "h", 10)
        client.commit("acme", "h", 10)
        with pytest.raises(tokenledger.AlreadyCommitted):
            client.commit("acme", "h", 1)
        client.reserve("acme", "r", 1, request_id="same")
        with pytest.raises(tokenledger.IdempotencyConflict):
            client.reserve("acme", "r2", 2, request_id="same")
        with pytest.raises(tokenledger.LimitExceeded):
            client.history("acme", limit=1001)
        assert isinstance(budget.value, tokenledger.LedgerError)


def test_quotas_and_scoped_grants(ledger):
    with ledger.client(attempts=1) as client:
        client.create_tenant("acme", plan_allowance=100, quotas={"cover_image": 2, "transcription": 60})
        with pytest.raises(ValueError):
            client.create_tenant("other", quotas={"cover_image": 1})
        promo = client.grant("acme", 80, "promo", priority=10, scope=["transcription"]).grant
        assert list(promo.scope) == ["transcription"]

        client.charge("acme", "img", items={"cover_image": 2})
        estimate = client.estimate("acme", {"cover_image": 1})
        assert not estimate.affordable
        assert [(q.feature, q.used, q.limit, q.requested) for q in estimate.quotas] == [("cover_image", 2, 2, 1)]
        with pytest.raises(tokenledger.QuotaExceeded) as refused:
            client.charge("acme", "img-2", items={"cover_image": 1})
        details = refused.value.details
        assert (details["feature"], details["used"], details["limit"], details["requested"]) == ("cover_image", 2, 2, 1)
        assert details["resets_at_ms"] > 0 and details["kind"] == "quota"

        # Transcription draws on the scoped promo first; a spend by tokens never does.
        charged = client.charge("acme", "t", items={"transcription": 5})
        assert [c.grant_id for c in charged.hold.captures] == [promo.id]
        with pytest.raises(tokenledger.InsufficientBalance):
            client.charge("acme", "tok", 60)

        balance = client.balance("acme")
        assert [(q.feature, q.used, q.limit) for q in balance.quotas] == [("cover_image", 2, 2), ("transcription", 5, 60)]
        assert [list(b.scope) for b in balance.buckets] == [["transcription"], []]

        client.configure_tenant("acme", plan_allowance=100, quotas=[("cover_image", 3)])
        client.charge("acme", "img-2", items={"cover_image": 1})
        assert [(q.feature, q.used, q.limit) for q in client.balance("acme").quotas] == [("cover_image", 3, 3)]


def test_several_thresholds_and_movement_events_off(ledger):
    with ledger.client() as admin:
        admin.create_tenant("acme", plan_allowance=1_000, thresholds=[800, "50%"], movement_events=False)
        watch = admin.watch("acme", after=0)
        assert watch.next(timeout=10).started.latest_event_id == 1  # the plan's renewal
        assert watch.next(timeout=10).event.WhichOneof("kind") == "plan_renewed"
        admin.charge("acme", "c1", 300)   # 700 left: below 800
        event = watch.next(timeout=10).event
        assert event.WhichOneof("kind") == "low_balance" and event.low_balance.threshold == 800
        admin.charge("acme", "c2", 300)   # 400 left: below 50% of 1,000
        event = watch.next(timeout=10).event
        assert event.WhichOneof("kind") == "low_balance" and event.low_balance.threshold == 500
        balance = admin.balance("acme")
        assert [(t.tokens, t.below) for t in balance.thresholds] == [(800, True), (500, True)]
        assert balance.thresholds[1].threshold.percent == 50 and not balance.movement_events
        admin.configure_tenant("acme", movement_events=True, thresholds=[])
        admin.refund("acme", "c2", 300)
        event = watch.next(timeout=10).event
        assert event.WhichOneof("kind") == "refunded" and event.refunded.amount == 300
        assert list(admin.balance("acme").thresholds) == []
        member = admin.set_member("acme", "ana", budget=100, thresholds=["10%", 30]).member
        assert [t.WhichOneof("kind") for t in member.low_balance_thresholds] == ["percent", "tokens"]
        with pytest.raises(tokenledger.InvalidArgument):
            admin.configure_tenant("acme", thresholds=["0%"])
        watch.stop()


def test_pipelining_from_many_threads(ledger):
    with ledger.client() as client:
        client.create_tenant("acme")
        client.grant("acme", 1_000_000, "promo")
        failures = []

        def work(worker):
            try:
                for index in range(25):
                    hold = f"w{worker}-{index}"
                    client.reserve("acme", hold, 2)
                    client.commit("acme", hold, 1)
            except Exception as error:  # collected and asserted below
                failures.append(error)

        threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        assert client.balance("acme").spent == 16 * 25


def test_retry_uses_the_same_request_id(ledger):
    with ledger.client() as client:
        client.create_tenant("acme")
        client.grant("acme", 1_000, "promo")
        first = client.request("reserve", pb.ReserveRequest(request_id="job-1", tenant="acme", hold_id="h", tokens=300))
        again = client.request("reserve", pb.ReserveRequest(request_id="job-1", tenant="acme", hold_id="h", tokens=300))
        assert not first.replayed and again.replayed
        assert again.reserve == first.reserve
        assert client.balance("acme").reserved == 300


def test_trace_parent_rides_the_request(ledger):
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    with ledger.client() as client:
        client.create_tenant("traced")
        client.grant("traced", 1_000, "promo")
        assert client._build_request("health", pb.HealthRequest()).trace_parent == ""
        with tokenledger.trace_parent(parent):
            built = client._build_request("health", pb.HealthRequest())
            assert pb.Request.FromString(built.SerializeToString()).trace_parent == parent
            # The live server takes the field (ledgerd's own tests check the spans it exports).
            client.reserve("traced", "h", tokens=300)
        assert client._build_request("health", pb.HealthRequest()).trace_parent == ""
        assert client.balance("traced").reserved == 300
    with pytest.raises(TypeError):
        with tokenledger.trace_parent(42):
            pass


def test_refusals(ledger):
    # The server goes away: calls fail with a transport error after the retries.
    client = ledger.client(attempts=2, backoff=0.01)
    client.health()
    assert ledger.stop() == 0
    with pytest.raises(tokenledger.TransportError):
        client.health()
    client.close()
    with pytest.raises(tokenledger.ConnectionClosed):
        client.health()


def test_watch_threshold_and_resume(ledger):
    with ledger.client() as admin, ledger.client() as watcher:
        admin.create_tenant("acme", low_balance_threshold=500)
        admin.grant("acme", 1_000, "purchase")
        watch = watcher.watch("acme")
        started = watch.next(timeout=10).started
        admin.reserve("acme", "job", 600)
        admin.commit("acme", "job", 600)
        low = watch.next(timeout=10).event
        assert low.id == started.latest_event_id + 1
        assert low.WhichOneof("kind") == "low_balance"
        assert (low.low_balance.available, low.low_balance.threshold) == (400, 500)
        captured = watch.next(timeout=10).event
        assert captured.WhichOneof("kind") == "captured" and captured.id == low.id + 1
        assert (captured.captured.hold_id, captured.captured.amount, captured.captured.final) == ("job", 600, True)
        assert watch.stop() is True
        assert watch.next(timeout=10).ended.last_event_id == captured.id
        with pytest.raises(StopIteration):
            watch.next(timeout=10)

        # Missed while not watching: resumed after the last id seen, in order, nothing repeated.
        admin.grant("acme", 200, "promo")
        resumed = watcher.watch("acme", after=captured.id)
        assert resumed.next(timeout=10).started.events_lost == 0
        granted = resumed.next(timeout=10).event
        assert granted.WhichOneof("kind") == "granted" and granted.granted.amount == 200
        recovered = resumed.next(timeout=10).event
        assert recovered.id == captured.id + 2 and recovered.WhichOneof("kind") == "balance_recovered"

        with pytest.raises(tokenledger.NotFound):
            watcher.watch("nobody").next(timeout=10)
