"""itsel-ray: which intermediate task should a soft prompt transfer from? The paper's study as a Ray sweep."""

__version__ = "0.1.0"


def __getattr__(name: str):
    """`itsel_ray.api` on first use (the notebook API), without importing pandas for every process that imports the
    package."""
    if name == "api":
        import importlib

        return importlib.import_module("itsel_ray.api")
    raise AttributeError(f"module 'itsel_ray' has no attribute {name!r}")
