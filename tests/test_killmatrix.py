"""Kill matrix: the harness itself, and SIGKILL rounds over every built-in target.

The default run contains a bounded slice (at least 30 kills over the targets, a few minutes
on 2 cores). The full matrix (at least 300 kills) is marked ``soak``:
``python -m pytest tests/test_killmatrix.py -m soak``. Kill delays are seeded; a failure
message names the seed and delays that replay it with
``python -m persistkit.testing.killmatrix``.
"""

from __future__ import annotations

import json
import random
import sys
import textwrap
from pathlib import Path

import pytest

from persistkit import CheckpointStore
from persistkit._layout import MANIFEST_NAME, step_dir_name
from persistkit.testing import _killrun, killmatrix
from persistkit.testing.kill_targets import MATRICES, builtin_targets
from persistkit.testing.killmatrix import (
    ACK_LOG_NAME,
    INTENT_LOG_NAME,
    ArtefactRule,
    KillMatrix,
    MatrixResult,
    Target,
    Tolerance,
    append_log_record,
    check_store,
    checkpoint_digest,
    compare_artefacts,
)

# --- artefact comparison ---------------------------------------------------------------


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")


def test_identical_artefacts_match(tmp_path: Path) -> None:
    _write(tmp_path / "a", "result.json", '{"p": [0.5, 1.25]}')
    _write(tmp_path / "b", "result.json", '{"p": [0.5, 1.25]}')

    assert compare_artefacts(tmp_path / "a", tmp_path / "b", [ArtefactRule("result.json")]) == []


def test_exact_rule_reports_json_path(tmp_path: Path) -> None:
    _write(tmp_path / "a", "result.json", '{"p": [0.5, 1.25]}')
    _write(tmp_path / "b", "result.json", '{"p": [0.5, 1.2500001]}')

    problems = compare_artefacts(tmp_path / "a", tmp_path / "b", [ArtefactRule("result.json")])

    assert len(problems) == 1
    assert "$.p[1]: 1.2500001 != 1.25" in problems[0]


def test_exact_rule_rejects_reformatted_json(tmp_path: Path) -> None:
    _write(tmp_path / "a", "result.json", '{"p": 1, "q": 2}')
    _write(tmp_path / "b", "result.json", '{"q": 2, "p": 1}')

    problems = compare_artefacts(tmp_path / "a", tmp_path / "b", [ArtefactRule("result.json")])

    assert len(problems) == 1
    assert "other bytes" in problems[0]


def test_tolerance_accepts_and_rejects(tmp_path: Path) -> None:
    _write(tmp_path / "a", "result.json", '{"p": [100.0, 0.0], "name": "x"}')
    _write(tmp_path / "near", "result.json", '{"p": [100.9, 0.005], "name": "x"}')
    _write(tmp_path / "far", "result.json", '{"p": [102.0, 0.005], "name": "x"}')
    _write(tmp_path / "renamed", "result.json", '{"p": [100.0, 0.0], "name": "y"}')
    rule = ArtefactRule("result.json", Tolerance(rtol=0.01, atol=0.01))

    assert compare_artefacts(tmp_path / "a", tmp_path / "near", [rule]) == []
    assert len(compare_artefacts(tmp_path / "a", tmp_path / "far", [rule])) == 1
    assert len(compare_artefacts(tmp_path / "a", tmp_path / "renamed", [rule])) == 1


def test_missing_artefacts_are_reported(tmp_path: Path) -> None:
    _write(tmp_path / "a", "result.json", "{}")
    (tmp_path / "b").mkdir()

    missing = compare_artefacts(tmp_path / "a", tmp_path / "b", [ArtefactRule("result.json")])
    unmatched = compare_artefacts(tmp_path / "a", tmp_path / "b", [ArtefactRule("*.csv")])

    assert len(missing) == 1
    assert "missing" in missing[0]
    assert len(unmatched) == 1
    assert "matched no file" in unmatched[0]


