"""The thread-count tuner chooses the faster count from step times."""

from __future__ import annotations

from napari_unet_studio.worker.tuning import ThreadTuner


def drive(tuner: ThreadTuner, seconds_for: dict[int, float], steps: int) -> list[int]:
    used = []
    for _ in range(steps):
        used.append(tuner.current)
        tuner.observe(seconds_for[tuner.current])
    return used


def test_a_much_slower_count_costs_one_step_per_trial():
    tuner = ThreadTuner(2, window=3, stay=10, max_stay=40)
    used = drive(tuner, {2: 1.0, 1: 0.2}, 60)  # a busy machine: two threads are slow
    # one thread first (first step not counted, 3 measured), then a trial of two threads
    # that ends after one slow step; the stay doubles after every lost trial: 20, 40
    assert used[:5] == [1, 1, 1, 1, 2]
    assert tuner.medians == {1: 0.2}
    assert used[5:25] == [1] * 20 and used[25] == 2
    assert used[26:60] == [1] * 34
    assert used.count(2) == 2


def test_two_threads_win_when_they_are_faster():
    tuner = ThreadTuner(2, window=3, stay=10)
    used = drive(tuner, {2: 0.1, 1: 0.3}, 30)  # an idle machine
    assert used[:7] == [1, 1, 1, 1, 2, 2, 2]  # a full trial: two threads win
    assert tuner.medians == {1: 0.3, 2: 0.1}
    # they stay 10 steps; the trial of one thread is aborted after one step (stay 20)
    assert used[7:17] == [2] * 10 and used[17] == 1 and used[18:30] == [2] * 12


def test_follows_a_change_of_load():
    tuner = ThreadTuner(2, window=3, stay=10, max_stay=40)
    drive(tuner, {2: 0.1, 1: 0.2}, 30)  # idle: two threads win
    assert tuner.current == 2
    used = drive(tuner, {2: 1.0, 1: 0.2}, 60)  # other programs started
    assert tuner.current == 1 and used[-30:].count(2) <= 1


def test_a_slowdown_during_a_long_stay_is_noticed():
    tuner = ThreadTuner(2, window=3, stay=500, max_stay=500)
    drive(tuner, {2: 0.1, 1: 0.2}, 10)  # two threads win and would stay 500 steps
    assert tuner.current == 2
    used = drive(tuner, {2: 1.0, 1: 0.2}, 8)  # busy: the rolling median of 3 notices it
    assert used[:3] == [2, 2, 1] and tuner.current == 1


def test_close_counts_need_a_full_window():
    tuner = ThreadTuner(2, window=3, stay=10, abort=1.5)
    drive(tuner, {2: 0.22, 1: 0.20}, 8)  # two threads 10 % slower: no abort, full trial
    assert tuner.medians == {1: 0.20, 2: 0.22} and tuner.current == 1


def test_one_core_means_no_tuning():
    tuner = ThreadTuner(1)
    assert not tuner.enabled
    assert drive(tuner, {1: 1.0}, 5) == [1] * 5 and tuner.switches == 0
