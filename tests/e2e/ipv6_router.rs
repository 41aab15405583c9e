//! The host as an IPv6 router end to end: a namespace host on a VPC bridge, playing an
//! instance with two IPv6 addresses (its MAC, and once it has them, its address), gets a
//! router advertisement with the managed flag and the subnet's /64 on-link without SLAAC,
//! asks DHCPv6 (Solicit, Request, Renew, Release) and gets exactly the ENI's addresses,
//! while a stranger's MAC gets no answer; then fetches its metadata over
//! `[fd00:ec2::254]`, which answers only once the instance enables HttpProtocolIpv6; all of
//! it again after a daemon restart, from a server with the same DUID.
//!
//! The probe guest speaks no IPv6, so the namespace host is the instance here: Python in
//! the namespace does the socket work only, and the messages are built and read with the
//! daemon's own codecs (strato-wire).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use strato_e2e::{fast_config, Daemon, NsHost};
use strato_wire::dhcp6::{self, IaNa, Message, MessageType};
use strato_wire::ndp;

/// Sends router solicitations from `eth0` until an advertisement comes (15 s at most);
/// prints it in hex and its source address.
const SOLICIT: &str = r#"
import socket, sys, time
idx = socket.if_nametoindex('eth0')
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_HOPS, 255)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, idx)
s.settimeout(1)
rs = bytes.fromhex(sys.argv[1])
end = time.time() + 15
while time.time() < end:
    try:
        s.sendto(rs, ('ff02::2', 0, 0, idx))
    except OSError:
        time.sleep(0.5)
        continue
    try:
        while True:
            b, a = s.recvfrom(2000)
            if b and b[0] == 134:
                print(b.hex(), a[0].split('%')[0])
                sys.exit(0)
    except socket.timeout:
        pass
sys.exit(1)
"#;

/// Sends one DHCPv6 message to all servers from `eth0` port 546 and prints the first
/// answer in hex; tries `argv[2]` times, a second apart (the link-local address may still
/// be tentative at first).
const DHCP6: &str = r#"
import socket, sys
idx = socket.if_nametoindex('eth0')
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'eth0')
s.bind(('::', 546))
s.settimeout(1)
msg = bytes.fromhex(sys.argv[1])
for _ in range(int(sys.argv[2])):
    try:
        s.sendto(msg, ('ff02::1:2', 547, 0, idx))
        b, a = s.recvfrom(2000)
        print(b.hex())
        sys.exit(0)
    except (socket.timeout, OSError):
        pass
sys.exit(1)
"#;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn python(h: &NsHost, script: &str, args: &[&str]) -> Option<String> {
    let mut cmd = vec!["python3", "-c", script];
    cmd.extend_from_slice(args);
    let out = h.exec(&cmd);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// One DHCPv6 exchange: the server's answer, if any.
fn ask(h: &NsHost, m: &Message, tries: u32) -> Option<Message> {
    let out = python(h, DHCP6, &[&hex(&dhcp6::encode(m)), &tries.to_string()])?;
    Some(dhcp6::parse(&unhex(&out)).unwrap())
}

fn duid_ll(mac: &str) -> Vec<u8> {
    let mut d = vec![0, 3, 0, 1];
    d.extend(mac.split(':').map(|x| u8::from_str_radix(x, 16).unwrap()));
    d
}

fn client(kind: MessageType, duid: &[u8], server: Option<Vec<u8>>) -> Message {
    Message {
        client_id: Some(duid.to_vec()),
        server_id: server,
        ias: vec![IaNa {
            iaid: 1,
            t1: 0,
            t2: 0,
            addrs: vec![],
            status: None,
        }],
        ..Message::new(kind, 0x00c0ffee)
    }
}

fn addrs_of(m: &Message) -> BTreeSet<String> {
    m.ias
        .iter()
        .flat_map(|ia| ia.addrs.iter())
        .filter(|a| a.valid > 0)
        .map(|a| a.addr.to_string())
        .collect()
}

