"""The sandboxed side of ``reasoning_gym:<dataset>`` scoring (run by
:class:`pipelines.runtime.sandbox.Worker`, never imported by the driver).

Several of reasoning_gym's scorers ``eval()`` the answer or hand it to
``sympy.parse_expr``; the answer is model text. So they run here, in a
sandboxed process of their own: one JSON request a line on stdin
(``{"dataset", "answer", "entry"}``), one reply a line on the file descriptor
numbered by ``sys.argv[1]`` (``{"score": float}`` or ``{"error": str}``);
``sys.argv[2]``: the folder of the installed packages. What the scorer, or code
an answer smuggles into it, prints goes nowhere.
"""

import json
import os
import sys


def main() -> None:
    replies = os.fdopen(int(sys.argv[1]), "w", buffering=1)
    nowhere = os.open(os.devnull, os.O_WRONLY)
    os.dup2(nowhere, 1)
    os.dup2(nowhere, 2)
    sys.path.insert(0, sys.argv[2])
    import reasoning_gym

    scorers = {}
    replies.write(json.dumps({"ready": True}) + "\n")
    for line in sys.stdin:
        try:
            request = json.loads(line)
            dataset = request["dataset"]
            if dataset not in scorers:
                scorers[dataset] = reasoning_gym.get_score_answer_fn(dataset)
            score = float(scorers[dataset](request["answer"], request["entry"]))
            reply = {"score": score}
        except BaseException as e:  # noqa: BLE001 - whatever the answer raised, even SystemExit
            reply = {"error": f"{type(e).__name__}: {e}"[:500]}
        replies.write(json.dumps(reply) + "\n")


if __name__ == "__main__":
    main()
