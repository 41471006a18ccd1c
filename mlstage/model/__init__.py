"""Models: the model artifact, the estimators, metrics, the threshold gate, what-if.

- `artifact`: the model artifact's files (skops estimator, transform, signature,
  metrics) and `Model`, the prediction core `evaluate`, `predict` and `serve` share;
- `estimator_file`: `model.skops`, the types it may hold (TRUSTED), read and written;
- `estimators`: the allow-list of scikit-learn estimators and tuning spaces;
- `metrics`: metrics overall, per slice and per group, fairness;
- `inspection`: permutation importance, partial dependence, curves;
- `gate`: the one threshold check `evaluate` and `monitor` apply;
- `whatif`: one example's prediction as one input varies.
"""
