#!/usr/bin/env python3
"""Writes SigV4 test vectors signed by botocore's own SigV4Auth, for the Query API's
verifier tests (crates/stratod/src/query/testdata/sigv4-vectors.json).

    python3 scripts/sigv4-vectors.py        # with the botocore that scripts/test.sh pins

Each vector is a request as it leaves botocore (method, path, query, headers, body) and the
credentials and clock it was signed with; the Rust tests verify every one and check that a
changed byte anywhere fails.
"""

import datetime
import json
import os
from unittest import mock

import botocore
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
WHEN = datetime.datetime(2026, 12, 2, 5, 8, 23)

CASES = [
    # name, method, url, headers, body, region, service, token
    ("ec2 post", "POST", "http://127.0.0.1:8773/",
     {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
     "Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-0123456789abcdef0",
     "home-1", "ec2", None),
    ("sts post", "POST", "http://localhost:8773/",
     {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
     "Action=GetCallerIdentity&Version=2011-06-15", "home-1", "sts", None),
    ("session token", "POST", "http://127.0.0.1:8773/",
     {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
     "Action=DescribeRegions&Version=2016-11-15", "home-1", "ec2",
     "IQoJb3JpZ2luX2VjEXAMPLETOKEN+/="),
    ("get with query", "GET",
     "http://127.0.0.1:8773/?Version=2016-11-15&Action=DescribeInstances&Filter.1.Name=tag%3AName&Filter.1.Value.1=a%20b%2Fc",
     {}, "", "home-1", "ec2", None),
    ("odd path and spaced header", "POST", "http://127.0.0.1:8773/a/./b/../c//d",
     {"Content-Type": "application/x-www-form-urlencoded", "X-Extra": "  two   spaces  "},
     "Action=DescribeRegions&Version=2016-11-15", "us-east-1", "ec2", None),
]


def sign(method, url, headers, body, region, service, token):
    creds = Credentials(KEY, SECRET, token)
    req = AWSRequest(method=method, url=url, headers=dict(headers), data=body.encode())
    with mock.patch("botocore.auth.get_current_datetime", return_value=WHEN):
        SigV4Auth(creds, service, region).add_auth(req)
    prepared = req.prepare()
    split = prepared.url.split("?", 1)
    path = split[0].split("//", 1)[1]
    path = path[path.index("/"):] if "/" in path else "/"
    return {
        "method": method,
        "path": path,
        "query": split[1] if len(split) > 1 else "",
        "headers": [[k, v] for k, v in prepared.headers.items()],
        "body": body,
    }


def main():
    out = {
        "source": "botocore " + botocore.__version__ + " SigV4Auth",
        "access_key": KEY,
        "secret": SECRET,
        "now": int(WHEN.replace(tzinfo=datetime.timezone.utc).timestamp()),
        "vectors": [],
    }
    for name, method, url, headers, body, region, service, token in CASES:
        v = sign(method, url, headers, body, region, service, token)
        host = url.split("//", 1)[1].split("/", 1)[0]
        v["headers"].append(["Host", host])
        v.update({"name": name, "region": region, "service": service})
        out["vectors"].append(v)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    path = os.path.join(root, "crates", "stratod", "src", "query", "testdata", "sigv4-vectors.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(path)


if __name__ == "__main__":
    main()
