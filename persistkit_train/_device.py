"""Device choice per model library, and platform checks at the start of a run."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess

from persistkit_train.i18n import _

logger = logging.getLogger(__name__)

_PROBE_TIMEOUT_SECONDS = 20


def resolve_devices(requested: str) -> dict[str, str]:
    """Return the device value of each library: xgboost "cuda" or "cpu", lightgbm "gpu"
    or "cpu", catboost "cuda" or "cpu".

    With ``requested`` "auto", each library that can run on the GPU found here uses it.
    "cuda" does the same but raises when no GPU is found.

    Raises:
        RuntimeError: ``requested`` is "cuda" and no NVIDIA GPU was found.
    """
    devices = {"xgboost": "cpu", "lightgbm": "cpu", "catboost": "cpu"}
    if requested == "cpu":
        return devices
    if not _nvidia_gpu_present():
        if requested == "cuda":
            raise RuntimeError(
                _("--device cuda was given but no NVIDIA GPU was found (nvidia-smi -L lists "
                  "none). Run with --device cpu or --device auto.")
            )
        return devices
    if _xgboost_has_cuda():
        devices["xgboost"] = "cuda"
    if _catboost_gpu_count() > 0:
        devices["catboost"] = "cuda"
    if _lightgbm_gpu_works():
        devices["lightgbm"] = "gpu"
    return devices


def describe_devices(devices: dict[str, str]) -> str:
    """Return a one-line user-facing summary of ``devices``."""
    names = ", ".join(
        f"{model} {'GPU' if device != 'cpu' else 'CPU'}" for model, device in devices.items()
    )
    return _("Devices: {devices}").format(devices=names)


def _nvidia_gpu_present() -> bool:
    executable = shutil.which("nvidia-smi")
    if executable is None:
        return False
    try:
        listing = subprocess.run(
            [executable, "-L"],
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT_SECONDS,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("nvidia-smi -L failed (%s); training on the CPU", exc)
        return False
    return listing.returncode == 0 and "GPU" in listing.stdout


def _xgboost_has_cuda() -> bool:
    import xgboost

    has_cuda = bool(xgboost.build_info().get("USE_CUDA", False))
    if not has_cuda:
        logger.info("This XGBoost build has no CUDA support (xgboost-cpu?); XGBoost uses the CPU")
    return has_cuda


def _catboost_gpu_count() -> int:
    from catboost.utils import get_gpu_device_count

    return int(get_gpu_device_count())


def _lightgbm_gpu_works() -> bool:
    import lightgbm
    import numpy as np

    features = np.random.default_rng(0).random((64, 2))
    dataset = lightgbm.Dataset(features, label=features[:, 0])
    try:
        lightgbm.train({"device_type": "gpu", "verbosity": -1}, dataset, num_boost_round=1)
    except lightgbm.basic.LightGBMError as exc:
        logger.info("LightGBM GPU build not usable (%s); LightGBM uses the CPU", exc)
        return False
    return True


def detect_platform() -> str | None:
    """Return "kaggle", "colab" or None from the environment variables they set."""
    if os.environ.get("KAGGLE_KERNEL_RUN_TYPE") or os.environ.get("KAGGLE_URL_BASE"):
        return "kaggle"
    if os.environ.get("COLAB_RELEASE_TAG") or os.environ.get("COLAB_GPU"):
        return "colab"
    return None


def is_local_store(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def ephemeral_store_warning(url: str, platform: str | None) -> str | None:
    """Return a warning when a Kaggle or Colab run writes its store to the session disk."""
    if platform is None or not is_local_store(url):
        return None
    return _(
        "The store {url} is on this {platform} session's disk, which is deleted when the "
        "session ends, and the run cannot resume from it. Keep the store in durable "
        "storage by changing one option, for example:\n"
        "  --store hf://datasets/YOUR_USER/persistkit-runs/phone-prices   (HF_TOKEN secret)\n"
        "  --store gs://YOUR_BUCKET/persistkit-runs/phone-prices\n"
        "  --store s3://YOUR_BUCKET/persistkit-runs/phone-prices"
    ).format(url=url, platform=platform.capitalize())
