"""Crash safety: a writer killed at any moment leaves an index that opens at the last committed version.

Two ways of killing: at each named step of a commit (SHOPLENS_CRASH_AT makes the
process exit there as `kill -9` would), and `kill -9` at random moments over
many trials. After each, the index must open, pass `check`, and hold exactly the
products of one committed version: none lost, none duplicated.
"""

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from shoplens.indexers.index import IndexDirectory
from shoplens.indexers.maintenance import check_index
from shoplens.indexers.snapshot import Snapshot
from shoplens.indexers.updates import apply_delta, delete_products
from tests.helpers import REPO, sample_products, copy_index

ROWS = sample_products(60)
POINTS = ["products-written", "vectors-written", "lexical-written", "manifest-written", "version-renamed",
          "current-replaced"]


def live_ids(index_path):
    return set(Snapshot.open(IndexDirectory(index_path), device="cpu").products.docno_by_id)


def write_delta(tmp_path):
    """Every price changes, two products go, three arrive (their text and image are already cached)."""
    rows = [{"id": r["id"], "price": float(i + 1)} for i, r in enumerate(ROWS[:58])]
    rows += [dict(ROWS[i], id=f"copy-{i}", image=str(REPO / "data" / "myntra-sample" / ROWS[i]["image"]))
             for i in range(3)]
    path = tmp_path / "delta.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    deletes = tmp_path / "gone.txt"
    deletes.write_text(f"{ROWS[58]['id']}\n{ROWS[59]['id']}\n")
    return path, deletes


def command(index, *args, crash_at=None):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    env.pop("SHOPLENS_CRASH_AT", None)
    if crash_at:
        env["SHOPLENS_CRASH_AT"] = crash_at
    return [sys.executable, "-m", "shoplens", *args, "--index", str(index)], env


def assert_one_committed_state(index, old_ids, new_ids):
    report = check_index(index)
    assert report.ok, report.problems
    ids = live_ids(index)
    assert ids in (old_ids, new_ids), f"{len(ids)} live products match neither committed version"
    return ids


@pytest.mark.parametrize("point", POINTS)
def test_killed_at_each_step_of_a_commit(small_index, tmp_path, point):
    delta, _ = write_delta(tmp_path)
    old_ids = live_ids(small_index)
    new_ids = old_ids | {"copy-0", "copy-1", "copy-2"}
    args, env = command(small_index, "update", str(delta), crash_at=point)
    process = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert process.returncode == 137, process.stderr
    expected_version = 2 if point == "current-replaced" else 1
    index = IndexDirectory(small_index)
    assert index.current_version() == expected_version
    ids = assert_one_committed_state(small_index, old_ids, new_ids)
    assert ids == (new_ids if expected_version == 2 else old_ids)
    # the next writer cleans up and carries on with the next number
    args, env = command(small_index, "update", str(delta))
    assert subprocess.run(args, cwd=REPO, env=env, capture_output=True, timeout=180).returncode == 0
    assert live_ids(small_index) == new_ids
    # version 2 either way: after a crash past the commit the delta is already applied, and an update
    # that changes nothing creates no version
    assert index.current_version() == 2
    assert check_index(small_index).ok


@pytest.mark.parametrize("kind", ["events", "rollback", "compact", "delete"])
def test_other_writes_are_atomic_too(small_index, tmp_path, kind):
    _, deletes = write_delta(tmp_path)
    events = tmp_path / "e.events.jsonl"
    events.write_text(json.dumps({"ts": 1, "type": "click", "id": ROWS[0]["id"], "query": "q", "position": 1}) + "\n")
    if kind in ("rollback", "compact"):
        args, env = command(small_index, "delete", "--file", str(deletes))
        subprocess.run(args, cwd=REPO, env=env, check=True, capture_output=True, timeout=180)
    extra = {"events": ["events", str(events)], "rollback": ["rollback", "1"], "compact": ["compact"],
             "delete": ["delete", "--file", str(deletes)]}[kind]
    before = IndexDirectory(small_index).current_version()
    old_ids = live_ids(small_index)
    for point in ("manifest-written", "version-renamed"):
        args, env = command(small_index, *extra, crash_at=point)
        assert subprocess.run(args, cwd=REPO, env=env, capture_output=True, timeout=180).returncode == 137
        assert IndexDirectory(small_index).current_version() == before
        assert live_ids(small_index) == old_ids and check_index(small_index).ok
    args, env = command(small_index, *extra)
    assert subprocess.run(args, cwd=REPO, env=env, capture_output=True, timeout=180).returncode == 0
    assert IndexDirectory(small_index).current_version() == before + 1


