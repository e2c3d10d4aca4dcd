"""The console scripts: thin Hydra entry points (train, sample, eval, report, export, serve)."""
