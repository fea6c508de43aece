"""Types of the Rust extension. Every function is safe on any input: bad
input raises ValueError (or TypeError) with a message naming the field; no
input panics or crashes the interpreter."""

import os
from collections.abc import Sequence
from typing import Final, final

__version__: Final[str]

#: The outcome names of credential-v1 section 4, in the order of the checks
#: ("VALID" last is the spec's order; the API's enum puts it first).
OUTCOMES: Final[tuple[str, ...]]

#: The cashier's sentence for each outcome (Chinese / English).
OUTCOME_DETAILS: Final[dict[str, str]]

class TrustListError(ValueError):
    """A trust list that cannot be used; the message names the key and the fault."""

# --- SM3 and SM2 (GB/T 32905, GB/T 32918.2), default ID "1234567812345678" ---

def sm3(data: bytes) -> bytes:
    """SM3 digest, 32 bytes."""

def sm2_generate_private_key() -> bytes:
    """A fresh private key, 32 bytes big-endian, from the OS random source."""

def sm2_public_key(private_key: bytes) -> bytes:
    """The 65-byte uncompressed public key (04||X||Y) of a 32-byte private key."""

def sm2_sign(private_key: bytes, message: bytes) -> bytes:
    """SM2 signature with SM3 and the default ID, raw r||s (64 bytes).
    Nonces are derived as in RFC 6979, so signing is deterministic. Parses
    the key on every call: to sign many messages, use SigningKey."""

@final
class SigningKey:
    """An SM2 private key (SM3, default ID) prepared once for signing many
    messages: the same signatures as sm2_sign, byte for byte, without parsing
    the key each time. Constant-time in the key and the nonce. ValueError
    unless private_key is 32 bytes encoding a scalar in [1, n-2]."""
    def __new__(cls, private_key: bytes) -> SigningKey: ...
    @property
    def public_key(self) -> bytes:
        """The 65-byte uncompressed public key (04||X||Y)."""
    def sign(self, message: bytes) -> bytes:
        """The raw r||s signature (64 bytes) of message; deterministic."""

def sm2_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True iff the raw r||s signature is valid for the message under the
    65-byte uncompressed public key and the default ID. A signature of the
    wrong length is False; a public key that is not a curve point is ValueError."""

def key_id(public_key: bytes) -> str:
    """The credential-v1 key id of a public key: first 4 bytes of SM3(04||X||Y), 8 upper-case hex."""

# --- Base45 (RFC 9285) ---

def base45_encode(data: bytes) -> str: ...
def base45_decode(text: str) -> bytes:
    """Raises ValueError on a character outside the alphabet, a dangling
    single character, or a group whose value overflows."""

# --- Trust list (credential-v1 section 6) ---

@final
class TrustList:
    @staticmethod
    def from_json(text: str | bytes) -> TrustList:
        """Parse and check a trust list; TrustListError names the bad key."""
    def __len__(self) -> int: ...
    @property
    def key_ids(self) -> list[str]:
        """Key ids in file order (a shared id appears once per key)."""

# --- State the checks consult ---

@final
class RevocationSet:
    """Revoked credentials (with their reason) and withdrawn channels.
    Thread-safe; read without the GIL during checks. Credential ids are
    32 hex digits (either case) or 16 raw bytes.

    With `snapshot` (a filter file written by SnapshotBuilder.write,
    mapped read-only and shared by every process that maps it) the set is
    that snapshot plus an exact delta: revocations since (with reason) and
    restorations since. An id only the snapshot may hold is "UNCONFIRMED":
    the caller asks the national store. `withdrawals_from` copies another
    set's withdrawn channels (they are always held exactly)."""
    def __new__(
        cls, snapshot: str | os.PathLike[str] | None = None, *, withdrawals_from: RevocationSet | None = None
    ) -> RevocationSet: ...
    @property
    def snapshot_ids(self) -> int:
        """Ids in the snapshot (0 without one)."""
    @property
    def snapshot_bytes(self) -> int:
        """Bytes of the mapped snapshot file (0 without one)."""
    @property
    def delta_len(self) -> int:
        """Entries held exactly: revocations and restorations since the snapshot."""
    def revoke(self, credential_id: str | bytes, reason: str) -> None:
        """reason: "LOST", "FROZEN", "CANCELLED" or "DECEASED"."""
    def revoke_many(self, credential_ids: bytes, reason: str) -> None:
        """Bulk load: credential_ids is a concatenation of 16-byte ids."""
    def revoke_records(self, records: bytes) -> int:
        """Bulk revocations as the national stream carries them: 17-byte
        records, an id then its reason's code (b"L", b"F", b"C", b"D").
        All or none; returns how many."""
    def restore(self, credential_id: str | bytes) -> bool:
        """Lift a revocation; True if the delta held one."""
    def reason(self, credential_id: str | bytes) -> str | None:
        """The reason, None if not revoked, or "UNCONFIRMED" if only the
        national store can tell (the snapshot may hold the id)."""
    def withdraw_channel(self, credential_id: str | bytes, channel: int) -> None: ...
    def restore_channel(self, credential_id: str | bytes, channel: int) -> bool: ...
    def channel_withdrawn(self, credential_id: str | bytes, channel: int) -> bool: ...
    def clear(self) -> None: ...
    def __len__(self) -> int:
        """Number of revoked credentials (with a snapshot: those in it, plus
        revocations since, less restorations since)."""
    @property
    def withdrawals(self) -> int:
        """Number of credentials with at least one withdrawn channel."""

