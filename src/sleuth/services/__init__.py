"""Services: the glue between the platform (jobs, storage) and the pure pipelines/models."""


def load_handlers() -> None:
    """Import every module that registers a job kind (workers call this before claiming)."""
    import importlib

    for name in ("sleuth.services.deepfake", "sleuth.services.wildlife_jobs"):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
