"""Azurite, Microsoft's Azure Storage emulator, as a subprocess for the tests and the demo.

Azurite is a Node program, pinned in the repository's `package.json` and installed into
`node_modules/` by `make test` and `make demo` (`npm ci`). `Azurite` starts

    azurite-blob --blobHost 127.0.0.1 --blobPort 0 --inMemoryPersistence
                 --disableTelemetry --skipApiVersionCheck

in a session of its own, reads the port it bound from its log, waits until it answers HTTP, and
on `stop()` (or leaving the `with` block, also when a test fails) terminates the whole process
group, so no Node process outlives the test run; on Linux the process also gets SIGTERM when
the thread that started it ends (PR_SET_PDEATHSIG), so a test process killed outright leaves no
Azurite behind either. Start it from a thread that lives as long as you need it (the main one).
Clients use the well-known development account (`ACCOUNT_NAME`, `ACCOUNT_KEY`):
`connection_string`, or `account_url` and the key.

Backdating: Azurite stamps `Last-Modified` (and `Creation-Time`) from its own clock, and no API
sets them. When Debian's `faketime` package (libfaketime) is installed, the process starts with
libfaketime preloaded, reading the time to report from a file on every call
(`FAKETIME_TIMESTAMP_FILE`, `FAKETIME_NO_CACHE=1`); the monotonic clock is left alone, so Node's
timers keep working. `clock_at(when)` freezes Azurite's wall clock at `when` for a block (uploads
in it get `Last-Modified == when`, to the second), then puts it back to the real time. The test
process's own clock (time_machine) does not reach Azurite: it is another process.

What Azurite 3.35 does and does not do (checked by tests/integration/storage/test_azurite.py):
* access tiers on block blobs: Hot, Cool, Cold, Archive, through Set Blob Tier and the batch
  (`set_standard_blob_tier_blobs`, at most 256 sub-requests: 257 is refused whole with
  `ExceedsMaxBatchRequestCount`); a tier change leaves `Last-Modified` and the ETag alone;
  reading an Archive blob fails with `BlobArchived`; Archive -> Hot/Cool/Cold answers 202 and
  changes the tier at once (no rehydration pending, unlike Azure);
* `maxresults` paging of List Blobs (the `NextMarker` continuation) as Azure does;
* no last-access tracking: `last_accessed_on` is always None (the access-time tracking policy
  is a management-plane setting that Azurite does not model). Kinds that read last access time
  must be tested for it through the local ARM server or by their fallback to `Last-Modified`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

from janitor.model import require_aware

ACCOUNT_NAME = "devstoreaccount1"
# The development account's key, published in Azurite's and Azure's documentation.
ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
AZURITE_ENV = "JANITOR_AZURITE_BLOB"  # path of the azurite-blob executable, to override lookup
LIBFAKETIME_ENV = "JANITOR_LIBFAKETIME"  # path of libfaketime.so.1, to override lookup
MAX_BATCH_SUBREQUESTS = 256
START_TIMEOUT_SECONDS = 60.0
_LISTENING = re.compile(r"successfully listens on http://127\.0\.0\.1:(\d+)")
_INSTALL_HINT = (
    "Azurite is not installed: run `make test` (or `npm ci` at the repository root), which "
    "installs the version pinned in package.json into node_modules/. It needs Node.js and npm "
    "(https://nodejs.org, or your system's package, e.g. `apt-get install nodejs npm`)."
)
_FAKETIME_HINT = (
    "backdating Azurite needs libfaketime: `apt-get install faketime` (Debian/Ubuntu); "
    "`make test` installs it when run as root"
)


class AzuriteNotInstalled(RuntimeError):
    """`node_modules/.bin/azurite-blob` is missing (or Node is)."""


class BackdatingUnavailable(RuntimeError):
    """libfaketime is not installed, so Azurite's clock cannot be moved."""


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[3]


