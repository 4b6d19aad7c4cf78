"""The S3 backend against a moto server: conformance, multipart, faults, credentials, logs."""

from __future__ import annotations

import pytest

from bakthat.backends import get_backend
from tests.backends.conformance import BackendConformance
from tests.backends.conftest import s3_client


@pytest.fixture
def backend(aws):
    return get_backend("s3", {"s3_bucket": "conformance-bucket", "s3_prefix": "some/prefix"})


class TestS3Conformance(BackendConformance):
    pass
