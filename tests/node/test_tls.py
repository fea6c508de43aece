"""mTLS: the node takes the caller's identity from its client certificate
(api.md "Identity and who may do what"). Certificates are made by the
OpenSSL CLI for each run."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from server.identity import ADMIN_ROLE
from server.local import Issuer, Node, Redis, free_port
from yibao.v1 import admin_pb2, admin_pb2_grpc, common_pb2, verifier_pb2, verifier_pb2_grpc

HOSPITAL = "H44030500001"
OTHER_HOSPITAL = "H44030500002"


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True)


def _cert(d: Path, name: str, subject: str, *, server: bool = False) -> tuple[Path, Path]:
    key, csr, crt, ext = d / f"{name}.key", d / f"{name}.csr", d / f"{name}.crt", d / f"{name}.ext"
    _openssl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", csr, "-subj", f"/CN={subject}")
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n" if server else "extendedKeyUsage=clientAuth\n")
    _openssl("x509", "-req", "-in", csr, "-CA", d / "ca.crt", "-CAkey", d / "ca.key", "-CAcreateserial",
             "-days", "2", "-out", crt, "-extfile", ext)
    return key, crt


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", d / "ca.key", "-out", d / "ca.crt", "-days", "2", "-subj", "/CN=yibao test CA")
    _cert(d, "server", "localhost", server=True)
    _cert(d, "hospital", HOSPITAL)
    _cert(d, "admin", ADMIN_ROLE)
    return d


def _creds(pki: Path, who: str | None) -> grpc.ChannelCredentials:
    ca = (pki / "ca.crt").read_bytes()
    if who is None:
        return grpc.ssl_channel_credentials(root_certificates=ca)
    return grpc.ssl_channel_credentials(
        root_certificates=ca,
        private_key=(pki / f"{who}.key").read_bytes(),
        certificate_chain=(pki / f"{who}.crt").read_bytes(),
    )


HEALTH_PORT = free_port()


@pytest.fixture(scope="module")
def tls_node(pki: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("tls-node")
    redis = Redis(work / "redis").start()
    issuer = Issuer.create(work)
    node = Node(
        work / "node",
        redis.url,
        issuer.trust_list_path,
        credentials=_creds(pki, "admin"),
        extra=["--tls-cert", str(pki / "server.crt"), "--tls-key", str(pki / "server.key"),
               "--client-ca", str(pki / "ca.crt"), "--health-listen", f"127.0.0.1:{HEALTH_PORT}"],
    )
    try:
        node.start()
        yield node, issuer
    finally:
        node.stop()
        redis.stop()


def _verify(node: Node, creds: grpc.ChannelCredentials, issuer: Issuer, institution: str) -> verifier_pb2.VerifyResponse:
    with grpc.secure_channel(node.target, creds) as ch:
        code = issuer.issue("3A7C0F19B2D44E8A9C115E6B0D2F4A71", "440300", 2)
        return verifier_pb2_grpc.VerifierStub(ch).Verify(
            verifier_pb2.VerifyRequest(code=code, institution_code=institution, request_id=f"tls-{time.monotonic_ns()}"),
            timeout=10,
        )


def test_institution_verifies_for_itself(pki: Path, tls_node) -> None:  # type: ignore[no-untyped-def]
    node, issuer = tls_node
    assert _verify(node, _creds(pki, "hospital"), issuer, HOSPITAL).outcome == verifier_pb2.OUTCOME_VALID


def test_institution_cannot_verify_for_another(pki: Path, tls_node) -> None:  # type: ignore[no-untyped-def]
    node, issuer = tls_node
    with pytest.raises(grpc.RpcError) as e:
        _verify(node, _creds(pki, "hospital"), issuer, OTHER_HOSPITAL)
    assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert OTHER_HOSPITAL in (e.value.details() or "")


def test_no_client_certificate_is_refused(pki: Path, tls_node) -> None:  # type: ignore[no-untyped-def]
    node, issuer = tls_node
    with pytest.raises(grpc.RpcError) as e:
        _verify(node, _creds(pki, None), issuer, HOSPITAL)
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE  # the TLS handshake fails


def test_admin_calls_need_the_admin_role(pki: Path, tls_node) -> None:  # type: ignore[no-untyped-def]
    node, _ = tls_node
    req = admin_pb2.RevokeRequest(credential_id="00112233445566778899AABBCCDDEEFF", reason=common_pb2.REVOCATION_REASON_LOST)
    with grpc.secure_channel(node.target, _creds(pki, "hospital")) as ch:
        with pytest.raises(grpc.RpcError) as e:
            admin_pb2_grpc.AdminStub(ch).Revoke(req, timeout=10)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with grpc.secure_channel(node.target, _creds(pki, "admin")) as ch:
        assert admin_pb2_grpc.AdminStub(ch).Revoke(req, timeout=10).credential_id == req.credential_id


def test_probes_ask_the_plaintext_health_port_and_find_nothing_else_there(tls_node) -> None:  # type: ignore[no-untyped-def]
    """--health-listen: what a Kubernetes gRPC probe (no client certificate) can reach."""
    node, issuer = tls_node
    with grpc.insecure_channel(f"127.0.0.1:{HEALTH_PORT}") as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for service in ("", "yibao.v1.Verifier", "yibao.v1.Settlement"):
            reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING, service
        with pytest.raises(grpc.RpcError) as e:
            verifier_pb2_grpc.VerifierStub(ch).Verify(
                verifier_pb2.VerifyRequest(code=issuer.issue("3A7C0F19B2D44E8A9C115E6B0D2F4A71", "440300", 2),
                                           institution_code=HOSPITAL, request_id="probe-port"), timeout=10)  # fmt: skip
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED, "the probe port must serve health and nothing else"
