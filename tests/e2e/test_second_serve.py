"""A second `postroom serve` on the data directory of a running one (other ports) is refused:
it used to bind data/writer.sock in place of the first server's writer socket and delete it on
exit. Servers with data directories of their own still share one store (test_delivery_crash)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from support.server import POSTROOM, make_server, submit

pytestmark = pytest.mark.slow

MSG = b"From: a@two.example\r\nSubject: two\r\n\r\nhello\r\n"


def test_a_second_serve_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    first = make_server(tmp_path / "one")
    first.create_account("two", "--sender-domain", "two.example", "--trusted-network",
                         "127.0.0.0/8")
    second = make_server(tmp_path / "two")  # other ports, then the first's data_dir
    text = second.config.read_text()
    second.config.write_text(re.sub(r'^data_dir = ".*"$', f'data_dir = "{first.root / "data"}"',
                                    text, count=1, flags=re.M))
    first.start()
    sock = first.root / "data" / "writer.sock"
    try:
        assert submit(first.plain, "a@two.example", "r@example.org", MSG)[0] == 250
        inode = sock.stat().st_ino
        proc = subprocess.Popen([*POSTROOM, "serve", "--config", str(second.config)],
                                env=second.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)
        try:
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.communicate(timeout=20)
        assert proc.returncode == 1, (out, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: cannot start: another "), err
        assert str(first.root / "data") in lines[0]
        assert sock.stat().st_ino == inode  # still the first server's own socket
        for _ in range(3):  # on new connections: the first server goes on accepting mail
            assert submit(first.plain, "a@two.example", "r@example.org", MSG)[0] == 250
        assert "Traceback" not in first.log(), first.log()
    finally:
        first.stop()
