"""The `yibao` command line: argument errors, output, exit codes, and the
network commands against the stand-in peer."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from client_fake_peer import CREDENTIAL_ID, INSTITUTION, FakeNode
from yibao_client.cli import build_parser, main


class Run:
    def __init__(self, code: int, out: str, err: str) -> None:
        self.code, self.out, self.err = code, out, err


def run(*argv: str, stdin: str | None = None, tty: bool = False) -> Run:
    out = io.StringIO()
    err = _TTY() if tty else io.StringIO()
    sin = None
    if stdin is not None:
        sin = io.TextIOWrapper(io.BytesIO(stdin.encode("utf-8")), encoding="utf-8", newline="")
    code = main(list(argv), stdout=out, stderr=err, stdin=sin)
    return Run(code, out.getvalue(), err.getvalue())


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def net(node: FakeNode) -> list[str]:
    return ["--insecure", "--target", node.target, "--timeout", "5", "--retries", "1"]


# -- usage errors: exit 2, naming the option -------------------------------------
@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["verify", "YB1:X"], "--institution"),
        (["verify", "YB1:X", "--institution", "X123"], "--institution"),
        (["verify", "YB1:X", "--institution", INSTITUTION, "--timeout", "0"], "--timeout"),
        (["verify-file", "f.txt", "--institution", INSTITUTION, "--batch", "1001"], "--batch"),
        (["verify-file", "f.txt", "--institution", INSTITUTION, "--batch", "zero"], "--batch"),
        (["revoke", CREDENTIAL_ID], "--reason"),
        (["revoke", CREDENTIAL_ID, "--reason", "stolen"], "--reason"),
        (["revoke", "not-hex", "--reason", "lost"], "ID"),
        (["channel", "withdraw", CREDENTIAL_ID, "--channel", "weibo"], "--channel"),
        (["node-key", "--region", "99"], "--region"),
        (["--retries", "5", "node-key"], "--retries"),
        (["issue", "--credential-id", CREDENTIAL_ID, "--region", "440300", "--channel", "wechat"], "--key"),
        (
            ["issue", "--key", "k", "--credential-id", "00", "--region", "440300", "--channel", "wechat"],
            "--credential-id",
        ),
        (
            [
                "issue",
                "--key",
                "k",
                "--credential-id",
                CREDENTIAL_ID,
                "--region",
                "4403",
                "--channel",
                "wechat",
            ],
            "--region",
        ),
        (
            [
                "issue",
                "--key",
                "k",
                "--credential-id",
                CREDENTIAL_ID,
                "--region",
                "440300",
                "--channel",
                "fax",
            ],
            "--channel",
        ),
        (
            [
                "issue",
                "--key",
                "k",
                "--credential-id",
                CREDENTIAL_ID,
                "--region",
                "440300",
                "--channel",
                "wechat",
                "--ttl",
                "301",
            ],
            "--ttl",
        ),
        (["keygen"], "--out"),
        (["keygen", "--out", "k", "--not-before", "yesterday"], "--not-before"),
        (["nonsense"], "COMMAND"),
        ([], "COMMAND"),
    ],
)
def test_usage_errors_exit_2_naming_the_option(argv: list[str], named: str) -> None:
    r = run(*argv)
    assert r.code == 2, r.err
    assert named in r.err
    assert r.out == ""


def test_handler_usage_errors_exit_2(tmp_path: Path) -> None:
    r = run("--insecure", "verify-file", str(tmp_path / "missing.txt"), "--institution", INSTITUTION)
    assert r.code == 2 and "FILE" in r.err and "missing.txt" in r.err
    r = run("--insecure", "--ca", "ca.pem", "verify", "x", "--institution", INSTITUTION)
    assert r.code == 2 and "--insecure" in r.err and "--ca" in r.err
    r = run("--cert", "c.pem", "verify", "x", "--institution", INSTITUTION)
    assert r.code == 2 and "--key" in r.err
    r = run("--insecure", "verify", "x", "--institution", INSTITUTION, "--request-id", "x" * 65)
    assert r.code == 2 and "--request-id" in r.err


def test_help_exits_0_and_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (
        ["--help"],
        ["verify", "--help"],
        ["verify-file", "--help"],
        ["issue", "--help"],
        ["keygen", "--help"],
        ["channel", "withdraw", "--help"],
        ["trust-list", "load", "--help"],
    ):
        r = run(*argv)
        assert r.code == 0
        assert "example" in r.out


def test_global_options_before_or_after_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    p = build_parser()
    a = p.parse_args(["--target", "h:1", "--timeout", "2", "verify", "x", "--institution", INSTITUTION])
    assert (a.target, a.timeout, a.insecure, a.json) == ("h:1", 2.0, False, False)
    a = p.parse_args(["verify", "x", "--institution", INSTITUTION, "--target", "h:2", "--insecure", "--json"])
    assert (a.target, a.insecure, a.json, a.timeout) == ("h:2", True, True, 5.0)
    # given before and not after: the subcommand does not reset it
    a = p.parse_args(["--insecure", "--json", "revoke", CREDENTIAL_ID, "--reason", "LOST"])
    assert a.insecure and a.json and a.reason == "lost" and a.credential_id == CREDENTIAL_ID
    monkeypatch.setenv("YIBAO_TARGET", "env:3")
    monkeypatch.setenv("YIBAO_INSECURE", "1")
    monkeypatch.setenv("YIBAO_INSTITUTION", "p44030000009")
    a = build_parser().parse_args(["verify", "x"])
    assert (a.target, a.insecure, a.institution) == ("env:3", True, "P44030000009")
    # issue's --key is the issuer key, not the TLS key
    a = p.parse_args(
        [
            "--key",
            "tls.key",
            "issue",
            "--key",
            "issuer.key",
            "--credential-id",
            CREDENTIAL_ID,
            "--region",
            "440300",
            "--channel",
            "wechat",
        ]
    )
    assert (a.tls_key, a.issuer_key) == ("tls.key", "issuer.key")


# -- verify ----------------------------------------------------------------------
def test_verify_valid_human(fake_node: FakeNode) -> None:
    r = run(*net(fake_node), "verify", "OK-code", "--institution", INSTITUTION, "--request-id", "r1")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert lines[0].split()[:3] == ["outcome", "VALID", "有效"]
    assert "ec_token          tok-r1" in r.out
    assert "credential_id     " + CREDENTIAL_ID in r.out
    assert "wechat  微信" in r.out
    assert "110105  (province 11)" in r.out
    assert "2026-05-29 04:26:40.123 +08:00" in r.out  # issued_at, China Standard Time
    sent = fake_node.calls_to("Verify")[0]
    assert (sent.code, sent.institution_code, sent.request_id) == ("OK-code", INSTITUTION, "r1")


def test_verify_not_valid_exits_1(fake_node: FakeNode) -> None:
    r = run(*net(fake_node), "verify", "REV-code", "--institution", INSTITUTION)
    assert r.code == 1
    assert "REVOKED" in r.out and "lost  挂失" in r.out
    assert "ec_token" not in r.out


def test_verify_json(fake_node: FakeNode) -> None:
    r = run(*net(fake_node), "--json", "verify", "EXP-1", "--institution", INSTITUTION, "--request-id", "j")
    assert r.code == 1
    d = json.loads(r.out)
    assert d["outcome"] == "EXPIRED"
    assert d["request_id"] == "j"
    assert d["credential"]["channel"] == "wechat"
    assert d["credential"]["issued_at"] == "2026-05-28T20:26:40.123Z"
    assert d["revocation_reason"] is None and d["token_expires_at"] is None and d["ec_token"] == ""
    assert d["cross_province"] is True


def test_verify_reads_stdin_keeping_spaces(fake_node: FakeNode) -> None:
    r = run(*net(fake_node), "verify", "-", "--institution", INSTITUTION, stdin="OK with  spaces \r\n")
    assert r.code == 0, r.err
    assert fake_node.calls_to("Verify")[0].code == "OK with  spaces "


def test_verify_rpc_error_exits_3_one_line(fake_node: FakeNode) -> None:
    fake_node.fail_first = 100
    r = run(*net(fake_node), "verify", "OK", "--institution", INSTITUTION)
    assert r.code == 3
    assert r.out == ""
    err_lines = r.err.strip().splitlines()
    assert len(err_lines) == 1
    assert "UNAVAILABLE: national store unreachable" in err_lines[0]


def test_rpc_error_json_also_on_stdout(fake_node: FakeNode) -> None:
    r = run(*net(fake_node), "--json", "trust-list", "load", "-", stdin="not json")
    assert r.code == 3
    assert "INVALID_ARGUMENT" in r.err and "reason=FIELD_OUT_OF_FORM" in r.err
    d = json.loads(r.out)["error"]
    assert d["code"] == "INVALID_ARGUMENT" and d["metadata"] == {"field": "trust_list_json"}
    assert r.err.startswith("yibao trust-list load: INVALID_ARGUMENT")


def test_unreachable_node_exits_3() -> None:
    r = run(
        "--insecure", "--target", "127.0.0.1:9", "--retries", "0", "verify", "x", "--institution", INSTITUTION
    )
    assert r.code == 3
    assert r.err.count("\n") == 1
    assert "UNAVAILABLE" in r.err and "(target 127.0.0.1:9)" in r.err


# -- verify-file -----------------------------------------------------------------
CODES_FILE = (
    b"OK first code with  two spaces\r\n"
    b"EXP second\n"
    b"\n"
    b"   \r\n"
    b"OK \x0bvertical-tab and \x1cfile-sep stay inside\n"
    b" junk with leading space\n"
    b"OK last line without newline"
)
EXPECTED = [
    (1, "OK first code with  two spaces"),
    (2, "EXP second"),
    (5, "OK \x0bvertical-tab and \x1cfile-sep stay inside"),
    (6, " junk with leading space"),
    (7, "OK last line without newline"),
]


@pytest.mark.parametrize("mode", [[], ["--batch", "2"]], ids=["stream", "batch"])
def test_verify_file_sends_lines_whole(tmp_path: Path, fake_node: FakeNode, mode: list[str]) -> None:
    f = tmp_path / "codes.txt"
    f.write_bytes(CODES_FILE)
    r = run(
        *net(fake_node),
        "verify-file",
        str(f),
        "--institution",
        INSTITUTION,
        "--request-prefix",
        "run1",
        *mode,
    )
    assert r.code == 0, r.err
    if mode:
        # up to 4 batches are in flight at once, so they may arrive in any order
        sent = [req for batch in fake_node.calls_to("VerifyBatch") for req in batch.requests]
        sent.sort(key=lambda q: int(q.request_id.rsplit("-", 1)[1]))
        assert sorted(len(b.requests) for b in fake_node.calls_to("VerifyBatch")) == [1, 2, 2]
    else:
        sent = fake_node.calls_to("VerifyStream.request")
    assert [(q.request_id, q.code) for q in sent] == [(f"run1-{n}", c) for n, c in EXPECTED]
    # human output: the codes that are not VALID, then the summary table
    assert "line 2       EXPIRED" in r.out
    assert "line 6       MALFORMED" in r.out
    assert "line 1 " not in r.out
    table = r.out[r.out.index("outcome") :]
    assert "VALID" in table and "3" in table and "60.00%" in table
    assert "total" in table and "5" in table and "100.00%" in table
    assert "2 blank lines skipped" in r.out
    assert "codes/s" in r.out


def test_verify_file_json(tmp_path: Path, fake_node: FakeNode) -> None:
    f = tmp_path / "codes.txt"
    f.write_bytes(CODES_FILE)
    r = run(*net(fake_node), "--json", "verify-file", str(f), "--institution", INSTITUTION)
    assert r.code == 0, r.err
    objs = [json.loads(line) for line in r.out.splitlines()]
    assert [o["line"] for o in objs[:-1]] == [n for n, _ in EXPECTED]
    assert [o["outcome"] for o in objs[:-1]] == ["VALID", "EXPIRED", "VALID", "MALFORMED", "VALID"]
    s = objs[-1]["summary"]
    assert s["codes"] == 5 and s["blank_lines"] == 2
    assert s["by_outcome"] == {"VALID": 3, "MALFORMED": 1, "EXPIRED": 1}
    assert s["method"] == "VerifyStream"


def test_verify_file_stdin_and_progress(fake_node: FakeNode) -> None:
    text = "".join(f"OK {i}\n" for i in range(30))
    r = run(
        *net(fake_node),
        "verify-file",
        "-",
        "--institution",
        INSTITUTION,
        "--show",
        "all",
        stdin=text,
        tty=True,
    )
    assert r.code == 0, r.err
    assert r.out.count("VALID  有效") == 30 and r.out.count("\nline ") == 29
    assert "\r" in r.err and "codes" in r.err  # progress line, cleared at the end
    assert r.err.endswith("\r\x1b[K")


def test_verify_file_rpc_error(tmp_path: Path, fake_node: FakeNode) -> None:
    fake_node.fail_first = 100
    f = tmp_path / "codes.txt"
    f.write_text("OK\n")
    r = run(*net(fake_node), "verify-file", str(f), "--institution", INSTITUTION, "--batch", "10")
    assert r.code == 3 and "UNAVAILABLE" in r.err


# -- admin -------------------------------------------------------------------------
def test_admin_commands(fake_node: FakeNode, tmp_path: Path) -> None:
    r = run(*net(fake_node), "revoke", CREDENTIAL_ID.lower(), "--reason", "Frozen")
    assert r.code == 0, r.err
    assert "revoked" in r.out and CREDENTIAL_ID in r.out and "frozen (冻结)" in r.out
    assert fake_node.calls_to("Revoke")[0].credential_id == CREDENTIAL_ID

    r = run(*net(fake_node), "--json", "restore", CREDENTIAL_ID)
    assert json.loads(r.out) == {"credential_id": CREDENTIAL_ID, "was_revoked": True}

    r = run(*net(fake_node), "channel", "withdraw", CREDENTIAL_ID, "--channel", "alipay")
    assert r.code == 0 and "alipay (支付宝)" in r.out
    assert fake_node.calls_to("WithdrawChannel")[0].channel == 3
    r = run(*net(fake_node), "--json", "channel", "restore", CREDENTIAL_ID, "--channel", "gov_service")
    assert json.loads(r.out)["channel"] == "gov_service"

    tl = tmp_path / "tl.json"
    tl.write_text(json.dumps({"version": 1, "keys": [{"key_id": "0F26FD26"}, {"key_id": "68D5EEC6"}]}))
    r = run(*net(fake_node), "trust-list", "load", str(tl))
    assert r.code == 0 and "0F26FD26, 68D5EEC6" in r.out

    r = run(*net(fake_node), "node-key")
    assert r.code == 0, r.err
    assert r.out.splitlines()[0].split() == ["region", "44"]
    assert fake_node.calls_to("GetNodeKey")[0].region == ""

    r = run(*net(fake_node), "--json", "node-key", "--region", "11")
    d = json.loads(r.out)
    assert (
        d["region"] == "11" and d["key_id"] == "0A0B0C0D" and d["public_key"] == "04" + bytes(range(64)).hex()
    )
