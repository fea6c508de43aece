"""Where the trust list comes from: the --trust-list file (watched, and
published to the national store when it changes), Admin.LoadTrustList, or
the national store (what another node published)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import yibao_core
from server import metrics
from server.national import NationalStore
from server.state import NodeState

log = logging.getLogger(__name__)

EMPTY = '{"version": 1, "keys": []}'
POLL_S = 1.0


def read_file(path: Path) -> tuple[str, yibao_core.TrustList]:
    """The file's text and parsed list; raises OSError or TrustListError."""
    text = path.read_text(encoding="utf-8")
    return text, yibao_core.TrustList.from_json(text)


class TrustListSource:
    def __init__(self, store: NationalStore, state: NodeState, path: Path | None) -> None:
        self._store = store
        self._state = state
        self._path = path
        self._file_stamp: tuple[int, int] | None = None

    @staticmethod
    async def initial(store: NationalStore, path: Path | None) -> tuple[str, yibao_core.TrustList]:
        """At start: the file if given (published for every node), else what
        the national store holds, else an empty list (every code UNKNOWN_KEY
        until one is loaded)."""
        if path is not None:
            text, trust_list = read_file(path)
            await store.publish_trust_list(text)
            return text, trust_list
        text = await store.trust_list()
        if text is None:
            log.warning("no trust list: give --trust-list or call Admin.LoadTrustList; every code is UNKNOWN_KEY until then")
            text = EMPTY
        return text, yibao_core.TrustList.from_json(text)

    def apply(self, text: str, trust_list: yibao_core.TrustList) -> None:
        self._state.trust_list = trust_list
        self._state.trust_list_text = text
        metrics.set_trust_keys_loaded(len(trust_list))
        log.info("trust list in force: %r", trust_list)

    async def publish(self, text: str, trust_list: yibao_core.TrustList) -> None:
        await self._store.publish_trust_list(text)
        self.apply(text, trust_list)

    async def on_published(self) -> None:
        """Another node (or this one) published a list: take it if it differs."""
        text = await self._store.trust_list()
        if text is None or text == self._state.trust_list_text:
            return
        try:
            self.apply(text, yibao_core.TrustList.from_json(text))
        except yibao_core.TrustListError as e:
            log.error("the national store holds a trust list this node refuses, keeping the old one: %s", e)

    async def watch_file(self) -> None:
        if self._path is None:
            return
        self._file_stamp = self._stamp()
        while True:
            await asyncio.sleep(POLL_S)
            stamp = self._stamp()
            if stamp == self._file_stamp:
                continue
            self._file_stamp = stamp
            try:
                text, trust_list = read_file(self._path)
            except (OSError, yibao_core.TrustListError) as e:
                log.error("%s changed but cannot be used, keeping the old list: %s", self._path, e)
                continue
            try:
                await self.publish(text, trust_list)
            except Exception as e:  # noqa: BLE001 - the store may be away; the list still applies here
                log.warning("trust list from %s applied here but not published: %s", self._path, e)
                self.apply(text, trust_list)

    def _stamp(self) -> tuple[int, int] | None:
        try:
            st = self._path.stat()  # type: ignore[union-attr]
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size
