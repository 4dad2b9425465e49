"""Every test keeps the app's per-user data (run folders) in a temporary folder of its own."""

import pytest


@pytest.fixture(autouse=True)
def _private_data_folder(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("AUTOGRAD_EXPLORER_DATA", str(tmp_path_factory.mktemp("user-data")))
