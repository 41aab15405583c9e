//! Driving a test daemon's EC2 Query API with the real clients: the aws CLI and boto3 from
//! the pinned virtual environment `scripts/test.sh` makes (`target/query-venv`), run inside
//! the daemon's namespace against its loopback listener, over TLS: the aws CLI is given the
//! daemon's own CA with `--ca-bundle`, boto3 and Python with `AWS_CA_BUNDLE`.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

use super::{fast_config, root, Daemon};

/// Where test daemons serve the Query API (inside their own namespace), TLS.
pub const QUERY_LISTEN: &str = "tcp:127.0.0.1:8773";
/// The endpoint URL clients use.
pub const ENDPOINT: &str = "https://127.0.0.1:8773";

/// `fast_config` with the Query API on.
pub fn query_config() -> Value {
    let mut c = fast_config();
    c["ec2_api"] = serde_json::json!({ "listen": QUERY_LISTEN });
    c
}

/// A program of the clients' virtual environment.
pub fn venv_bin(name: &str) -> PathBuf {
    let p = root().join("target/query-venv/bin").join(name);
    assert!(
        p.exists(),
        "{} is missing: the Query API tests need the aws CLI and boto3 that scripts/test.sh \
         installs (`. scripts/lib.sh; ensure_query_clients`)",
        p.display()
    );
    p
}

/// A client of the Query API with one access key.
pub struct Aws<'a> {
    /// The daemon.
    pub d: &'a Daemon,
    /// The access key ID.
    pub key: String,
    /// Its secret.
    pub secret: String,
    /// The region the client signs for.
    pub region: String,
}

impl Daemon {
    /// Creates an access key with the CLI (as `token`'s account, or the admin's) and
    /// returns a client that signs with it.
    pub fn aws(&self, token: Option<&str>) -> Aws<'_> {
        let v = self.json_as(token, &["create-access-key"]);
        Aws {
            d: self,
            key: v["AccessKey"]["AccessKeyId"].as_str().unwrap().to_string(),
            secret: v["AccessKey"]["SecretAccessKey"]
                .as_str()
                .unwrap()
                .to_string(),
            region: "home-1".into(),
        }
    }
}

impl Aws<'_> {
    fn command(&self, program: PathBuf) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.d.ns])
            .arg(program)
            .env("AWS_ACCESS_KEY_ID", &self.key)
            .env("AWS_SECRET_ACCESS_KEY", &self.secret)
            .env("AWS_DEFAULT_REGION", &self.region)
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_MAX_ATTEMPTS", "1")
            .env("STRATO_ENDPOINT_URL", ENDPOINT)
            .env("AWS_CA_BUNDLE", self.d.ca_file())
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_PROFILE");
        c
    }

    /// Runs `aws --endpoint-url … ARGS --output json`; returns its output whatever the
    /// exit status.
    pub fn raw(&self, args: &[&str]) -> Output {
        self.command(venv_bin("aws"))
            .args([
                "--endpoint-url",
                ENDPOINT,
                "--output",
                "json",
                "--ca-bundle",
            ])
            .arg(self.d.ca_file())
            .args(args)
            .output()
            .unwrap()
    }

    /// Runs the aws CLI expecting success; returns its JSON (`null` when it prints none).
    pub fn json(&self, args: &[&str]) -> Value {
        let out = self.raw(args);
        assert!(
            out.status.success(),
            "aws {args:?} failed ({}):\n{}{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.d.log()
        );
        if out.stdout.iter().all(u8::is_ascii_whitespace) {
            return Value::Null;
        }
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// Runs the aws CLI expecting the EC2 error `code`; returns stderr.
    pub fn err(&self, code: &str, args: &[&str]) -> String {
        let out = self.raw(args);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "aws {args:?} succeeded, expected {code}"
        );
        assert!(
            err.contains(&format!("An error occurred ({code})")),
            "aws {args:?}: expected {code}, got: {err}"
        );
        err
    }

    /// Runs a Python script with boto3 (environment: the key, `STRATO_ENDPOINT_URL`);
    /// expects success and returns stdout.
    pub fn python(&self, script: &str) -> String {
        self.python_with_args(script, &[])
    }

    /// [`Aws::python`] with arguments for the script (`sys.argv[1:]`).
    pub fn python_with_args(&self, script: &str, args: &[&str]) -> String {
        let out = self
            .command(venv_bin("python"))
            .args(["-c", script])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "python failed ({}):\n{}{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.d.log()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}
