"""The metrics as an ``evaluate`` module; load it with ``evaluate.load(inat_hf.inference.INAT_METRICS_PATH)``."""
