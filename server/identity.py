"""Who is calling (api.md "Identity and who may do what"): with mTLS, the
client certificate's common name is either an institution code
(定点医药机构编码, e.g. H44030500001), the admin role, or a node that
forwards an institution's call from another province. A plaintext node
(--insecure) has no identities and lets every call through; it says so in
its log when it starts."""

from __future__ import annotations

from collections.abc import Iterable

import grpc

ADMIN_ROLE = "yibao-admin"
#: Another province's node forwarding an institution's call (异地就医).
NODE_ROLE = "yibao-node"


class Denied(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class Authorizer:
    def __init__(self, *, insecure: bool) -> None:
        self._insecure = insecure

    @staticmethod
    def _common_name(context: grpc.aio.ServicerContext) -> str:
        names = context.auth_context().get("x509_common_name") or []
        if not names:
            raise Denied(grpc.StatusCode.UNAUTHENTICATED, "a client certificate is required")
        return names[0].decode(errors="replace")

    def institutions(self, context: grpc.aio.ServicerContext, codes: Iterable[str]) -> None:
        """Every institution_code in the call must be the caller's own."""
        if self._insecure:
            return
        own = self._common_name(context)
        if own == NODE_ROLE:
            return
        for code in codes:
            if code != own:
                raise Denied(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"institution_code {code!r} is not the caller's own ({own!r} in its certificate)",
                )

    def reader_of(self, context: grpc.aio.ServicerContext, institution_code: str) -> None:
        """A settlement is read by the institution that made it, an admin, or a forwarding node."""
        if self._insecure:
            return
        name = self._common_name(context)
        if name not in (institution_code, ADMIN_ROLE, NODE_ROLE):
            raise Denied(grpc.StatusCode.PERMISSION_DENIED, f"{name!r} did not make settlement of {institution_code!r}")

    def admin(self, context: grpc.aio.ServicerContext) -> str:
        """The admin's name for the audit log; raises unless the caller is an admin."""
        if self._insecure:
            return "admin (no authentication: --insecure)"
        name = self._common_name(context)
        if name not in (ADMIN_ROLE, NODE_ROLE):
            raise Denied(grpc.StatusCode.PERMISSION_DENIED, f"{name!r} is not an admin (common name {ADMIN_ROLE!r})")
        return name
