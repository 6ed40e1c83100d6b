"""Champion/challenger comparison from the inference log: pairing, agreement, accuracy on the same rows."""

from __future__ import annotations

from pathlib import Path

from arsenale.serving.comparison import compare_shadows
from arsenale.serving.inference_log import InferenceLog


def test_shadow_answers_are_paired_and_scored_on_the_same_rows(tmp_path: Path) -> None:
    root = str(tmp_path / "log")
    log = InferenceLog(root, "fraud-api", replica="r1")
    truth = [i % 2 for i in range(100)]
    for i in range(100):
        rid = f"req-{i}"
        champion = truth[i] if i % 10 else 1 - truth[i]        # wrong on 10 rows
        challenger = truth[i] if i % 25 else 1 - truth[i]      # wrong on 4 rows
        answering = 1 if i < 80 else 2                        # a split: v1 answers 80, v2 answers 20
        log.log(request_id=rid, model="fraud", version=answering, role="route", inputs=[{"x": float(i)}],
                outputs=[champion], latency_ms=1.0, timestamp_ms=1_000 + i)
        log.log(request_id=rid, model="fraud", version=3, role="shadow", inputs=[{"x": float(i)}],
                outputs=[challenger], latency_ms=1.0, timestamp_ms=1_000 + i)
        if i < 50:  # labels arrive for half of them
            log.feedback(rid, truth[i], timestamp_ms=2_000 + i)
    log.close()
    [c] = compare_shadows(root, "fraud-api")
    assert c.shadow == "fraud/3" and c.paired == 100 and c.answered_by == {"fraud/1": 80, "fraud/2": 20}
    disagree = sum((truth[i] if i % 10 else 1 - truth[i]) != (truth[i] if i % 25 else 1 - truth[i])
                   for i in range(100))
    assert c.agreement == 1 - disagree / 100
    assert c.labelled == 50
    assert c.answer_accuracy == 1 - sum(1 for i in range(50) if i % 10 == 0) / 50
    assert c.shadow_accuracy == 1 - sum(1 for i in range(50) if i % 25 == 0) / 50


def test_nothing_logged_compares_nothing(tmp_path: Path) -> None:
    assert compare_shadows(str(tmp_path / "empty"), "fraud-api") == []
