//! The service's answers, without sockets: requests as parsed from bytes, callers as (bridge,
//! address) pairs over a real state store.

use super::*;
use crate::cloud::test_cloud;
use crate::db::instances::tests::sample;
use crate::db::instances::MetadataOptions;
use crate::db::network::{Eni, Subnet, Vpc};

const BRIDGE: &str = "strato0";

fn req(text: &str) -> Request {
    http::parse(text.as_bytes()).unwrap().unwrap().0
}

fn get(path: &str, token: Option<&str>) -> Request {
    let t = token
        .map(|t| format!("X-aws-ec2-metadata-token: {t}\r\n"))
        .unwrap_or_default();
    req(&format!(
        "GET {path} HTTP/1.1\r\nHost: 169.254.169.254\r\n{t}\r\n"
    ))
}

fn put_token(ttl: &str) -> Request {
    req(&format!(
        "PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: {ttl}\r\n\r\n"
    ))
}

fn body(a: &Answer) -> String {
    String::from_utf8(a.response.body.clone()).unwrap()
}

/// A cloud with instances i-…a (172.31.0.4) and i-…b (172.31.0.5) on the default VPC.
fn setup() -> (tempfile::TempDir, Imds) {
    let (dir, cloud) = test_cloud();
    cloud
        .db
        .insert_vpc(&Vpc {
            id: "vpc-0000000000000000a".into(),
            owner: String::new(),
            cidr: "172.31.0.0/16".into(),
            is_default: true,
            bridge: BRIDGE.into(),
            state: "available".into(),
            tags: vec![],
            created: 0,
        })
        .unwrap();
    cloud
        .db
        .insert_subnet(&Subnet {
            id: "subnet-0000000000000000a".into(),
            vpc_id: "vpc-0000000000000000a".into(),
            az: "home-1a".into(),
            cidr: "172.31.0.0/20".into(),
            bridge: BRIDGE.into(),
            is_default: true,
        })
        .unwrap();
    for (k, (id, ip)) in [
        ("i-0000000000000000a", "172.31.0.4"),
        ("i-0000000000000000b", "172.31.0.5"),
    ]
    .into_iter()
    .enumerate()
    {
        let mut i = sample(id, "111111111111");
        i.state = State::Running;
        i.user_data = format!("user data of {id}").into_bytes();
        i.key_name = "lab".into();
        i.public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 lab".into();
        cloud.db.insert_instance(&i).unwrap();
        cloud
            .db
            .insert_eni(&Eni {
                instance_id: Some(id.into()),
                mac: format!("02:00:00:00:00:0{k}"),
                tap: format!("tap{k}"),
                attachment_id: Some(format!("eni-attach-000000000000000{k}a")),
                delete_on_termination: true,
                ..Eni::sample(&format!("eni-000000000000000{k}a"), ip)
            })
            .unwrap();
    }
    let imds = Imds::new(cloud);
    (dir, imds)
}

const A: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 4);
const B: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 5);

#[test]
fn v2_tokens_are_per_instance_and_v1_works_while_optional() {
    let (_d, s) = setup();
    let t = s.answer(&put_token("60"), BRIDGE, A);
    assert_eq!(t.response.status, 200);
    assert_eq!(t.ttl, Some(1), "token responses leave with hop limit 1");
    assert!(t
        .response
        .headers
        .contains(&("X-aws-ec2-metadata-token-ttl-seconds", "60".into())));
    let token = body(&t);
    let a = s.answer(
        &get("/latest/meta-data/instance-id", Some(&token)),
        BRIDGE,
        A,
    );
    assert_eq!(
        (a.response.status, body(&a).as_str()),
        (200, "i-0000000000000000a")
    );
    assert_eq!(a.ttl, None);
    // A stopped and started again (a new launch time): the old token is refused.
    s.cloud
        .db
        .set_launch_time("i-0000000000000000a", 1_000_000)
        .unwrap();
    let a = s.answer(
        &get("/latest/meta-data/instance-id", Some(&token)),
        BRIDGE,
        A,
    );
    assert_eq!(a.response.status, 401, "a token outlived a stop");
    let token = body(&s.answer(&put_token("60"), BRIDGE, A));
    // B presenting A's token: 401.
    let b = s.answer(
        &get("/latest/meta-data/instance-id", Some(&token)),
        BRIDGE,
        B,
    );
    assert_eq!(b.response.status, 401);
    // IMDSv1 while tokens are optional.
    let b = s.answer(&get("/latest/meta-data/instance-id", None), BRIDGE, B);
    assert_eq!(body(&b), "i-0000000000000000b");
    assert_eq!(
        s.answer(
            &get("/latest/meta-data/instance-id", Some("forged")),
            BRIDGE,
            A
        )
        .response
        .status,
        401
    );
}

