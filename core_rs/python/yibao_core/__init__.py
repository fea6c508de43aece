"""Verification core for the medical insurance electronic credential, credential-v1.

The cryptography (SM2 with SM3, default distinguishing ID), the Base45 text
form and the checks of credential-v1 section 4 live in Rust; this package
re-exports them with types.
"""

from ._yibao_core import (
    OUTCOME_DETAILS,
    OUTCOMES,
    CheckResult,
    ReplayGuard,
    RevocationSet,
    SigningKey,
    SnapshotBuilder,
    TrustList,
    TrustListError,
    __version__,
    base45_decode,
    base45_encode,
    check,
    check_batch,
    issue,
    key_id,
    revocation_bucket,
    revocation_records,
    revocations_by_shard,
    sm2_generate_private_key,
    sm2_public_key,
    sm2_sign,
    sm2_verify,
    sm3,
)

__all__ = [
    "OUTCOME_DETAILS",
    "OUTCOMES",
    "CheckResult",
    "ReplayGuard",
    "RevocationSet",
    "SigningKey",
    "SnapshotBuilder",
    "TrustList",
    "TrustListError",
    "__version__",
    "base45_decode",
    "base45_encode",
    "check",
    "check_batch",
    "issue",
    "key_id",
    "revocation_bucket",
    "revocation_records",
    "revocations_by_shard",
    "sm2_generate_private_key",
    "sm2_public_key",
    "sm2_sign",
    "sm2_verify",
    "sm3",
]
