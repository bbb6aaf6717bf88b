"""Resume tests of persistkit.optuna: kills, stale trials, sampler state, journal format."""

from __future__ import annotations

import io
import json
import logging
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import optuna
import pytest
from adapter_child import KILL_POINTS, N_TRIALS, SOAK_KILL_POINTS, run_child, run_in_process
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

import persistkit.optuna as popt
from persistkit import CheckpointStore, Deadline
from persistkit.errors import MissingDependencyError

optuna.logging.set_verbosity(optuna.logging.WARNING)
JOURNAL_KEY = "optuna/search/journal"


@pytest.fixture
def store() -> Any:
    with CheckpointStore(f"memory://optuna-{uuid.uuid4().hex}", background=False) as memory_store:
        yield memory_store


@pytest.fixture(scope="module")
def reference() -> dict:
    return run_in_process("optuna")


def quadratic(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -4.0, 4.0)
    return (x - 1.0) ** 2


def pull_journal(store: CheckpointStore, folder: Path) -> Path:
    path = folder / "journal.log"
    path.write_bytes(store.load(JOURNAL_KEY).files[popt.JOURNAL_FILE])
    return path


@pytest.mark.parametrize("kill_point", [
    *KILL_POINTS, *(pytest.param(point, marks=pytest.mark.soak) for point in SOAK_KILL_POINTS)])
def test_killed_search_resumes_exactly(tmp_path: Path, reference: dict, kill_point: str) -> None:
    assert run_child("optuna", str(tmp_path), kill_point) is None
    resumed = run_child("optuna", str(tmp_path))

    assert resumed is not None
    assert resumed["complete_params"] == reference["complete_params"]
    assert len(resumed["complete_params"]) == N_TRIALS
    assert resumed["values"] == reference["values"]
    assert resumed["status"] == "completed"


@pytest.mark.parametrize("kill_sequence", [
    (1, 3), pytest.param((1, 2, 2, 5), marks=pytest.mark.soak)])
def test_repeated_kills_keep_order(tmp_path: Path, reference: dict,
                                   kill_sequence: tuple[int, ...]) -> None:
    for kill_at in kill_sequence:
        killed = run_child("optuna", str(tmp_path), "mid", {"kill_at_complete": kill_at})
        assert killed is None
    resumed = run_child("optuna", str(tmp_path))

    assert resumed is not None
    assert resumed["complete_params"] == reference["complete_params"]
    # A kill can come before the upload of the RUNNING trial, which then never shows up,
    # so up to one FAIL per kill, each with the dead-session reason.
    failed = [reason for state, reason in zip(resumed["states"], resumed["fail_reasons"], strict=True)
              if state == "FAIL"]
    assert len(failed) <= len(kill_sequence)
    assert set(failed) <= {popt.DEAD_SESSION_REASON}
    assert resumed["states"].count("COMPLETE") == N_TRIALS


def test_killed_trial_marked_fail_not_running(store: CheckpointStore) -> None:
    # A trial that a dead session left RUNNING must not stay RUNNING forever.
    study = popt.load_study(store, "search", direction="minimize")
    study.ask()
    popt.StudyCheckpointCallback()(study, None)

    resumed = popt.load_study(store, "search", direction="minimize")

    trial = resumed.trials[0]
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs[popt.FAIL_REASON_ATTR] == popt.DEAD_SESSION_REASON
    assert resumed.get_trials(states=(TrialState.RUNNING,)) == []


def test_recreated_seeded_sampler_does_not_replay(store: CheckpointStore) -> None:
    # Re-creating RandomSampler(seed=1) after a resume would draw trial 0's values again.
    study = popt.load_study(store, "search", sampler=optuna.samplers.RandomSampler(seed=1))
    popt.optimize(study, quadratic, n_trials=2)
    resumed = popt.load_study(store, "search", sampler=optuna.samplers.RandomSampler(seed=1))
    popt.optimize(resumed, quadratic, n_trials=4)
    uninterrupted = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    uninterrupted.optimize(quadratic, n_trials=4)

    resumed_values = [trial.params["x"] for trial in resumed.trials]
    assert resumed_values == [trial.params["x"] for trial in uninterrupted.trials]
    assert resumed_values[2] != resumed_values[0]


