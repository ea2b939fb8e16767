"""Services: the glue between the platform (jobs, storage) and the pure pipelines/models."""


def load_handlers() -> None:
    """Import every module that registers a job kind (workers call this before claiming)."""
    import importlib

    for name in (
        "sleuth.services.deepfake",
        "sleuth.services.wildlife_jobs",
        "sleuth.services.reviews",  # registers no job kind, but its and the uploads' expiry sweepers
        "sleuth.services.uploads",
    ):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
