"""Crash safety of the scheduler daemon on SQLite. The real daemon (`python -m jobs.cli daemon
run`) is killed with SIGKILL at random (seeded) instants and restarted, FILING_KILLS times
(default 50): some kills during its start-up, most during its catch-up sweep, in small batches,
of deadline rows already due in real time. Then one `daemon once` runs to completion, and
nothing may be lost, applied twice, written twice to the outbox or left undelivered, and the
SQLite file and the audit chain must be intact.

The harness is bench/soak_kill.py, which runs the same with 500 kills and more data. About 45
seconds here; FILING_KILLS=5 for a quick run, FILING_SOAK_SEED for another sequence of kills.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "bench"))
import soak_kill

KILLS = int(os.environ.get("FILING_KILLS", "50"))
SEED = int(os.environ.get("FILING_SOAK_SEED", "20261125"))

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")


@pytest.fixture(scope="module")
def soak(tmp_path_factory: pytest.TempPathFactory) -> soak_kill.Soak:
    """One soak for the module: every test below checks one property of its outcome."""
    cfg = soak_kill.SoakConfig(
        kills=KILLS,
        seed=SEED,
        due_rows=2000,
        outbox_cap=6000,
        batch_size=5,
        max_delay=0.25,
        early_share=0.3,
    )
    workdir: Path = tmp_path_factory.mktemp("soak")
    soak = soak_kill.Soak(workdir, cfg).run()
    print(soak.summary())  # shown with a failure of the first test
    return soak


def test_the_daemon_was_killed_the_requested_number_of_times_mostly_mid_sweep(
    soak: soak_kill.Soak,
) -> None:
    phases = soak.phases()

    assert len(soak.lives) == KILLS
    assert [life.exit_code for life in soak.lives] == [-signal.SIGKILL] * KILLS
    assert phases["sweep"] >= KILLS // 3, phases
    # The kills mid-sweep came after some batches had committed and before the last one.
    assert sum(1 for life in soak.lives if life.phase == "sweep" and life.fired) >= KILLS // 4


def test_after_the_kills_and_one_run_to_completion_no_due_deadline_is_pending(
    soak: soak_kill.Soak,
) -> None:
    assert soak.final.get("failed") == 0, soak.final  # `daemon once` ran and nothing failed
    assert soak.check_no_due_deadline_pending() == []


def test_each_filing_expired_and_each_window_and_claim_closed_exactly_once(
    soak: soak_kill.Soak,
) -> None:
    assert soak.check_each_deadline_applied_once() == []


def test_each_fired_reminder_has_exactly_one_outbox_row(soak: soak_kill.Soak) -> None:
    assert soak.check_outbox_matches_fired_reminders() == []


def test_every_reminder_is_marked_delivered_and_was_sent_at_least_once(
    soak: soak_kill.Soak,
) -> None:
    assert soak.check_every_reminder_delivered() == []
    assert soak.deliveries  # the kills did hit reminders


def test_the_sqlite_file_passes_its_integrity_check(soak: soak_kill.Soak) -> None:
    assert soak.check_sqlite_integrity() == []


def test_the_audit_chain_verifies_over_every_record(soak: soak_kill.Soak) -> None:
    assert soak.check_audit_chain_verifies() == []


def test_no_daemon_exited_on_its_own_or_logged_an_error(soak: soak_kill.Soak) -> None:
    assert soak.check_daemons_ran_cleanly() == []