def test_n_trials_counts_earlier_sessions(store: CheckpointStore) -> None:
    study = popt.load_study(store, "search")
    first = popt.optimize(study, quadratic, n_trials=3)
    resumed = popt.load_study(store, "search")
    second = popt.optimize(resumed, quadratic, n_trials=5)

    assert first.n_run == 3
    assert second.n_run == 2
    assert second.n_complete == 5
    assert len(resumed.trials) == 5


def test_pruned_and_failed_trials_stay(store: CheckpointStore) -> None:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0.0, 1.0)
        if trial.number == 1:
            raise optuna.TrialPruned()
        if trial.number == 2:
            raise ArithmeticError("diverged")
        return x

    study = popt.load_study(store, "search")
    result = popt.optimize(study, objective, n_trials=3, catch=(ArithmeticError,))
    resumed = popt.load_study(store, "search")

    states = [trial.state for trial in resumed.trials]
    assert states[1] == TrialState.PRUNED
    assert states[2] == TrialState.FAIL
    assert popt.FAIL_REASON_ATTR not in resumed.trials[2].user_attrs
    assert states.count(TrialState.COMPLETE) == 3
    assert result.n_complete == 3


def test_uncaught_error_is_saved_then_raised(store: CheckpointStore) -> None:
    def objective(trial: optuna.Trial) -> float:
        raise KeyError("missing column")

    study = popt.load_study(store, "search")
    with pytest.raises(KeyError):
        popt.optimize(study, objective, n_trials=1)
    resumed = popt.load_study(store, "search")

    assert [trial.state for trial in resumed.trials] == [TrialState.FAIL]


def test_old_journal_checkpoints_pruned(store: CheckpointStore) -> None:
    study = popt.load_study(store, "search")
    popt.optimize(study, quadratic, n_trials=4)

    assert len(store.steps(JOURNAL_KEY)) == 3
    assert store.latest_step(JOURNAL_KEY) == 8


def test_journal_opens_with_plain_optuna(store: CheckpointStore, tmp_path: Path) -> None:
    study = popt.load_study(store, "search", direction="minimize")
    popt.optimize(study, quadratic, n_trials=3)

    path = pull_journal(store, tmp_path)
    plain = optuna.load_study(study_name="search",
                              storage=JournalStorage(JournalFileBackend(str(path))))

    assert [trial.params for trial in plain.trials] == [trial.params for trial in study.trials]
    assert plain.best_value == study.best_value


def test_journal_opens_in_dashboard(store: CheckpointStore, tmp_path: Path) -> None:
    import optuna_dashboard

    study = popt.load_study(store, "search", direction="minimize")
    popt.optimize(study, quadratic, n_trials=2)
    storage = JournalStorage(JournalFileBackend(str(pull_journal(store, tmp_path))))
    app = optuna_dashboard.wsgi(storage)

    summaries = call_wsgi(app, "/api/studies")["study_summaries"]
    detail = call_wsgi(app, f"/api/studies/{summaries[0]['study_id']}")

    assert [entry["study_name"] for entry in summaries] == ["search"]
    assert len(detail["trials"]) == 2


def call_wsgi(app: Any, path: str) -> Any:
    """GET ``path`` from a WSGI application in this process and return the parsed JSON."""
    statuses: list[str] = []
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "",
               "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1",
               "wsgi.input": io.BytesIO(), "wsgi.errors": io.StringIO(),
               "wsgi.url_scheme": "http"}
    body = b"".join(app(environ, lambda status, *rest: statuses.append(status)))
    assert statuses == ["200 OK"], environ["wsgi.errors"].getvalue()[-2000:]
    return json.loads(body)


