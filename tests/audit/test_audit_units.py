"""The pieces without a database: hashing, ids, masking, sealing, the replay diff, checkpoint fingerprints."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from audit import checkpoints as cps
from audit.chain import COLUMNS, GENESIS, canonical, is_decision_id, new_decision_id, record_hash
from audit.crypto import seal, unseal
from audit.errors import AuditUnavailable
from audit.masking import MASK, mask, path_text, unmask
from audit.records import Head
from audit.replay import differences
from audit.verify import verify_decision_rows
from engine.documents import parse_document
from engine.evaluate import decide
from engine.library import DEFAULT_RULES, Library, read_files
from tests.audit.audit_helpers import AS_OF, BOOK, WATCHED, watchlist_text


def test_decision_ids_are_ulids_in_time_order() -> None:
    ids = [new_decision_id() for _ in range(2000)]
    assert all(is_decision_id(i) for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert new_decision_id(now_ms=1) < new_decision_id()  # the time comes first


def _row(seq: int, prev: str) -> dict:
    row = {name: None for name in COLUMNS}
    row.update(
        seq=seq,
        decision_id=new_decision_id(),
        at="2026-06-30T09:00:00.000000Z",
        caller_kind="cli",
        caller_id="me",
        policy="p",
        policy_digest="sha256:x",
        library="[]",
        engine="credo-engine/1 rete",
        as_of="2026-06-30",
        input="{}",
        outcome="approve",
        score=642.0,
        decision='{"outcome":"approve"}',
        latency_us=1200,
        masked="[]",
        prev_hash=prev,
    )
    row["hash"] = record_hash(row)
    return row


def test_every_column_is_covered_by_the_hash_and_numbers_hash_alike_from_either_driver() -> None:
    row = _row(1, GENESIS)
    for column in COLUMNS:
        if column == "hash":
            continue
        changed = dict(row)
        numeric = column in ("seq", "policy_version", "latency_us", "score", "pd", "limit_amount", "rate")
        changed[column] = (row[column] or 0) + 1 if numeric else "other"
        assert record_hash(changed) != row["hash"], column
    # 642 from one driver and 642.0 from another are the same stored number
    assert record_hash({**row, "score": 642}) == row["hash"]
    assert record_hash({**row, "latency_us": 1200.0}) == row["hash"]


def test_the_pure_verifier_names_the_first_bad_record() -> None:
    rows = [_row(1, GENESIS)]
    for seq in range(2, 8):
        rows.append(_row(seq, rows[-1]["hash"]))
    head = Head(7, rows[-1]["hash"], 0, GENESIS, "c")
    assert verify_decision_rows(rows, head, cps.Checkpoints()).ok
    edited = copy.deepcopy(rows)
    edited[3]["outcome"] = "decline"
    assert verify_decision_rows(edited, head, cps.Checkpoints()).first_bad == 4
    assert verify_decision_rows(rows[:3] + rows[4:], head, cps.Checkpoints()).first_bad == 4
    short = Head(5, rows[4]["hash"], 0, GENESIS, "c")
    assert verify_decision_rows(rows, short, cps.Checkpoints()).first_bad == 6  # beyond the head


def test_checkpoint_lines_of_other_chains_and_broken_lines_are_set_aside() -> None:
    good = {"chain": "a", "seq": 3, "head_hash": "h", "base_seq": 0, "base_hash": GENESIS}
    parsed = cps.parse(
        [json.dumps(good), json.dumps({**good, "chain": "b"}), "{not json", json.dumps({"chain": "a"})], "a"
    )
    assert parsed.lines == [good]
    assert len(parsed.problems) == 2


@pytest.fixture(scope="module")
def watch_library() -> Library:
    documents, _ = read_files(DEFAULT_RULES)
    watch = parse_document(watchlist_text(), "early-warning.yaml")
    return Library([d for d in documents if d.name != "early-warning"] + [watch])


def _watched_case() -> dict:
    case = copy.deepcopy(BOOK[0])
    case["borrower"]["legal_representative"] = WATCHED
    case["borrower"]["name"] = "Sunfield Holdings"
    return case


def test_masking_covers_the_input_the_trace_values_and_the_texts(watch_library: Library) -> None:
    unit = watch_library.compile_policy("project-finance", AS_OF)
    case = _watched_case()
    decision = decide(unit, case, AS_OF)
    alert = next(a for a in decision["alerts"] if a["code"] == "EW-WATCHLIST")
    assert WATCHED in alert["message"]  # the engine's own answer shows it
    masked = mask(unit, case, decision)
    text = json.dumps({"input": masked.input, "decision": masked.decision}, ensure_ascii=False)
    assert WATCHED not in text and "Sunfield Holdings" not in text
    assert masked.input["borrower"]["legal_representative"] == MASK
    masked_alert = next(a for a in masked.decision["alerts"] if a["code"] == "EW-WATCHLIST")
    assert masked_alert["message"] == f"Legal representative {MASK} of {MASK} is on the watch list"
    trace = next(f for f in masked.decision["fired"] if f["rule"] == "EW-WATCHLIST")
    assert trace["because"][0]["values"] == {"borrower.legal_representative": MASK}
    assert "$.input.borrower.legal_representative" in masked.paths
    assert "$.decision.fired[" in " ".join(masked.paths)
    # the sealed originals put everything back exactly
    document = {"input": masked.input, "decision": masked.decision}
    assert unmask(copy.deepcopy(document), masked.originals) == {
        "input": json.loads(json.dumps(case)),
        "decision": json.loads(json.dumps(decision)),
    }
    # the case and the decision given to mask() are left as they were
    assert case["borrower"]["legal_representative"] == WATCHED


def test_a_decision_that_shows_no_sensitive_value_is_stored_without_walking_it(watch_library: Library) -> None:
    unit = watch_library.compile_policy("project-finance", AS_OF)
    case = _watched_case()
    case["borrower"]["legal_representative"] = "Nobody Watched"  # no watch-list alert quotes a name now
    decision = decide(unit, case, AS_OF)
    masked = mask(unit, case, decision)
    assert masked.decision_text == canonical(decision)  # the text it searched is the text stored
    assert masked.decision == decision and masked.paths == [
        "$.input.borrower.legal_representative",
        "$.input.borrower.name",
    ]
    assert masked.input["borrower"]["name"] == MASK and case["borrower"]["name"] == "Sunfield Holdings"
    # a name that JSON would escape cannot be searched for in JSON text: the decision is walked instead
    case["borrower"]["name"] = 'Sunfield "North" Holdings'
    assert mask(unit, case, decide(unit, case, AS_OF)).decision_text is None


def test_a_case_without_sensitive_values_is_stored_as_it_is(watch_library: Library) -> None:
    unit = watch_library.compile_policy("project-finance", AS_OF)
    case = copy.deepcopy(BOOK[0])
    del case["borrower"]["name"], case["borrower"]["legal_representative"]
    masked = mask(unit, case, decide(unit, case, AS_OF))
    assert masked.paths == [] and masked.originals == []


def test_sealing_needs_the_key_and_opens_only_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    token, key_id = seal("secret value")
    assert "secret" not in token and key_id.startswith("k1:")
    assert unseal(token) == "secret value"
    monkeypatch.delenv("CREDO_AUDIT_KEY")
    with pytest.raises(AuditUnavailable) as no_key:
        unseal(token)
    assert no_key.value.code == "audit-key-unavailable"
    from cryptography.fernet import Fernet

    monkeypatch.setenv("CREDO_AUDIT_KEY", Fernet.generate_key().decode())
    with pytest.raises(AuditUnavailable) as wrong:
        unseal(token)
    assert wrong.value.code == "audit-key-mismatch"


def test_a_key_file_is_created_once_with_mode_0600(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CREDO_AUDIT_KEY")
    key_file = tmp_path / "keys" / "audit.key"
    monkeypatch.setenv("CREDO_AUDIT_KEY_FILE", str(key_file))
    token, key_id = seal("x")
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert seal("y")[1] == key_id  # the same key, not a new one
    assert unseal(token) == "x"


def test_differences_name_paths_and_never_confuse_booleans_with_numbers() -> None:
    a = {"outcome": "approve", "score": 642, "flags": [True, 1], "fired": [{"rule": "A"}]}
    b = {"outcome": "refer", "score": 642.0, "flags": [1, 1], "fired": [{"rule": "A"}, {"rule": "B"}]}
    assert [path_text(p) for p in differences(a, b)] == ["$.fired[1]", "$.flags[0]", "$.outcome"]
    assert differences(a, copy.deepcopy(a)) == []
    shown = path_text(["decision", "fired", 3, "values", "borrower.name"])
    assert shown == '$.decision.fired[3].values["borrower.name"]'


def _first_seals(threads: int) -> list[tuple[str, str] | BaseException]:
    import threading

    start = threading.Barrier(threads)
    sealed: list[tuple[str, str] | BaseException] = []

    def first_seal() -> None:
        start.wait()
        try:
            sealed.append(seal("x"))
        except BaseException as exc:  # collected for the caller's assertion
            sealed.append(exc)

    workers = [threading.Thread(target=first_seal) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return sealed


def test_threads_sealing_their_first_record_at_once_share_one_complete_key_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("CREDO_AUDIT_KEY")
    for trial in range(20):  # the race (a reader finding the file created but still empty) needs a few tries
        monkeypatch.setenv("CREDO_AUDIT_KEY_FILE", str(tmp_path / f"k{trial}" / "audit.key"))
        sealed = _first_seals(8)
        assert all(isinstance(s, tuple) for s in sealed), sealed
        assert len({s[1] for s in sealed if isinstance(s, tuple)}) == 1
        assert [p.name for p in (tmp_path / f"k{trial}").iterdir()] == ["audit.key"]  # nothing left aside


def test_a_replaced_key_file_is_read_again(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cryptography.fernet import Fernet

    import audit.crypto

    monkeypatch.delenv("CREDO_AUDIT_KEY")
    monkeypatch.setattr(audit.crypto, "RECHECK_S", 60.0)
    key_file = tmp_path / "audit.key"
    monkeypatch.setenv("CREDO_AUDIT_KEY_FILE", str(key_file))
    seal("x")  # creates the file
    old_id = seal("x")[1]  # reads it, and keeps it
    new_key = Fernet.generate_key()
    replacement = tmp_path / "audit.key.new"
    replacement.write_bytes(new_key + b"\n")
    replacement.replace(key_file)  # a rotation: a new file under the same name
    assert seal("y")[1] == old_id  # the file is looked at again only after RECHECK_S
    monkeypatch.setattr(audit.crypto, "RECHECK_S", 0.0)
    assert seal("z")[1] == audit.crypto.key_id_of(new_key) != old_id
