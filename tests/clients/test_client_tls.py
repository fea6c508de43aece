"""TLS and mTLS from the client's side: certificates made with the openssl
CLI (required by the project's tests anyway), a stand-in peer that demands
a client certificate."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from client_fake_peer import INSTITUTION, FakeNode, running_fake_node
from yibao_client import Client, YibaoError
from yibao_client.cli import main


def _sh(openssl: str, *args: str, cwd: Path) -> None:
    subprocess.run([openssl, *args], cwd=cwd, check=True, capture_output=True)


def _cert(openssl: str, d: Path, name: str, cn: str, ext: str) -> None:
    _sh(
        openssl,
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        f"/CN={cn}",
        cwd=d,
    )
    (d / f"{name}.ext").write_text(ext + "\n")
    _sh(
        openssl,
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        f"{name}.pem",
        "-days",
        "2",
        "-extfile",
        f"{name}.ext",
        cwd=d,
    )


@pytest.fixture(scope="module")
def pki(openssl: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    _sh(
        openssl,
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-subj",
        "/CN=yibao test CA",
        "-days",
        "2",
        cwd=d,
    )
    # the node's certificate names it node.test only: connecting to 127.0.0.1
    # needs --server-name node.test
    _cert(openssl, d, "server", "node.test", "subjectAltName=DNS:node.test\nextendedKeyUsage=serverAuth")
    _cert(openssl, d, "client", INSTITUTION, "extendedKeyUsage=clientAuth")
    return d


@pytest.fixture
def mtls_node(pki: Path) -> Iterator[FakeNode]:
    creds = grpc.ssl_server_credentials(
        [((pki / "server.key").read_bytes(), (pki / "server.pem").read_bytes())],
        root_certificates=(pki / "ca.pem").read_bytes(),
        require_client_auth=True,
    )
    with running_fake_node(creds) as node:
        yield node


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(list(argv), stdout=out, stderr=err), out.getvalue(), err.getvalue()


def test_library_mtls(pki: Path, mtls_node: FakeNode) -> None:
    with Client(
        mtls_node.target,
        root_certificates=pki / "ca.pem",  # a path ...
        private_key=(pki / "client.key").read_bytes(),  # ... or PEM bytes
        certificate_chain=str(pki / "client.pem"),
        server_name="node.test",
    ) as c:
        r = c.verify("OK", institution_code=INSTITUTION)
    assert r.ec_token
    assert mtls_node.peers == [INSTITUTION]


def test_cli_mtls(pki: Path, mtls_node: FakeNode) -> None:
    tls = ["--ca", str(pki / "ca.pem"), "--cert", str(pki / "client.pem"), "--key", str(pki / "client.key")]
    code, out, err = run(
        "--target",
        mtls_node.target,
        *tls,
        "--server-name",
        "node.test",
        "verify",
        "OK",
        "--institution",
        INSTITUTION,
    )
    assert code == 0, err
    assert mtls_node.peers == [INSTITUTION]
    # the same options after the command
    code, out, err = run(
        "verify",
        "OK",
        "--institution",
        INSTITUTION,
        "--target",
        mtls_node.target,
        *tls,
        "--server-name",
        "node.test",
    )
    assert code == 0, err


def test_cli_without_client_certificate_fails(pki: Path, mtls_node: FakeNode) -> None:
    code, out, err = run(
        "--target",
        mtls_node.target,
        "--ca",
        str(pki / "ca.pem"),
        "--server-name",
        "node.test",
        "--retries",
        "0",
        "verify",
        "OK",
        "--institution",
        INSTITUTION,
    )
    assert code == 3 and out == ""
    assert err.count("\n") == 1 and "UNAVAILABLE" in err
    assert mtls_node.peers == []


def test_wrong_server_name_fails(pki: Path, mtls_node: FakeNode) -> None:
    with Client(
        mtls_node.target,
        root_certificates=pki / "ca.pem",
        private_key=pki / "client.key",
        certificate_chain=pki / "client.pem",
        retries=0,
    ) as c:
        with pytest.raises(YibaoError) as info:
            c.verify("OK", institution_code=INSTITUTION)
    assert info.value.code is grpc.StatusCode.UNAVAILABLE


def test_plaintext_client_cannot_talk_to_tls_node(mtls_node: FakeNode) -> None:
    code, _, err = run(
        "--insecure",
        "--target",
        mtls_node.target,
        "--retries",
        "0",
        "verify",
        "OK",
        "--institution",
        INSTITUTION,
    )
    assert code == 3 and "UNAVAILABLE" in err
