"""The clients against a cluster (docs/cluster.md): two ledgerd nodes on the PostgreSQL pair that
scripts/test starts (TOKENLEDGER_TEST_POSTGRES names its folder). The Python client follows
wrong_owner to the node that serves each tenant and, knowing both nodes, keeps working through a
kill -9 of the first; the C client (clients/c/tests/cluster_follow.c) follows wrong_owner too."""

import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid

import pytest

from conftest import REPOSITORY, ledgerd_binary
from tokenledger import Client, errors, shard_index


def pair_url():
    directory = os.environ.get("TOKENLEDGER_TEST_POSTGRES")
    if not directory:
        pytest.fail("TOKENLEDGER_TEST_POSTGRES is not set: scripts/test starts the PostgreSQL pair")
    env = dict(line.split("=", 1) for line in open(os.path.join(directory, "env")).read().split())
    name = "py_" + uuid.uuid4().hex[:16]
    subprocess.run([os.path.join(REPOSITORY, "scripts", "postgres-pair"), "psql", directory,
                    "-c", f"CREATE DATABASE {name} OWNER ledger"], check=True)
    url = env["POSTGRES_URL"].replace("/ledger?", f"/{name}?")
    subprocess.run([ledgerd_binary(), "cluster", "init", "--postgres-url", url, "--shards", "4"], check=True,
                   stdout=subprocess.DEVNULL)
    return url


def build_c_program(directory):
    """clients/c/tests/cluster_follow.c against the C client's library (its Makefile's `program`)."""
    program = os.path.join(directory, "cluster_follow")
    built = subprocess.run(["make", "-s", "-C", os.path.join(REPOSITORY, "clients", "c"), "program",
                            f"SOURCE={os.path.join(REPOSITORY, 'clients', 'c', 'tests', 'cluster_follow.c')}",
                            f"PROGRAM={program}"], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    return program


def start_node(url, node_id, directory):
    data_dir = os.path.join(directory, node_id)
    log = open(os.path.join(directory, node_id + ".log"), "w")
    process = subprocess.Popen(
        [ledgerd_binary(), "--storage", "postgres", "--postgres-url", url, "--node-id", node_id, "--lease-ms", "1000",
         "--data-dir", data_dir, "--listen", "127.0.0.1:0", "--grpc-listen", "off", "--metrics-listen", "off"],
        stdout=subprocess.PIPE, stderr=log, text=True)
    first = process.stdout.readline()
    prefix = "ledgerd listening on 127.0.0.1:"
    assert first.startswith(prefix), first
    return process, data_dir, int(first[len(prefix):].split()[0])


def test_the_client_follows_wrong_owner_and_outlives_its_first_node():
    url = pair_url()
    with tempfile.TemporaryDirectory(prefix="tokenledger-py-cluster-") as directory:
        first, first_dir, first_port = start_node(url, "n1", directory)
        os.makedirs(os.path.join(directory, "n2"))
        shutil.copytree(os.path.join(first_dir, "tls"), os.path.join(directory, "n2", "tls"))
        second, _, second_port = start_node(url, "n2", directory)
        try:
            # A client of the second node alone is sent on with the owner's address.
            tenants = [f"p{index}" for index in range(8)]
            with Client("127.0.0.1", second_port, data_dir=first_dir, redirects_max=0) as direct:
                deadline = time.monotonic() + 15
                sent_on = None
                while sent_on is None and time.monotonic() < deadline:
                    for tenant in tenants:
                        try:
                            direct.balance(tenant)
                        except errors.WrongOwner as error:
                            sent_on, moved = error, tenant
                            break
                        except errors.TokenLedgerError:
                            pass
                    time.sleep(0.2)
                assert sent_on is not None and sent_on.details["address"] == f"127.0.0.1:{first_port}"
                # The shard map names a node for every shard, and the client places tenants as the
                # server does (FNV-1a 64 modulo the shard count).
                # (A shard that changes hands shows no address for a moment.)
                deadline = time.monotonic() + 15
                while True:
                    shard_map = direct.shard_map()
                    if all(owner.address for owner in shard_map.shards) or time.monotonic() > deadline:
                        break
                    time.sleep(0.2)
                assert shard_map.cluster and shard_map.shard_count == 4 and len(shard_map.shards) == 4
                nodes = {f"127.0.0.1:{first_port}", f"127.0.0.1:{second_port}"}
                assert {owner.address for owner in shard_map.shards} <= nodes
                assert shard_index(moved, 4) == sent_on.details["shard"]
                for owner in shard_map.shards:
                    assert owner.here == (owner.address == f"127.0.0.1:{second_port}")
            # A watch opened on the second node for a tenant of the first follows wrong_owner.
            with Client("127.0.0.1", second_port, data_dir=first_dir) as following:
                watched = next(f"w{index}" for index in range(1000) if shard_index(f"w{index}", 4) == sent_on.details["shard"])
                following.create_tenant(watched)
                watch = following.watch(watched, after=0)
                assert watch.next(timeout=10).WhichOneof("update") == "started"
                assert watch._connection is following._connections[f"127.0.0.1:{first_port}"]
                assert watch.stop()
            # The C client, connected to the second node, follows wrong_owner by moving its connection:
            # some of its tenants are the first node's (the second sends a plain client there).
            program = build_c_program(directory)
            c_tenants = [f"c{index}" for index in range(8)]
            result = subprocess.run([program, str(second_port), first_dir, *c_tenants], capture_output=True, text=True,
                                    timeout=120)
            assert result.returncode == 0, result.stderr
            elsewhere = 0
            with Client("127.0.0.1", second_port, data_dir=first_dir) as following, \
                    Client("127.0.0.1", second_port, data_dir=first_dir, redirects_max=0) as direct:
                for tenant in c_tenants:
                    assert following.balance(tenant).spent == 10
                    try:
                        direct.balance(tenant)
                    except errors.WrongOwner:
                        elsewhere += 1
            assert elsewhere > 0
            client = Client("127.0.0.1", first_port, data_dir=first_dir, servers=[f"127.0.0.1:{second_port}"],
                            attempts=10, backoff=0.1)
            with client:
                for tenant in tenants:
                    client.create_tenant(tenant)
                    client.grant(tenant, 1_000, "purchase")
                    client.charge(tenant, "before", 10)
                first.send_signal(signal.SIGKILL)
                first.wait()
                for tenant in tenants:
                    client.charge(tenant, "after", 5)
                    assert client.balance(tenant).spent == 15
            # The C client given both addresses connects past the dead first node and charges on the
            # survivor, which now serves every shard.
            d_tenants = [f"d{index}" for index in range(8)]
            result = subprocess.run([program, f"{first_port},127.0.0.1:{second_port}", first_dir, *d_tenants],
                                    capture_output=True, text=True, timeout=120)
            assert result.returncode == 0, result.stderr
            with Client("127.0.0.1", second_port, data_dir=first_dir, redirects_max=0) as survivor:
                for tenant in d_tenants:
                    assert survivor.balance(tenant).spent == 10
        finally:
            for process in (first, second):
                if process.poll() is None:
                    process.kill()
                    process.wait()
