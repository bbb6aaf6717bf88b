"""Tests of persistkit_train.predictor with small real XGBoost, LightGBM and CatBoost models."""

from __future__ import annotations

import catboost
import joblib
import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost
from sklearn import linear_model

from persistkit_train import predictor as predictor_module
from persistkit_train.data import InvalidPhoneNumberError, load_numbers
from persistkit_train.features import OutOfFoldTargetEncoder, build_features
from persistkit_train.predictor import PhonePricePredictor, PredictorVersionError
from persistkit_train.split import cv_folds
from persistkit_train.synthetic import write_demo_data

ROUNDS = 25
NUMBERS = ["0812345678", "0899999999", "0654289545", "0911112222", "0620000000"]


@pytest.fixture(scope="module")
def training(tmp_path_factory):
    path = write_demo_data(tmp_path_factory.mktemp("demo") / "demo.csv", rows=400, seed=1)
    frame = load_numbers(path).frame
    return frame, build_features(frame["number"]), np.log(frame["price"].to_numpy())


@pytest.fixture(scope="module")
def models(training):
    _, features, y = training
    return {
        "xgboost": xgboost.XGBRegressor(n_estimators=ROUNDS, max_depth=3, n_jobs=1).fit(
            features, y
        ),
        "lightgbm": lightgbm.LGBMRegressor(n_estimators=ROUNDS, n_jobs=1, verbose=-1).fit(
            features, y
        ),
        "catboost": catboost.CatBoostRegressor(
            iterations=ROUNDS, depth=4, thread_count=1, verbose=False, allow_writing_files=False
        ).fit(features, y),
    }


@pytest.fixture(scope="module")
def predictor(training, models):
    _, features, y = training
    base = np.column_stack([model.predict(features) for model in models.values()])
    meta = linear_model.LinearRegression().fit(base, y)
    return PhonePricePredictor(
        base_models=models,
        feature_columns=list(features.columns),
        meta_learner=meta,
        metadata={"r2_log": 0.5},
    )


def test_predict_matches_manual_stack(predictor, models):
    features = build_features(NUMBERS)
    base = np.column_stack([model.predict(features) for model in models.values()])
    expected = np.exp(predictor.meta_learner.predict(base))
    np.testing.assert_allclose(predictor.predict(NUMBERS), expected, rtol=1e-6)


def test_predict_accepts_raw_numbers(predictor):
    raw = ["+66 81 234 5678", "089-999-9999", "\u00a00654289545"]
    np.testing.assert_allclose(predictor.predict(raw), predictor.predict(NUMBERS[:3]))


def test_predict_returns_positive_baht(predictor):
    prices = predictor.predict(NUMBERS)
    assert prices.shape == (len(NUMBERS),)
    assert (prices > 0).all()


def test_predict_rejects_invalid_number(predictor):
    with pytest.raises(InvalidPhoneNumberError, match="12345"):
        predictor.predict(["0812345678", "12345"])


def test_predict_empty_input(predictor):
    assert predictor.predict([]).shape == (0,)


def test_predict_frame_marks_invalid_rows(predictor):
    frame = predictor.predict_frame(["081-234-5678", "12345", "0899999999"])
    assert list(frame.columns) == ["number", "normalized", "predicted_price", "error"]
    assert frame["number"].tolist() == ["081-234-5678", "12345", "0899999999"]
    assert frame["normalized"].isna().tolist() == [False, True, False]
    assert frame["normalized"].iloc[[0, 2]].tolist() == ["0812345678", "0899999999"]
    assert np.isnan(frame["predicted_price"].iloc[1])
    assert "12345" in frame["error"].iloc[1]
    assert frame["error"].isna().tolist() == [True, False, True]
    np.testing.assert_allclose(
        frame["predicted_price"].iloc[[0, 2]].to_numpy(),
        predictor.predict(["0812345678", "0899999999"]),
    )


def test_mean_of_base_models_without_meta_learner(models, training):
    _, features, _ = training
    plain = PhonePricePredictor(base_models=models, feature_columns=list(features.columns))
    base = np.column_stack([model.predict(build_features(NUMBERS)) for model in models.values()])
    np.testing.assert_allclose(plain.predict_log(NUMBERS), base.mean(axis=1), rtol=1e-6)


def test_save_and_load_round_trip(predictor, tmp_path):
    path = predictor.save(tmp_path / "out" / "best_model.pkl")
    assert path.is_file()
    loaded = PhonePricePredictor.load(path)
    np.testing.assert_array_equal(loaded.predict(NUMBERS), predictor.predict(NUMBERS))
    assert loaded.metadata == {"r2_log": 0.5}


def test_load_rejects_other_feature_version(predictor, tmp_path, monkeypatch):
    path = predictor.save(tmp_path / "best_model.pkl")
    monkeypatch.setattr(predictor_module, "FEATURE_VERSION", "999")
    with pytest.raises(PredictorVersionError, match="feature version"):
        PhonePricePredictor.load(path)


