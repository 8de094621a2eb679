"""Where the tests find the repository, its sample files and ../shared/data, wherever a test module sits."""
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = REPO.parent / "shared" / "data"
SAMPLE_VIDEO = REPO / "docs" / "samples" / "hamilton_clip.mp4"