def test_kill_9_at_random_moments(small_index, tmp_path):
    """Many trials of `kill -9` at a random moment of `shoplens update`."""
    delta, _ = write_delta(tmp_path)
    old_ids = live_ids(small_index)
    new_ids = old_ids | {"copy-0", "copy-1", "copy-2"}
    pristine = copy_index(small_index, tmp_path / "pristine")
    args, env = command(small_index, "update", str(delta))
    started = time.monotonic()
    subprocess.run(args, cwd=REPO, env=env, check=True, capture_output=True, timeout=180)
    full = time.monotonic() - started
    rng = random.Random(1234)
    outcomes = {"old": 0, "new": 0}
    for trial in range(16):
        index = tmp_path / f"trial-{trial}"
        copy_index(pristine, index)
        args, env = command(index, "update", str(delta))
        process = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.4, 1.0) * full)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
        ids = assert_one_committed_state(index, old_ids, new_ids)
        outcomes["new" if ids == new_ids else "old"] += 1
        args, env = command(index, "update", str(delta))  # and a later writer always succeeds
        assert subprocess.run(args, cwd=REPO, env=env, capture_output=True, timeout=180).returncode == 0
        assert live_ids(index) == new_ids
    assert sum(outcomes.values()) == 16


def live_records(index_path):
    products = Snapshot.open(IndexDirectory(index_path), device="cpu").products
    docnos = products.live_docnos()
    return {record["id"]: record for record in products.records(docnos)}


def test_three_interleaved_writers_lose_no_update(small_index, tmp_path):
    """Writer A reads its base and pauses there (SHOPLENS_PAUSE_AT=base-read); B deletes a product A
    patches and C changes a field A's patch leaves alone. Whatever order the lock lets them commit
    in, the result must equal running them one after another: nothing resurrected, nothing reverted."""
    x, y = ROWS[0]["id"], ROWS[1]["id"]
    delta_a = tmp_path / "a.jsonl"
    delta_a.write_text(json.dumps({"id": x, "price": 1.0}) + "\n" + json.dumps({"id": y, "brand": "Acme"}) + "\n")
    delta_c = tmp_path / "c.jsonl"
    delta_c.write_text(json.dumps({"id": y, "price": 5.0}) + "\n")
    writers = {"A": ["update", str(delta_a)], "B": ["delete", "--ids", x], "C": ["update", str(delta_c)]}

    serial = copy_index(small_index, tmp_path / "serial")  # the same three writes, one after another
    apply_delta(serial, delta_a, device="cpu")
    delete_products(serial, [x])
    apply_delta(serial, delta_c, device="cpu")

    release = tmp_path / "release"
    args, env = command(small_index, *writers["A"])
    env.update(SHOPLENS_PAUSE_AT="base-read", SHOPLENS_PAUSE_FILE=str(release))
    first = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not release.with_name("release.reached").exists():
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "writer A never reached its pause point"
        time.sleep(0.1)
    refused = []
    for name in "BC":  # while A holds its base, the others must not commit under it
        args, env = command(small_index, *writers[name])
        process = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
        if process.returncode != 0:
            assert "another shoplens process is writing" in process.stderr, process.stderr
            refused.append(name)
    release.touch()
    out, errors = first.communicate(timeout=180)
    assert first.returncode == 0, errors
    for name in refused:  # a refused writer retries once the lock is free
        args, env = command(small_index, *writers[name])
        subprocess.run(args, cwd=REPO, env=env, check=True, capture_output=True, timeout=180)

    assert refused == ["B", "C"]
    final = live_records(small_index)
    assert x not in final
    assert final[y]["brand"] == "Acme" and final[y]["price"] == 5.0
    assert final == live_records(serial)
    assert check_index(small_index).ok
