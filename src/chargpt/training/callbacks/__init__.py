"""The callbacks a training run composes from configs/callbacks/ (one config file each)."""
