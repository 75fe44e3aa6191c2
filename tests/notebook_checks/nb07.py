"""Notebook 07 (scaling out): two processes train what one process trains with the same global batch (the
protocol's multi-task run, round-robin, every layer trained, the real model), within rounding and far from a
run on half the batch; the speed table is complete."""


def check(m: dict) -> None:
    agreement = m["agreement"]
    two = agreement["2 processes vs 1 (same global batch)"]
    threads = agreement["2 threads vs 1 (one process)"]
    yardstick = agreement["half batch vs full (yardstick)"]
    # rounding: below 1e-4 of a weight, and a hundred times below what training on half the batch changes
    assert two["max |difference|"] < 1e-4 and two["max |difference|"] < 0.01 * yardstick["max |difference|"], m
    assert threads["max |difference|"] < 0.01 * yardstick["max |difference|"], m
    assert two["max |loss difference|"] < 1e-3, two
    assert m["same_test_answers"]
    arms = m["arms"]
    assert arms["2 processes × 1 thread"]["processes"] == 2 and arms["1 process × 2 threads"]["threads"] == 2
    assert all(arm["s per step"] > 0 and arm["steps"] >= m["steps"] for arm in arms.values())
    assert arms["2 processes × 1 thread"]["all-reduce s"] > 0 == arms["1 process × 1 thread"]["all-reduce s"]
    for arm in arms.values():  # four arms, both tasks scored
        assert 0 <= arm["topic accuracy"] <= 1 and 0 <= arm["sentiment accuracy"] <= 1
