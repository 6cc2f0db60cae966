"""The tests' network block (conftest.no_network_env) really blocks, and lets local sockets be;
the demo_run fixture runs the whole demo under it."""

import subprocess
import sys

from conftest import no_network_env


def _run(code, env):
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_block_refuses_host_lookups_and_tcp(tmp_path):
    env = no_network_env(tmp_path / "nonet")
    res = _run("import urllib.request; urllib.request.urlopen('http://example.org', timeout=5)", env)
    assert res.returncode != 0 and "network access blocked" in res.stderr
    res = _run("import socket; socket.create_connection(('127.0.0.1', 9))", env)
    assert "network access blocked" in res.stderr


def test_block_keeps_unix_sockets_and_imports(tmp_path):
    env = no_network_env(tmp_path / "nonet")
    code = ("import socket, torch, brainalign\n"
            "a, b = socket.socketpair(socket.AF_UNIX)\n"
            "a.sendall(b'x'); assert b.recv(1) == b'x'\n"
            "print('ok')")
    res = _run(code, env)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr
