"""Clock jumps and restart facts: table-driven, readings passed in, no clock reads."""
from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from jobsd_lib.kernel.drift import (JUMP_RATE, JUMP_THRESHOLD, ClockJump, ClockReading, HeartbeatRecord,
                                    assess_restart, decode_heartbeat, detect_jump, encode_heartbeat, next_pulse,
                                    host_in_use)

T0 = 1_795_000_000.0   # a wall clock (UTC epoch seconds)
BOOT = "6f2b1c0e-0c55-4a2b-9d1e-3f8d2b4e7a10"


def reading(wall: float, uptime: float, boot: str = BOOT) -> ClockReading:
    return ClockReading(wall, boot, uptime)


@pytest.mark.parametrize(("wall_delta", "elapsed", "delta"), [
    (5.0, 5.0, None),                      # an ordinary heartbeat
    (5.003, 5.0, None),                    # read jitter
    (7.0, 5.0, None),                      # exactly at the threshold: not a jump
    (7.01, 5.0, 2.01),                     # just beyond it: forward
    (5.0 - 2.01, 5.0, -2.01),              # back
    (3605.0, 5.0, 3600.0),                 # `date -s` one hour ahead
    (-3595.0, 5.0, -3600.0),               # one hour back: the wall clock went backwards
    (0.0, 5.0, -5.0),                      # the wall clock stood still for 5 s (set back by 5 s)
    (86_400.0, 86_400.0, None),            # a day of suspend: CLOCK_BOOTTIME counts it, no jump
    (1_000_000.0 + 50, 1_000_000.0, None),  # 50 s over ~11.6 days: within 0.01 % (100 s) + 2 s
    (1_000_000.0 + 150, 1_000_000.0, 150.0),
])
def test_detect_jump(wall_delta, elapsed, delta):
    jump = detect_jump(reading(T0, 100.0), reading(T0 + wall_delta, 100.0 + elapsed))
    if delta is None:
        assert jump is None
    else:
        assert jump is not None
        assert jump.delta == pytest.approx(delta)
        assert jump.direction == ("forward" if delta > 0 else "back")
        assert jump.elapsed == pytest.approx(elapsed) and jump.before == T0 and jump.after == T0 + wall_delta


def test_threshold_grows_with_the_elapsed_time():
    elapsed = 50_000.0
    limit = JUMP_THRESHOLD + JUMP_RATE * elapsed
    assert detect_jump(reading(T0, 0), reading(T0 + elapsed + limit - 0.01, elapsed)) is None
    assert detect_jump(reading(T0, 0), reading(T0 + elapsed + limit + 0.01, elapsed)) is not None


def test_custom_threshold():
    assert detect_jump(reading(T0, 0), reading(T0 + 6.0, 5.0), threshold=0.5, rate=0) == ClockJump(T0, T0 + 6, 5)


@pytest.mark.parametrize(("before", "after"), [
    (reading(T0, 100), reading(T0 + 9999, 105, boot="another-boot")),   # rebooted: uptimes unrelated
    (reading(T0, 100, boot=""), reading(T0 + 9999, 105, boot="")),      # boot unknown
    (reading(T0, 100, boot=""), reading(T0 + 9999, 105)),
    (reading(T0, 100), reading(T0 + 9999, 50)),                         # uptime went back: not one boot
    (reading(T0, 100), reading(math.inf, 105)),
    (reading(math.nan, 100), reading(T0, 105)),
])
def test_readings_that_cannot_be_compared_report_no_jump(before, after):
    assert detect_jump(before, after) is None


def test_heartbeat_record_round_trip():
    record = HeartbeatRecord(reading(T0 + 0.25, 1234.5), pid=4242, stopped=True)
    text = encode_heartbeat(record)
    assert decode_heartbeat(text) == record
    assert decode_heartbeat(encode_heartbeat(HeartbeatRecord(reading(T0, 1.0), 7))).stopped is False


@pytest.mark.parametrize("text", [None, "", "{", "[]", "null", '"x"', "{}", '{"wall": "soon"}', '{"wall": NaN}',
                                  '{"wall": 1.0, "uptime": {}}', '{"wall": 1.0, "pid": "me"}'])
def test_unreadable_heartbeat_is_none(text):
    assert decode_heartbeat(text) is None


def test_heartbeat_from_a_minimal_record():
    assert decode_heartbeat('{"wall": 5}') == HeartbeatRecord(ClockReading(5.0, "", 0.0), 0, False)


def test_first_start_has_no_restart_facts():
    assert assess_restart(None, reading(T0, 10)) is None


def test_clean_restart_on_the_same_boot():
    previous = HeartbeatRecord(reading(T0, 1000.0), pid=11, stopped=True)
    restart = assess_restart(previous, reading(T0 + 42.0, 1042.0))
    assert restart is not None
    assert (restart.down_since, restart.down_seconds, restart.clean, restart.rebooted, restart.jump,
            restart.previous_pid) == (T0, 42.0, True, False, None, 11)