def test_negative_tolerance_is_invalid() -> None:
    with pytest.raises(ValueError, match="rtol=-1"):
        Tolerance(rtol=-1.0)


# --- store checks ------------------------------------------------------------------------


def _save_steps(url: str, key: str, steps: range) -> dict[int, str]:
    digests = {}
    with CheckpointStore(url, background=False) as store:
        for step in steps:
            files = {"payload.bin": f"{key} {step}".encode()}
            store.save(key, files, step=step)
            digests[step] = checkpoint_digest(files)
    return digests


def _step_dir(url: str, key: str, step: int) -> Path:
    return Path(url, *key.split("/"), step_dir_name(step))


def test_check_passes_on_intact_store(tmp_path: Path) -> None:
    url = str(tmp_path / "store")
    digests = _save_steps(url, "run/a", range(3))
    for step, digest in digests.items():
        append_log_record(tmp_path / ACK_LOG_NAME, "run/a", step, digest)
        append_log_record(tmp_path / INTENT_LOG_NAME, "run/a", step, digest)

    check = check_store(url, output_dir=tmp_path, previous={"run/a": {0: digests[0]}})

    assert check.problems == ()
    assert check.snapshot == {"run/a": digests}


def test_check_detects_corrupt_payload(tmp_path: Path) -> None:
    url = str(tmp_path / "store")
    _save_steps(url, "run/a", range(2))
    (_step_dir(url, "run/a", 1) / "payload.bin").write_bytes(b"torn")

    check = check_store(url, output_dir=tmp_path, previous={})

    assert any("persistkit verify" in problem for problem in check.problems)
    assert any("step 1 is listed as committed but does not load" in p for p in check.problems)


def test_check_detects_lost_newest_step(tmp_path: Path) -> None:
    url = str(tmp_path / "store")
    digests = _save_steps(url, "run/a", range(3))
    previous = {"run/a": dict(digests)}
    (_step_dir(url, "run/a", 2) / MANIFEST_NAME).unlink()

    check = check_store(url, output_dir=tmp_path, previous=previous)

    assert len(check.problems) == 1
    assert "step 2 was seen after the previous kill but is gone" in check.problems[0]


def test_check_allows_retention_of_older_steps(tmp_path: Path) -> None:
    url = str(tmp_path / "store")
    digests = _save_steps(url, "run/a", range(3))
    with CheckpointStore(url, background=False) as store:
        store.delete("run/a", step=0)

    check = check_store(url, output_dir=tmp_path, previous={"run/a": dict(digests)})

    assert check.problems == ()


def test_check_detects_unacknowledged_loss(tmp_path: Path) -> None:
    url = str(tmp_path / "store")
    _save_steps(url, "run/a", range(2))
    append_log_record(tmp_path / ACK_LOG_NAME, "run/a", 5, "0" * 64)
    append_log_record(tmp_path / ACK_LOG_NAME, "run/b", 0, "0" * 64)

    check = check_store(url, output_dir=tmp_path, previous={})

    assert len(check.problems) == 2
    assert "'run/a' step 5 was acknowledged by the target but is gone" in check.problems[0]
    assert "key 'run/b' lost every checkpoint" in check.problems[1]


def test_check_detects_changed_and_unintended(tmp_path: Path) -> None:
    url = str(tmp_path / "store")
    digests = _save_steps(url, "run/a", range(2))
    append_log_record(tmp_path / INTENT_LOG_NAME, "run/a", 0, digests[0])
    with CheckpointStore(url, background=False) as store:
        store.save("run/a", {"payload.bin": b"rewritten"}, step=1)

    check = check_store(url, output_dir=tmp_path, previous={"run/a": dict(digests)})

    assert len(check.problems) == 2
    assert "step 1 changed its contents" in check.problems[0]
    assert "step 1 is visible with contents the target never saved" in check.problems[1]


