"""The exported price model: raw phone numbers in, prices in baht out.

:class:`PhonePricePredictor` bundles everything prediction needs: the fitted base models,
the meta-learner that combines their predictions, the optional target encoder, and the
feature column order. ``save`` writes it to one joblib file (``best_model.pkl``).
``export_native`` writes each booster in its library's own format, which other tools and
later library versions read without this package::

    out_dir/
    ├── best_model.pkl        this object (joblib; load only files you trust)
    ├── xgboost.ubj           XGBoost booster, UBJSON
    ├── lightgbm.txt          LightGBM model text
    └── catboost.cbm          CatBoost binary model

The file names come from the base-model names given to the predictor.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from persistkit_train import __version__
from persistkit_train._numbers import InvalidPhoneNumberError, normalize_number
from persistkit_train.features import FEATURE_VERSION, OutOfFoldTargetEncoder, build_features
from persistkit_train.i18n import _

__all__ = ["PhonePricePredictor", "PredictorVersionError"]

logger = logging.getLogger(__name__)


class PredictorVersionError(ValueError):
    """A saved predictor was built with other features than this version computes."""


class PhonePricePredictor:
    """Fitted models plus the feature pipeline, applied to raw phone numbers.

    Args:
        base_models: Name -> fitted model predicting log price. Models with a scikit-learn
            ``predict`` (XGBRegressor, LGBMRegressor, CatBoostRegressor, …) and the native
            ``xgboost.Booster`` and ``lightgbm.Booster`` are accepted.
        feature_columns: Columns fed to every base model, in order; names from
            :func:`persistkit_train.features.build_features` and ``te_*`` encoder columns.
        meta_learner: Model whose ``predict`` maps the base predictions (one column per
            base model, in ``base_models`` order) to log price. None averages them.
        target_encoder: Fitted encoder that adds the ``te_*`` columns, if any are used.
        metadata: Facts kept with the model, such as metrics and the data fingerprint.
    """

    def __init__(
        self,
        *,
        base_models: Mapping[str, Any],
        feature_columns: Sequence[str],
        meta_learner: Any | None = None,
        target_encoder: OutOfFoldTargetEncoder | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        if not base_models:
            raise ValueError("base_models is empty; pass at least one fitted model.")
        self.base_models = dict(base_models)
        self.feature_columns = list(feature_columns)
        self.meta_learner = meta_learner
        self.target_encoder = target_encoder
        self.metadata = dict(metadata or {})
        self.feature_version = FEATURE_VERSION
        self.package_version = __version__

    def features(self, numbers: Sequence[str]) -> pd.DataFrame:
        """Return the model input for already normalised numbers."""
        frame = build_features(numbers)
        if self.target_encoder is not None:
            encoded = self.target_encoder.transform(pd.DataFrame({"number": list(numbers)}))
            frame = pd.concat([frame, encoded.reset_index(drop=True)], axis=1)
        missing = [column for column in self.feature_columns if column not in frame.columns]
        if missing:
            raise ValueError(
                f"Feature columns {missing} are not produced by build_features "
                f"(FEATURE_VERSION {FEATURE_VERSION}) or the target encoder."
            )
        return frame[self.feature_columns]

    def base_predictions(self, numbers: Sequence[str]) -> pd.DataFrame:
        """Return each base model's log-price prediction, one column per model."""
        normalized = [normalize_number(number) for number in numbers]
        features = self.features(normalized)
        return pd.DataFrame(
            {name: _predict_log(model, features) for name, model in self.base_models.items()}
        )

    def predict_log(self, numbers: Sequence[str]) -> np.ndarray:
        """Return the natural log of the predicted price of each number.

        Raises:
            InvalidPhoneNumberError: A value is not a Thai mobile number.
        """
        if len(numbers) == 0:
            return np.empty(0, dtype=np.float64)
        base = self.base_predictions(numbers)
        if self.meta_learner is None:
            return base.to_numpy(dtype=np.float64).mean(axis=1)
        return np.asarray(self.meta_learner.predict(base.to_numpy()), dtype=np.float64).ravel()

    def predict(self, numbers: Sequence[str]) -> np.ndarray:
        """Return the predicted price in baht of each number.

        Raises:
            InvalidPhoneNumberError: A value is not a Thai mobile number; use
                :meth:`predict_frame` to keep going past invalid values.
        """
        return np.exp(self.predict_log(numbers))

    def predict_frame(self, numbers: Sequence[str]) -> pd.DataFrame:
        """Return one row per input: ``number``, ``normalized``, ``predicted_price``, ``error``.

        Invalid numbers get an empty price and the reason in ``error`` instead of raising.
        """
        normalized: list[str | None] = []
        errors: list[str | None] = []
        for number in numbers:
            try:
                normalized.append(normalize_number(number))
                errors.append(None)
            except InvalidPhoneNumberError as exc:
                normalized.append(None)
                errors.append(str(exc))

        positions = [index for index, value in enumerate(normalized) if value is not None]
        valid_numbers = [value for value in normalized if value is not None]
        prices = np.full(len(normalized), np.nan)
        if valid_numbers:
            prices[positions] = self.predict(valid_numbers)
        return pd.DataFrame(
            {
                "number": list(numbers),
                "normalized": normalized,
                "predicted_price": prices,
                "error": errors,
            }
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write this predictor to ``path`` with joblib and return the path."""
        joblib = _import("joblib", "sklearn")
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(self, target, compress=3)
        logger.info("Saved predictor to %s", target)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PhonePricePredictor:
        """Read a predictor written by :meth:`save`.

        joblib files are pickles and can run code when loaded: load only files you trust,
        such as one from your own run or a store that verified its SHA-256.

        Raises:
            FileNotFoundError: ``path`` does not exist.
            TypeError: The file contains another kind of object.
            PredictorVersionError: It was built with another ``FEATURE_VERSION``.
        """
        joblib = _import("joblib", "sklearn")
        loaded = joblib.load(Path(path))
        if not isinstance(loaded, cls):
            raise TypeError(
                _("{path} contains a {kind}, not a PhonePricePredictor.").format(
                    path=path, kind=type(loaded).__name__
                )
            )
        saved_version = getattr(loaded, "feature_version", "unknown")
        if saved_version != FEATURE_VERSION:
            raise PredictorVersionError(
                _(
                    "{path} was built with feature version {saved}, but this persistkit_train "
                    "computes version {current}. Retrain, or install the persistkit_train "
                    "version {package} that saved it."
                ).format(
                    path=path,
                    saved=saved_version,
                    current=FEATURE_VERSION,
                    package=getattr(loaded, "package_version", "unknown"),
                )
            )
        return loaded

    def export_native(self, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
        """Write each XGBoost, LightGBM and CatBoost base model in its native format.

        Returns:
            Base-model name -> written file. Models of other libraries are skipped.
        """
        directory = Path(out_dir)
        directory.mkdir(parents=True, exist_ok=True)
        written = {}
        for name, model in self.base_models.items():
            path = _export_booster(model, directory, name)
            if path is None:
                logger.info("Base model %r (%s) has no native format; skipped", name, type(model))
            else:
                written[name] = path
        return written


def _library_of(model: Any) -> str:
    return type(model).__module__.split(".", 1)[0]


def _predict_log(model: Any, features: pd.DataFrame) -> np.ndarray:
    if _library_of(model) == "xgboost" and type(model).__name__ == "Booster":
        xgboost = _import("xgboost", "xgboost")
        predictions = model.predict(xgboost.DMatrix(features))
    else:
        predictions = model.predict(features)
    return np.asarray(predictions, dtype=np.float64).ravel()


def _export_booster(model: Any, directory: Path, name: str) -> Path | None:
    library = _library_of(model)
    if library == "xgboost":
        booster = model.get_booster() if hasattr(model, "get_booster") else model
        path = directory / f"{name}.ubj"
        booster.save_model(str(path))
    elif library == "lightgbm":
        booster = getattr(model, "booster_", model)
        path = directory / f"{name}.txt"
        booster.save_model(str(path))
    elif library == "catboost":
        path = directory / f"{name}.cbm"
        model.save_model(str(path), format="cbm")
    else:
        return None
    logger.info("Exported %s model %r to %s", library, name, path)
    return path


def _import(module: str, extra: str) -> Any:
    from persistkit._compat import import_optional

    return import_optional(module, extra)
