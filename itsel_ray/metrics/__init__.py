"""Task-level metrics and ranking metrics."""
