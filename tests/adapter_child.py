"""Child process for the adapter kill tests: trains one adapter and can SIGKILL itself.

Usage: python tests/adapter_child.py ADAPTER STORE_DIR RESULT_JSON KILL_POINT [OPTIONS_JSON]

ADAPTER is optuna, xgboost, lightgbm or catboost. KILL_POINT is one of:

- ``none``: run to the end and write the result to RESULT_JSON;
- ``first``: before the first checkpoint is committed (round 2, or the first trial);
- ``mid``: in the middle (round 13, or when 3 trials are COMPLETE);
- ``upload``: during the second checkpoint commit, after the payload is staged and
  before the manifest is written (the store commits in line in this mode);
- ``end``: after the last round (or trial) and before the training call returns.

The process kills itself with SIGKILL at that point, so no ``finally`` block, atexit
handler or background flush runs, as when a platform ends a session.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import tempfile
import time

import numpy as np

ROUNDS = 40
FIRST_ROUND_KILL = 2
MID_ROUND_KILL = 13
MID_TRIALS_KILL = 3
N_TRIALS = 8


def kill_now() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def arm_upload_kill(commit_number: int) -> None:
    """SIGKILL during the commit_number-th checkpoint commit, before its manifest."""
    from persistkit import _layout, _storage

    original = _storage._write_synced
    seen = {"manifests": 0}

    def write_then_maybe_die(path: str, data: bytes) -> None:
        if os.path.basename(path) == _layout.MANIFEST_NAME:
            seen["manifests"] += 1
            if seen["manifests"] == commit_number:
                kill_now()
        original(path, data)

    _storage._write_synced = write_then_maybe_die


def make_regression(seed: int = 0, rows: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Return noisy regression data on which early stopping ends each library before round 40."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, 6))
    target = 2.0 * features[:, 0] + np.sin(3 * features[:, 1]) + rng.normal(scale=1.5, size=rows)
    return features, target


def run_optuna(store: object, kill: str, options: dict) -> dict:
    import optuna

    import persistkit.optuna as popt

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    kill_at = options.get("kill_at_complete", MID_TRIALS_KILL if kill == "mid" else 0)
    sampler = optuna.samplers.TPESampler(seed=7, n_startup_trials=3)
    study = popt.load_study(store, "search", direction="minimize", sampler=sampler)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -4.0, 4.0)
        depth = trial.suggest_int("depth", 1, 8)
        kind = trial.suggest_categorical("kind", ["a", "b", "c"])
        n_complete = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
        kill_here = kill in ("first", "mid") and n_complete >= kill_at
        if options.get("boost"):
            return boosted_objective(trial, depth, kill_here)
        if kill_here:
            kill_now()
        return (x - 1.0) ** 2 + 0.1 * depth + {"a": 0.0, "b": 0.5, "c": 1.0}[kind]

    def boosted_objective(trial: optuna.Trial, depth: int, kill_here: bool) -> float:
        import xgboost as xgb

        import persistkit.xgboost as pxgb

        class Killer(xgb.callback.TrainingCallback):
            def after_iteration(self, model: object, epoch: int, evals_log: object) -> bool:
                if kill_here and model.num_boosted_rounds() == MID_ROUND_KILL:  # type: ignore[attr-defined]
                    # A long trial has long finished uploading its earlier rounds.
                    store.flush()  # type: ignore[attr-defined]
                    kill_now()
                return False

        features, target = make_regression()
        dtrain = xgb.DMatrix(features[:220], target[:220])
        dvalid = xgb.DMatrix(features[220:], target[220:])
        evals_result: dict = {}
        pxgb.train(
            {"max_depth": depth, "eta": 0.3, "nthread": 1}, dtrain, 30,
            evals=[(dvalid, "valid")], evals_result=evals_result, verbose_eval=False,
            callbacks=[Killer()], store=store, key=popt.trial_key(trial, "xgb"),
            every_rounds=5)
        return float(evals_result["valid"]["rmse"][-1])

    def end_callback(study: optuna.Study, trial: object) -> None:
        n_complete = len(study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
        if kill == "end" and n_complete == N_TRIALS:
            kill_now()

    result = popt.optimize(study, objective, n_trials=N_TRIALS, callbacks=[end_callback])
    return {
        "status": result.status.value,
        "complete_params": [t.params for t in study.trials
                            if t.state == optuna.trial.TrialState.COMPLETE],
        "states": [t.state.name for t in study.trials],
        "fail_reasons": [t.user_attrs.get(popt.FAIL_REASON_ATTR) for t in study.trials],
        "values": [t.value for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE],
    }


def run_xgboost(store: object, kill: str, options: dict) -> dict:
    import xgboost as xgb

    import persistkit.xgboost as pxgb

    features, target = make_regression()
    dtrain = xgb.DMatrix(features[:220], target[:220])
    dvalid = xgb.DMatrix(features[220:], target[220:])
    params = {"max_depth": 3, "eta": 0.3, "nthread": 1, "seed": 3, **options.get("params", {})}

    class Killer(xgb.callback.TrainingCallback):
        def after_iteration(self, model: object, epoch: int, evals_log: object) -> bool:
            rounds = model.num_boosted_rounds()  # type: ignore[attr-defined]
            if (kill == "first" and rounds == FIRST_ROUND_KILL) or (
                    kill == "mid" and rounds == MID_ROUND_KILL):
                kill_now()
            return False

        def after_training(self, model: object) -> object:
            if kill == "end":
                kill_now()
            return model

    evals_result: dict = {}
    booster = pxgb.train(
        params, dtrain, ROUNDS, evals=[(dvalid, "valid")],
        early_stopping_rounds=options.get("early_stopping_rounds", 8),
        evals_result=evals_result, verbose_eval=False, callbacks=[Killer()],
        store=store, key="xgb/run", every_rounds=5)
    return {
        "predictions": booster.predict(dvalid).tolist(),
        "best_iteration": booster.best_iteration,
        "best_score": booster.best_score,
        "history": evals_result,
        "rounds": booster.num_boosted_rounds(),
        "status": booster.persistkit_status.value,
    }


def run_lightgbm(store: object, kill: str, options: dict) -> dict:
    import lightgbm as lgb

    import persistkit.lightgbm as plgb

    features, target = make_regression()
    train_set = lgb.Dataset(features[:220], target[:220])
    valid_set = lgb.Dataset(features[220:], target[220:], reference=train_set)
    params = {"objective": "regression", "num_leaves": 7, "learning_rate": 0.3,
              "verbosity": -1, "num_threads": 1, "seed": 3, "early_stopping_round": 8,
              **options.get("params", {})}

    def killer(env: object) -> None:
        rounds = env.iteration + 1  # type: ignore[attr-defined]
        if (kill == "first" and rounds == FIRST_ROUND_KILL) or (
                kill == "mid" and rounds == MID_ROUND_KILL):
            kill_now()

    killer.order = 5  # type: ignore[attr-defined]
    evals_result: dict = {}
    booster = plgb.train(params, train_set, ROUNDS, valid_sets=[valid_set],
                         callbacks=[killer], evals_result=evals_result,
                         store=store, key="lgbm/run", every_rounds=5)
    if kill == "end":
        kill_now()
    return {
        "predictions": booster.predict(features[220:]).tolist(),
        "best_iteration": booster.best_iteration,
        "best_score": {name: dict(scores) for name, scores in booster.best_score.items()},
        "history": evals_result,
        "rounds": booster.current_iteration(),
        "status": booster.persistkit_status.value,
    }


def run_catboost(store: object, kill: str, options: dict) -> dict:
    from catboost import CatBoostRegressor

    import persistkit.catboost as pcat

    features, target = make_regression()
    model = CatBoostRegressor(iterations=ROUNDS, depth=3, learning_rate=0.5, random_seed=3,
                              early_stopping_rounds=8,
                              verbose=0, thread_count=1, train_dir=tempfile.mkdtemp(),
                              bootstrap_type="Bernoulli", subsample=0.8,
                              **options.get("params", {}))

    every_seconds = options.get("every_seconds")
    interval = {"every_seconds": every_seconds} if every_seconds else {"every_rounds": 5}

    class Killer:
        def after_iteration(self, info: object) -> bool:
            iteration = info.iteration  # type: ignore[attr-defined]
            # Slow iterations give CatBoost time to write snapshots by the clock.
            time.sleep(options.get("iteration_seconds", 0))
            if every_seconds and kill == "mid" and iteration == MID_ROUND_KILL:
                # Die once the snapshot thread has copied a snapshot, so the rerun
                # resumes from one.
                give_up = time.monotonic() + 30
                while not store.steps("cat/run") and time.monotonic() < give_up:  # type: ignore[attr-defined]
                    time.sleep(0.05)
            if (kill == "first" and iteration == FIRST_ROUND_KILL) or (
                    kill == "mid" and iteration == MID_ROUND_KILL):
                kill_now()
            return True

    pcat.fit(model, features[:220], target[:220], eval_set=(features[220:], target[220:]),
             callbacks=[Killer()], store=store, key="cat/run", **interval)
    if kill == "end":
        kill_now()
    return {
        "predictions": model.predict(features[220:]).tolist(),
        "best_iteration": model.get_best_iteration(),
        "best_score": model.get_best_score(),
        "history": model.get_evals_result(),
        "rounds": model.tree_count_,
        "status": model.persistkit_status.value,
    }


RUNNERS = {"optuna": run_optuna, "xgboost": run_xgboost, "lightgbm": run_lightgbm,
           "catboost": run_catboost}


def main() -> None:
    """Run one adapter as described in the module docstring."""
    adapter, store_dir, result_path, kill = sys.argv[1:5]
    options = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {}
    # The parent test reads resume messages from stderr.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    from persistkit import CheckpointStore

    if kill == "upload":
        arm_upload_kill(commit_number=2)
    # The background uploader coalesces pending saves, so on a busy machine a fast run
    # can commit only once and never reach a second commit; commit in line instead.
    store = CheckpointStore(store_dir, background=kill != "upload")
    result = RUNNERS[adapter](store, kill, options)
    store.close()
    with open(result_path, "w", encoding="utf-8") as result_file:
        json.dump(result, result_file)


if __name__ == "__main__":
    main()


def run_in_process(adapter: str, options: dict | None = None) -> dict:
    """Run an adapter uninterrupted in this process on a fresh in-memory store."""
    import uuid

    from persistkit import CheckpointStore

    with CheckpointStore(f"memory://reference-{uuid.uuid4().hex}") as store:
        return RUNNERS[adapter](store, "none", options or {})


KILL_POINTS = ["mid", "upload"]
SOAK_KILL_POINTS = ["first", "end"]


def run_child(adapter: str, store_dir: str, kill: str = "none", options: dict | None = None,
              *, timeout: float = 120.0) -> dict | None:
    """Run this script in a subprocess; return its result, or None when it was killed.

    Raises:
        AssertionError: If the child neither finished nor died by SIGKILL.
    """
    import subprocess

    repo_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with tempfile.TemporaryDirectory() as folder:
        result_path = os.path.join(folder, "result.json")
        command = [sys.executable, os.path.abspath(__file__), adapter, store_dir, result_path,
                   kill, json.dumps(options or {})]
        environment = {**os.environ, "PYTHONPATH": repo_root, "OMP_NUM_THREADS": "1"}
        completed = subprocess.run(command, env=environment, capture_output=True, text=True,
                                   timeout=timeout, check=False)
        if completed.returncode == -signal.SIGKILL:
            return None
        assert completed.returncode == 0, (
            f"child {adapter}/{kill} exited with {completed.returncode}:\n{completed.stderr[-3000:]}")
        with open(result_path, encoding="utf-8") as result_file:
            result: dict = json.load(result_file)
        result["log"] = completed.stderr
        return result
