"""What each monitor left on its subjobs, compared job by job. Pure: records are plain data.

A record holds, for one subjob, what Ganga's own DIRAC monitor sets when it finalises a job
(reference/ganga-dirac.md, "What Ganga's own monitor does per job"): its status, the backend's
status, statusInfo, actualCE, normCPUTime and extraInfo (the application status), the state
timestamps, the output directory's file names and the DiracFile records. The two masters ran
the same schedule shifted in time, so the backend's timestamps are compared as seconds since
their schedule's start, within `TOLERANCE` (DIRAC's logging info has whole seconds).
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

TOLERANCE = 1.5
#: Ganga's own state timestamps: whether they exist is compared, not when (each monitor sets
#: them when it acts).
GANGA_STAMPS = ("running", "completed", "failed", "final")
BACKEND_STAMPS = ("backend_running", "backend_completing", "backend_final")
ATTRIBUTES = (
    "status",
    "backend.status",
    "backend.statusInfo",
    "backend.actualCE",
    "backend.normCPUTime",
    "backend.extraInfo",
)
EXAMPLES = 3

#: Where Ganga 8.7.12's own monitor leaves a wrong value and gangamon DIRAC's: (attribute,
#: test of (Ganga's value, gangamon's, Ganga's record), why). Counted apart, not as
#: differences.
GANGA_DEFECTS: tuple[tuple[str, Any, str], ...] = (
    (
        "backend.extraInfo",
        lambda ganga, ours, record: ganga == "unknown ApplicationStatus",
        "Ganga's getJobAttributes goes through DISET's RPCClient, which refuses an https URL "
        "(reference/ganga-dirac.md item 9); gangamon writes DIRAC's ApplicationStatus",
    ),
    (
        "backend.extraInfo",
        lambda ganga, ours, record: ganga == "In progress",
        "Ganga's status command writes the constant 'In progress' as every polled job's "
        "application status (DiracNewCommands.status), left on the jobs it does not finalise",
    ),
    (
        "timestamps[backend_final]",
        lambda ganga, ours, record: ganga is None and record["status"] == "failed",
        "for a failed job Ganga's _getStateTime looks up the time DIRAC said Done, and finds "
        "none; gangamon writes when DIRAC said Failed or Killed",
    ),
    (
        "timestamps[running] exists",
        lambda ganga, ours, record: (
            # Ganga wrote the None it found: DIRAC never said Running.
            ganga
            and "backend_running" in record["backend_stamps"]
            and record["backend_stamps"]["backend_running"] is None
        ),
        "Ganga moves every job it finalises through running, a job killed in the queue "
        "(it never ran at DIRAC) too",
    ),
)


def compare(ganga: list[dict[str, Any]], ours: list[dict[str, Any]]) -> dict[str, Any]:
    """Differences between records of the same schedule index: counted per attribute, with
    up to `EXAMPLES` examples each."""
    counts: Counter[str] = Counter()
    defects: Counter[str] = Counter()
    examples: dict[str, list[dict[str, Any]]] = {}
    by_index = {r["index"]: r for r in ours}
    for theirs in ganga:
        mine = by_index.get(theirs["index"])
        if mine is None:
            counts["missing subjob"] += 1
            continue
        for name, a, b in _pairs(theirs, mine):
            if _same(a, b):
                continue
            if _ganga_defect(name, a, b, theirs):
                defects[name] += 1
                continue
            counts[name] += 1
            shown = examples.setdefault(name, [])
            if len(shown) < EXAMPLES:
                shown.append({"index": theirs["index"], "ganga": a, "gangamon": b})
    return {
        "pairs": len(ganga),
        "differences": dict(sorted(counts.items())),
        "examples": examples,
        "ganga_defects": dict(sorted(defects.items())),
        "clean": not counts,
    }


def _ganga_defect(name: str, ganga: object, ours: object, record: dict[str, Any]) -> bool:
    return any(n == name and test(ganga, ours, record) for n, test, _ in GANGA_DEFECTS)


def _pairs(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    pairs = [(name, a[name], b[name]) for name in ATTRIBUTES]
    pairs += [(f"timestamps[{k}] exists", k in a["stamps"], k in b["stamps"]) for k in GANGA_STAMPS]
    for key in BACKEND_STAMPS:
        pairs.append(
            (
                f"timestamps[{key}]",
                a["backend_stamps"].get(key, "absent"),
                b["backend_stamps"].get(key, "absent"),
            )
        )
    pairs.append(("output files", a["outputs"], b["outputs"]))
    pairs.append(("__postprocesslocations__", a["postprocess"], b["postprocess"]))
    return pairs


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= TOLERANCE
    return a == b


def wrong_statuses(records: list[dict[str, Any]], expected: dict[int, str]) -> dict[str, Any]:
    """Subjobs whose final Ganga status is not the one Ganga's statusmapping gives their
    final DIRAC status."""
    wrong = [r for r in records if r["status"] != expected[r["index"]]]
    return {
        "count": len(wrong),
        "examples": [
            {"index": r["index"], "status": r["status"], "expected": expected[r["index"]]}
            for r in wrong[:EXAMPLES]
        ],
    }


def latency_summary(latencies: list[float]) -> dict[str, float | None]:
    if not latencies:
        return {"p50_s": None, "p99_s": None, "max_s": None}
    ordered = sorted(latencies)
    return {
        "p50_s": statistics.median(ordered),
        "p99_s": ordered[int(0.99 * (len(ordered) - 1))],
        "max_s": ordered[-1],
    }
