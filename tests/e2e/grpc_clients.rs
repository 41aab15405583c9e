//! The gRPC API driven by a stock client that has no strato code: Python's grpcio with
//! grpcio-reflection and grpcio-health-checking (from the pinned venv of `scripts/test.sh`).
//! It finds the services by server reflection (v1alpha, the version grpcio-reflection's
//! client speaks, beside v1), fetches the health service's file by its standard name, and
//! calls strato's methods with messages built from the reflected descriptors, on the Unix
//! socket (with `grpc.default_authority`, see docs/api.md) and on TCP with a token.

#![allow(clippy::unwrap_used)]

use strato_e2e::query::venv_bin;
use strato_e2e::{fast_config, Daemon};

const SCRIPT: &str = r#"
import sys, grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

sock, tcp, ca = sys.argv[1], sys.argv[2], sys.argv[3]
# grpc-core names a Unix socket's percent-encoded path as :authority, which is no valid
# host name for the server's HTTP/2 layer; a plain authority is.
ch = grpc.insecure_channel("unix:" + sock, options=[("grpc.default_authority", "localhost")])

health = health_pb2_grpc.HealthStub(ch)
for svc in ["", "strato.v1.Compute", "strato.v1.Regions"]:
    r = health.Check(health_pb2.HealthCheckRequest(service=svc), timeout=10)
    assert r.status == health_pb2.HealthCheckResponse.SERVING, (svc, r)
try:
    health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
    raise SystemExit("an unknown service was healthy")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.NOT_FOUND, e

refl = reflection_pb2_grpc.ServerReflectionStub(ch)
def ask(**req):
    return list(refl.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(**req)]), timeout=10))[0]
names = {s.name for s in ask(list_services="").list_services_response.service}
for want in ["grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection",
             "grpc.reflection.v1.ServerReflection", "strato.v1.Compute", "strato.v1.Regions"]:
    assert want in names, (want, sorted(names))
f = ask(file_by_filename="grpc/health/v1/health.proto")
assert f.WhichOneof("message_response") == "file_descriptor_response", f
f = ask(file_containing_symbol="grpc.health.v1.Health")
from google.protobuf import descriptor_pb2
fd = descriptor_pb2.FileDescriptorProto.FromString(f.file_descriptor_response.file_descriptor_proto[0])
assert fd.name == "grpc/health/v1/health.proto", fd.name

# strato's own methods, from reflected descriptors only.
pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(ch))
def call(channel, service, method, fields, metadata=()):
    m = pool.FindServiceByName(service).FindMethodByName(method)
    req_cls = message_factory.GetMessageClass(m.input_type)
    resp_cls = message_factory.GetMessageClass(m.output_type)
    rpc = channel.unary_unary("/%s/%s" % (service, method),
                              request_serializer=req_cls.SerializeToString,
                              response_deserializer=resp_cls.FromString)
    return rpc(req_cls(**fields), metadata=metadata, timeout=10)
regions = call(ch, "strato.v1.Regions", "DescribeRegions", {})
assert [r.region_name for r in regions.regions] == ["home-1"], regions
vpcs = call(ch, "strato.v1.Vpcs", "DescribeVpcs", {})
assert any(v.is_default for v in vpcs.vpcs), vpcs

# TCP speaks TLS with the daemon's own CA; a token names the account; none is refused.
t = grpc.secure_channel(tcp, grpc.ssl_channel_credentials(open(ca, "rb").read()))
made = call(t, "strato.v1.KeyPairs", "CreateKeyPair", {"key_name": "grpcio"},
            metadata=[("authorization", "Bearer token-alice")])
assert made.key_name == "grpcio", made
listed = call(t, "strato.v1.KeyPairs", "DescribeKeyPairs", {},
              metadata=[("authorization", "Bearer token-alice")])
assert [k.key_name for k in listed.key_pairs] == ["grpcio"], listed
try:
    call(t, "strato.v1.KeyPairs", "DescribeKeyPairs", {})
    raise SystemExit("TCP without a token was answered")
except grpc.RpcError as e:
    assert e.code() == grpc.StatusCode.PERMISSION_DENIED and "AuthFailure" in e.details(), e
print("ok")
"#;

#[test]
fn grpcio_finds_and_calls_the_api_by_reflection() {
    let mut cfg = fast_config();
    cfg["listen"] = serde_json::json!(["tcp:127.0.0.1:7311"]);
    let d = Daemon::start_with("grpcio", cfg);
    let out = std::process::Command::new("ip")
        .args(["netns", "exec", &d.ns])
        .arg(venv_bin("python"))
        .args(["-c", SCRIPT])
        .arg(&d.socket)
        .arg("127.0.0.1:7311")
        .arg(d.data().join("tls").join("ca.pem"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim() == "ok",
        "grpcio failed ({}):\n{stdout}{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        d.log()
    );
}
