"""The cost model: predicts a candidate's throughput from its features, trained online on measurements.

It is a LightGBM gradient-boosted tree regressor (``pip install 'workbench[tune]'``) fitted
to ``(features, throughput / best throughput so far)`` pairs; with fewer than
``min_train`` measurements it predicts nothing useful, and :meth:`CostModel.predict`
returns zeros (the search then picks at random). Training is deterministic
(one thread, fixed seed).

>>> import numpy as np
>>> m = CostModel(min_train=4)
>>> x = np.arange(20, dtype="float64").reshape(10, 2)
>>> m.update(x, np.arange(10.0))
>>> bool(m.predict(x[-1:])[0] > m.predict(x[:1])[0])
True
"""
from __future__ import annotations

import numpy as np


class CostModel:
    """Online throughput model: :meth:`update` with measured ``(features, throughput)``, :meth:`predict`."""

    def __init__(self, min_train: int = 8, seed: int = 0):
        self.min_train = min_train
        self.seed = seed
        self._x: list[np.ndarray] = []
        self._y: list[float] = []
        self._model = None

    @property
    def trained(self) -> bool:
        return self._model is not None

    def update(self, features: np.ndarray, throughputs) -> None:
        """Add measurements (failed ones as throughput 0) and refit."""
        for row, y in zip(np.atleast_2d(features), throughputs):
            self._x.append(np.asarray(row, dtype="float64"))
            self._y.append(float(y))
        if len(self._y) >= self.min_train:
            self._fit()

    def _fit(self) -> None:
        try:
            import lightgbm
        except ImportError:
            raise ImportError("the tuner's cost model needs LightGBM: pip install 'workbench[tune]'") from None
        y = np.array(self._y)
        best = y.max()
        y = y / best if best > 0 else y
        params = {"objective": "regression", "learning_rate": 0.1, "num_leaves": 15, "min_data_in_leaf": 2,
                  "min_data_in_bin": 1, "seed": self.seed, "num_threads": 1, "deterministic": True,
                  "force_row_wise": True, "verbose": -1}
        data = lightgbm.Dataset(np.vstack(self._x), y, params={"min_data_in_bin": 1, "verbose": -1})
        self._model = lightgbm.train(params, data, num_boost_round=60)

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted relative throughput of each row (higher is faster); zeros before training."""
        x = np.atleast_2d(np.asarray(features, dtype="float64"))
        if self._model is None:
            return np.zeros(len(x))
        return self._model.predict(x)


__all__ = ["CostModel"]
