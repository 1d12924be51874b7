"""`mgbench plan` prints the smallest effect difference the chosen prompts resolve."""

import math
import re

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mgbench.cli import main
from mgbench.experiments.interventions import IDS
from mgbench.experiments.planning import DEFAULT_EFFECT_SD, effect_sd
from mgbench.experiments.store import ResultStore

PLAN = ["plan", "--model", "tiny", "--concepts", "guitar", "--experiments", "decoderlens", "--seconds", "0.2",
        "--batch-size", "1"]


def formula(sd: float, n: int) -> float:
    return (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)) * sd / math.sqrt(n)


def printed(out: str) -> tuple[float, int, float]:
    match = re.search(r"resolvable effect difference: ([\d.]+) with (\d+) prompts per concept .* sd of per-prompt "
                      r"effects ([\d.]+)", out)
    assert match, out
    return float(match[1]), int(match[2]), float(match[3])


def test_plan_prints_the_resolvable_difference_of_the_default_sd(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MGBENCH_HOME", str(tmp_path / "home"))
    assert main([*PLAN, "--prompts", "3"]) == 0
    out = capsys.readouterr().out
    value, n, sd = printed(out)
    assert (n, sd) == (3, DEFAULT_EFFECT_SD) and "default, from the toy world" in out
    assert value == round(formula(DEFAULT_EFFECT_SD, 3), 3)


def cached_rows(sds: dict[str, float], prompts: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for site, sd in sds.items():
        values = rng.normal(0, 1, prompts)
        values = 2.0 + sd * (values - values.mean()) / values.std(ddof=1)  # exactly this sd over prompts
        rows += [dict(technique="replace", original="guitar", desired="piano", layer=0, component=site, prompt_id=p,
                      effect=v) for p, v in enumerate(values)]
    return pd.DataFrame(rows)


def test_the_sd_is_pooled_within_pair_and_site():
    rows = cached_rows({"mlp": 0.3, "cross_attn": 0.4})
    assert effect_sd(rows, IDS) == pytest.approx(math.sqrt((0.3**2 + 0.4**2) / 2))
    twice = pd.concat([rows, rows.assign(effect=rows.effect)])  # two rows per prompt: averaged first
    assert effect_sd(twice, IDS) == pytest.approx(effect_sd(rows, IDS))
    assert math.isnan(effect_sd(pd.DataFrame(), IDS)) and math.isnan(effect_sd(rows[rows.prompt_id == 0], IDS))


def test_plan_uses_the_sessions_cached_interventions(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MGBENCH_HOME", str(tmp_path / "home"))
    rows = cached_rows({"mlp": 0.5})
    read = ResultStore.read
    monkeypatch.setattr(ResultStore, "read",
                        lambda self, table: rows if table == "interventions" else read(self, table))
    assert main([*PLAN, "--prompts", "4"]) == 0
    out = capsys.readouterr().out
    value, n, sd = printed(out)
    assert n == 4 and sd == 0.5 and "from this session's 5 cached rows" in out
    assert value == round(formula(0.5, 4), 3)
