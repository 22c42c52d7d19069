"""BERT SQuAD v2 question answering on Apache Beam / Dataflow."""

import importlib.util
import sys

# Beam's RunInference module (2.77) imports its ModelManager, which imports torch and then scipy, in a try block
# that gives up on the first ImportError. Without scipy the ModelManager is never there, yet every process that
# imports RunInference (each SDK worker, the launcher) has loaded torch wherever torch is installed: importing the
# job took 2.9 CPU s and 360 MB with it, 1.4 s and 174 MB without (docs/performance.md). Stop that import where it
# would fail anyway; RunInference then imports as it does without scipy. The job uses no ModelManager.
if importlib.util.find_spec("scipy") is None:
    sys.modules.setdefault("apache_beam.ml.inference.model_manager", None)
