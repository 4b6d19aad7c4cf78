"""Destination glacier: S3 archive storage classes, and the legacy vault API, against moto."""

from __future__ import annotations

import pytest

from bakthat import models
from bakthat.backends import get_backend
from bakthat.backends.glacier import VaultBackend
from tests.backends.conformance import BackendConformance
from tests.backends.conftest import s3_client


@pytest.fixture
def catalog(tmp_path):
    models.bind(str(tmp_path / "catalog.sqlite"))
    yield
    models.unbind()


class TestGlacierS3Conformance(BackendConformance):
    @pytest.fixture
    def backend(self, aws, catalog):
        return get_backend("glacier", {"s3_bucket": "archive-bucket", "retrieval_poll_interval": 0.05})


class TestGlacierVaultConformance(BackendConformance):
    @pytest.fixture
    def backend(self, aws, catalog):
        backend = get_backend(
            "glacier",
            {"glacier_vault": "legacy-vault", "retrieval_tier": "Expedited", "retrieval_wait": True, "retrieval_poll_interval": 0.2},
        )
        assert isinstance(backend, VaultBackend)
        return backend
