"""Dataflow Flex Template entry point: runs the QA job with the launcher's --name=value arguments.

Returns after the job is submitted (the Flex launcher must not wait); local runs wait and print
the summary. Same as `bertqa run`.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bertqa.cli import run_command  # noqa: E402
from bertqa.dataflow.arguments import argument_parser  # noqa: E402

if __name__ == "__main__":
    if "-h" in sys.argv[1:] or "--help" in sys.argv[1:]:
        argument_parser(prog="main.py").print_help()
        sys.exit(0)
    sys.exit(run_command(sys.argv[1:]))
