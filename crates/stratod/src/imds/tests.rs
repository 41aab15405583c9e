//! The service's answers, without sockets or a state store: requests as parsed from bytes,
//! callers as (bridge, address) pairs over a [`MetadataSource`] held in memory. The
//! domain's own source is tested beside it (`cloud::compute::metadata_source`).

use super::*;
use crate::db::instances::tests::sample;
use crate::db::instances::MetadataOptions;

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

/// A metadata source held in memory: what the domain would answer, without a state store.
/// Each guest is an instance and the addresses its ENI holds on [`BRIDGE`].
#[derive(Default)]
struct Fake {
    guests: Mutex<Vec<(Vec<Ipv4Addr>, Instance)>>,
}

impl Fake {
    fn guests(&self) -> std::sync::MutexGuard<'_, Vec<(Vec<Ipv4Addr>, Instance)>> {
        self.guests.lock().unwrap()
    }

    /// Changes the instance `id` as the domain would (a stop, a start, new options).
    fn update(&self, id: &str, f: impl FnOnce(&mut Instance)) {
        let mut g = self.guests();
        f(&mut g.iter_mut().find(|(_, i)| i.id == id).unwrap().1);
    }

    /// Gives the ENI of instance `id` another address.
    fn add_ip(&self, id: &str, ip: Ipv4Addr) {
        let mut g = self.guests();
        g.iter_mut().find(|(_, i)| i.id == id).unwrap().0.push(ip);
    }
}

impl MetadataSource for Fake {
    fn bridges(&self) -> ApiResult<Vec<String>> {
        Ok(vec![BRIDGE.into()])
    }

    fn instance_at(&self, bridge: &str, ip: Ipv4Addr) -> Option<Instance> {
        let g = self.guests();
        let (_, inst) = g
            .iter()
            .find(|(ips, _)| bridge == BRIDGE && ips.contains(&ip))?;
        Some(inst.clone())
    }

    /// Guest k holds `2001:db8::` k + 4 (as its IPv4 ends in k + 4).
    fn instance_at6(&self, bridge: &str, ip: Ipv6Addr) -> Option<Instance> {
        let g = self.guests();
        let k = u128::from(ip)
            .checked_sub(u128::from(V6_BASE))?
            .checked_sub(4)?;
        let (_, inst) = g
            .get(usize::try_from(k).ok()?)
            .filter(|_| bridge == BRIDGE)?;
        Some(inst.clone())
    }

    fn view(&self, inst: &Instance) -> Option<tree::View> {
        let g = self.guests();
        let (k, (ips, _)) = g.iter().enumerate().find(|(_, (_, i))| i.id == inst.id)?;
        Some(tree::View {
            instance_id: inst.id.clone(),
            account: inst.owner.clone(),
            reservation_id: inst.reservation_id.clone(),
            image_id: inst.image_id.clone(),
            launch_index: inst.launch_index,
            instance_type: inst.instance_type.clone(),
            architecture: "x86_64".into(),
            region: "home-1".into(),
            az: inst.az.clone(),
            az_id: "home-1-az1".into(),
            group_name: String::new(),
            partition_number: 0,
            key_name: inst.key_name.clone(),
            public_key: inst.public_key.clone(),
            nics: vec![tree::NicView {
                id: format!("eni-000000000000000{k}a"),
                device_index: 0,
                mac: format!("02:00:00:00:00:0{k}"),
                private_ips: ips.iter().map(Ipv4Addr::to_string).collect(),
                public_ips: vec![],
                subnet_id: "subnet-0000000000000000a".into(),
                subnet_cidr: "172.31.0.0/20".into(),
                vpc_id: "vpc-0000000000000000a".into(),
                vpc_cidr: "172.31.0.0/16".into(),
                groups: vec![("sg-0000000000000000a".into(), "default".into())],
                ipv6s: vec![],
                subnet_ipv6_cidrs: vec![],
                vpc_ipv6_cidrs: vec![],
            }],
            block_devices: vec![
                ("ami".into(), inst.root_device_name.clone()),
                ("root".into(), inst.root_device_name.clone()),
            ],
            tags: None,
            pending_time: inst.launch_time,
            iam: None,
        })
    }
}

/// Instances i-…a (172.31.0.4) and i-…b (172.31.0.5), running, on [`BRIDGE`].
fn setup() -> (Arc<Fake>, Imds) {
    let fake = Arc::new(Fake::default());
    for (id, ip) in [
        ("i-0000000000000000a", Ipv4Addr::new(172, 31, 0, 4)),
        ("i-0000000000000000b", Ipv4Addr::new(172, 31, 0, 5)),
    ] {
        let mut i = sample(id, "111111111111");
        i.state = State::Running;
        i.user_data = format!("user data of {id}").into_bytes();
        i.key_name = "lab".into();
        i.public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 lab".into();
        fake.guests().push((vec![ip], i));
    }
    let imds = Imds::new(fake.clone(), Arc::new(Metrics::default()));
    (fake, imds)
}

const A: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 4);
const B: Ipv4Addr = Ipv4Addr::new(172, 31, 0, 5);
const V6_BASE: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0);

#[test]
fn over_ipv6_only_instances_that_enable_it_are_answered() {
    let (f, s) = setup();
    let a6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 4));
    let path = "/latest/meta-data/instance-id";
    assert_eq!(
        s.answer_ip(&get(path, None), BRIDGE, a6).response.status,
        403
    );
    f.update("i-0000000000000000a", |i| {
        i.metadata_options.http_protocol_ipv6 = Toggle::Enabled
    });
    let r = s.answer_ip(&get(path, None), BRIDGE, a6);
    assert_eq!(r.response.status, 200);
    assert_eq!(body(&r), "i-0000000000000000a");
    // Tokens work the same; a stranger's address and another bridge get nothing.
    let t = s.answer_ip(&put_token("60"), BRIDGE, a6);
    assert_eq!((t.response.status, t.ttl), (200, Some(1)));
    let stranger = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 99));
    assert_eq!(
        s.answer_ip(&get(path, None), BRIDGE, stranger)
            .response
            .status,
        403
    );
    assert_eq!(
        s.answer_ip(&get(path, None), "strato1", a6).response.status,
        403
    );
    // IPv4 is unchanged by the option.
    assert_eq!(s.answer(&get(path, None), BRIDGE, A).response.status, 200);
}

#[test]
fn v2_tokens_are_per_instance_and_v1_works_while_optional() {
    let (f, s) = setup();
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
    f.update("i-0000000000000000a", |i| i.launch_time = 1_000_000);
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
    let (f, s) = setup();
    let mut o = MetadataOptions {
        http_tokens: HttpTokens::Required,
        http_put_response_hop_limit: 3,
        ..MetadataOptions::default()
    };
    f.update("i-0000000000000000a", |i| i.metadata_options = o);
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
    f.update("i-0000000000000000a", |i| i.metadata_options = o);
    assert_eq!(s.answer(&put_token("60"), BRIDGE, A).response.status, 403);
}

#[test]
fn bad_token_requests() {
    let (_f, s) = setup();
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
    let (f, s) = setup();
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
    f.update("i-0000000000000000a", |i| i.state = State::Stopped);
    assert_eq!(
        s.answer(&get("/latest/meta-data/", None), BRIDGE, A)
            .response
            .status,
        403
    );
}

#[test]
fn the_tree_user_data_and_versions() {
    let (_f, s) = setup();
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
    let (f, s) = setup();
    let second = Ipv4Addr::new(172, 31, 0, 9);
    f.add_ip("i-0000000000000000a", second);
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
