#!/usr/bin/env python3
"""A small EC2-style instance metadata service (IMDSv2 only) for image tests.

    test-imds.py --address 169.254.169.254 --port 80 --user-data FILE \
        [--instance-id i-...] [--hostname NAME] [--bdm NAME=DEVICE ...] [--public-key KEY ...]
        [--imdsv1] [--log FILE] [--ready FILE]

PUT /latest/api/token needs X-aws-ec2-metadata-token-ttl-seconds (1-21600) and answers a
token; every GET needs X-aws-ec2-metadata-token with a token it issued (401 otherwise), unless
--imdsv1 lets GETs without a token through (a bad token is still refused).
GET /latest/user-data answers the file's bytes, or 404 when the file is missing or
--user-data is not given. Serves a meta-data/ tree as EC2 does (listings, instance-id,
local-hostname, placement/, block-device-mapping/, public-keys/0=key0 + 0/openssh-key), under
/latest/ and every dated API version. Logs one line per request (method, path, status,
token|no-token) to --log, which the tests read to count fetches.
"""

import argparse
import re
import http.server
import secrets
import socketserver
import sys
import time

MAX_TTL = 21600


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "strato-test-imds"
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):  # quiet on stderr; requests go to --log
        pass

    def record(self, status):
        opts = self.server.opts
        if opts.log:
            how = "token" if self.headers.get("X-aws-ec2-metadata-token") else "no-token"
            with open(opts.log, "a") as f:
                f.write(f"{self.command} {self.path} {status} {how}\n")

    def reply(self, status, body=b"", headers=()):
        self.record(status)
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_PUT(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 65536))
        if self.path != "/latest/api/token":
            return self.reply(404, b"not found\n")
        if self.headers.get("X-Forwarded-For"):
            return self.reply(403, b"forbidden\n")
        ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
        try:
            ttl = int(ttl)
        except (TypeError, ValueError):
            return self.reply(400, b"missing or bad X-aws-ec2-metadata-token-ttl-seconds\n")
        if not 1 <= ttl <= MAX_TTL:
            return self.reply(400, b"X-aws-ec2-metadata-token-ttl-seconds must be 1-21600\n")
        token = secrets.token_urlsafe(32)
        self.server.tokens[token] = time.monotonic() + ttl
        self.reply(200, token.encode(), [("X-aws-ec2-metadata-token-ttl-seconds", str(ttl))])

    def do_GET(self):
        token = self.headers.get("X-aws-ec2-metadata-token")
        if token is not None or not self.server.opts.imdsv1:
            expiry = self.server.tokens.get(token or "")
            if expiry is None or expiry < time.monotonic():
                return self.reply(401, b"unauthorized\n")
        opts = self.server.opts
        path = self.path.split("?", 1)[0]
        # Every API version (/2009-04-04/, /2021-03-23/, ...) answers as /latest/ does.
        parts = path.split("/", 2)
        if len(parts) == 3 and re.fullmatch(r"\d{4}-\d{2}-\d{2}", parts[1]):
            path = "/latest/" + parts[2]
        if path == "/latest/user-data":
            if not opts.user_data:
                return self.reply(404, b"not found\n")
            try:
                with open(opts.user_data, "rb") as f:
                    return self.reply(200, f.read())
            except FileNotFoundError:
                return self.reply(404, b"not found\n")
        if not path.startswith("/latest/meta-data"):
            return self.reply(404, b"not found\n")
        node = self.server.tree
        for part in [p for p in path[len("/latest/meta-data"):].split("/") if p]:
            if not isinstance(node, dict) or part not in node or part.startswith("_"):
                return self.reply(404, b"not found\n")
            node = node[part]
        if isinstance(node, dict):  # a listing: sub-trees end in /
            if node is self.server.tree.get("public-keys"):  # EC2 lists keys as 0=name
                body = "\n".join(f"{i}={v['_name']}" for i, v in node.items())
            else:
                body = "\n".join(k + "/" if isinstance(v, dict) else k
                                 for k, v in node.items() if not k.startswith("_"))
            return self.reply(200, body.encode())
        self.reply(200, node.encode())


def metadata_tree(opts):
    """The meta-data/ tree: dicts are folders, strings are values."""
    bdm = {"ami": "/dev/vda", "root": "/dev/vda"}
    for b in opts.bdm:
        name, dev = b.split("=", 1)
        bdm[name] = dev
    tree = {
        "ami-id": "ami-00000000000000001",
        "ami-launch-index": "0",
        "block-device-mapping": bdm,
        "hostname": opts.hostname,
        "instance-id": opts.instance_id,
        "instance-type": "t3.micro",
        "local-hostname": opts.hostname,
        "local-ipv4": "172.31.254.2",
        "placement": {"availability-zone": "home-1a"},
    }
    if opts.public_key:
        tree["public-keys"] = {
            str(i): {"_name": f"key{i}", "openssh-key": k} for i, k in enumerate(opts.public_key)
        }
    return tree


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--address", default="169.254.169.254")
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--user-data")
    p.add_argument("--instance-id", default="i-0123456789abcdef0")
    p.add_argument("--bdm", action="append", default=[], help="NAME=DEVICE, e.g. ebs1=sdb")
    p.add_argument("--hostname", default="ip-172-31-254-2")
    p.add_argument("--public-key", action="append", default=[], help="an SSH public key")
    p.add_argument("--imdsv1", action="store_true",
                   help="also answer GETs without a token (EC2's HttpTokens=optional)")
    p.add_argument("--log")
    p.add_argument("--ready", help="file to create once the socket listens")
    opts = p.parse_args()
    srv = Server((opts.address, opts.port), Handler)
    srv.opts = opts
    srv.tokens = {}
    srv.tree = metadata_tree(opts)
    if opts.ready:
        open(opts.ready, "w").close()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
