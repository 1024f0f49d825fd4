"""Loaded by every Python process the tests start (tests/conftest.py puts this directory on
PYTHONPATH, and installs the same guard in the pytest process): any connection or name lookup
outside the loopback range fails at once, so a test passes only if nothing in the product
needs the network (ultralytics' font/weight/pip downloads included)."""
import ipaddress
import socket

BLOCKED: list = []
_connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", ""}


def _is_local(host) -> bool:
    if host is None:
        return True
    host = host.decode() if isinstance(host, bytes) else str(host)
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _check(sock, address):
    if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple) and not _is_local(address[0]):
        BLOCKED.append(address[0])
        raise OSError(101, f"network access to {address[0]!r} is blocked in tests (loopback only)")


def connect(self, address):
    _check(self, address)
    return _connect(self, address)


def connect_ex(self, address):
    _check(self, address)
    return _connect_ex(self, address)


def getaddrinfo(host, *args, **kwargs):
    if not _is_local(host):
        BLOCKED.append(str(host))
        raise socket.gaierror(socket.EAI_NONAME, f"name lookup of {host!r} is blocked in tests (loopback only)")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
socket.getaddrinfo = getaddrinfo

# tests/deploy/test_iam.py and tests/faults/: record every AWS API call of this process when asked to.
import os as _os

if _os.environ.get("TESTS_AWS_CALL_LOG"):
    import cvitx_aws_calls  # noqa: F401,E402 - installs itself (it lives beside this file)

# tests/faults/test_stall.py: make a stage of a real worker process block for good, to prove
# the poller notices a handler that makes no progress.  Test-only: this file is on the path of
# processes the tests start, never of a deployed worker.
if _os.environ.get("TESTS_BLOCK_STAGE"):
    import cvitx_block_stage  # noqa: F401,E402 - installs itself (it lives beside this file)
