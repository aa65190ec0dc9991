"""``InferenceError``, in a module of its own so that every layer can raise it without importing the predictor."""


class InferenceError(ValueError):
    """Bad input to evaluation / prediction (model, data, files). The message says what is wrong and what to do."""