#[test]
fn required_tokens_hop_limit_and_disabled_endpoint() {
    let (_d, s) = setup();
    let mut o = MetadataOptions {
        http_tokens: HttpTokens::Required,
        http_put_response_hop_limit: 3,
        ..MetadataOptions::default()
    };
    s.cloud
        .db
        .set_metadata_options("i-0000000000000000a", &o)
        .unwrap();
    assert_eq!(
        s.answer(&get("/latest/meta-data/", None), BRIDGE, A)
            .response
            .status,
        401
    );
    let t = s.answer(&put_token("21600"), BRIDGE, A);
    assert_eq!(t.ttl, Some(3));
    let ok = s.answer(
        &get("/latest/meta-data/local-ipv4", Some(&body(&t))),
        BRIDGE,
        A,
    );
    assert_eq!(body(&ok), "172.31.0.4");
    o.http_endpoint = Toggle::Disabled;
    s.cloud
        .db
        .set_metadata_options("i-0000000000000000a", &o)
        .unwrap();
    assert_eq!(s.answer(&put_token("60"), BRIDGE, A).response.status, 403);
}

#[test]
fn bad_token_requests() {
    let (_d, s) = setup();
    for ttl in ["0", "21601", "x", ""] {
        assert_eq!(
            s.answer(&put_token(ttl), BRIDGE, A).response.status,
            400,
            "{ttl}"
        );
    }
    let no_ttl = req("PUT /latest/api/token HTTP/1.1\r\n\r\n");
    assert_eq!(s.answer(&no_ttl, BRIDGE, A).response.status, 400);
    let forwarded = req(
        "PUT /latest/api/token HTTP/1.1\r\nX-Forwarded-For: 10.0.0.1\r\n\
         X-aws-ec2-metadata-token-ttl-seconds: 60\r\n\r\n",
    );
    assert_eq!(s.answer(&forwarded, BRIDGE, A).response.status, 403);
    let versioned = req(
        "PUT /2021-03-23/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\n\r\n",
    );
    assert_eq!(s.answer(&versioned, BRIDGE, A).response.status, 403);
    let other = req("PUT /latest/meta-data/ HTTP/1.1\r\n\r\n");
    assert_eq!(s.answer(&other, BRIDGE, A).response.status, 405);
    let post = req("POST /latest/api/token HTTP/1.1\r\n\r\n");
    assert_eq!(s.answer(&post, BRIDGE, A).response.status, 405);
}

#[test]
fn strangers_get_nothing() {
    let (_d, s) = setup();
    let stranger = Ipv4Addr::new(172, 31, 0, 200);
    assert_eq!(
        s.answer(&put_token("60"), BRIDGE, stranger).response.status,
        403
    );
    assert_eq!(
        s.answer(&get("/latest/meta-data/", None), BRIDGE, stranger)
            .response
            .status,
        403
    );
    // The right address on another bridge is somebody else.
    assert_eq!(
        s.answer(&get("/latest/meta-data/", None), "strato-other", A)
            .response
            .status,
        403
    );
    // A stopped instance is not served.
    s.cloud
        .db
        .set_state("i-0000000000000000a", &[State::Running], State::Stopped, "")
        .unwrap();
    assert_eq!(
        s.answer(&get("/latest/meta-data/", None), BRIDGE, A)
            .response
            .status,
        403
    );
}

