"""The fast tier's guard (server_guard.py) fails a test that starts a server without the integration marker.

Each case runs a small test file in a pytest subprocess with the guard installed, as the suite's conftest installs
it. The fast-tier cases start no server of their own: the guard refuses the listen() before anything listens. The
cases where a server really listens (a child process, a marked test) are integration tests themselves.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

TESTS_DIR = Path(__file__).resolve().parent

CONFTEST = f"""
import sys

sys.path.insert(0, {str(TESTS_DIR)!r})

from server_guard import install


def pytest_configure(config):
    config.addinivalue_line("markers", "integration: starts a server")
    install(config)
"""

# A child process that listens on a free loopback port, says which, and waits to be stopped.
LISTENER = """
import socket, sys, time
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen()
print(server.getsockname()[1], flush=True)
time.sleep(60)
"""


def _run(pytester: pytest.Pytester, source: str) -> pytest.RunResult:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_cases=textwrap.dedent(source))
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist", "-rA")


def _outcomes(result: pytest.RunResult) -> dict[str, str]:
    """test name -> PASSED / FAILED / ERROR, from the -rA summary."""
    found: dict[str, str] = {}
    for line in result.outlines:
        for outcome in ("PASSED", "FAILED", "ERROR"):
            if line.startswith(f"{outcome} test_cases.py::"):
                name = line.removeprefix(f"{outcome} test_cases.py::").split(" ")[0]
                found[name] = outcome
    return found


def test_an_unmarked_test_with_a_server_fixture_or_an_in_process_listener_fails(pytester: pytest.Pytester) -> None:
    result = _run(
        pytester,
        """
        import os, socket, subprocess, sys, tempfile
        import pytest

        @pytest.fixture
        def kafka_broker():  # named like the suite's server fixture; starts nothing here
            return None

        @pytest.fixture
        def indirect(request):
            return request.getfixturevalue("kafka_broker")

        def test_server_fixture(kafka_broker):
            pass

        def test_server_fixture_asked_for_by_another_fixture(indirect):
            pass

        def test_listens_in_process():
            with socket.socket() as server:
                server.bind(("127.0.0.1", 0))
                server.listen()

        def test_listens_on_ipv6_in_process():
            with socket.socket(socket.AF_INET6) as server:
                server.bind(("::1", 0))
                server.listen()

        def test_a_short_subprocess_and_a_client_socket_are_fine():
            subprocess.run([sys.executable, "-c", "print('hi')"], check=True, capture_output=True)
            with socket.socket() as client:
                client.bind(("127.0.0.1", 0))

        def test_a_unix_socket_may_listen():
            directory = tempfile.mkdtemp()  # short: a socket path has a length limit tmp_path can pass
            with socket.socket(socket.AF_UNIX) as server:
                server.bind(os.path.join(directory, "s"))
                server.listen()

        @pytest.mark.integration
        def test_a_marked_test_may_use_a_server_fixture(kafka_broker):
            pass
        """,
    )
    assert _outcomes(result) == {
        "test_server_fixture": "ERROR",
        "test_server_fixture_asked_for_by_another_fixture": "ERROR",
        "test_listens_in_process": "FAILED",
        "test_listens_on_ipv6_in_process": "FAILED",
        "test_a_short_subprocess_and_a_client_socket_are_fine": "PASSED",
        "test_a_unix_socket_may_listen": "PASSED",
        "test_a_marked_test_may_use_a_server_fixture": "PASSED",
    }
    output = result.stdout.str()
    assert "test_cases.py::test_server_fixture starts a server but is not marked integration" in output
    assert "uses the server fixture(s) kafka_broker" in output
    assert "listen() on TCP 127.0.0.1:" in output and "listen() on TCP ::1:" in output
    assert "mark it @pytest.mark.integration" in output


@pytest.mark.integration  # its cases really listen, in the test's own child processes
def test_an_unmarked_test_whose_child_process_listens_fails(pytester: pytest.Pytester) -> None:
    result = _run(
        pytester,
        f"""
        import socket, subprocess, sys, time
        import pytest

        LISTENER = {LISTENER!r}

        def start():
            child = subprocess.Popen([sys.executable, "-c", LISTENER], stdout=subprocess.PIPE, text=True)
            child.stdout.readline()  # it listens
            return child

        @pytest.fixture
        def server():
            child = start()
            yield child
            child.kill()
            child.wait()

        def test_a_fixture_child_listens(server):
            pass

        def test_a_child_listens_inside_the_test_only():
            child = start()
            time.sleep(0.5)  # the guard samples every 0.1 s
            child.kill()
            child.wait()

        @pytest.mark.integration
        def test_a_marked_test_may_start_one(server):
            with socket.socket() as own:
                own.bind(("127.0.0.1", 0))
                own.listen()
        """,
    )
    assert _outcomes(result) == {
        "test_a_fixture_child_listens": "ERROR",
        "test_a_child_listens_inside_the_test_only": "FAILED",
        "test_a_marked_test_may_start_one": "PASSED",
    }
    assert "starts a server but is not marked integration" in result.stdout.str()
    assert "listening on 127.0.0.1:" in result.stdout.str()
