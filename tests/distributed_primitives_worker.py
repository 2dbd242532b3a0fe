"""One process of the 2-process test of mp3gan.distributed's shared decisions.

Usage: ``python distributed_primitives_worker.py PORT PROCESS_ID``. Joins a 2-process
job on localhost, exercises agree / assert_same / on_main / barrier, and prints what
each returned or raised as one JSON object (the test compares the two processes).
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mp3gan import distributed  # noqa: E402


def outcome(fn):
    try:
        return {"value": fn()}
    except Exception as e:  # the test checks which error, and its message
        return {"error": type(e).__name__, "message": str(e)}


def main(port: str, process_id: int) -> None:
    distributed.initialize("auto", f"localhost:{port}", 2, process_id, environ={})
    main_process = distributed.is_main()
    results = {
        "agree": outcome(lambda: distributed.agree(1.5 if main_process else 9.0)),
        "agree_none": outcome(lambda: distributed.agree(None if main_process else 3.0)),
        "same": outcome(lambda: distributed.assert_same("one config", "config")),
        "differ": outcome(lambda: distributed.assert_same(f"config {process_id}", "config")),
        "on_main": outcome(lambda: distributed.on_main(lambda: 42, "answering")),
        "on_main_fails": outcome(lambda: distributed.on_main(lambda: 1 / 0, "dividing")),
    }
    distributed.barrier("done")
    print(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
