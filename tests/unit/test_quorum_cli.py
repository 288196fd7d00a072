"""`hastack qserver serve|status`: bad options and bad configurations get a clear message and
exit 1, never a traceback; the status text says who holds the vote."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from hastack.cli.qserver_cmd import _render
from hastack.config.directory import load_config
from hastack.quorum.__main__ import main
from hastack.quorum.daemon import QServer
from hastack.quorum.link import query_status, split_address
from hastack.quorum.protocol import ProtocolError
from hastack.quorum.server import ClusterSpec


def cluster_dir(tmp_path: Path, name: str, cluster: str = "stretch", qserver: str = "") -> Path:
    directory = tmp_path / name
    directory.mkdir()
    lines = [f"cluster_name {cluster}", "node n1", "node n2", "ucast lo 127.0.0.1"]
    if qserver:
        lines.append(f"quorum_server {qserver}")
    (directory / "ha.cf").write_text("\n".join(lines) + "\n")
    keys = directory / "authkeys"
    keys.write_text("auth 1\n1 sha256 0123456789abcdef0123456789abcdef\n")
    keys.chmod(0o600)
    return directory


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out + captured.err


def test_a_bad_tie_breaker_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = cluster_dir(tmp_path, "c1")
    code, out = run(capsys, "serve", "-c", str(conf), "--tie-breaker", "biggest")
    assert code == 1
    assert "tie-breaker 'biggest': use lowest, highest, resources or a node id" in out


def test_tls_options_come_together(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = cluster_dir(tmp_path, "c1")
    code, out = run(capsys, "serve", "-c", str(conf), "--tls-cert", "x.pem")
    assert code == 1
    assert "give --tls-cert, --tls-key and --tls-ca together" in out


def test_unreadable_tls_files_are_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = cluster_dir(tmp_path, "c1")
    code, out = run(
        capsys,
        "serve",
        "-c",
        str(conf),
        "--tls-cert",
        "no.pem",
        "--tls-key",
        "no.key",
        "--tls-ca",
        "no-ca.pem",
    )
    assert code == 1
    assert "TLS files no.pem, no.key, no-ca.pem" in out


def test_a_bad_listen_address(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = cluster_dir(tmp_path, "c1")
    code, out = run(capsys, "serve", "-c", str(conf), "--listen", "127.0.0.1:http")
    assert code == 1
    assert "write HOST:PORT" in out


def test_a_missing_configuration_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run(capsys, "serve", "-c", str(tmp_path / "nowhere"))
    assert code == 1
    assert "not a configuration directory" in out


def test_two_directories_of_one_cluster_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one, two = cluster_dir(tmp_path, "a"), cluster_dir(tmp_path, "b")
    code, out = run(capsys, "serve", "-c", str(one), "-c", str(two))
    assert code == 1
    assert "both configure cluster 'stretch'" in out


def test_a_port_in_use_is_a_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = cluster_dir(tmp_path, "c1")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out = run(capsys, "serve", "-c", str(conf), "--listen", f"127.0.0.1:{port}")
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in out


def test_status_needs_a_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "status", "-c", str(cluster_dir(tmp_path, "c1")))
    assert code == 1
    assert "no quorum_server line" in out


def test_status_of_an_unreachable_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    conf = cluster_dir(tmp_path, "c1", qserver=f"127.0.0.1:{port}")
    code, out = run(capsys, "status", "-c", str(conf))
    assert code == 1
    assert f"cannot reach the quorum server at 127.0.0.1:{port}" in out


def test_status_query_in_process_and_a_refused_one(tmp_path: Path) -> None:
    """The status question over the real port, answered for the asker's cluster only; a
    cluster the server does not serve is refused with the reason."""
    served = load_config(str(cluster_dir(tmp_path, "c1")))
    stranger = load_config(str(cluster_dir(tmp_path, "c2", cluster="elsewhere")))

    async def scenario() -> tuple[dict[str, object], str]:
        server = QServer([ClusterSpec.from_config(served)], "127.0.0.1", 0, lease=1.0)
        host, port = await server.start()
        try:
            status = await query_status(host, port, "stretch", served.authkeys)
            with pytest.raises(ProtocolError) as refused:
                await query_status(host, port, "elsewhere", stranger.authkeys)
            return status, str(refused.value)
        finally:
            await server.close()

    status, refusal = asyncio.run(scenario())
    assert list(status["clusters"]) == ["stretch"]  # type: ignore[call-overload]
    assert "unknown cluster 'elsewhere'" in refusal


def test_render_names_the_holder_and_the_partitions() -> None:
    status = {
        "lease": 3.0,
        "starting_for": 0,
        "clusters": {
            "stretch": {
                "vote_holder": ["n2"],
                "vote_remaining": 2.5,
                "why": "the largest partition (1 votes)",
                "nodes": {
                    "n1": {"id": 1, "connected": False, "members": None},
                    "n2": {"id": 2, "connected": True, "members": ["n2"]},
                },
                "partitions": [
                    {"members": ["n2"], "votes": 1, "settled": True, "why_not_settled": ""}
                ],
            }
        },
    }
    text = _render("stretch", status)
    assert "vote: held by {n2} for 2.5 s" in text
    assert "node n1 (id 1): not connected" in text
    assert "partition {n2}: 1 votes, settled" in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [("h:1", ("h", 1)), ("h", ("h", 5403)), ("[::1]:7", ("::1", 7)), ("::1", ("::1", 5403))],
)
def test_split_address(text: str, expected: tuple[str, int]) -> None:
    assert split_address(text) == expected
