"""Wire tests: the committed cassettes (``cassettes/``), replayed offline and re-recorded live."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
CASSETTES = REPO / "cassettes"
INDEX = CASSETTES / "index.json"
