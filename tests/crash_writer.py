"""Child process of test_crash: applies random legal batches forever, reporting each commit.

After every committed batch it prints one JSON line: the journal's last seq and the moves the
batch made. The parent SIGKILLs it at random moments and checks the store afterwards.
"""

from __future__ import annotations

import json
import random
import sys

from gangamon import TRANSITIONS, NewJob, Status, Transition
from gangamon._store import open_store

JOBS = 60


def main(path: str, seed: int) -> None:
    rng = random.Random(seed)
    store = open_store(path)
    if not store.jobs():
        [master] = store.add_jobs([NewJob("dirac", None, Status.SUBMITTED)])
        store.add_jobs(
            [
                NewJob("dirac", str(i), Status.SUBMITTED, parent=master if i % 2 else None)
                for i in range(JOBS)
            ]
        )
    current = {j.id: j.status for j in store.jobs() if j.backend_id is not None}
    while True:
        batch = []
        for job in rng.sample(sorted(current), rng.randint(1, 40)):
            targets = sorted(TRANSITIONS[current[job]] - {Status.REMOVED})
            if targets:
                new = rng.choice(targets)
                batch.append(Transition(job, current[job], new, reason="crash-test"))
                current[job] = new
        store.apply(batch)
        moves = [[t.job, t.new.value] for t in batch]
        print(json.dumps({"seq": store.last_seq(), "moves": moves}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
