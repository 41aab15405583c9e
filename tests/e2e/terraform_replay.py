"""Replays, with botocore, the calls Terraform's AWS provider makes for an `aws_instance`
(create from a launch template with a root block device, read, delete; as in
../shared/EC2-QUERY.md, from the provider's internal/service/ec2/ec2_instance.go) and checks
every answer the way the provider reads it. Run by tests/e2e/terraform.rs with the key and
`STRATO_ENDPOINT_URL` in the environment and the AMI as the first argument.
"""
import base64
import os
import sys
import time
import uuid

import boto3
from botocore.exceptions import ClientError

AMI = sys.argv[1]
URL = os.environ["STRATO_ENDPOINT_URL"]
TYPE = "custom-1-64"

session = boto3.session.Session()
sts = session.client("sts", endpoint_url=URL)
ec2 = session.client("ec2", endpoint_url=URL)


def check(cond, what):
    if not cond:
        raise SystemExit(f"terraform replay: {what}")


def wait_for(instance_id, state, tries=120):
    """The provider's waiter: DescribeInstances until the state, NotFound retried."""
    for _ in range(tries):
        try:
            r = ec2.describe_instances(InstanceIds=[instance_id])
        except ClientError as e:
            if e.response["Error"]["Code"] != "InvalidInstanceID.NotFound":
                raise
        else:
            inst = r["Reservations"][0]["Instances"][0]
            if inst["State"]["Name"] == state:
                return inst
        time.sleep(0.5)
    raise SystemExit(f"terraform replay: {instance_id} never reached {state}")


# The provider's start: who am I (no skip flags needed).
me = sts.get_caller_identity()
account = me["Account"]
check(len(account) == 12 and account.isdigit(), f"account {account!r}")
check(me["Arn"].startswith("arn:"), f"arn {me['Arn']!r}")

# A launch template, as an aws_launch_template resource would make it.
lt = ec2.create_launch_template(
    LaunchTemplateName="tf-web",
    LaunchTemplateData={"InstanceType": TYPE, "ImageId": AMI},
)["LaunchTemplate"]
lt_id = lt["LaunchTemplateId"]

# --- Create ---
versions = ec2.describe_launch_template_versions(LaunchTemplateId=lt_id, Versions=["$Default"])
check(versions["LaunchTemplateVersions"][0]["VersionNumber"] == 1, f"versions {versions}")
types = ec2.describe_instance_types(InstanceTypes=[TYPE])["InstanceTypes"]
check(types and types[0]["InstanceType"] == TYPE, f"types {types}")
check(types[0]["BurstablePerformanceSupported"] is False, "burstable must be false")
image = ec2.describe_images(ImageIds=[AMI])["Images"][0]
root_name = image["RootDeviceName"]
check(root_name.startswith("/dev/"), f"root device {root_name!r}")
check(any(m["DeviceName"] == root_name for m in image["BlockDeviceMappings"]),
      f"the root device is not among the image's mappings: {image['BlockDeviceMappings']}")

token = f"terraform-{uuid.uuid4()}"[:64]
script = "#!/bin/sh\necho hello\n"
# Terraform sends UserData base64-encoded; botocore encodes RunInstances' itself.
user_data = base64.b64encode(script.encode()).decode()
run_args = dict(
    ClientToken=token,
    MinCount=1,
    MaxCount=1,
    LaunchTemplate={"LaunchTemplateId": lt_id, "Version": "$Default"},
    UserData=script,
    BlockDeviceMappings=[{"DeviceName": root_name, "Ebs": {"VolumeSize": 1,
                                                           "DeleteOnTermination": True}}],
    TagSpecifications=[
        {"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": "tf"}]},
        {"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "tf-root"}]},
    ],
)
run = ec2.run_instances(**run_args)
iid = run["Instances"][0]["InstanceId"]
# The provider retries RunInstances with the same token on a timeout: same instance back.
again = ec2.run_instances(**run_args)
check(again["Instances"][0]["InstanceId"] == iid, "a retried RunInstances made another instance")

inst = wait_for(iid, "running")
root_vol = next(m["Ebs"]["VolumeId"] for m in inst["BlockDeviceMappings"]
                if m["DeviceName"] == inst["RootDeviceName"])
