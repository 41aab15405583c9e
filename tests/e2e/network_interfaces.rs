//! Elastic network interfaces through the CLI: create, describe, attach to a stopped
//! instance (the guest sees a second NIC with the ENI's MAC), the refusals (running
//! instance, primary interface, delete while attached, another account), detach and delete,
//! secondary addresses, termination detaching what it does not delete; and the daemon's DHCP
//! server: a probe guest booted with `probe.dhcp` gets its ENI's address, a stranger's MAC
//! gets nothing.

#![allow(clippy::unwrap_used)]

use std::net::Ipv4Addr;
use std::time::Duration;

use serde_json::Value;
use strato_e2e::{dhcp, Daemon};

const T: Duration = Duration::from_secs(30);

/// The default subnet of home-1a (where launches without a subnet go).
fn default_subnet(d: &Daemon) -> String {
    let v = d.json(&[
        "describe-subnets",
        "--filters",
        "Name=availability-zone,Values=home-1a",
    ]);
    v["Subnets"][0]["SubnetId"].as_str().unwrap().to_string()
}

fn eni(d: &Daemon, id: &str) -> Value {
    let v = d.json(&["describe-network-interfaces", "--network-interface-ids", id]);
    v["NetworkInterfaces"][0].clone()
}

fn create(d: &Daemon, subnet: &str, extra: &[&str]) -> Value {
    let mut args = vec!["create-network-interface", "--subnet-id", subnet];
    args.extend_from_slice(extra);
    d.json(&args)["NetworkInterface"].clone()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn s(v: &Value) -> String {
    v.as_str().unwrap().to_string()
}

#[test]
fn enis_attach_detach_addresses_and_accounts() {
    let d = Daemon::start("eni");
    let subnet = default_subnet(&d);
    let ami = d.register_probe("probe");
    let id = d.run(&ami, &[]).remove(0);
    d.wait_state(&id, "running", T);
    let ip = s(&d.instance(&id)["PrivateIpAddress"]);

    // The primary ENI is listed, attached at index 0 and deleted on termination.
    let v = d.json(&[
        "describe-network-interfaces",
        "--filters",
        &format!("Name=attachment.instance-id,Values={id}"),
    ]);
    let list = v["NetworkInterfaces"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{v}");
    let primary = &list[0];
    assert_eq!(primary["Status"], "in-use");
    assert_eq!(primary["PrivateIpAddress"], ip.as_str());
    assert_eq!(primary["InterfaceType"], "interface");
    assert_eq!(primary["Attachment"]["DeviceIndex"], 0);
    assert_eq!(primary["Attachment"]["DeleteOnTermination"], true);
    let primary_attachment = s(&primary["Attachment"]["AttachmentId"]);
    assert!(primary_attachment.starts_with("eni-attach-"));

    // A second ENI with a secondary address.
    let e = create(
        &d,
        &subnet,
        &[
            "--description",
            "second",
            "--secondary-private-ip-address-count",
            "1",
        ],
    );
    let eni_id = s(&e["NetworkInterfaceId"]);
    let mac = s(&e["MacAddress"]);
    let eni_ip = s(&e["PrivateIpAddress"]);
    assert_eq!(e["Status"], "available");
    assert_eq!(e["Description"], "second");
    assert_eq!(e["PrivateIpAddresses"].as_array().unwrap().len(), 2);
    assert_eq!(e["PrivateIpAddresses"][0]["Primary"], true);
    assert!(e.get("Attachment").is_none(), "{e}");
    d.cli_err(
        "InvalidIPAddress.InUse",
        &[
            "create-network-interface",
            "--subnet-id",
            &subnet,
            "--private-ip-address",
            &ip,
        ],
    );
    d.cli_err(
        "InvalidParameterValue",
        &[
            "create-network-interface",
            "--subnet-id",
            &subnet,
            "--private-ip-address",
            "10.99.0.5",
        ],
    );
    d.cli_err(
        "InvalidGroup.NotFound",
        &[
            "create-network-interface",
            "--subnet-id",
            &subnet,
            "--groups",
            "sg-0123456789abcdef0",
        ],
    );
    let v = d.json(&[
        "describe-network-interfaces",
        "--filters",
        &format!("Name=mac-address,Values={mac}"),
        "Name=status,Values=available",
    ]);
    assert_eq!(v["NetworkInterfaces"].as_array().unwrap().len(), 1, "{v}");

    // Attaching needs a stopped instance and a free index.
    let attach = |index: &str| {
        vec![
            "attach-network-interface".to_string(),
            "--network-interface-id".into(),
            eni_id.clone(),
            "--instance-id".into(),
            id.clone(),
            "--device-index".into(),
            index.to_string(),
        ]
    };
    d.cli_err("IncorrectInstanceState", &strs(&attach("1")));
    d.cli(&["stop-instances", "--instance-ids", &id, "--wait"]);
    d.cli_err("InvalidParameterValue", &strs(&attach("0")));
    // Another zone's subnet: refused.
    let v = d.json(&[
        "describe-subnets",
        "--filters",
        "Name=availability-zone,Values=home-1b",
    ]);
    let far = s(&create(&d, &s(&v["Subnets"][0]["SubnetId"]), &[])["NetworkInterfaceId"]);
    d.cli_err(
        "InvalidParameterValue",
        &[
            "attach-network-interface",
            "--network-interface-id",
            &far,
            "--instance-id",
            &id,
            "--device-index",
            "1",
        ],
    );
    d.cli(&["delete-network-interface", "--network-interface-id", &far]);
    let v = d.json(&strs(&attach("1")));
    let attachment = s(&v["AttachmentId"]);
    assert!(attachment.starts_with("eni-attach-"), "{v}");
    let e = eni(&d, &eni_id);
    assert_eq!(e["Status"], "in-use");
    assert_eq!(e["Attachment"]["InstanceId"], id.as_str());
    assert_eq!(e["Attachment"]["DeviceIndex"], 1);
    assert_eq!(e["Attachment"]["DeleteOnTermination"], false);
    d.cli_err(
        "InvalidNetworkInterface.InUse",
        &[
            "delete-network-interface",
            "--network-interface-id",
            &eni_id,
        ],
    );
    d.cli_err(
        "OperationNotPermitted",
        &[
            "detach-network-interface",
            "--attachment-id",
            &primary_attachment,
        ],
    );

    // Started, the guest sees the ENI as eth1 with its MAC; the primary keeps its address.
    d.cli(&["start-instances", "--instance-ids", &id, "--wait"]);
    d.wait_console(&id, &format!("probe: net eth1 mac {mac}"), T);
    let inst = d.instance(&id);
    assert_eq!(inst["PrivateIpAddress"], ip.as_str());
    let nics = inst["NetworkInterfaces"].as_array().unwrap();
    assert_eq!(nics.len(), 2, "{inst}");
    assert_eq!(nics[1]["NetworkInterfaceId"], eni_id.as_str());
    assert_eq!(nics[1]["PrivateIpAddress"], eni_ip.as_str());
    d.cli_err(
        "IncorrectInstanceState",
        &["detach-network-interface", "--attachment-id", &attachment],
    );

    // Secondary addresses: assigned, listed, unassigned.
    let v = d.json(&[
        "assign-private-ip-addresses",
        "--network-interface-id",
        &eni_id,
        "--secondary-private-ip-address-count",
        "2",
    ]);
    let added: Vec<String> = v["AssignedPrivateIpAddresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| s(&a["PrivateIpAddress"]))
        .collect();
    assert_eq!(added.len(), 2, "{v}");
    assert_eq!(
        eni(&d, &eni_id)["PrivateIpAddresses"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    d.cli(&[
        "unassign-private-ip-addresses",
        "--network-interface-id",
        &eni_id,
        "--private-ip-addresses",
        &added[0],
    ]);
    d.cli_err(
        "InvalidParameterValue",
        &[
            "unassign-private-ip-addresses",
            "--network-interface-id",
            &eni_id,
            "--private-ip-addresses",
            &eni_ip,
        ],
    );
    let v = d.json(&[
        "describe-network-interfaces",
        "--filters",
        &format!("Name=private-ip-address,Values={}", added[1]),
    ]);
    assert_eq!(
        v["NetworkInterfaces"][0]["NetworkInterfaceId"],
        eni_id.as_str()
    );
    d.cli(&[
        "modify-network-interface-attribute",
        "--network-interface-id",
        &eni_id,
        "--no-source-dest-check",
    ]);
    assert_eq!(eni(&d, &eni_id)["SourceDestCheck"], false);

    // Another account sees none of it.
    for args in [
        &[
            "describe-network-interfaces",
            "--network-interface-ids",
            &eni_id,
        ][..],
        &[
            "delete-network-interface",
            "--network-interface-id",
            &eni_id,
        ],
    ] {
        d.cli_err_as(
            Some("token-alice"),
            "InvalidNetworkInterfaceID.NotFound",
            args,
        );
    }
    let v = {
        let out = d.cli_as(
            Some("token-alice"),
            &["--output", "json", "describe-network-interfaces"],
        );
        assert!(out.status.success());
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert_eq!(v["NetworkInterfaces"].as_array().unwrap().len(), 0, "{v}");

    // Stopped, it detaches (its tap goes) and can be deleted.
    d.cli(&["stop-instances", "--instance-ids", &id, "--wait"]);
    d.cli(&["detach-network-interface", "--attachment-id", &attachment]);
    assert_eq!(eni(&d, &eni_id)["Status"], "available");
    d.cli(&[
        "delete-network-interface",
        "--network-interface-id",
        &eni_id,
    ]);
    d.cli_err(
        "InvalidNetworkInterfaceID.NotFound",
        &[
            "describe-network-interfaces",
            "--network-interface-ids",
            &eni_id,
        ],
    );

    // Termination deletes the primary and detaches the others.
    let other = s(&create(&d, &subnet, &[])["NetworkInterfaceId"]);
    d.cli(&[
        "attach-network-interface",
        "--network-interface-id",
        &other,
        "--instance-id",
        &id,
        "--device-index",
        "2",
    ]);
    d.cli(&["terminate-instances", "--instance-ids", &id, "--wait"]);
    assert_eq!(eni(&d, &other)["Status"], "available");
    let primary_id = s(&primary["NetworkInterfaceId"]);
    d.cli_err(
        "InvalidNetworkInterfaceID.NotFound",
        &[
            "describe-network-interfaces",
            "--network-interface-ids",
            &primary_id,
        ],
    );
    d.cli(&["delete-network-interface", "--network-interface-id", &other]);
}

#[test]
fn dhcp_serves_each_eni_its_address_and_strangers_nothing() {
    let mut d = Daemon::start("dhcp");
    let bundle = strato_e2e::probe_bundle();
    let v = d.json(&[
        "register-image",
        "--name",
        "probe-dhcp",
        "--bundle",
        bundle.to_str().unwrap(),
        "--boot-args",
        "console=ttyS0 probe.dhcp",
        "--block-device-mappings",
        r#"[{"DeviceName":"/dev/vda","Ebs":{"VolumeSize":1,"DeleteOnTermination":true}}]"#,
    ]);
    let ami = s(&v["ImageId"]);
    let id = d.run(&ami, &[]).remove(0);
    d.wait_state(&id, "running", T);
    let inst = d.instance(&id);
    let ip = s(&inst["PrivateIpAddress"]);
    let mac = s(&inst["NetworkInterfaces"][0]["MacAddress"]);
    let console = d.wait_console(&id, "probe: dhcp ", T);
    let line = console
        .lines()
        .find(|l| l.starts_with("probe: dhcp "))
        .unwrap();
    assert_eq!(line, format!("probe: dhcp {ip}/20 router 172.31.0.1"));
    d.wait_status(&id, ("ok", "ok"), T);

    // A namespace host on the same bridge: a stranger's DISCOVER gets no answer, while one
    // with the instance's MAC (the control) gets an OFFER of the instance's address.
    // The route only lets the limited broadcast out of eth0.
    let h = d.host("dh", "strato0", "172.31.15.200/20", Some("172.31.0.1"));
    let stranger = [0x02, 0x5e, 0x11, 0x22, 0x33, 0x44];
    let got = dhcp::exchange(
        &h.ns,
        dhcp::request(1, stranger, 0xabcd_0001),
        0xabcd_0001,
        Duration::from_secs(2),
    );
    assert!(got.is_none(), "a stranger got an answer: {got:?}");
    let got = dhcp::exchange(
        &h.ns,
        dhcp::request(1, dhcp::mac_bytes(&mac), 0xabcd_0002),
        0xabcd_0002,
        Duration::from_secs(5),
    )
    .expect("an offer for the instance's MAC");
    assert_eq!(got[0], 2, "a BOOTREPLY");
    let yiaddr = Ipv4Addr::new(got[16], got[17], got[18], got[19]);
    assert_eq!(yiaddr.to_string(), ip);
    // Option 53 = 2 (OFFER) right after the cookie.
    assert_eq!(&got[240..243], &[53, 1, 2]);

    // A VPC made later gets its own server.
    let v = d.json(&["create-vpc", "--cidr-block", "10.40.0.0/16"]);
    let vpc = s(&v["Vpc"]["VpcId"]);
    let v = d.json(&[
        "create-subnet",
        "--vpc-id",
        &vpc,
        "--cidr-block",
        "10.40.7.0/24",
    ]);
    let subnet = s(&v["Subnet"]["SubnetId"]);
    let other = d.run(&ami, &["--subnet-id", &subnet]).remove(0);
    d.wait_console(&other, "probe: dhcp 10.40.7.4/24 router 10.40.7.1", T);
    d.cli(&["terminate-instances", "--instance-ids", &other, "--wait"]);

    // The server comes back with the daemon; a REQUEST for another address is NAKed.
    d.restart();
    let mut req = dhcp::request(3, dhcp::mac_bytes(&mac), 0xabcd_0003);
    req.pop();
    req.extend_from_slice(&[50, 4, 172, 31, 0, 250, 255]);
    let got = dhcp::exchange(&h.ns, req, 0xabcd_0003, Duration::from_secs(5))
        .expect("an answer after the restart");
    assert_eq!(&got[240..243], &[53, 1, 6], "a NAK");
    d.cli(&["terminate-instances", "--instance-ids", &id, "--wait"]);
}