#[test]
fn the_tree_user_data_and_versions() {
    let (_d, s) = setup();
    let g = |p: &str| {
        let a = s.answer(&get(p, None), BRIDGE, A);
        (a.response.status, body(&a))
    };
    assert_eq!(
        g("/latest/user-data"),
        (200, "user data of i-0000000000000000a".into())
    );
    assert_eq!(
        s.answer(&get("/latest/user-data", None), BRIDGE, A)
            .response
            .content_type,
        "application/octet-stream"
    );
    assert_eq!(g("/latest/user-data/"), (404, "Not Found".into()));
    assert_eq!(g("/latest/").0, 200);
    assert_eq!(g("/latest/").1, "dynamic\nmeta-data\nuser-data");
    assert!(g("/").1.ends_with("\nlatest"));
    assert_eq!(
        g("/2009-04-04/meta-data/instance-id").1,
        "i-0000000000000000a"
    );
    assert_eq!(g("/2009-4-04/meta-data/instance-id").0, 404);
    assert_eq!(
        g("/latest/meta-data/placement/availability-zone").1,
        "home-1a"
    );
    assert_eq!(g("/latest/meta-data/placement/region").1, "home-1");
    assert_eq!(g("/latest/meta-data/public-keys/").1, "0=lab");
    assert_eq!(
        g("/latest/meta-data/public-keys/0/openssh-key").1,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 lab"
    );
    assert_eq!(g("/latest/meta-data/mac").1, "02:00:00:00:00:00");
    assert_eq!(
        g("/latest/meta-data/network/interfaces/macs/02:00:00:00:00:00/subnet-ipv4-cidr-block").1,
        "172.31.0.0/20"
    );
    assert_eq!(
        g("/latest/meta-data/block-device-mapping/root").1,
        "/dev/vda"
    );
    assert_eq!(g("/latest/meta-data/no-such-thing").0, 404);
    assert_eq!(
        g("/latest/meta-data/tags/instance/Name").0,
        404,
        "tags are opt-in"
    );
    assert_eq!(g("/nonsense").0, 404);
    // A leaf with a trailing slash answers its value, as EC2 does: botocore's region lookup
    // asks for exactly this path.
    assert_eq!(
        g("/latest/meta-data/placement/availability-zone/"),
        (200, "home-1a".into())
    );
    assert_eq!(g("/latest/meta-data/instance-id/").1, "i-0000000000000000a");
    assert_eq!(
        g("/latest/meta-data/placement").1,
        g("/latest/meta-data/placement/").1
    );
    // An empty segment names nothing: never the listing of the level above.
    for p in [
        "/latest//meta-data/ramdisk-id",
        "/latest//meta-data/",
        "/latest/meta-data//instance-id",
        "/latest/meta-data//",
        "//latest/meta-data/instance-id",
        "/latest//",
        "//",
    ] {
        assert_eq!(g(p), (404, "Not Found".into()), "{p}");
    }
    let doc: serde_json::Value =
        serde_json::from_str(&g("/latest/dynamic/instance-identity/document").1).unwrap();
    assert_eq!(doc["accountId"], "111111111111");
    assert_eq!(doc["region"], "home-1");
    let head = req("HEAD /latest/meta-data/instance-id HTTP/1.1\r\n\r\n");
    assert_eq!(s.answer(&head, BRIDGE, A).response.status, 200);
}

#[test]
fn a_secondary_address_speaks_for_its_instance() {
    let (_d, s) = setup();
    s.cloud
        .db
        .add_secondary_ips("eni-0000000000000000a", &["172.31.0.9".to_string()])
        .unwrap();
    let second = Ipv4Addr::new(172, 31, 0, 9);
    let a = s.answer(&get("/latest/meta-data/instance-id", None), BRIDGE, second);
    assert_eq!(body(&a), "i-0000000000000000a");
    let a = s.answer(
        &get(
            "/latest/meta-data/network/interfaces/macs/02:00:00:00:00:00/local-ipv4s",
            None,
        ),
        BRIDGE,
        A,
    );
    assert_eq!(body(&a), "172.31.0.4\n172.31.0.9");
}
