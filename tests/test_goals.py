"""The U-Net card's goal report: each goal's verdict follows from the numbers it quotes, on the shipped card and on
planted cards where a goal flips."""

from __future__ import annotations

import copy
import json

from diffusion_course import load_calls_table, load_pretrained_unet
from diffusion_course.weights.goals import goal_report


def _check(report: dict, quality: dict) -> None:
    few = report["best_at_most_20_calls_ratio_at_most_1.5_kid_overlapping_ddpm1000"]
    d = quality["settings"]["ddpm1000"]
    overlap = few["kid"][1] <= d["kid_hi"] and d["kid_lo"] <= few["kid"][2]
    assert few["calls"] <= 20 and few["met"] == (few["measured"] <= 1.5 and overlap)
    d50 = report["ddim50_eta0_ratio_at_most_1.5"]
    assert d50["measured"] == quality["settings"]["ddim50_eta0"]["ratio"] and d50["met"] == (d50["measured"] <= 1.5)
    assert abs(d50["short_by"] - max(0.0, d50["measured"] - 1.5)) < 1e-4
    conf = report["confident_share_at_least_0.9"]
    assert conf["measured"] == max(r["confident_share"] for r in quality["settings"].values() if r["weights"] == "ema" and r["clip_x0"] is not None)
    assert conf["met"] == (conf["measured"] >= 0.9)
    assert report["limits"] and all(isinstance(line, str) for line in report["limits"])


def test_the_shipped_card_holds_its_goal_report() -> None:
    _, card = load_pretrained_unet()
    q = card["quality"]
    assert q["goal_report"] == json.loads(json.dumps(goal_report(q, load_calls_table())))  # what the card says is what the numbers say
    _check(q["goal_report"], q)


def test_goals_flip_with_the_numbers() -> None:
    q = copy.deepcopy(load_pretrained_unet()[1]["quality"])
    for r in q["settings"].values():
        r["ratio"], r["confident_share"] = 1.2, 0.95
    r = goal_report(q)
    _check(r, q)
    assert all(r[k]["met"] and r[k]["short_by"] == 0 for k in r if k != "limits")
    for row in q["settings"].values():
        row["ratio"], row["confident_share"] = 2.0, 0.8
    r = goal_report(q)
    _check(r, q)
    assert not any(r[k]["met"] for k in r if k != "limits") and r["ddim50_eta0_ratio_at_most_1.5"]["short_by"] == 0.5
    eta = q["paired_kid_differences"]["ddim50_eta1 - ddim50_eta0"]
    eta.update(kid_a_minus_b=-0.01, lo=-0.02, hi=-0.005, separated=True)
    assert "Fresh noise helps" in goal_report(q)["limits"][0]