# Block device tags, then the attribute the configuration asks for.
ec2.create_tags(Resources=[root_vol], Tags=[{"Key": "Owner", "Value": "tf"}])
ec2.modify_instance_attribute(InstanceId=iid, DisableApiTermination={"Value": True})

# --- Read (what every plan and refresh does) ---
inst = ec2.describe_instances(InstanceIds=[iid])["Reservations"][0]["Instances"][0]
check(inst["InstanceType"] == TYPE, f"type {inst['InstanceType']}")
check(inst["ImageId"] == AMI, f"image {inst['ImageId']}")
check({"Key": "Name", "Value": "tf"} in inst["Tags"], f"tags {inst['Tags']}")
check(inst["PrivateIpAddress"] and inst["SubnetId"] and inst["VpcId"], f"network {inst}")
check(inst["Placement"]["AvailabilityZone"], "no zone")
ec2.describe_instance_types(InstanceTypes=[inst["InstanceType"]])
tags = ec2.describe_tags(Filters=[
    {"Name": "resource-id", "Values": [iid]},
    {"Name": "key", "Values": ["aws:ec2launchtemplate:id", "aws:ec2launchtemplate:version"]},
])["Tags"]
got = {t["Key"]: t["Value"] for t in tags}
check(got == {"aws:ec2launchtemplate:id": lt_id, "aws:ec2launchtemplate:version": "1"},
      f"launch template tags {got}")
vpc = ec2.describe_vpcs(VpcIds=[inst["VpcId"]])["Vpcs"][0]
check(vpc["IsDefault"] is True, f"vpc {vpc}")
attr = ec2.describe_instance_attribute
check(attr(InstanceId=iid, Attribute="instanceInitiatedShutdownBehavior")
      ["InstanceInitiatedShutdownBehavior"]["Value"] == "stop", "shutdown behaviour")
check(attr(InstanceId=iid, Attribute="disableApiStop")["DisableApiStop"]["Value"] is False,
      "disableApiStop")
check(attr(InstanceId=iid, Attribute="disableApiTermination")
      ["DisableApiTermination"]["Value"] is True, "disableApiTermination")
ud = attr(InstanceId=iid, Attribute="userData")
check(ud["UserData"].get("Value") == user_data, f"userData {ud}")
vol_ids = [m["Ebs"]["VolumeId"] for m in inst["BlockDeviceMappings"]]
vols = ec2.describe_volumes(VolumeIds=vol_ids)["Volumes"]
check(len(vols) == len(vol_ids), f"volumes {vols}")
root = next(v for v in vols if v["VolumeId"] == root_vol)
check(root["Attachments"][0]["InstanceId"] == iid, f"root attachment {root}")
check(root["Attachments"][0]["DeleteOnTermination"] is True, "root DeleteOnTermination")
root_tags = {t["Key"]: t["Value"] for t in root.get("Tags", [])}
check(root_tags.get("Name") == "tf-root" and root_tags.get("Owner") == "tf",
      f"root volume tags {root_tags}")
credits = ec2.describe_instance_credit_specifications(InstanceIds=[iid])
check("InstanceCreditSpecifications" in credits, f"credits {credits}")

# --- Delete ---
try:
    ec2.terminate_instances(InstanceIds=[iid])
    raise SystemExit("terraform replay: termination protection did not hold")
except ClientError as e:
    check(e.response["Error"]["Code"] == "OperationNotPermitted", f"protected: {e}")
ec2.modify_instance_attribute(InstanceId=iid, DisableApiTermination={"Value": False})
ec2.modify_instance_attribute(InstanceId=iid, DisableApiStop={"Value": False})
ec2.terminate_instances(InstanceIds=[iid])
wait_for(iid, "terminated")
# A second destroy (a retried apply): terminated, or NotFound, counts as done.
try:
    t = ec2.terminate_instances(InstanceIds=[iid])
    check(t["TerminatingInstances"][0]["CurrentState"]["Name"] == "terminated", f"again {t}")
except ClientError as e:
    check(e.response["Error"]["Code"] == "InvalidInstanceID.NotFound", f"again: {e}")
try:
    ec2.describe_volumes(VolumeIds=[root_vol])
    raise SystemExit("terraform replay: the root volume outlived its instance")
except ClientError as e:
    check(e.response["Error"]["Code"] == "InvalidVolume.NotFound", f"root volume: {e}")
ec2.delete_launch_template(LaunchTemplateId=lt_id)
print("replayed", iid)
