"""The model-family zoo: models, real inputs, task metrics and baselines (docs/zoo.md).

Modules: `registry` (what each zoo key is), `common` (paths, sample folders, onnxruntime
sessions, weight bytes), `text` (English text sources), `inputs_*` (input generation per
family), `metrics` (task metrics per family).
"""
