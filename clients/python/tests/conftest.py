"""A live ledgerd for the tests: the real binary on a temporary data directory and a free port."""

import os
import signal
import subprocess
import sys
import tempfile

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))


def ledgerd_binary():
    path = os.environ.get("LEDGERD") or os.path.join(REPOSITORY, ".build", "debug", "ledgerd")
    if not os.access(path, os.X_OK):
        pytest.fail(f"no ledgerd at {path}: run `swift build` first or set LEDGERD")
    return path


class Ledger:
    def __init__(self, directory):
        self.data_dir = os.path.join(directory, "ledger-data")
        self.log = open(os.path.join(directory, "ledgerd.log"), "w")
        self.process = subprocess.Popen(
            [ledgerd_binary(), "--data-dir", self.data_dir, "--listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        first = self.process.stdout.readline()
        prefix = "ledgerd listening on 127.0.0.1:"
        if not first.startswith(prefix):
            self.process.kill()
            raise RuntimeError(f"ledgerd did not start: {first!r}")
        self.port = int(first[len(prefix):].split()[0])

    def client(self, **options):
        from tokenledger import Client
        return Client("127.0.0.1", self.port, data_dir=self.data_dir, **options)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        status = self.process.wait(timeout=30)
        self.log.close()
        return status


@pytest.fixture
def ledger():
    with tempfile.TemporaryDirectory(prefix="tokenledger-py-") as directory:
        running = Ledger(directory)
        try:
            yield running
        finally:
            if running.process.poll() is None:
                assert running.stop() == 0
