"""report.html in a real browser: every figure and every audio player loads and the page logs no error.

Playwright drives the system's Chromium (Debian's ``chromium``; no browser download). ``.ci/run`` installs it and
points ``MGBENCH_BROWSER_REPORT`` at the default job's results folder, so CI checks the report a new user opens;
without that variable the test builds a small report of its own (figures and listening examples).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_report import EXPECTATIONS, make_results

from mgbench.paths import write_wav
from mgbench.report.render import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs a headless Chromium: apt-get install chromium "
                                                         "(Debian; other systems: their chromium package)")
#: flags for a headless Chromium on a machine without a network (see the env notes: no background look-ups)
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--no-first-run", "--disable-sync", "--disable-quic"]
#: loads every audio element's metadata; resolves to one [src, loaded] pair per player
LOAD_AUDIO = """() => Promise.all([...document.querySelectorAll('audio')].map(a => new Promise(done => {
    a.addEventListener('loadedmetadata', () => done([a.getAttribute('src'), a.duration > 0]), {once: true});
    a.addEventListener('error', () => done([a.getAttribute('src'), false]), {once: true});
    a.preload = 'metadata'; a.load();
})))"""
IMAGES = "() => [...document.images].map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0])"


def page_problems(report: Path) -> tuple[list[str], dict[str, int]]:
    """What is wrong with ``report`` (an HTML file) in Chromium: images or audio that do not load, console errors,
    page errors; and how many images and players it has."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (the test extra)")
    problems: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            page = browser.new_page()
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.goto(report.resolve().as_uri(), wait_until="load")
            images, players = page.evaluate(IMAGES), page.evaluate(LOAD_AUDIO)
        finally:
            browser.close()
    problems += [f"image {src} did not load" for src, ok in images if not ok]
    problems += [f"audio {src} did not load" for src, ok in players if not ok]
    return problems, {"images": len(images), "players": len(players)}


def _report_with_audio(folder: Path) -> Path:
    """A small results folder with figures and two listening examples (real WAVs), and its report."""
    results = make_results(folder, layers=4)
    audio = folder / "audio"
    tone = torch.sin(torch.arange(16000) * 2 * np.pi * 440 / 16000)
    for name in ("guitar-to-piano/best.wav", "baselines/guitar-p0.wav"):
        write_wav(audio / name, tone, 16000)
    pd.DataFrame([{"model": "small", "original": "guitar", "desired": "piano", "kind": "best", "technique": "replace",
                   "layer": 3, "component": "mlp", "prompt_id": 0, "effect": 1.5,
                   "path": "audio/guitar-to-piano/best.wav", "baseline_path": "audio/baselines/guitar-p0.wav"}]
                 ).to_csv(audio / "examples.csv", index=False)
    build_report(results, expectations_dir=EXPECTATIONS)
    return results


@pytest.fixture
def report(tmp_path) -> Path:
    """The folder of the report under test: ``MGBENCH_BROWSER_REPORT`` (copied, so that breaking it breaks a copy),
    or a small one built here."""
    given = os.environ.get("MGBENCH_BROWSER_REPORT")
    if given:
        return Path(shutil.copytree(given, tmp_path / "report"))
    return _report_with_audio(tmp_path / "report")


def test_every_figure_and_player_loads_without_errors(report):
    problems, counts = page_problems(report / "report.html")
    assert problems == []
    assert counts["images"] >= 3 and counts["players"] >= 2, counts


def test_a_missing_figure_or_wav_is_caught(report):
    """Break the report on purpose: one figure and one listening example removed."""
    figure = sorted((report / "figures").glob("*.png"))[0]
    wav = sorted((report / "audio").rglob("*.wav"))[0]
    figure.unlink()
    wav.unlink()
    problems, _ = page_problems(report / "report.html")
    assert any(f"image figures/{figure.name} did not load" == p for p in problems), problems
    assert any(p.startswith("audio ") and p.endswith(f"{wav.name} did not load") for p in problems), problems
    assert any(p.startswith("console error") for p in problems), problems
