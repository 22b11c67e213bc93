"""The audit trail's hash chain: how an event is hashed, and how a stored chain is checked.

Every event carries the hash of the one before it (one chain over all releases, in id order,
so deleting a whole release's events breaks it too) and its own hash over every stored field
in a canonical encoding. A chain head, kept in its own row and rewritten with each append,
names the last event, so deleting the tail is seen as well.

With a key (``RELEASE_BOT_AUDIT_KEY``) each event and the head also carry an HMAC of their
hash. Without one, a forger who rewrites rows and recomputes every hash is not detected: the
hashes only catch edits made without knowing the scheme. The head's HMAC covers the last
hash, which covers every hash before it, so one valid head HMAC vouches for the whole chain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Literal

from bot.domain.base import Model

GENESIS = "0" * 64  # the "previous hash" of the first event
SCHEME = "release-bot/audit/v1"

BreakKind = Literal["edited", "inserted", "deleted", "out of order"]


class AuditRecord(Model):
    """An event as stored, with its links: what ``audit export`` writes, one a line."""

    id: int
    release_id: str
    at: str  # the stored text, hashed as it is
    actor: str
    action: str
    details: str
    data: Any
    prev_hash: str | None
    hash: str | None
    mac: str | None = None  # HMAC of ``hash`` when a key was configured at append


class ChainHead(Model):
    """The last event written, as the appending transaction recorded it."""

    last_id: int
    hash: str
    mac: str | None = None


class Break(Model):
    """The first broken link: where, which release (None: unknown, e.g. deleted) and what."""

    event_id: int
    release_id: str | None
    kind: BreakKind
    detail: str

    def line(self) -> str:
        release = self.release_id or "release unknown"
        return f"event #{self.event_id} ({release}): {self.kind}: {self.detail}"


class AuditVerdict(Model):
    """``count``: the events checked (of ``release_id`` when given); ``head``: the last
    hash, worth noting elsewhere to catch a later rollback of the whole file."""

    release_id: str | None
    count: int
    chained: int  # every event in the chain
    head: str
    keyed: bool  # HMACs were checked
    broken: Break | None = None
    note: str | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None

    def line(self) -> str:
        if self.broken is not None:
            return f"BROKEN: {self.broken.line()}"
        scope = (
            f"{self.count} events of {self.release_id}"
            if self.release_id
            else f"{self.count} events"
        )
        how = "hashes and HMACs" if self.keyed else "hashes"
        text = f"OK: {scope} verified ({how}; chain of {self.chained}, head {self.head[:16]})"
        return text + (f"; {self.note}" if self.note else "")


def canonical_data(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(
    prev_hash: str, release_id: str, at: str, actor: str, action: str, details: str, data: Any
) -> str:
    """SHA-256 over every stored field and the previous hash, as one canonical JSON array."""
    fields = [SCHEME, prev_hash, release_id, at, actor, action, details, canonical_data(data)]
    encoded = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode("utf-8")).hexdigest()


def record_hash(record: AuditRecord) -> str:
    r = record
    return event_hash(r.prev_hash or "", r.release_id, r.at, r.actor, r.action, r.details, r.data)


def event_mac(key: bytes, hash_: str) -> str:
    return hmac.new(key, f"event:{hash_}".encode(), hashlib.sha256).hexdigest()


def head_mac(key: bytes, last_id: int, hash_: str) -> str:
    return hmac.new(key, f"head:{last_id}:{hash_}".encode(), hashlib.sha256).hexdigest()


def verify_chain(
    records: list[AuditRecord],
    head: ChainHead | None,
    key: bytes | None,
    release_id: str | None = None,
) -> AuditVerdict:
    """Check the whole chain (``records`` in id order) against its head. With
    ``release_id``, breaks found at other releases' events are left out; deletions (whose
    release cannot be told) and the head's are not."""
    broken = _first_break(records, head, key, release_id)
    mine = [r for r in records if release_id is None or r.release_id == release_id]
    note = None
    if key is None and any(r.mac for r in records):
        note = "HMACs not checked: RELEASE_BOT_AUDIT_KEY is not set"
    return AuditVerdict(
        release_id=release_id,
        count=len(mine),
        chained=len(records),
        head=records[-1].hash or GENESIS if records else GENESIS,
        keyed=key is not None,
        broken=broken,
        note=note,
    )


def _first_break(
    records: list[AuditRecord], head: ChainHead | None, key: bytes | None, release_id: str | None
) -> Break | None:
    def concerns(b: Break) -> bool:
        return release_id is None or b.release_id in (None, release_id)

    by_hash = {r.hash: r for r in records if r.hash}
    prev: AuditRecord | None = None
    keyed_since: int | None = None  # the first event an HMAC signs
    for r in records:
        own = _own_break(r)
        link = None if own is not None else _link_break(r, prev, by_hash)
        found = own or link or _mac_break(r, key, keyed_since)
        # A link that does not match may be the previous event rewritten with its hash
        # recomputed: it concerns that event's release too.
        implicated = link is not None and prev is not None and prev.release_id == release_id
        if found is not None and (concerns(found) or implicated):
            return found
        if r.mac and keyed_since is None:
            keyed_since = r.id
        prev = r
    return _head_break(records, head, key)


