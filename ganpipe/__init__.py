"""ganpipe: raw audio corpora -> trained GAN audio generators -> MLflow model registry."""

import os as _os

# Telemetry off by default (users can still opt in by setting these themselves).
for _key, _value in {
    "DO_NOT_TRACK": "1",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DVC_NO_ANALYTICS": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}.items():
    _os.environ.setdefault(_key, _value)

__version__ = "0.1.0"
