"""make check: the attack benchmark's short version (tests/attack/README.md)
with its assertions: the status socket answers within 5 s all through
the attack, every hostile body is refused before or by the pre-scan, the
daemon never holds more push connections than the cap, the slow ones are
shed, and every calendar change made meanwhile is published."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attack  # noqa: E402

sys.argv = [sys.argv[0], "--ci"]
sys.exit(attack.main())