def _own_break(r: AuditRecord) -> Break | None:
    """What is wrong with the event by itself: no hash, or fields that do not match it."""
    if not r.hash or r.prev_hash is None:
        return Break(event_id=r.id, release_id=r.release_id, kind="inserted",
                     detail="it carries no hash: it was not written by release-bot")  # fmt: skip
    if record_hash(r) != r.hash:
        return Break(event_id=r.id, release_id=r.release_id, kind="edited",
                     detail="its stored fields no longer match its hash")  # fmt: skip
    return None


def _link_break(
    r: AuditRecord, prev: AuditRecord | None, by_hash: dict[str, AuditRecord]
) -> Break | None:
    """What is wrong with the link from ``prev`` to ``r`` (``r`` itself is sound)."""

    def broke(kind: BreakKind, detail: str, release: str | None = r.release_id) -> Break:
        return Break(event_id=r.id, release_id=release, kind=kind, detail=detail)

    expected = prev.hash if prev is not None else GENESIS
    if r.prev_hash is None or r.prev_hash == expected:  # None: ``_own_break``'s
        return None
    expected_id = prev.id + 1 if prev is not None else 1
    linked = by_hash.get(r.prev_hash)
    if linked is not None and linked is not prev:
        return broke("out of order", f"it follows event #{linked.id} in the chain, not "
                     + (f"#{prev.id}" if prev else "the start"))  # fmt: skip
    if r.id != expected_id:
        missing = f"#{expected_id}" if r.id == expected_id + 1 else f"#{expected_id}–#{r.id - 1}"
        return broke("deleted", f"event {missing} before it is missing", release=None)
    if prev is None:
        return broke("edited", "the first event does not start the chain")
    return broke(
        "edited",
        f"its link does not match event #{prev.id}'s hash: #{prev.id} was rewritten with its "
        f"hash recomputed, or events before #{r.id} were deleted and renumbered",
    )


def _mac_break(r: AuditRecord, key: bytes | None, keyed_since: int | None) -> Break | None:
    if key is None or not r.hash:
        return None
    if r.mac is None:
        if keyed_since is None:
            return None  # written before the key was set; the later HMACs vouch for it
        return Break(
            event_id=r.id,
            release_id=r.release_id,
            kind="inserted",
            detail=f"it carries no HMAC though every event since #{keyed_since} does: "
            "written without the key",
        )
    if not hmac.compare_digest(r.mac, event_mac(key, r.hash)):
        return Break(
            event_id=r.id,
            release_id=r.release_id,
            kind="edited",
            detail="its HMAC does not match: rewritten without the key (or the key changed)",
        )
    return None


def _head_break(
    records: list[AuditRecord], head: ChainHead | None, key: bytes | None
) -> Break | None:
    last = records[-1] if records else None
    if head is None:
        if last is None:
            return None
        return Break(event_id=last.id, release_id=last.release_id, kind="deleted",
                     detail="the chain head is missing")  # fmt: skip
    if last is None or head.last_id > last.id:
        after = f"#{last.id + 1}" if last else "#1"
        return Break(
            event_id=last.id + 1 if last else 1,
            release_id=None,
            kind="deleted",
            detail=f"events {after}–#{head.last_id} at the end are missing "
            f"(the chain head names #{head.last_id} as the last one written)",
        )
    if head.last_id < last.id:
        return Break(
            event_id=head.last_id + 1,
            release_id=next(r.release_id for r in records if r.id > head.last_id),
            kind="inserted",
            detail=f"written after the chain head's last event #{head.last_id}, not by release-bot",
        )
    if head.hash != last.hash:
        return Break(event_id=last.id, release_id=last.release_id, kind="edited",
                     detail="it differs from what the chain head recorded")  # fmt: skip
    if key is None:
        return None
    if head.mac is None:
        return Break(
            event_id=last.id,
            release_id=last.release_id,
            kind="edited",
            detail="the chain head carries no HMAC though RELEASE_BOT_AUDIT_KEY is set: "
            "stripped, or the key was only just set (the next event signs it)",
        )
    if not hmac.compare_digest(head.mac, head_mac(key, head.last_id, head.hash)):
        return Break(
            event_id=last.id,
            release_id=last.release_id,
            kind="edited",
            detail="the chain head's HMAC does not match: rewritten without the key "
            "(or the key changed)",
        )
    return None


def chain(
    rows: list[dict[str, Any]], prev_hash: str, key: bytes | None
) -> list[tuple[str, str, str | None]]:
    """(prev_hash, hash, mac) for new events ``rows`` (release_id, at, actor, action, details,
    data) appended after ``prev_hash``."""
    out: list[tuple[str, str, str | None]] = []
    for row in rows:
        h = event_hash(prev_hash, row["release_id"], row["at"], row["actor"], row["action"],
                       row["details"], row["data"])  # fmt: skip
        out.append((prev_hash, h, event_mac(key, h) if key else None))
        prev_hash = h
    return out
