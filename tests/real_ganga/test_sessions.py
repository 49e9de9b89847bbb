"""The real ganga 8.7.12 with gangamon installed, in headless sessions (`nox -s ganga`)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from benchmarks.ganga_local import session_exit_seconds

from .session import run_session

pytestmark = [
    pytest.mark.skipif(
        importlib.util.find_spec("ganga") is None,
        reason="the ganga package is installed by `nox -s ganga`",
    ),
    pytest.mark.realtime,
]


def test_twenty_local_jobs_complete_with_their_postprocessors_run(tmp_path: Path) -> None:
    figures = run_session(
        tmp_path,
        """
        from ganga import Executable, FileChecker, Job, Local
        service = gangamon.ganga.install(enable=True)
        jobs = []
        for i in range(22):
            word = "ok" if i < 20 else "nope"
            command = f"sleep 0.{i % 10}; echo {word}"
            j = Job(application=Executable(exe="/bin/sh", args=["-c", command]), backend=Local())
            # Fails a job whose stdout lacks "ok": only a postprocessor can fail an exit 0.
            checker = FileChecker(files=["stdout"], searchStrings=["ok"], failIfFound=False)
            j.postprocessors.append(checker)
            j.submit()
            jobs.append(j)
        wait_until(lambda: all(final(j) for j in jobs), 120)
        report(
            statuses=[j.status for j in jobs],
            exitcodes=[j.backend.exitcode for j in jobs],
            applied=service.statistics().applied,
        )
        """,
    )
    assert figures["statuses"] == ["completed"] * 20 + ["failed"] * 2
    assert figures["exitcodes"] == [0] * 22
    assert figures["applied"] >= 22 * 2  # running, then completed, each through the store


def test_a_split_local_job_completes_through_its_subjobs(tmp_path: Path) -> None:
    figures = run_session(
        tmp_path,
        """
        from ganga import ArgSplitter, Executable, Job, Local
        service = gangamon.ganga.install(enable=True)
        j = Job(
            application=Executable(exe="/bin/sh"),
            splitter=ArgSplitter(args=[["-c", f"sleep 0.{i}; echo {i}"] for i in range(1, 6)]),
            backend=Local(),
        )
        j.submit()
        wait_until(lambda: final(j), 60)
        report(
            master=j.status,
            subjobs=[sj.status for sj in j.subjobs],
            exitcodes=[sj.backend.exitcode for sj in j.subjobs],
            tracked=service.statistics().applied,
        )
        """,
    )
    assert figures["master"] == "completed"
    assert figures["subjobs"] == ["completed"] * 5
    assert figures["exitcodes"] == [0] * 5
    assert figures["tracked"] >= 5


def test_a_job_the_user_kills_stays_killed(tmp_path: Path) -> None:
    figures = run_session(
        tmp_path,
        """
        from ganga import Executable, Job, Local
        service = gangamon.ganga.install(enable=True)
        j = Job(application=Executable(exe="/bin/sh", args=["-c", "sleep 60"]), backend=Local())
        j.submit()
        wait_until(lambda: j.status == "running", 30)
        j.kill()
        # gangamon sees the wrapper die without an exit code and stores "failed"; the
        # writer has dealt with it once it has processed that third change (after added and
        # running).
        wait_until(lambda: service.changes_processed >= 3, 30)
        report(status=j.status, processed=service.changes_processed)
        """,
    )
    assert figures == {"status": "killed", "processed": 3}


def test_two_backends_active_together_are_both_monitored(tmp_path: Path) -> None:
    # Ganga's bug A: its scan starts polling only the backend of the last job it saw.
    figures = run_session(
        tmp_path,
        """
        from ganga import Executable, Job, Local, PBS
        local = Job(application=Executable(exe="/bin/sh", args=["-c", "sleep 1"]), backend=Local())
        local.submit()
        pbs = stripProxy(Job(backend=PBS()))
        out = pbs.getOutputWorkspace().getPath()
        os.makedirs(out, exist_ok=True)
        # What a PBS job's wrapper leaves behind; no qsub needed to be monitored.
        with open(os.path.join(out, "__jobstatus__"), "w") as status:
            status.write("PID: 4242\\nEXITCODE: 0\\n")
        pbs.status = "submitted"
        # Both active when monitoring starts: one scan finds both.
        service = gangamon.ganga.install(enable=True)
        wait_until(lambda: final(local) and final(pbs), 60)
        report(local=local.status, pbs=pbs.status, polls=service.statistics().backends["PBS"].calls)
        """,
        poll="PBS = 1",
    )
    assert (figures["local"], figures["pbs"]) == ("completed", "completed")
    assert figures["polls"] >= 1


def test_enable_disable_cycles_and_repeated_run_monitoring_never_multiply_polling(
    tmp_path: Path,
) -> None:
    # Ganga's bug B: each disable/enable or runMonitoring() call adds a 2 s scan chain.
    figures = run_session(
        tmp_path,
        """
        service = gangamon.ganga.install(enable=False)
        from ganga import Job, PBS, disableMonitoring, enableMonitoring, runMonitoring
        pbs = Job(backend=PBS())
        stripProxy(pbs).status = "submitted"  # stays submitted: no status file, no heartbeat check
        for _ in range(3):
            enableMonitoring()
            disableMonitoring()
        enableMonitoring()
        for _ in range(5):
            runMonitoring()
            runMonitoring(pbs)
            runMonitoring([pbs.id])
        wait_until(lambda: service.statistics().backends["PBS"].calls >= 1, 30)
        before = service.statistics().backends["PBS"].calls
        time.sleep(4.0)  # a measuring window of four PBS intervals, not a wait for an event
        after = service.statistics().backends["PBS"].calls
        report(
            polls=after - before,
            engines=sum(t.name == "gangamon" for t in threading.enumerate()),
            writers=sum(t.name == "gangamon-ganga" for t in threading.enumerate()),
            tracked=service.statistics().backends["PBS"].jobs,
        )
        """,
        poll="PBS = 1",
    )
    assert 3 <= figures["polls"] <= 5  # one per second, never one per enable or call
    assert (figures["engines"], figures["writers"], figures["tracked"]) == (1, 1, 1)


def test_run_monitoring_takes_ids_lists_jobs_and_slices_and_names_bad_values(
    tmp_path: Path,
) -> None:
    figures = run_session(
        tmp_path,
        """
        service = gangamon.ganga.install(enable=False)
        # After install: a name imported before it is Ganga's old bound method.
        from ganga import Executable, Job, Local, jobs, runMonitoring
        js = []
        for i in range(4):
            app = Executable(exe="/bin/sh", args=["-c", "sleep 0.5"])
            j = Job(application=app, backend=Local())
            j.submit()
            js.append(j)
        errors = []
        for bad in ["3", 4.5, 999, [js[0].id, None]]:
            try:
                runMonitoring(bad)
            except Exception as e:
                errors.append(f"{type(e).__name__}: {e}")
        runMonitoring(js[0].id)
        runMonitoring([js[1]])
        runMonitoring(js[2])
        runMonitoring(jobs.select(js[3].id, js[3].id))
        wait_until(lambda: all(final(j) for j in js), 60)
        report(statuses=[j.status for j in js], errors=errors)
        """,
    )
    assert figures["statuses"] == ["completed"] * 4
    errors = figures["errors"]
    assert len(errors) == 4
    assert "cannot monitor '3'" in errors[0]
    assert "cannot monitor 4.5" in errors[1]
    assert "no job with id 999" in errors[2]
    assert "cannot monitor None in [0, None]" in errors[3]
    assert all("\n" not in e for e in errors)


def test_a_session_with_jobs_running_exits_within_two_seconds(tmp_path: Path) -> None:
    # Measured as the benchmark measures it: 3 Local jobs running under gangamon, from the
    # session's last statement to the end of its process (raises unless it exits cleanly).
    took = session_exit_seconds(tmp_path, gangamon=True)
    assert took < 2.0, f"the session took {took:.2f} s to exit"


def test_a_local_job_killed_and_resubmitted_at_once_is_monitored_in_its_new_run(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "first-run"
    figures = run_session(
        tmp_path,
        f"""
        from ganga import Executable, Job, Local
        service = gangamon.ganga.install(enable=True)
        # The first run waits to be killed; the second finds the marker and ends at once.
        command = "test -e {marker} && exit 0; touch {marker}; sleep 60"
        j = Job(application=Executable(exe="/bin/sh", args=["-c", command]), backend=Local())
        j.submit()
        wait_until(lambda: j.status == "running", 30)
        j.kill()
        j.resubmit()  # within the 3 s in which the first run's watch waits on its wrapper
        wait_until(lambda: final(j), 30)
        report(status=j.status, exitcode=j.backend.exitcode)
        """,
    )
    assert figures == {"status": "completed", "exitcode": 0}


def test_an_interactive_job_is_completed_by_the_poll_made_as_it_is_tracked(
    tmp_path: Path,
) -> None:
    # Interactive runs the job inside submit(); the next poll is 30 s away.
    figures = run_session(
        tmp_path,
        """
        service = gangamon.ganga.install(enable=False)
        from ganga import Executable, Interactive, Job, runMonitoring
        app = Executable(exe="/bin/sh", args=["-c", "exit 0"])
        j = Job(application=app, backend=Interactive())
        j.submit()
        runMonitoring(j)
        wait_until(lambda: final(j), 20)
        report(status=j.status, polls=service.statistics().backends["Interactive"].calls)
        """,
    )
    assert figures == {"status": "completed", "polls": 1}


def test_a_status_the_user_sets_right_after_tracking_is_never_overwritten(tmp_path: Path) -> None:
    # gangamon records the status it tracks a job with; a kill (or force_status) landing
    # before that record reached the writer was undone (killed -> submitted), and Ganga then
    # refused the resubmit: "cannot resubmit job 0 which is in 'submitted' state". Also
    # Ganga's TestSJSubmit::test_d_SJResubmit_FailNotRequired, where it was seen.
    figures = run_session(
        tmp_path,
        """
        service = gangamon.ganga.install(enable=True)
        from ganga import ArgSplitter, Executable, Job, Local, runMonitoring
        refused = []

        def resubmit(job):
            try:
                job.resubmit()
            except Exception as e:
                refused.append(str(e))

        app = Executable(exe="/bin/sh", args=["-c", "sleep 0.5"])
        j = Job(application=app, backend=Local())
        j.submit()
        for _ in range(3):
            runMonitoring(j)
            j.kill()
            resubmit(j)
            wait_until(lambda: final(j), 30)
        splitter = ArgSplitter(args=[["-c", "sleep 0.5"]] * 2)
        m = Job(application=Executable(exe="/bin/sh"), splitter=splitter, backend=Local())
        m.submit()
        wait_until(lambda: final(m), 30)
        sj = m.subjobs(0)
        resubmit(sj)
        sj.force_status("failed", force=True)
        resubmit(sj)
        wait_until(lambda: final(m), 30)
        report(refused=refused, job=j.status, subjob=sj.status, master=m.status)
        """,
    )
    assert figures == {
        "refused": [],
        "job": "completed",
        "subjob": "completed",
        "master": "completed",
    }