def test_check_allows_rewritable_keys(tmp_path: Path) -> None:
    url = str(tmp_path / "store")
    digests = _save_steps(url, "tune/xgb/progress", range(1))
    with CheckpointStore(url, background=False) as store:
        store.save("tune/xgb/progress", {"payload.bin": b"3 trials done"}, step=0)
    previous = {"tune/xgb/progress": dict(digests)}

    allowed = check_store(url, output_dir=tmp_path, previous=previous,
                          rewritable_keys=r"tune/[^/]+/progress")
    rejected = check_store(url, output_dir=tmp_path, previous=previous)

    assert allowed.problems == ()
    assert len(rejected.problems) == 1
    assert "changed its contents" in rejected.problems[0]


def test_check_allows_deletable_keys(tmp_path: Path) -> None:
    url = str(tmp_path / "store")
    previous = {"study/trial-3/xgb": {4: "0" * 64}}

    allowed = check_store(url, output_dir=tmp_path, previous=previous,
                          deletable_keys=r"study/trial-\d+/.*")
    rejected = check_store(url, output_dir=tmp_path, previous=previous)

    assert allowed.problems == ()
    assert len(rejected.problems) == 1


# --- the harness on targets that are broken on purpose ------------------------------------

_FLAKY_TARGET = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    from persistkit import CheckpointStore
    store_url, out, mode = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    with CheckpointStore(store_url, background=False) as store:
        start = store.latest_step("k")
        start = 0 if start is None else start + 1
        for step in range(start, 40):
            store.save("k", {"v.bin": str(step).encode()}, step=step)
            time.sleep(0.01)
        if mode == "forget":
            # Deletes committed steps, as a retention bug would.
            for step in store.steps("k")[1:]:
                store.delete("k", step=step)
    value = time.time() if mode == "clock" else 1.0
    (out / "result.json").write_text(json.dumps({"value": value}))
    """
)


def _flaky_matrix(tmp_path: Path, mode: str) -> MatrixResult:
    tmp_path.mkdir(parents=True, exist_ok=True)
    script = tmp_path / "flaky_target.py"
    script.write_text(_FLAKY_TARGET, encoding="utf-8")
    target = Target(f"flaky-{mode}", (sys.executable, str(script), "{store}", "{out}", mode),
                    (ArtefactRule("result.json"),), timeout_s=60.0)
    return KillMatrix(target, tmp_path / "work", seed=3, kills=2).run()


def test_harness_passes_sound_target(tmp_path: Path) -> None:
    result = _flaky_matrix(tmp_path, "sound")

    assert result.kills >= 2
    assert result.problems == []


def test_harness_detects_nondeterministic_result(tmp_path: Path) -> None:
    result = _flaky_matrix(tmp_path, "clock")

    assert not result.ok
    assert any("final artefacts" in problem and "$.value" in problem for problem in result.problems)


def test_harness_detects_deleted_checkpoints(tmp_path: Path) -> None:
    result = _flaky_matrix(tmp_path, "forget")

    assert not result.ok
    assert any("but is gone" in problem for problem in result.problems)


def test_replay_uses_given_delays(tmp_path: Path) -> None:
    script = tmp_path / "flaky_target.py"
    script.write_text(_FLAKY_TARGET, encoding="utf-8")
    target = Target("replay", (sys.executable, str(script), "{store}", "{out}", "sound"),
                    (ArtefactRule("result.json"),), timeout_s=60.0)

    result = KillMatrix(target, tmp_path / "work", seed=3, kills=2, delays=[0.35, 0.5]).run()

    planned = [attempt.delay_s for attempt in result.rounds[0].attempts]
    assert planned[:2] == [0.35, 0.5]
    assert result.problems == []


def test_seed_fixes_kill_positions() -> None:
    # The seed fixes where each kill lands relative to the reference run's first commit
    # and duration. The seconds scale with how long the reference run took.
    short = _killrun._kill_windows(0.0, [1.0], 4.0)
    long = _killrun._kill_windows(0.0, [2.0], 8.0)
    rng_short, rng_long, rng_other = random.Random("1/t"), random.Random("1/t"), random.Random("2/t")

    short_delays = [short.draw(rng_short) for _ in range(20)]
    long_delays = [long.draw(rng_long) for _ in range(20)]
    other_delays = [short.draw(rng_other) for _ in range(20)]

    assert long_delays == pytest.approx([2 * delay for delay in short_delays])
    assert other_delays != short_delays
    assert any(delay < 1.0 for delay in short_delays)
    assert any(delay > 1.0 for delay in short_delays)


# --- command line ----------------------------------------------------------------------------


def test_cli_help_lists_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        killmatrix.main(["--help"])

    assert exit_info.value.code == 0
    output = capsys.readouterr().out
    for option in ("--target", "--command", "--kills", "--seed", "--delays", "--approx"):
        assert option in output


def test_cli_lists_targets(capsys: pytest.CaptureFixture[str]) -> None:
    assert killmatrix.main(["--list"]) == 0

    output = capsys.readouterr().out
    for name in ("store-loop", "optuna", "xgboost", "lightgbm", "catboost", "train-quick"):
        assert name in output


def test_cli_rejects_command_without_artefacts(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        killmatrix.main(["--command", "true {store} {out}"])

    assert exit_info.value.code == 2
    assert "--exact or --approx" in capsys.readouterr().err


def test_cli_runs_and_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.json"

    code = killmatrix.main(["--target", "store-loop-sync", "--kills", "2", "--seed", "5",
                            "--workdir", str(tmp_path / "work"), "--json", str(report)])

    assert code == 0, capsys.readouterr().err
    results = json.loads(report.read_text(encoding="utf-8"))
    assert results[0]["target"] == "store-loop-sync"
    assert results[0]["kills"] >= 2
    assert "| store-loop-sync | 5 |" in capsys.readouterr().out


# --- kill matrix over the built-in targets -------------------------------------------------

SLICE_KILLS = MATRICES["slice"]
SOAK_KILLS = MATRICES["full"]


def _run_builtin(name: str, kills: int, workdir: Path, *, seed: int, data_path: Path) -> MatrixResult:
    targets = builtin_targets(data_path=data_path)
    return KillMatrix(targets[name], workdir, seed=seed, kills=kills).run()


def _assert_clean(result: MatrixResult, kills: int) -> None:
    replay = ",".join(f"{delay:.3f}" for delay in result.delays)
    assert result.problems == [], (
        f"replay: python -m persistkit.testing.killmatrix --target {result.target} "
        f"--seed {result.seed} --delays {replay}"
    )
    assert result.kills >= kills


def test_slice_and_soak_sizes(real_data_path: Path) -> None:
    assert sum(SLICE_KILLS.values()) >= 30
    assert sum(SOAK_KILLS.values()) >= 300
    assert set(SLICE_KILLS) <= set(builtin_targets(data_path=real_data_path))
    assert set(SOAK_KILLS) <= set(builtin_targets(data_path=real_data_path))


@pytest.mark.parametrize("name", sorted(SLICE_KILLS))
def test_kill_slice(name: str, tmp_path: Path, real_data_path: Path) -> None:
    result = _run_builtin(name, SLICE_KILLS[name], tmp_path, seed=2026, data_path=real_data_path)

    _assert_clean(result, SLICE_KILLS[name])


@pytest.mark.soak
@pytest.mark.parametrize("name", sorted(SOAK_KILLS))
def test_kill_soak(name: str, tmp_path: Path, real_data_path: Path) -> None:
    result = _run_builtin(name, SOAK_KILLS[name], tmp_path, seed=7, data_path=real_data_path)

    _assert_clean(result, SOAK_KILLS[name])
