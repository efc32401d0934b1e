import pytest

from tests.models.coco_frames import SHARED_DATA, shared_frames


@pytest.fixture(scope="session")
def fruits():
    if not (SHARED_DATA / "fruits_nuts" / "annotations.json").exists():
        pytest.skip(f"shared test data missing: {SHARED_DATA / 'fruits_nuts'}")
    return shared_frames("fruits_nuts")


@pytest.fixture(scope="session")
def blood_cells():
    if not (SHARED_DATA / "blood_cells" / "annotations.json").exists():
        pytest.skip(f"shared test data missing: {SHARED_DATA / 'blood_cells'}")
    return shared_frames("blood_cells")
