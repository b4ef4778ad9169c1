"""Readiness (``rgstore.readiness``): a readable store, and a follower's last successful pull within its bound."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from rgstore.events import Noted
from rgstore.log import NewEvent
from rgstore.mirror import pull, record_pull_error
from rgstore.readiness import MIN_BOUND_S, ReadinessProbe, freshness_bound
from rgstore.segments import publish
from rgstore.store import Store


def _primary(path: Path) -> Path:
    with Store.open(path, actor="tester@test") as store:
        store.append([NewEvent(stream="note:a", event=Noted(text="x"))])
    return path


def _mirror(tmp_path: Path) -> Path:
    with Store.open(_primary(tmp_path / "primary"), readonly=True) as primary:
        publish(primary, tmp_path / "pub")
    with Store.open(tmp_path / "mirror") as mirror:
        pull(mirror, str(tmp_path / "pub"))
    return tmp_path / "mirror"


def test_the_freshness_bound_is_three_intervals_but_never_under_30_seconds() -> None:
    assert (freshness_bound(0.1), freshness_bound(5), freshness_bound(20), freshness_bound(3600)) == (
        MIN_BOUND_S, 30.0, 60.0, 10_800.0)


def test_a_readable_primary_is_ready_and_a_max_age_does_not_apply_to_it(tmp_path: Path) -> None:
    with Store.open(_primary(tmp_path / "s"), readonly=True) as store:
        state = ReadinessProbe(store).check(max_age_s=0.1)
    assert (state.ready, state.detail, state.head_seq, state.last_pull) == (True, "ok", 1, None)


def test_a_mirror_is_not_ready_once_its_last_successful_pull_is_older_than_the_bound(tmp_path: Path) -> None:
    with Store.open(_mirror(tmp_path), readonly=True) as mirror:
        fresh = ReadinessProbe(mirror, follow_interval_s=0.1).check()  # bound 30 s: it pulled just now
        time.sleep(0.2)
        stale = ReadinessProbe(mirror).check(max_age_s=0.1)
    assert fresh.ready and fresh.last_pull is not None and fresh.last_pull.endswith("Z")
    assert not stale.ready and stale.last_pull == fresh.last_pull
    assert stale.detail.startswith("this mirror's last successful pull was") and "more than 0.1s" in stale.detail


def test_a_stale_mirror_says_since_when_its_pulls_fail_and_a_good_pull_makes_it_ready_again(tmp_path: Path) -> None:
    path = _mirror(tmp_path)
    with Store.open(path) as mirror:
        record_pull_error(mirror, "cannot reach http://up.example: [Errno 111] Connection refused")
        time.sleep(0.2)
        failing = ReadinessProbe(mirror).check(max_age_s=0.1)
        pull(mirror, str(tmp_path / "pub"))
        again = ReadinessProbe(mirror).check(max_age_s=60)
    assert not failing.ready and "pulls have failed since 20" in failing.detail
    assert again.ready and "failed" not in again.detail


def test_the_store_moved_under_the_handle_is_not_ready_and_the_answer_names_no_path(tmp_path: Path) -> None:
    path = _primary(tmp_path / "s")
    with Store.open(path, readonly=True) as store:
        probe = ReadinessProbe(store, cache_s=3600)
        assert probe.check().ready
        path.rename(tmp_path / "elsewhere")
        cached = probe.check()  # one look answers for cache_s: a load balancer's many checks stay cheap
        moved = ReadinessProbe(store).check()
    assert cached.ready
    assert not moved.ready and "deleted, moved or replaced" in moved.detail and str(tmp_path) not in moved.detail


def test_a_refget_that_is_not_a_readable_directory_is_not_ready(tmp_path: Path) -> None:
    path = _primary(tmp_path / "s")
    with Store.open(path, readonly=True) as store:
        assert ReadinessProbe(store).check().ready
        shutil.rmtree(path / "refget")
        (path / "refget").write_text("not a directory")  # say, a mount point gone wrong under a running server
        state = ReadinessProbe(store).check()
    assert not state.ready and state.detail.startswith("the store's refget/ directory cannot be read")


@pytest.mark.parametrize("follow", [None, 5.0])
def test_a_mirror_on_a_plain_server_is_ready_without_max_age_whatever_its_last_pull(
        tmp_path: Path, follow: float | None) -> None:
    with Store.open(_mirror(tmp_path), readonly=True) as mirror:
        state = ReadinessProbe(mirror, follow_interval_s=follow).check()
    assert state.ready  # pulled a moment ago: within 30 s, and without --follow no bound applies at all
