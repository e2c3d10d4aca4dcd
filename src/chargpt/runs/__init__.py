"""Run directories on disk: the guard that keeps runs apart, how each run ended, and sweep reports."""
