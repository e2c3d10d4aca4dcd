"""The console scripts: thin Hydra entry points over the library (chargpt-train, -sample, -eval, -report)."""