def test_torn_last_record_is_cut(store: CheckpointStore, tmp_path: Path,
                                 caplog: pytest.LogCaptureFixture) -> None:
    study = popt.load_study(store, "search", sampler=optuna.samplers.RandomSampler(seed=2))
    popt.optimize(study, quadratic, n_trials=2)
    checkpoint = store.load(JOURNAL_KEY)
    torn = checkpoint.files[popt.JOURNAL_FILE] + b'{"op_code": 5, "worker_id": "x", "tri'
    store.save(JOURNAL_KEY, {popt.JOURNAL_FILE: torn,
                             popt.SAMPLER_FILE: checkpoint.json(popt.SAMPLER_FILE)},
               step=checkpoint.step + 1)

    with caplog.at_level(logging.WARNING, logger="persistkit.optuna"):
        resumed = popt.load_study(store, "search", sampler=optuna.samplers.RandomSampler(seed=2))
    popt.optimize(resumed, quadratic, n_trials=3)
    lines = pull_journal(store, tmp_path).read_bytes().splitlines()

    assert "torn last record" in caplog.text
    assert all(json.loads(line) for line in lines)
    assert len(resumed.trials) == 3
    plain = optuna.load_study(study_name="search", storage=JournalStorage(
        JournalFileBackend(str(tmp_path / "journal.log"))))
    assert len(plain.trials) == 3


def test_deadline_skips_trial_that_would_overrun(store: CheckpointStore) -> None:
    def slow(trial: optuna.Trial) -> float:
        time.sleep(0.4)
        return quadratic(trial)

    study = popt.load_study(store, "search")
    stopped = popt.optimize(study, slow, n_trials=4, deadline=Deadline(seconds=0.6))
    resumed = popt.load_study(store, "search")
    finished = popt.optimize(resumed, quadratic, n_trials=4)

    assert stopped.stopped_by_deadline
    assert stopped.status is popt.RunStatus.STOPPED_BY_DEADLINE
    assert stopped.n_complete == 1
    assert finished.status is popt.RunStatus.COMPLETED
    assert finished.n_complete == 4


def test_trial_key_shared_with_retry(store: CheckpointStore) -> None:
    study = popt.load_study(store, "search")
    popt.optimize(study, quadratic, n_trials=1)
    interrupted = study.ask()
    interrupted_key = popt.trial_key(interrupted, "xgb")
    popt.StudyCheckpointCallback()(study, None)

    resumed = popt.load_study(store, "search")
    retry = resumed.ask()

    assert interrupted_key == "optuna/search/trial-00001/xgb"
    assert retry.number == 2
    assert popt.trial_key(retry, "xgb") == interrupted_key


def test_trial_booster_continues_after_kill(tmp_path: Path) -> None:
    options = {"boost": True, "kill_at_complete": 2}
    reference = run_in_process("optuna", {"boost": True})
    assert run_child("optuna", str(tmp_path / "killed"), "mid", options) is None
    resumed = run_child("optuna", str(tmp_path / "killed"), "none", {"boost": True})

    assert resumed is not None
    # Checkpoints are every 5 rounds, and the child flushes before it kills at round 13.
    assert "Resuming 'optuna/search/trial-00002/xgb' at round 10 of 30" in resumed["log"]
    assert resumed["complete_params"] == reference["complete_params"]
    assert resumed["values"] == reference["values"]


def test_study_from_elsewhere_rejected() -> None:
    with pytest.raises(ValueError, match="load_study"):
        popt.optimize(optuna.create_study(), quadratic, n_trials=1)


def test_missing_optuna_names_extra(store: CheckpointStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)

    with pytest.raises(MissingDependencyError, match=r"pip install 'persistkit\[optuna\]'"):
        popt.load_study(store, "search")


def test_study_callback_with_plain_optimize(store: CheckpointStore) -> None:
    study = popt.load_study(store, "search")
    callback = popt.StudyCheckpointCallback(deadline=Deadline(seconds=-1))
    study.optimize(quadratic, n_trials=5, callbacks=[callback])
    resumed = popt.load_study(store, "search")

    assert callback.status is popt.RunStatus.STOPPED_BY_DEADLINE
    assert len(study.trials) == 1
    assert len(resumed.trials) == 1
    assert resumed.trials[0].state == TrialState.COMPLETE
