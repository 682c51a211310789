"""``python -m tests.stdio_probe``: how this process's standard streams are made, as JSON (tests/test_forkserver.py)."""

import json
import sys

if __name__ == "__main__":
    print(json.dumps({name: {"buffer": type(getattr(sys, name).buffer).__name__,
                             "lineBuffering": getattr(sys, name).line_buffering,
                             "writeThrough": getattr(sys, name).write_through,
                             "encoding": getattr(sys, name).encoding, "errors": getattr(sys, name).errors}
                      for name in ("stdout", "stderr")}))