@final
class SnapshotBuilder:
    """A revocation snapshot's filter (a binary fuse filter, about 2.26
    bytes per id; one id in 65,536 not in it still "may" be), built from
    ids given in parts, as the national store's buckets are read."""

    def __init__(self) -> None: ...
    def add(self, records: bytes, *, record_size: int = 17) -> None:
        """Add concatenated records: a 16-byte id, and with `record_size`
        17 (the store's form) a reason code after it."""
    def __len__(self) -> int:
        """Ids added so far, counting repeats."""
    def write(self, path: str | os.PathLike[str]) -> int:
        """Write the filter of every id added to `path` (whole or not at
        all: written beside it and renamed) and start empty again; returns
        the distinct ids in it."""

def revocation_records(credential_ids: Sequence[str], codes: bytes) -> bytes:
    """A revocation batch as 17-byte records (the 16-byte id, then its
    reason code): `credential_ids[i]` is 32 hexadecimal digits, either case,
    and `codes[i]` one of ``L`` ``F`` ``C`` ``D``. Raises
    ValueError(index, field) for the first bad entry ("credential_id" or
    "reason"), so nothing of a bad batch is used."""

def revocation_bucket(credential_id: bytes) -> int:
    """The national store's bucket (0 to 2**20 - 1) of a 16-byte id: the
    first 20 bits of its SM3 digest, big-endian."""

def revocations_by_shard(records: bytes, buckets_per_shard: int) -> list[tuple[int, list[int], bytes]]:
    """17-byte records grouped by shard (`buckets_per_shard` consecutive
    buckets each), in ascending order: the shard, each record's bucket, and
    its records in the order given."""

@final
class ReplayGuard:
    """In-process record of accepted (credential_id, nonce) pairs, kept in
    one-second buckets by expiry so memory is bounded by the validity window.
    Each entry remembers the retry key of the request that was accepted, so a
    retry of that same request is answered VALID again (credential-v1 4.7)."""
    def __init__(self) -> None: ...
    def __len__(self) -> int: ...
    def prune(self, now_ms: int) -> int:
        """Drop entries whose code can no longer pass step 4 at now_ms; returns how many."""
    def admit(
        self, credential_id: str | bytes, nonce: str, *, retry_key: bytes | None, dead_at_ms: int, now_ms: int
    ) -> str:
        """Step 7 alone, for a caller that ran steps 1 to 6 itself: record
        (credential_id, nonce) until dead_at_ms (expiry plus skew). Returns
        "FIRST" (now recorded), "RETRY" (recorded before under the same
        retry_key) or "REPLAYED"."""

# --- The checks (credential-v1 section 4) ---

@final
class CheckResult:
    #: One of OUTCOMES: "VALID", "MALFORMED", "UNSUPPORTED_VERSION", "UNKNOWN_KEY",
    #: "KEY_NOT_VALID", "NOT_YET_VALID", "EXPIRED", "BAD_SIGNATURE", "REVOKED",
    #: "CHANNEL_REVOKED", "REPLAYED".
    outcome: str
    #: A sentence for the cashier's screen.
    detail: str
    #: The fields below are None unless the payload decoded (outcome is
    #: neither MALFORMED nor UNSUPPORTED_VERSION).
    credential_id: str | None
    #: "" when the code was not presented through a family account.
    presenter_id: str | None
    insured_region: str | None
    province: str | None
    channel: int | None
    issued_at_ms: int | None
    ttl_s: int | None
    expires_at_ms: int | None
    key_id: str | None
    nonce: str | None
    family: bool | None
    #: For REVOKED: "LOST", "FROZEN", "CANCELLED" or "DECEASED".
    revocation_reason: str | None
    #: Step 6 met the revocation snapshot's "maybe": the outcome stands if
    #: the national store says the id is not revoked, else it is REVOKED.
    #: Step 7 (replay) was not run for such a code.
    revocation_unconfirmed: bool
    def to_dict(self) -> dict[str, object]: ...

def check(
    code: str | bytes,
    trust_list: TrustList,
    now_ms: int,
    *,
    skew_ms: int = 5000,
    revocations: RevocationSet | None = None,
    replay: ReplayGuard | None = None,
    retry_key: bytes | None = None,
) -> CheckResult:
    """Run the checks of credential-v1 section 4 in order. Without
    `revocations`, step 6 passes; without `replay`, step 7 is left to the
    caller (the node records replays in Redis) and VALID means "passed
    steps 1 to 6". `retry_key` identifies the request (institution and
    request id): a code already accepted under the same key is VALID again."""

def check_batch(
    codes: Sequence[str | bytes],
    trust_list: TrustList,
    now_ms: int,
    *,
    skew_ms: int = 5000,
    revocations: RevocationSet | None = None,
    replay: ReplayGuard | None = None,
    retry_keys: Sequence[bytes | None] | None = None,
    threads: int | None = None,
) -> list[CheckResult]:
    """check() over many codes with the GIL released, spread over `threads`
    worker threads (default: one per core); results in input order. Steps 1
    to 6 run in parallel, step 7 in input order, so the first of two equal
    codes is the one accepted."""

# --- The issuer (demo, tests, benchmarks) ---

def issue(
    private_key: bytes,
    *,
    credential_id: str | bytes,
    insured_region: str,
    channel: int,
    issued_at_ms: int,
    ttl_s: int = 60,
    nonce: bytes | None = None,
    presenter_id: str | bytes | None = None,
) -> str:
    """A signed code "YB1:..." from fields and the issuer's private key. The
    family flag is set when presenter_id is given. A random 8-byte nonce is
    drawn when none is given. ValueError names any field that breaks its rule."""
