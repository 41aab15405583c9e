#!/usr/bin/env python3
"""Extracts the part of botocore's service models that strato's EC2 Query API serves.

botocore (Apache-2.0, https://github.com/boto/botocore) ships the models that the aws CLI,
boto3 and (through the same JSON) Terraform's provider are built from. strato's Query codec
parses requests and serializes responses by them, as moto does, so the names, nesting,
list and structure flattening and types are exactly what the clients send and expect.

This script keeps the operations strato implements and every shape they reach, with only the
keys the codec reads (types, members, list members, location and query names, required
members, idempotency tokens), and writes them to crates/stratod/src/query/model/. Re-run it
after adding an operation to OPERATIONS (or STS_OPERATIONS), with the botocore that
scripts/test.sh pins:

    python3 -m pip install botocore==1.43.11      # or Debian's python3-botocore
    python3 scripts/extract-ec2-model.py

The output is deterministic (sorted, one shape per line), so a diff shows what changed.
"""

import gzip
import json
import os
import sys

import botocore

# The EC2 actions strato serves: every action of the gRPC API, plus what Terraform's
# aws_instance reads and the instance-profile calls.
OPERATIONS = sorted("""
AllocateAddress AssociateAddress DisassociateAddress ReleaseAddress DescribeAddresses
RunInstances DescribeInstances StopInstances StartInstances RebootInstances TerminateInstances
ModifyInstanceAttribute DescribeInstanceAttribute ModifyInstanceMetadataOptions
DescribeInstanceTypes DescribeInstanceStatus GetConsoleOutput
DescribeInstanceCreditSpecifications
AssociateIamInstanceProfile DescribeIamInstanceProfileAssociations
DisassociateIamInstanceProfile
RegisterImage DescribeImages DeregisterImage CreateImage ModifyImageAttribute
DescribeImageAttribute CopyImage
CreateKeyPair ImportKeyPair DescribeKeyPairs DeleteKeyPair
CreateLaunchTemplate CreateLaunchTemplateVersion ModifyLaunchTemplate DescribeLaunchTemplates
DescribeLaunchTemplateVersions DeleteLaunchTemplate
CreateNetworkInterface DescribeNetworkInterfaces AttachNetworkInterface
DetachNetworkInterface DeleteNetworkInterface AssignPrivateIpAddresses
UnassignPrivateIpAddresses ModifyNetworkInterfaceAttribute
CreatePlacementGroup DescribePlacementGroups DeletePlacementGroup ModifyInstancePlacement
DescribeRegions DescribeAvailabilityZones
CreateSecurityGroup DeleteSecurityGroup DescribeSecurityGroups
AuthorizeSecurityGroupIngress AuthorizeSecurityGroupEgress RevokeSecurityGroupIngress
RevokeSecurityGroupEgress
CreateTags DeleteTags DescribeTags
CreateVolume AttachVolume DetachVolume DeleteVolume DescribeVolumes
CreateSnapshot DescribeSnapshots DeleteSnapshot
CreateVpc DescribeVpcs DeleteVpc CreateSubnet DescribeSubnets DeleteSubnet
ModifySubnetAttribute
AssociateVpcCidrBlock DisassociateVpcCidrBlock AssociateSubnetCidrBlock
DisassociateSubnetCidrBlock AssignIpv6Addresses UnassignIpv6Addresses
""".split())

STS_OPERATIONS = ["GetCallerIdentity"]

SHAPE_KEYS = ("type", "required", "flattened", "timestampFormat")
MEMBER_KEYS = ("shape", "locationName", "queryName", "idempotencyToken", "flattened")


def load(service, version):
    base = os.path.join(os.path.dirname(botocore.__file__), "data", service, version)
    for name in ("service-2.json", "service-2.json.gz"):
        path = os.path.join(base, name)
        if os.path.exists(path):
            opener = gzip.open if name.endswith(".gz") else open
            with opener(path, "rt", encoding="utf-8") as f:
                return json.load(f)
    sys.exit(f"no service model for {service} {version} under {base}")


def ref(r):
    return {k: r[k] for k in MEMBER_KEYS if k in r}


def trim(model, operations):
    shapes = model["shapes"]
    keep = {}
    ops = {}

    def walk(name):
        if name in keep:
            return
        s = shapes[name]
        t = {k: s[k] for k in SHAPE_KEYS if k in s}
        keep[name] = t
        if s["type"] == "structure":
            t["members"] = {m: ref(r) for m, r in s["members"].items()}
            for r in s["members"].values():
                walk(r["shape"])
        elif s["type"] == "list":
            t["member"] = ref(s["member"])
            walk(s["member"]["shape"])
        elif s["type"] == "map":
            t["key"] = ref(s["key"])
            t["value"] = ref(s["value"])
            walk(s["key"]["shape"])
            walk(s["value"]["shape"])

    for op in operations:
        o = model["operations"][op]
        entry = {}
        for side in ("input", "output"):
            if side in o:
                entry[side] = o[side]["shape"]
                walk(o[side]["shape"])
        if "resultWrapper" in o.get("output", {}):
            entry["resultWrapper"] = o["output"]["resultWrapper"]
        ops[op] = entry
    return ops, keep


def write(path, model, ops, shapes):
    meta = {k: model["metadata"][k] for k in ("apiVersion", "protocol", "xmlNamespace", "uid")}
    lines = ["{"]
    lines.append(f'"source": {json.dumps("botocore " + botocore.__version__ + ", Apache-2.0")},')
    lines.append(f'"metadata": {json.dumps(meta, sort_keys=True)},')
    lines.append('"operations": {')
    lines.append(",\n".join(f"{json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in sorted(ops.items())))
    lines.append("},")
    lines.append('"shapes": {')
    lines.append(",\n".join(f"{json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in sorted(shapes.items())))
    lines.append("}")
    lines.append("}")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{path}: {len(ops)} operations, {len(shapes)} shapes", file=sys.stderr)


def main():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    out = os.path.join(root, "crates", "stratod", "src", "query", "model")
    ec2 = load("ec2", "2016-11-15")
    write(os.path.join(out, "ec2-2016-11-15.json"), ec2, *trim(ec2, OPERATIONS))
    sts = load("sts", "2011-06-15")
    write(os.path.join(out, "sts-2011-06-15.json"), sts, *trim(sts, STS_OPERATIONS))


if __name__ == "__main__":
    main()