def test_load_rejects_other_object(tmp_path):
    path = tmp_path / "other.pkl"
    joblib.dump({"not": "a predictor"}, path)
    with pytest.raises(TypeError, match="contains a dict, not a PhonePricePredictor"):
        PhonePricePredictor.load(path)


def test_load_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        PhonePricePredictor.load(tmp_path / "absent.pkl")


def test_export_native_files_reload(predictor, models, tmp_path):
    written = predictor.export_native(tmp_path)
    assert {name: path.name for name, path in written.items()} == {
        "xgboost": "xgboost.ubj",
        "lightgbm": "lightgbm.txt",
        "catboost": "catboost.cbm",
    }
    features = build_features(NUMBERS)

    booster = xgboost.Booster()
    booster.load_model(str(written["xgboost"]))
    np.testing.assert_allclose(
        booster.predict(xgboost.DMatrix(features)), models["xgboost"].predict(features), rtol=1e-5
    )
    lgb_booster = lightgbm.Booster(model_file=str(written["lightgbm"]))
    np.testing.assert_allclose(
        lgb_booster.predict(features), models["lightgbm"].predict(features), rtol=1e-6
    )
    cat_model = catboost.CatBoostRegressor()
    cat_model.load_model(str(written["catboost"]), format="cbm")
    np.testing.assert_allclose(
        cat_model.predict(features), models["catboost"].predict(features), rtol=1e-6
    )


def test_export_native_skips_meta_learner_kind(training, tmp_path):
    _, features, y = training
    linear = linear_model.LinearRegression().fit(features, y)
    only_linear = PhonePricePredictor(
        base_models={"linear": linear}, feature_columns=features.columns
    )
    assert only_linear.export_native(tmp_path) == {}
    assert only_linear.predict(NUMBERS).shape == (len(NUMBERS),)


def test_native_boosters_as_base_models(models, training):
    _, features, _ = training
    native = {
        "xgboost": models["xgboost"].get_booster(),
        "lightgbm": models["lightgbm"].booster_,
    }
    from_native = PhonePricePredictor(base_models=native, feature_columns=list(features.columns))
    from_wrappers = PhonePricePredictor(
        base_models={name: models[name] for name in native}, feature_columns=list(features.columns)
    )
    np.testing.assert_allclose(
        from_native.predict(NUMBERS), from_wrappers.predict(NUMBERS), rtol=1e-5
    )


def test_target_encoder_columns(training):
    frame, features, y = training
    encoder = OutOfFoldTargetEncoder(keys=("suffix4",))
    encoded = encoder.fit_transform(frame, y, cv_folds(len(frame), seed=0))
    inputs = pd.concat([features, encoded], axis=1)
    model = lightgbm.LGBMRegressor(n_estimators=ROUNDS, n_jobs=1, verbose=-1).fit(inputs, y)
    with_encoder = PhonePricePredictor(
        base_models={"lightgbm": model},
        feature_columns=list(inputs.columns),
        target_encoder=encoder,
    )
    expected_inputs = pd.concat(
        [build_features(NUMBERS), encoder.transform(pd.DataFrame({"number": NUMBERS}))], axis=1
    )
    np.testing.assert_allclose(
        with_encoder.predict_log(NUMBERS), model.predict(expected_inputs), rtol=1e-6
    )


def test_unknown_feature_column(models):
    broken = PhonePricePredictor(base_models=models, feature_columns=["pos_1", "not_a_feature"])
    with pytest.raises(ValueError, match="not_a_feature"):
        broken.predict(NUMBERS)


def test_empty_base_models():
    with pytest.raises(ValueError, match="base_models is empty"):
        PhonePricePredictor(base_models={}, feature_columns=["pos_1"])


def test_models_trained_on_float_arrays(training):
    # The pipeline trains native boosters on float32 arrays without column names.
    _, features, y = training
    matrix = features.to_numpy(dtype=np.float32)
    models = {
        "xgboost": xgboost.train(
            {"max_depth": 3, "nthread": 1}, xgboost.DMatrix(matrix, label=y), ROUNDS
        ),
        "lightgbm": lightgbm.train(
            {"verbose": -1, "num_threads": 1}, lightgbm.Dataset(matrix, label=y), ROUNDS
        ),
        "catboost": catboost.CatBoostRegressor(
            iterations=ROUNDS, thread_count=1, verbose=False, allow_writing_files=False
        ).fit(matrix, y),
    }
    predictor = PhonePricePredictor(base_models=models, feature_columns=list(features.columns))
    rows = build_features(NUMBERS).to_numpy(dtype=np.float32)
    expected = np.column_stack(
        [
            models["xgboost"].predict(xgboost.DMatrix(rows)),
            models["lightgbm"].predict(rows),
            models["catboost"].predict(rows),
        ]
    )
    np.testing.assert_allclose(predictor.base_predictions(NUMBERS).to_numpy(), expected, rtol=1e-6)
