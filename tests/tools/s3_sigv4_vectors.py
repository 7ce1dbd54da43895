#!/usr/bin/python3
"""Expected SigV4 signatures for tests/unit/test_s3.c, from botocore (an
independent signer: Debian's python3-botocore). Not run by the tests: the
values it prints are written into the test; run it again to check them.

    /usr/bin/python3 tests/tools/s3_sigv4_vectors.py
"""
import datetime
import types
from urllib.parse import quote

import botocore.auth
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

EMPTY = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def sign(url, region, key, secret, token, when, extra=()):
    request = AWSRequest(method="GET", url=url, headers=dict(extra))
    request.headers["x-amz-content-sha256"] = EMPTY
    fixed = datetime.datetime.strptime(when, "%Y%m%dT%H%M%SZ")

    class Clock(datetime.datetime):
        @classmethod
        def utcnow(cls):
            return fixed

    real = botocore.auth.datetime
    botocore.auth.datetime = types.SimpleNamespace(datetime=Clock)
    try:
        S3SigV4Auth(Credentials(key, secret, token), "s3", region).add_auth(
            request)
    finally:
        botocore.auth.datetime = real
    return request.headers["Authorization"]


# AWS's published example "GET Object" (Signature Version 4 documentation)
print(sign("http://examplebucket.s3.amazonaws.com/test.txt", "us-east-1",
           "AKIAIOSFODNN7EXAMPLE",
           "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None,
           "20130524T000000Z", [("Range", "bytes=0-9")]))
# path-style on a port, a key that needs encoding (as botocore's serializer
# encodes keys), a session token
print(sign("http://minio.internal:9000" + quote("/bills/2024/A!b'(c)*:@~.pdf",
                                               safe="/~"),
           "eu-west-1", "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
           "FwoGZXIvYXdzEBYaDEXAMPLETOKEN+/=", "20240229T235959Z"))
# the health probe: an empty listing of a virtual-hosted bucket
print(sign("https://dss-bills.s3.eu-west-1.amazonaws.com/?max-keys=0",
           "eu-west-1", "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
           None, "20261201T170000Z"))
# OCI's region and a path-style key with a space and non-ASCII bytes
print(sign("https://ns.compat.objectstorage.eu-frankfurt-1.oraclecloud.com"
           + quote("/dss-bills/bills/é 1.pdf", safe="/~"),
           "eu-frankfurt-1", "0123456789abcdef0123456789abcdef01234567",
           "k" * 64, None, "20261231T235959Z"))  # "AWS4" + 64: a long key