def find_azurite_blob() -> Path:
    """`$JANITOR_AZURITE_BLOB`, else `node_modules/.bin/azurite-blob` at the repository root
    (of this source tree, then of the working directory)."""
    override = os.environ.get(AZURITE_ENV, "").strip()
    candidates = [Path(override)] if override else []
    candidates += [
        root / "node_modules" / ".bin" / "azurite-blob" for root in (_repo_root(), Path.cwd())
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            if shutil.which("node") is None:
                raise AzuriteNotInstalled(f"`node` is not on PATH. {_INSTALL_HINT}")
            return candidate
    raise AzuriteNotInstalled(_INSTALL_HINT)


def find_libfaketime() -> Path | None:
    """`$JANITOR_LIBFAKETIME`, else the multiarch path Debian's `libfaketime` installs to."""
    override = os.environ.get(LIBFAKETIME_ENV, "").strip()
    if override:
        return Path(override) if Path(override).is_file() else None
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    found += sorted(glob.glob("/usr/lib/faketime/libfaketime.so.1"))
    return Path(found[0]) if found else None


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGTERM when the test process dies, even by SIGKILL."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


class Azurite:
    """Azurite's Blob service on 127.0.0.1, in memory. `with Azurite() as azurite: ...`"""

    def __init__(self, *, executable: Path | None = None, backdating: bool = True) -> None:
        self._executable = executable
        self._want_backdating = backdating
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None
        self._port: int | None = None
        self._clock_file: Path | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._process is not None:
            return
        executable = self._executable or find_azurite_blob()
        workdir = Path(tempfile.mkdtemp(prefix="janitor-azurite-"))
        self._workdir = workdir
        env = dict(os.environ)
        library = find_libfaketime() if self._want_backdating else None
        if library is not None:
            clock = workdir / "clock"
            self._clock_file = clock
            self._write_clock("+0")
            env.update(
                {
                    "LD_PRELOAD": " ".join(filter(None, [str(library), env.get("LD_PRELOAD")])),
                    "FAKETIME_TIMESTAMP_FILE": str(clock),
                    "FAKETIME_NO_CACHE": "1",
                    "FAKETIME_DONT_FAKE_MONOTONIC": "1",
                    "TZ": "UTC",  # libfaketime reads absolute times in the local zone
                }
            )
        log = workdir / "azurite.log"
        args = [
            str(executable),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            "0",
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--skipApiVersionCheck",
        ]
        with open(log, "wb") as out:
            self._process = subprocess.Popen(
                args,
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() ends every child
                preexec_fn=_die_with_parent,
            )
        try:
            self._port = self._wait_until_listening(log)
            self._wait_until_answering()
        except BaseException:
            self.stop()
            raise

    def _log_tail(self) -> str:
        if self._workdir is None:
            return ""
        try:
            text = (self._workdir / "azurite.log").read_text(errors="replace")
        except OSError:
            return ""
        return text[-2000:]

    def _wait_until_listening(self, log: Path) -> int:
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            match = _LISTENING.search(log.read_text(errors="replace"))
            if match:
                return int(match.group(1))
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"azurite-blob exited with {self._process.returncode}:\n{self._log_tail()}"
                )
            time.sleep(0.05)
        raise TimeoutError(f"azurite-blob did not listen in time:\n{self._log_tail()}")

    def _wait_until_answering(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            try:
                with urllib.request.urlopen(f"{self.account_url}?comp=list", timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # 403 to an unsigned request: it answers
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            except ProcessLookupError:
                pass
        if process is not None and process.poll() is not None:
            # children left in the group (none expected): end them too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        workdir, self._workdir = self._workdir, None
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        self._port = None
        self._clock_file = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    # -- addresses -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("Azurite is not started")
        return self._port

    @property
    def account_name(self) -> str:
        return ACCOUNT_NAME

    @property
    def account_key(self) -> str:
        return ACCOUNT_KEY

    @property
    def account_url(self) -> str:
        """The Blob endpoint, path-style as Azurite serves it: `http://127.0.0.1:<port>/devstoreaccount1`."""
        return f"http://127.0.0.1:{self.port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};"
            f"AccountKey={ACCOUNT_KEY};BlobEndpoint={self.account_url};"
        )

    # -- the clock -----------------------------------------------------------------------------

    @property
    def backdating(self) -> bool:
        """Whether `clock_at` works (Azurite runs with libfaketime)."""
        return self._clock_file is not None

    def _write_clock(self, spec: str) -> None:
        if self._clock_file is None:
            raise BackdatingUnavailable(_FAKETIME_HINT)
        staging = self._clock_file.with_suffix(".new")
        staging.write_text(spec + "\n")
        os.replace(staging, self._clock_file)  # a reader never sees a half-written file

    @contextmanager
    def clock_at(self, when: datetime) -> Iterator[None]:
        """Freeze Azurite's wall clock at `when` (timezone-aware) for the block: blobs written
        in it get `Last-Modified` = `when` (whole seconds). Back to the real time afterwards."""
        require_aware(when, "when")
        stamp = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        self._write_clock(stamp)
        try:
            yield
        finally:
            self.reset_clock()

    def reset_clock(self) -> None:
        """Azurite's wall clock back to the real time."""
        self._write_clock("+0")
