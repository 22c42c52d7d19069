"""A model spec that writes the id of each process that loads it to a file: how tests count model copies.

In a module of its own so that worker processes (and the model's own process) can import it by name.
"""

import dataclasses
import os

from bertqa.backends.onnxruntime import OnnxRuntimeModelSpec


@dataclasses.dataclass(frozen=True)
class CountingSpec(OnnxRuntimeModelSpec):
    log: str = ""

    def load(self):
        with open(self.log, "a", encoding="utf-8") as handle:
            handle.write(f"{os.getpid()}\n")
        return super().load()
