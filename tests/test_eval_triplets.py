"""Human triplet harness: CSV forms, the split, the 2AFC rule and bootstrap by hand, end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from perceptual_sim.cli import main
from perceptual_sim.lab.evaluate import score_triplets
from perceptual_sim.lab.evaluate.metrics import L2Metric
from perceptual_sim.lab.evaluate.triplets import (
    Triplets,
    bootstrap_interval,
    paired_difference,
    read_triplets,
    score_metric,
    split_by_reference,
    two_afc,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "material-similarity"
GREYS = {"black.png": 0, "dark.png": 78, "mid.png": 128, "light.png": 178, "white.png": 255}  # uint8 levels


def _csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    return path


@pytest.fixture(scope="module")
def grey_tree(tmp_path_factory) -> Path:
    """Flat grey images: L2 distances are the squared grey differences."""
    root = tmp_path_factory.mktemp("greys")
    for name, v in GREYS.items():
        Image.fromarray(np.full((40, 48, 3), v, np.uint8)).save(root / name)
    return root


def test_reads_the_shared_form(tmp_path):
    f = _csv(tmp_path / "t.csv", ["reference", "majority_closer", "other", "votes_closer", "votes_other", "tie"],
             [["a.png", "b.png", "c.png", 3, 1, 0], ["a.png", "c.png", "b.png", 2, 2, 1]])
    t = read_triplets(f)
    assert t.ref == ["a.png", "a.png"] and t.a == ["b.png", "c.png"] and t.b == ["c.png", "b.png"]
    np.testing.assert_allclose(t.p_b, [0.25, 0.5])
    assert t.ceiling == pytest.approx((0.75 + 0.5) / 2)


def test_reads_the_generic_forms(tmp_path):
    t = read_triplets(_csv(tmp_path / "p.csv", ["ref", "a", "b", "p_b"], [["r", "x", "y", 0.9]]))
    assert t.p_b.tolist() == [0.9]
    t = read_triplets(_csv(tmp_path / "v.csv", ["ref", "a", "b", "votes_a", "votes_b"], [["r", "x", "y", 1, 4]]))
    assert t.p_b.tolist() == [0.8]


@pytest.mark.parametrize(("header", "row", "message"), [
    (["ref", "x", "y"], ["r", "a", "b"], "expected reference,majority_closer"),
    (["ref", "a", "b", "p_b"], ["r", "a", "b", 1.5], r"must lie in \[0, 1\]"),
    (["ref", "a", "b", "p_b"], ["r", "", "b", 0.5], "empty image name"),
    (["ref", "a", "b", "votes_a", "votes_b"], ["r", "a", "b", 0, 0], "positive sum"),
    (["ref", "a", "b", "p_b"], ["r", "a", "b", "many"], "line 2"),
])
def test_bad_csv_says_what_is_wrong(tmp_path, header, row, message):
    with pytest.raises(ValueError, match=message):
        read_triplets(_csv(tmp_path / "bad.csv", header, [row]))


def test_header_only_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="no triplets"):
        read_triplets(_csv(tmp_path / "empty.csv", ["ref", "a", "b", "p_b"], []))
    with pytest.raises(ValueError, match="cannot read"):
        read_triplets(tmp_path / "absent.csv")


def test_split_keeps_references_whole_and_is_fixed(tmp_path):
    rows = [[f"r{i % 10}", "a", "b", 0.5] for i in range(100)]
    t = read_triplets(_csv(tmp_path / "s.csv", ["ref", "a", "b", "p_b"], rows))
    held = split_by_reference(t)
    held_refs = {r for r, h in zip(t.ref, held) if h}
    assert len(held_refs) == 2  # ceil(20% of 10 references)
    assert all((r in held_refs) == h for r, h in zip(t.ref, held))
    assert (split_by_reference(t) == held).all()


def test_pairs_index_each_reference_candidate_pair_once():
    t = Triplets(["r", "r", "s"], ["x", "y", "x"], ["y", "z", "r"], np.array([0.5, 0.5, 0.5]))
    names, pairs, at_a, at_b = t.pairs()
    assert names == ["r", "s", "x", "y", "z"]
    assert pairs == [(0, 2), (0, 3), (0, 4), (1, 0), (1, 2)]  # (r,x) (r,y) (r,z) (s,r) (s,x); (r,y) once
    assert at_a.tolist() == [0, 1, 4] and at_b.tolist() == [1, 2, 3]


def test_two_afc_rule_by_hand():
    d_a = np.array([0.1, 0.5, 0.3])
    d_b = np.array([0.2, 0.4, 0.3])
    p_b = np.array([0.25, 0.25, 0.9])
    np.testing.assert_allclose(two_afc(d_a, d_b, p_b), [0.75, 0.25, 0.5])


def test_bootstrap_resamples_whole_groups():
    values = np.array([1.0, 1.0, 0.0, 0.0])
    lo, hi = bootstrap_interval(values, ["x", "x", "y", "y"])
    assert 0 <= lo <= 0.5 <= hi <= 1 and (lo, hi) != (0.5, 0.5)
    assert bootstrap_interval(np.ones(6), list("aabbcc")) == (1.0, 1.0)
    same = paired_difference(values, values, ["x", "x", "y", "y"])
    assert same == {"difference": 0.0, "ci": [0.0, 0.0]}


def test_l2_scores_as_computed_by_hand(tmp_path, grey_tree):
    # a and b the same image: a tie -> 0.5; dark vs (white, black): black closer.
    f = _csv(tmp_path / "t.csv", ["ref", "a", "b", "votes_a", "votes_b"],
             [["mid.png", "light.png", "light.png", 3, 1], ["dark.png", "white.png", "black.png", 1, 3]])
    res = score_metric(L2Metric(), f, grey_tree, sizes=[32])
    part = res["scores"]["32"]["pixel"]["all"]
    # triplet 1: tie -> 0.5; triplet 2: d(black) < d(white), p_b = 0.75 -> 0.75
    assert part["score"] == pytest.approx((0.5 + 0.75) / 2)
    assert part["ceiling"] == pytest.approx(0.75) and part["triplets"] == 2


def test_missing_images_are_named(tmp_path, grey_tree, tiny):
    f = _csv(tmp_path / "t.csv", ["ref", "a", "b", "p_b"], [["mid.png", "nowhere.png", "dark.png", 0.5]])
    with pytest.raises(ValueError, match="nowhere.png"):
        score_triplets(tiny, f, grey_tree)


def test_model_scores_every_mode_and_part(tmp_path, grey_tree, tiny):
    rows = [[r, a, b, 0.3] for r in GREYS for a in GREYS for b in GREYS if len({r, a, b}) == 3]
    f = _csv(tmp_path / "t.csv", ["ref", "a", "b", "p_b"], rows)
    res = score_triplets(tiny, f, grey_tree, sizes=[32, 48])
    assert res["model"] == "tiny" and len(res["sha256"]) == 64
    assert set(res["scores"]) == {"32", "48"}
    for by_mode in res["scores"].values():
        assert set(by_mode) == {"spatial", "style", "meanpool"}
        for parts in by_mode.values():
            assert set(parts) == {"all", "selection", "held_out"}
            assert parts["all"]["triplets"] == len(rows)
            assert parts["selection"]["triplets"] + parts["held_out"]["triplets"] == len(rows)
            assert parts["all"]["ci"][0] <= parts["all"]["score"] <= parts["all"]["ci"][1]


def test_matrix_path_equals_pair_path(tmp_path, grey_tree, tiny):
    from perceptual_sim.lab.evaluate.metrics import NetMetric
    from perceptual_sim.lab.evaluate.triplets import triplet_distances

    class Pairs:  # the same metric without the N x N shortcut
        def __init__(self, inner):
            self.inner, self.name = inner, "pairs"

        def features(self, x):
            return self.inner.features(x)

        def compare(self, fa, fb):
            return self.inner.compare(fa, fb)

    names = sorted(GREYS)
    rows = [[names[i], names[(i + 1) % 5], names[(i + 2) % 5], 0.5] for i in range(5)]
    t = read_triplets(_csv(tmp_path / "t.csv", ["ref", "a", "b", "p_b"], rows))
    net = NetMetric(tiny)
    fast = triplet_distances(net, t, grey_tree, 32, batch_size=2)
    slow = triplet_distances(Pairs(net), t, grey_tree, 32, batch_size=2)
    for mode in fast:
        for f, s in zip(fast[mode], slow[mode]):
            np.testing.assert_allclose(f, s, rtol=1e-4, atol=1e-7)


def test_cli_eval_triplets(tmp_path, grey_tree, tiny_card, capsys):
    f = _csv(tmp_path / "t.csv", ["ref", "a", "b", "p_b"], [["mid.png", "light.png", "black.png", 0.2]])
    out = tmp_path / "t.json"
    assert main(["eval", "triplets", "--csv", str(f), "--images", str(grey_tree), "--size", "32",
                 "--model", str(tiny_card), "--mode", "meanpool", "--json", str(out)]) == 0
    assert "crowd ceiling" in capsys.readouterr().out
    res = json.loads(out.read_text())
    assert list(res["scores"]["32"]) == ["meanpool"] and res["benchmark"] == "triplets"
    assert main(["eval", "triplets", "--csv", str(tmp_path / "absent.csv"), "--images", str(grey_tree),
                 "--model", str(tiny_card)]) == 1
    assert "cannot read" in capsys.readouterr().err
    assert main(["eval", "triplets", "--csv", str(f), "--images", str(grey_tree), "--size", "8"]) == 2


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} (the shared human judgments) is absent")
def test_reads_the_material_similarity_judgments():
    t = read_triplets(SHARED / "triplets_train.csv")
    assert len(t) == 22801 and len(set(t.ref)) == 100
    assert (t.p_b <= 0.5).all()  # majority_closer has at least as many votes as other
    assert 100 * t.ceiling == pytest.approx(84.42, abs=0.01)
    assert int(split_by_reference(t).sum()) < len(t) * 0.35
