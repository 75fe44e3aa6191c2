"""Notebook 08 (reading a comparison): pairing narrows the interval; in simulations with no true difference
the series' interval over seeds and sentences keeps near its 95 %, while one seed's McNemar (runs that
differ) and the t over seeds alone (runs that agree) fall short; Holm keeps fewer calls than the tests
alone; the three verdicts come out as designed."""


def check(m: dict) -> None:
    pairing = m["pairing"]
    width = {k: v["high"] - v["low"] for k, v in pairing.items() if k != "discordant"}
    assert width["paired"] < 0.8 * width["unpaired"] and pairing["paired"]["low"] > 0, pairing
    differ, agree = m["coverage"]["training runs differ"], m["coverage"]["training runs nearly agree"]
    one_seed, alone, both = list(differ)
    floor = 0.9 if m["runs_per_setting"] < 500 else 0.92  # 200 quick comparisons are noisier than 1,000
    assert differ[both] >= floor and agree[both] >= floor, m["coverage"]
    assert differ[one_seed] < differ[both] - 0.1 and agree[alone] < agree[both], m["coverage"]
    holm = m["holm"]
    assert all(h >= p for p, h in zip(holm["p"], holm["holm_p"]))
    assert holm["called_holm"] <= holm["called_alone"] and holm["true_effects_called"] >= 1, holm
    assert list(m["verdicts"].values()) == [
        "A better", f"equivalent within ±{m['margin']:.3g}", "inconclusive"], m["verdicts"]