def test_crash_then_clock_set_back_while_down():
    previous = HeartbeatRecord(reading(T0, 1000.0), pid=11)   # no clean stop record: killed or crashed
    restart = assess_restart(previous, reading(T0 - 3000.0, 1600.0))   # 600 s passed, clock 1 h back
    assert restart.clean is False and restart.rebooted is False
    assert restart.down_seconds == -3000.0
    assert restart.jump is not None and restart.jump.direction == "back"
    assert restart.jump.delta == pytest.approx(-3600.0) and restart.jump.elapsed == 600.0


def test_reboot_in_between_cannot_tell_a_jump():
    previous = HeartbeatRecord(reading(T0, 90_000.0), pid=11)
    restart = assess_restart(previous, reading(T0 + 7200.0, 30.0, boot="new-boot"))
    assert restart.rebooted is True and restart.jump is None and restart.down_seconds == 7200.0


def test_unknown_boot_id_means_reboot_unknown():
    previous = HeartbeatRecord(reading(T0, 5.0, boot=""), pid=1)
    assert assess_restart(previous, reading(T0 + 1, 6.0)).rebooted is None


BASE = datetime(2026, 11, 23, 10, 0, 0, tzinfo=UTC)
FIVE = timedelta(seconds=5)


@pytest.mark.parametrize(("previous", "now", "expected"), [
    (None, BASE, BASE + FIVE),                                          # first firing
    (BASE, BASE + timedelta(seconds=0.01), BASE + FIVE),                # on time: the grid goes on
    (BASE, BASE + timedelta(seconds=4.99), BASE + FIVE),
    (BASE, BASE + FIVE, BASE + 2 * FIVE),                               # exactly due: from now
    (BASE, BASE + timedelta(seconds=7), BASE + timedelta(seconds=12)),  # late: from now
    (BASE, BASE + timedelta(days=365), BASE + timedelta(days=365) + FIVE),   # a year ahead: one firing owed
    (BASE, BASE - timedelta(hours=1), BASE + FIVE),                     # clock set back: the grid (the daemon kicks)
])
def test_next_pulse(previous, now, expected):
    assert next_pulse(previous, now, FIVE) == expected


def test_next_pulse_owes_one_firing_after_any_forward_jump():
    """APScheduler collects due firings by calling the trigger until one lies after now."""
    now, due, t = BASE + timedelta(days=3650), [], BASE
    while t <= now:
        due.append(t)
        t = next_pulse(t, now, FIVE)
    assert due == [BASE]


# ---------------------------------------------------------------------- a shared store in use (DESIGN 12)
@pytest.mark.parametrize("previous, now, alive, in_use", [
    (None, reading(1000, 10), False, False),                                              # a new store
    (HeartbeatRecord(reading(995, 5), pid=7, stopped=True), reading(1000, 10), True, False),  # a clean stop
    (HeartbeatRecord(reading(995, 5), pid=7), reading(1000, 10), True, True),          # alive here
    (HeartbeatRecord(reading(995, 5), pid=7), reading(1000, 10), False, False),        # our killed predecessor
    (HeartbeatRecord(reading(995, 5, "other"), pid=7), reading(1000, 10), False, True),  # another machine
    (HeartbeatRecord(reading(985, 5, "other"), pid=7), reading(1000, 10), False, True),  # 15 s: still fresh
    (HeartbeatRecord(reading(984, 5, "other"), pid=7), reading(1000, 10), False, False),  # 16 s: it died
    (HeartbeatRecord(reading(1010, 5, "other"), pid=7), reading(1000, 10), False, True),  # its clock 10 s ahead
    (HeartbeatRecord(reading(900, 5, "other"), pid=7), reading(1000, 10), False, False),  # stale: it died
    (HeartbeatRecord(reading(math.nan, 5, "other"), pid=7), reading(1000, 10), False, False),
    (HeartbeatRecord(reading(995, 5, ""), pid=7), reading(1000, 10), False, True),      # unknown boot: not ours
])
def test_a_host_name_is_in_use_while_another_jobsds_heartbeat_under_it_is_fresh(previous, now, alive, in_use):
    assert bool(host_in_use(previous, now, alive, "a")) is in_use


def test_the_refusal_names_the_other_jobsd_and_what_to_do():
    why = host_in_use(HeartbeatRecord(reading(997, 5, "0123456789abcdef"), pid=4242), reading(1000, 10), False, "web1")
    assert why.startswith("another jobsd (pid 4242 on another machine (boot id 01234567)) is host web1 of this "
                          "store (its heartbeat 3 s ago)")
    assert "give this one another --host-name" in why and "a killed one's after 15 s" in why
    here = host_in_use(HeartbeatRecord(reading(997, 5), pid=4242), reading(1000, 10), True, "web1")
    assert "pid 4242 on this machine" in here
