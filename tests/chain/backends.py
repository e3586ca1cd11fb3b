"""EVM nodes as real processes for the chain-client suite and bench/chain.py: devchain and anvil.

The devchain runs as users run it, `python -m walruspy.cli.main chain serve --port 0 --state DIR`,
and is ready when it prints its one line. anvil comes from the npm package `@foundry-rs/anvil`
(a binary inside the package), installed into `.cache/anvil` of the checkout on first use; it runs
with `--hardfork prague` (EIP-2537 BLS precompiles) on 127.0.0.1 with a fixed mnemonic, so the
test accounts' keys are known, and is ready when it prints `Listening on HOST:PORT`. Output goes
to files, never to pipes nobody drains, so a chatty node cannot block.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from eth_account import Account

from walruspy.chain.devchain import dev_account_keys

REPO_ROOT = Path(__file__).resolve().parents[2]
ANVIL_DIR = REPO_ROOT / ".cache" / "anvil"
ANVIL_PACKAGE = "@foundry-rs/anvil"
ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
READY_TIMEOUT_S = 60.0  # python start-up and imports on a loaded two-core machine
NPM_TIMEOUT_S = 300.0  # a cold npm download
N_KEYS = 4


@dataclass
class ChainProcess:
    """A running node: its JSON-RPC URL and the keys of funded accounts."""

    name: str
    url: str
    keys: tuple[bytes, ...]
    process: subprocess.Popen[bytes]
    log: IO[bytes]

    def rpc(self, method: str, *params: Any) -> Any:
        """One JSON-RPC call (for evm_increaseTime and friends)."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        request = urllib.request.Request(
            self.url, body.encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        assert "error" not in answer, answer
        return answer["result"]

    def stop(self) -> None:
        """SIGTERM, then wait (kill after 30 s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)
        self.log.close()


def _wait_for_line(process: subprocess.Popen[bytes], log: IO[bytes], prefix: str) -> str:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        log.seek(0)
        for line in log.read().decode(errors="replace").splitlines():
            if line.startswith(prefix):
                return line
        if process.poll() is not None:
            break
        time.sleep(0.02)
    process.kill()
    process.wait(timeout=30)
    log.seek(0)
    tail = log.read().decode(errors="replace")[-2000:]
    log.close()
    raise AssertionError(f"no line starting {prefix!r} within {READY_TIMEOUT_S} s: {tail}")


def start_devchain(
    state_dir: Path, port: int = 0, *, dev_methods: bool = True, options: tuple[str, ...] = ()
) -> ChainProcess:
    """`walruspy chain serve --port PORT` (0: a free one) in a new process, once it printed its
    ready line; with `--dev-methods` (the suites move its clock with evm_mine) unless told not
    to, and any further `options`."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by ChainProcess.stop
    flags = ("--dev-methods",) if dev_methods else ()
    process = subprocess.Popen(
        [sys.executable, "-m", "walruspy.cli.main", "chain", "serve", "--port", str(port),
         "--state", str(state_dir), *flags, *options],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    line = _wait_for_line(process, log, "devchain listening on ")
    url = line.split()[3]
    return ChainProcess("devchain", url, tuple(dev_account_keys(N_KEYS)), process, log)


def anvil_binary() -> Path | None:
    """The anvil binary, installed with npm into .cache/anvil if missing; None without npm."""
    binary = ANVIL_DIR / "node_modules" / ".bin" / "anvil"
    if binary.exists():
        return binary
    npm = shutil.which("npm")
    if npm is None:
        return None
    ANVIL_DIR.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [npm, "install", "--prefix", str(ANVIL_DIR), "--no-audit", "--no-fund", ANVIL_PACKAGE],
        check=True,
        timeout=NPM_TIMEOUT_S,
        capture_output=True,
    )
    if not binary.exists():
        raise AssertionError(f"npm installed {ANVIL_PACKAGE} but {binary} is missing")
    return binary


def anvil_keys(count: int = N_KEYS) -> tuple[bytes, ...]:
    """The private keys of anvil's first accounts for ANVIL_MNEMONIC."""
    Account.enable_unaudited_hdwallet_features()
    return tuple(
        bytes(Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").key)
        for i in range(count)
    )


def start_anvil(binary: Path) -> ChainProcess:
    """anvil with the Prague fork on a free port of 127.0.0.1, once it listens."""
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by ChainProcess.stop
    process = subprocess.Popen(
        [str(binary), "--hardfork", "prague", "--host", "127.0.0.1", "--port", "0",
         "--mnemonic", ANVIL_MNEMONIC, "--accounts", str(N_KEYS)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip
    line = _wait_for_line(process, log, "Listening on ")
    url = "http://" + line.split()[2]
    return ChainProcess("anvil", url, anvil_keys(), process, log)


@contextlib.contextmanager
def running(name: str, state_dir: Path) -> Iterator[ChainProcess | str]:
    """A started backend, or the reason it cannot run here (only: npm missing for anvil)."""
    if name == "devchain":
        node = start_devchain(state_dir)
    else:
        binary = anvil_binary()
        if binary is None:
            yield f"npm is not installed: it is needed to install {ANVIL_PACKAGE}"
            return
        node = start_anvil(binary)
    try:
        yield node
    finally:
        node.stop()
