"""End to end (issue 16, part 4): a concepts file adding a cello runs ``mgbench run`` with either recognizer."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import ndcg_score

from mgbench.cli import main
from mgbench.engine.runner import GenerationSettings
from mgbench.experiments.session import RunConfig, Session
from mgbench.experiments.store import key_hash

#: the toy world (4 layers) at 2 prompts of 1 s, one site, its last layer: the lens reuses the baseline clips and the
#: interventions run L3.mlp
RECOGNIZERS = {"passt": None, "clap": "tiny"}  # recognizer -> --classifier (None: the toy model's own)


@pytest.mark.parametrize("recognizer", list(RECOGNIZERS))
def test_a_new_concept_runs_end_to_end(recognizer, concept_file, cello, tmp_path, capsys):
    path, cache, out = concept_file(cello), tmp_path / "cache", tmp_path / "out"
    classifier = RECOGNIZERS[recognizer]
    argv = ["--concepts-file", str(path), "run", "--model", "toy", "--recognizer", recognizer,
            "--experiments", "decoderlens,interventions", "--concepts", "cello,guitar,jazz", "--components", "mlp",
            "--layers", "3", "--prompts", "2", "--cache", str(cache), "--out", str(out), "--listen", "0", "--no-report"]
    assert main(argv + (["--classifier", classifier] if classifier else [])) == 0
    capsys.readouterr()
    lens, iv = pd.read_parquet(out / "decoderlens.parquet"), pd.read_parquet(out / "interventions.parquet")
    assert set(lens.concept) == {"cello", "guitar", "jazz"} and len(lens) == 6
    assert {("cello", "guitar"), ("guitar", "cello"), ("cello", "jazz"), ("jazz", "cello")} <= set(
        zip(iv.original, iv.desired))
    assert (lens.recognizer == recognizer).all() and (iv.recognizer == recognizer).all()
    assert iv.effect.notna().all() and (iv.precision <= 0).all()
    assert json.loads((out / "run.json").read_text())["recognizer"] == recognizer

    # the cello rows read the stored scores of its clips as the recognizer's columns say (sklearn's NDCG; recognized:
    # cello's column tops those of the instruments, five with the cello)
    session = Session(RunConfig(model="toy", classifier=classifier, recognizer=recognizer, prompts=2,
                                generation=GenerationSettings(seconds=1.0), concepts_file=str(path), cache=str(cache)))
    concepts, seen = session.concepts, session.recognition
    cello = concepts.get("cello")
    scores = session.concept_pass(cello).logits.numpy()
    assert scores.shape == (2, 527 if recognizer == "passt" else 11)
    relevance = np.zeros((1, scores.shape[1]))
    relevance[0, list(seen.relevant(cello))] = 1.0
    rows = lens[lens.concept == "cello"].sort_values("prompt_id")
    assert rows.ndcg.tolist() == pytest.approx([ndcg_score(relevance, row[None]) for row in scores], abs=1e-6)
    instruments = [seen.odds_column(c) for c in concepts.members("instrument")]
    assert len(instruments) == 5 and (rows.recognized_chance == 0.2).all()
    assert rows.recognized.tolist() == [row[instruments].argmax() == 4 for row in scores]
    assert session.store.dir.parent == cache and (session.store.dir / "decoderlens").is_dir()


def test_store_keys_differ_only_with_clap():
    passt, clap = (Session(RunConfig(model="tiny", prompts=2, recognizer=r)).key() for r in RECOGNIZERS)
    assert "recognizer" not in passt and clap["recognizer"] == "clap"
    assert {k: v for k, v in clap.items() if k not in ("recognizer", "classifier")} == \
        {k: v for k, v in passt.items() if k != "classifier"}
    assert key_hash(passt) != key_hash(clap)
