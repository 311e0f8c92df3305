"""The verdict `imgclf reproduce` gives a rebuild, and the artifact the reproduce-champion
flow publishes from it."""

from __future__ import annotations

import pytest

from imgclf.audit.reproduce import IDENTICAL, NOT, WITHIN, Outcome, Rebuilt, judge
from imgclf.orchestration import flowreports

REGISTERED = {"content_hash": "a" * 64, "f1": 0.9710, "split_md5": "s1"}


def rebuilt(content_hash: str = "b" * 64, f1: float = 0.9710, split_md5: str = "s1") -> Rebuilt:
    return Rebuilt(content_hash=content_hash, metrics={"f1": f1, "accuracy": 0.97}, split_md5=split_md5, run_id="r2")


def test_the_same_weights_are_reproduced_whatever_else() -> None:
    assert judge(REGISTERED, rebuilt("a" * 64, f1=0.5, split_md5="other")) == (IDENTICAL, [])


@pytest.mark.parametrize(
    ("f1", "verdict", "said"),
    [
        (0.9755, WITHIN, "test F1 0.9755, registered 0.9710 (+0.0045, within ±0.005)"),
        (0.9660, WITHIN, "test F1 0.9660, registered 0.9710 (-0.0050, within ±0.005)"),
        (0.9650, NOT, "test F1 0.9650, registered 0.9710 (-0.0060, beyond ±0.005)"),
        (0.9800, NOT, "test F1 0.9800, registered 0.9710 (+0.0090, beyond ±0.005)"),
    ],
)
def test_other_weights_are_judged_by_the_test_f1(f1: float, verdict: str, said: str) -> None:
    assert judge(REGISTERED, rebuilt(f1=f1)) == (verdict, ["content hash bbbbbbbbbbbb, registered aaaaaaaaaaaa", said])


def test_metrics_on_another_test_split_prove_nothing() -> None:
    verdict, differences = judge(REGISTERED, rebuilt(f1=0.9710, split_md5="s2"))
    assert (verdict, differences[-1]) == (NOT, "test split md5 s2, registered s1")


def test_a_failed_rebuild_is_not_reproduced() -> None:
    assert judge(REGISTERED, Rebuilt(failure="stage train: out of memory")) == (
        NOT,
        ["the rebuild failed: stage train: out of memory"],
    )


def test_the_verdict_artifact_shows_both_models() -> None:
    verdict, differences = judge(REGISTERED, rebuilt(f1=0.9650))
    outcome = Outcome("catdog-cnn", "3", verdict, differences, REGISTERED, rebuilt(f1=0.9650), "imgclf-reproduce",
                      41.6, None)  # fmt: skip
    assert outcome.line == f"NOT reproduced: {'; '.join(differences)}"
    markdown = flowreports.reproduce_markdown(outcome.as_json()).splitlines()
    assert markdown[0] == "# catdog-cnn version 3: NOT reproduced"
    assert "| registered | aaaaaaaaaaaaaaaa | 0.9710 | s1 |" in markdown
    assert "| rebuilt | bbbbbbbbbbbbbbbb | 0.9650 | s1 |" in markdown
    assert f"- {differences[1]}" in markdown
    assert markdown[-1] == "Rebuilt in 42 s; MLflow run r2 in the experiment imgclf-reproduce."
