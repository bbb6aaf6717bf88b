"""Capture and restore the random state of an Optuna sampler as JSON, and repair journals.

Optuna's built-in samplers keep everything that changes between trials either in the
study (trial attributes, which the journal already holds) or in random number
generators. This module walks a sampler's attributes, finds every generator
(``numpy.random.RandomState``, ``numpy.random.Generator``, ``random.Random``, and the
``LazyRandomState`` wrapper Optuna uses) and records its state under the attribute
path that leads to it, for example ``_random_sampler._rng``. Restoring puts each state
back into the generator at the same path of a freshly constructed sampler, so no
pickle is needed and a checkpoint cannot execute code when loaded.
"""

from __future__ import annotations

import logging
import random
from typing import Any

logger = logging.getLogger(__name__)

SAMPLER_STATE_FORMAT = 1
_MAX_DEPTH = 6


def capture_sampler_state(sampler: object) -> dict[str, Any]:
    """Return the JSON-able state of every random generator reachable from ``sampler``."""
    generators: dict[str, Any] = {}
    for path, generator in _walk_generators(sampler):
        generators[path] = _generator_state(generator)
    return {
        "format": SAMPLER_STATE_FORMAT,
        "sampler_class": f"{type(sampler).__module__}.{type(sampler).__qualname__}",
        "generators": generators,
    }


def restore_sampler_state(sampler: object, state: dict[str, Any]) -> None:
    """Put the generator states recorded by :func:`capture_sampler_state` into ``sampler``.

    Raises:
        ValueError: If the sampler class differs from the recorded one, or its
            generators sit at other attribute paths.
    """
    recorded_class = state.get("sampler_class")
    current_class = f"{type(sampler).__module__}.{type(sampler).__qualname__}"
    if recorded_class != current_class:
        raise ValueError(
            f"The saved sampler state belongs to {recorded_class}, but the study was "
            f"loaded with {current_class}. Pass the same sampler class as the run that "
            "saved it, or start a new study name."
        )

    current = dict(_walk_generators(sampler))
    recorded = state["generators"]
    if set(current) != set(recorded):
        raise ValueError(
            f"The saved sampler state has random generators at {sorted(recorded)}, "
            f"the current {current_class} at {sorted(current)}; the Optuna version or "
            "the sampler options changed. Use the same versions, or start a new study name."
        )
    for path, generator in current.items():
        _set_generator_state(generator, recorded[path])


def repair_journal(data: bytes) -> tuple[bytes, int]:
    """Drop a torn last record from Optuna journal bytes.

    A process killed while appending leaves a last line without its newline or with
    invalid JSON. Optuna skips such a line when reading, but the next append would be
    written onto the same line and both records would be lost, so the line is cut.

    Returns:
        The repaired bytes and the number of bytes removed.
    """
    import json

    end = len(data)
    if data and not data.endswith(b"\n"):
        end = data.rfind(b"\n") + 1
    else:
        last_start = data.rfind(b"\n", 0, max(0, end - 1)) + 1
        last_line = data[last_start:end]
        if last_line.strip():
            try:
                json.loads(last_line)
            except ValueError:
                end = last_start
    return data[:end], len(data) - end


def _walk_generators(root: object) -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    seen: set[int] = set()

    def visit(value: object, path: str, depth: int) -> None:
        if id(value) in seen or depth > _MAX_DEPTH:
            return
        seen.add(id(value))
        if _is_generator(value):
            found.append((path, value))
            return
        if isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                visit(item, f"{path}[{index}]", depth + 1)
            return
        if isinstance(value, dict):
            for key in sorted(value, key=str):
                visit(value[key], f"{path}[{key!r}]", depth + 1)
            return
        if type(value).__module__.split(".")[0] != "optuna" or not hasattr(value, "__dict__"):
            return
        for name in sorted(vars(value)):
            visit(getattr(value, name), f"{path}.{name}" if path else name, depth + 1)

    visit(root, "", 0)
    return found


def _is_generator(value: object) -> bool:
    import numpy as np

    if isinstance(value, (np.random.RandomState, np.random.Generator, random.Random)):
        return True
    return type(value).__name__ == "LazyRandomState" and hasattr(value, "rng")


def _generator_state(generator: Any) -> dict[str, Any]:
    import numpy as np

    if type(generator).__name__ == "LazyRandomState":
        generator = generator.rng
    if isinstance(generator, np.random.RandomState):
        legacy = generator.get_state(legacy=False)
        return {
            "kind": "RandomState",
            "key": [int(word) for word in legacy["state"]["key"]],
            "pos": int(legacy["state"]["pos"]),
            "has_gauss": int(legacy["has_gauss"]),
            "gauss": float(legacy["gauss"]),
        }
    if isinstance(generator, np.random.Generator):
        return {"kind": "Generator", "state": _to_json(generator.bit_generator.state)}
    version, words, gauss_next = generator.getstate()
    return {"kind": "Random", "version": version, "words": list(words), "gauss_next": gauss_next}


def _set_generator_state(generator: Any, state: dict[str, Any]) -> None:
    import numpy as np

    if type(generator).__name__ == "LazyRandomState":
        generator = generator.rng
    kind = state["kind"]
    if kind == "RandomState" and isinstance(generator, np.random.RandomState):
        generator.set_state({
            "bit_generator": "MT19937",
            "state": {"key": np.asarray(state["key"], dtype=np.uint32), "pos": state["pos"]},
            "has_gauss": state["has_gauss"],
            "gauss": state["gauss"],
        })
    elif kind == "Generator" and isinstance(generator, np.random.Generator):
        generator.bit_generator.state = state["state"]
    elif kind == "Random" and isinstance(generator, random.Random):
        generator.setstate((state["version"], tuple(state["words"]), state["gauss_next"]))
    else:
        raise ValueError(
            f"The saved generator state of kind {kind!r} does not fit the current "
            f"generator {type(generator).__name__}; start a new study name."
        )


def _to_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    if hasattr(value, "tolist"):
        return value.tolist()
    return value
