"""LightningModule, optimizer groups, schedules and the callbacks every run uses."""

from chargpt.training.module import CharLM

__all__ = ["CharLM"]
