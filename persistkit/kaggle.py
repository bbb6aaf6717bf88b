"""Kaggle Secrets to environment variables, so that storage clients find their credentials.

On Kaggle, tokens and keys live in Kaggle Secrets (Add-ons > Secrets) and are read with
``kaggle_secrets.UserSecretsClient``, which only works inside a Kaggle notebook. Call
:func:`load_kaggle_secrets` at the top of a notebook; elsewhere it does nothing, so the
same code runs locally with credentials from the environment::

    from persistkit.kaggle import load_kaggle_secrets
    load_kaggle_secrets("HF_TOKEN", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")

Secret values are never logged; only the names of the variables that were set are.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping
from typing import Any

__all__ = ["is_kaggle", "load_kaggle_secrets"]

logger = logging.getLogger(__name__)

# Kaggle's notebook image sets this variable in every kernel session.
KAGGLE_ENVIRONMENT_VARIABLE = "KAGGLE_KERNEL_RUN_TYPE"


def is_kaggle(environ: Mapping[str, str] | None = None) -> bool:
    """Return whether this process runs in a Kaggle notebook session."""
    environ = os.environ if environ is None else environ
    return KAGGLE_ENVIRONMENT_VARIABLE in environ


def _secrets_client() -> Any:
    module = importlib.import_module("kaggle_secrets")
    return module.UserSecretsClient()


def load_kaggle_secrets(*names: str, overwrite: bool = False, required: bool = False) -> list[str]:
    """Copy the named Kaggle Secrets into ``os.environ`` when running on Kaggle.

    Args:
        *names: Secret labels; each becomes an environment variable of the same name.
        overwrite: Replace variables that are already set; by default they win.
        required: Raise when a secret is missing instead of logging a warning.

    Returns:
        The names of the variables that were set; [] when not on Kaggle.

    Raises:
        KeyError: ``required`` is set and a secret is not attached to the notebook.
    """
    if not is_kaggle():
        logger.debug("Not running on Kaggle; leaving the environment unchanged")
        return []
    client = _secrets_client()
    loaded = []
    for name in names:
        if name in os.environ and not overwrite:
            logger.info("Environment variable %s is already set; not reading its Kaggle Secret", name)
            continue
        try:
            value = client.get_secret(name)
        except Exception as error:
            # The client raises its own error classes for a secret that is not attached.
            if required:
                raise KeyError(
                    f"Kaggle Secret {name!r} is not available: {type(error).__name__}; attach it "
                    "under Add-ons > Secrets in the notebook editor"
                ) from None
            logger.warning("Kaggle Secret %s is not available (%s); skipped", name, type(error).__name__)
            continue
        os.environ[name] = value
        loaded.append(name)
    logger.info("Loaded Kaggle Secrets into the environment: %s", ", ".join(loaded) or "none")
    return loaded
