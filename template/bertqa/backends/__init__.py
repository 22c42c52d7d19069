"""Inference backends, one module each, behind `bertqa.backends.base.QAModel`."""
