"""A controlled clock for signed URLs: instead of sleeping out an expiry, sign in the past."""

from __future__ import annotations

import contextlib
import datetime
import time
from collections.abc import Iterator
from unittest import mock

import botocore.auth
from django.core import signing


@contextlib.contextmanager
def signer_clock(*, offset_seconds: float) -> Iterator[None]:
    """URLs and tokens signed inside the block carry the time `offset_seconds` from now (negative: in the
    past). Only the signers' clocks move (Django's TimestampSigner: local upload and download tokens;
    botocore's SigV4: S3 pre-signed URLs); whoever checks them (our views, the S3 server) reads the real one."""
    offset = datetime.timedelta(seconds=offset_seconds)
    real_now = botocore.auth.get_current_datetime

    def timestamp(signer: signing.TimestampSigner) -> str:
        return signing.b62_encode(int(time.time() + offset_seconds))

    def s3_now(remove_tzinfo: bool = True) -> datetime.datetime:
        return real_now(remove_tzinfo=remove_tzinfo) + offset

    with (
        mock.patch.object(signing.TimestampSigner, "timestamp", timestamp),
        mock.patch.object(botocore.auth, "get_current_datetime", s3_now),
    ):
        yield