/// curl over IPv6 to the metadata service: (HTTP status, 0 when nothing came back; body).
fn imds6(h: &NsHost, path: &str) -> (u16, String) {
    let url = format!("http://[fd00:ec2::254]{path}");
    let out = h.exec(&[
        "curl",
        "-g",
        "-s",
        "--max-time",
        "3",
        "-o",
        "/dev/stdout",
        "-w",
        "\n%{http_code}",
        &url,
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test]
fn a_host_on_the_bridge_gets_an_advertisement_its_addresses_and_metadata_over_ipv6() {
    let mut cfg = fast_config();
    cfg["ipv6_pool"] = "2001:db8:50::/48".into();
    let mut d = Daemon::start_with("ip6r", cfg);
    let ami = d.register_probe("probe");
    let vpc = d.json(&["create-vpc", "--cidr-block", "10.62.0.0/16"])["Vpc"]["VpcId"]
        .as_str()
        .unwrap()
        .to_string();
    d.json(&[
        "associate-vpc-cidr-block",
        "--vpc-id",
        &vpc,
        "--amazon-provided-ipv6-cidr-block",
    ]);
    let subnet = d.json(&[
        "create-subnet",
        "--vpc-id",
        &vpc,
        "--cidr-block",
        "10.62.1.0/24",
    ])["Subnet"]["SubnetId"]
        .as_str()
        .unwrap()
        .to_string();
    d.json(&[
        "associate-subnet-cidr-block",
        "--subnet-id",
        &subnet,
        "--ipv6-cidr-block",
        "2001:db8:50:1::/64",
    ]);
    let ud = d.file("silent.txt", b"net-silent-after 0\necho v6\n");
    let ud = format!("file://{}", ud.display());
    let id = d.run(
        &ami,
        &[
            "--subnet-id",
            &subnet,
            "--ipv6-address-count",
            "2",
            "--user-data",
            &ud,
        ],
    )[0]
    .clone();
    d.wait_state(&id, "running", Duration::from_secs(30));
    d.wait_console(&id, "probe: user-data done", Duration::from_secs(30));
    let i = d.instance(&id);
    let nic = &i["NetworkInterfaces"][0];
    let mac = nic["MacAddress"].as_str().unwrap().to_string();
    let want: BTreeSet<String> = nic["Ipv6Addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["Ipv6Address"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(want.len(), 2, "{nic}");
    assert_eq!(i["MetadataOptions"]["HttpProtocolIpv6"], "disabled");

    // The stand-in: the instance's MAC on the VPC's bridge.
    // The VPC's bridge: `svpc` and the first 11 hex digits of its ID (`bridge_name`).
    let bridge = format!("svpc{}", &vpc["vpc-".len()..][..11]);
    let h = d.host("h6", &bridge, "10.62.1.200/24", None);
    let out = h.exec(&["ip", "link", "set", "eth0", "address", &mac]);
    assert!(out.status.success(), "{out:?}");

    // A solicitation gets the advertisement: DHCPv6 for addresses, the /64 on-link only.
    let rs = ndp::encode_solicitation(&ndp::Solicitation { source_mac: None });
    let out = python(&h, SOLICIT, &[&hex(&rs)]).expect("no router advertisement");
    let (ra_hex, router) = out.split_once(' ').unwrap();
    let ra = ndp::parse_advertisement(&unhex(ra_hex)).unwrap();
    assert!(ra.managed, "{ra:?}");
    assert!(ra.lifetime > 0, "a default router: {ra:?}");
    assert_eq!(ra.prefixes.len(), 1, "{ra:?}");
    let p = ra.prefixes[0];
    assert_eq!(
        (p.prefix.to_string(), p.len),
        ("2001:db8:50:1::".into(), 64)
    );
    assert!(p.on_link && !p.autonomous, "{p:?}");
    assert!(router.starts_with("fe80:"), "{router}");

    // DHCPv6: exactly the ENI's addresses, from a server that names itself the same way.
    let duid = duid_ll(&mac);
    let adv = ask(&h, &client(MessageType::Solicit, &duid, None), 10).expect("no Advertise");
    assert_eq!(adv.kind, MessageType::Advertise);
    assert_eq!(adv.xid, 0x00c0ffee);
    assert_eq!(adv.client_id.as_deref(), Some(duid.as_slice()));
    assert_eq!(addrs_of(&adv), want);
    let server = adv.server_id.clone().unwrap();
    for kind in [MessageType::Request, MessageType::Renew] {
        let r = ask(&h, &client(kind, &duid, Some(server.clone())), 3).expect("no Reply");
        assert_eq!(r.kind, MessageType::Reply, "{kind:?}");
        assert_eq!(addrs_of(&r), want, "{kind:?}");
    }
    let rel = ask(
        &h,
        &client(MessageType::Release, &duid, Some(server.clone())),
        3,
    )
    .unwrap();
    assert_eq!(rel.status.unwrap().code, dhcp6::status::SUCCESS);
    // A MAC that is no attached ENI's gets nothing.
    let stranger = duid_ll("02:99:99:99:99:99");
    assert!(ask(&h, &client(MessageType::Solicit, &stranger, None), 2).is_none());

    // The metadata service over IPv6, from the first address: off until enabled.
    let first = nic["Ipv6Addresses"][0]["Ipv6Address"]
        .as_str()
        .unwrap()
        .to_string();
    let out = h.sh(&format!(
        "ip -6 addr add {first}/64 dev eth0 nodad && \
         ip -6 route replace fd00:ec2::254 via {router} dev eth0"
    ));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(imds6(&h, "/latest/meta-data/instance-id").0, 0, "disabled");
    let v = d.json(&[
        "modify-instance-metadata-options",
        "--instance-id",
        &id,
        "--http-protocol-ipv6",
        "enabled",
    ]);
    assert_eq!(v["InstanceMetadataOptions"]["HttpProtocolIpv6"], "enabled");
    assert_eq!(
        imds6(&h, "/latest/meta-data/instance-id"),
        (200, id.clone())
    );
    assert_eq!(imds6(&h, "/latest/meta-data/ipv6"), (200, first.clone()));
    let base = format!("/latest/meta-data/network/interfaces/macs/{mac}");
    let (code, listed) = imds6(&h, &format!("{base}/ipv6s"));
    assert_eq!(code, 200);
    assert_eq!(
        listed.lines().map(String::from).collect::<BTreeSet<_>>(),
        want
    );
    assert_eq!(
        imds6(&h, &format!("{base}/subnet-ipv6-cidr-blocks")),
        (200, "2001:db8:50:1::/64".into())
    );
    assert_eq!(
        imds6(&h, &format!("{base}/vpc-ipv6-cidr-blocks")),
        (200, "2001:db8:50::/56".into())
    );

    // After a restart: advertisements again, and the same server by its DUID.
    d.restart();
    let out = python(&h, SOLICIT, &[&hex(&rs)]).expect("no advertisement after a restart");
    let ra = ndp::parse_advertisement(&unhex(out.split_once(' ').unwrap().0)).unwrap();
    assert!(ra.managed && ra.prefixes.len() == 1, "{ra:?}");
    let r = ask(&h, &client(MessageType::Renew, &duid, Some(server)), 10).expect("no Reply");
    assert_eq!(addrs_of(&r), want);
    assert_eq!(imds6(&h, "/latest/meta-data/instance-id"), (200, id));
}
