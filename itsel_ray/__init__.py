"""itsel-ray: which intermediate task should a soft prompt transfer from? The paper's study as a Ray sweep."""

__version__ = "0.1.0"
