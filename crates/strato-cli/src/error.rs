//! The CLI's errors and their exit statuses, which follow the AWS CLI: 254 when the
//! service answered with an error, 255 for everything else that went wrong at run time
//! (connection, waiters), 2 for bad usage.

use tonic::{Code, Status};

/// Exit status for a usage error (clap uses the same).
pub const EXIT_USAGE: u8 = 2;
/// Exit status when the service returned an error.
pub const EXIT_SERVICE: u8 = 254;
/// Exit status for connection failures and failed waits.
pub const EXIT_OTHER: u8 = 255;

/// Everything that can make a command fail after its arguments were parsed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The daemon rejected the call.
    #[error("An error occurred ({code}) when calling the {operation} operation: {message}")]
    Service {
        /// The API operation, e.g. `DescribeInstances`.
        operation: &'static str,
        /// The EC2 error code, e.g. `InvalidInstanceID.NotFound`.
        code: String,
        /// The message without its leading code.
        message: String,
    },
    /// The daemon could not be reached.
    #[error("Could not connect to the endpoint URL: \"{endpoint}\": {detail}")]
    Connect {
        /// The endpoint as given.
        endpoint: String,
        /// The underlying cause.
        detail: String,
    },
    /// An argument that clap accepted but that is still unusable.
    #[error("{0}")]
    Usage(String),
    /// A `--wait` gave up or the resource ended up in the wrong state.
    #[error("{0}")]
    Wait(String),
    /// Writing the output failed.
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    /// Converts a failed call of `operation` into an error.
    ///
    /// The daemon sends the EC2 code in the `ec2-error-code` metadata and as the
    /// message's `<Code>: ` prefix; a status without either comes from the transport or
    /// a foreign server, so the gRPC code stands in for it.
    pub fn from_status(operation: &'static str, status: &Status, endpoint: &str) -> Self {
        let message = status.message();
        let metadata_code = status
            .metadata()
            .get(strato_proto::ERROR_CODE_METADATA)
            .and_then(|v| v.to_str().ok())
            .filter(|code| !code.is_empty());
        let code = match metadata_code {
            Some(code) => code.to_owned(),
            None => match message_code(message) {
                Some(code) => code.to_owned(),
                None if status.code() == Code::Unavailable => {
                    return CliError::Connect {
                        endpoint: endpoint.to_owned(),
                        detail: message.to_owned(),
                    };
                }
                // Debug of tonic's Code is its gRPC name, e.g. `Unimplemented`.
                None => format!("{:?}", status.code()),
            },
        };
        let message = message
            .strip_prefix(code.as_str())
            .and_then(|rest| rest.strip_prefix(": "))
            .unwrap_or(message)
            .to_owned();
        CliError::Service {
            operation,
            code,
            message,
        }
    }

    /// What to do next, for the errors a newcomer meets first: printed on a line of its own
    /// after the error, which keeps the AWS CLI's wording.
    pub fn hint(&self) -> Option<String> {
        match self {
            CliError::Connect { endpoint, .. } => Some(format!(
                "Is stratod running? Start it with scripts/run.sh (or install it as a service \
                 with scripts/install.sh), or point --endpoint or STRATO_ENDPOINT at its socket \
                 (this call used {endpoint})."
            )),
            CliError::Service { code, message, .. } => service_hint(code, message),
            _ => None,
        }
    }

    /// The process exit status for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Service { .. } => EXIT_SERVICE,
            CliError::Usage(_) => EXIT_USAGE,
            CliError::Connect { .. } | CliError::Wait(_) | CliError::Output(_) => EXIT_OTHER,
        }
    }
}

fn service_hint(code: &str, message: &str) -> Option<String> {
    match code {
        "InvalidParameterValue"
            if message.contains("InstanceType") || message.contains("custom instance type") =>
        {
            Some(
                "`strato describe-instance-types` lists the instance types; any other size is \
                 custom-<vcpus>-<MiB>, e.g. custom-1-64."
                    .into(),
            )
        }
        // `--image-id probe`: a name where an ID belongs.
        "InvalidAMIID.Malformed" => {
            let id = message.split('"').nth(1)?;
            (!id.starts_with("ami-") && !id.is_empty()).then(|| {
                format!(
                    "Image IDs look like ami-0123456789abcdef0. To find the ID of the image named \
                     {id:?}: strato describe-images --filters Name=name,Values={id}"
                )
            })
        }
        _ => None,
    }
}

/// The `<Code>` of a message shaped `<Code>: <message>`, where a code is a dotted
/// identifier such as `InvalidAMIID.Malformed`.
fn message_code(message: &str) -> Option<&str> {
    let (code, _) = message.split_once(": ")?;
    let is_code = code.starts_with(|c: char| c.is_ascii_uppercase())
        && code.chars().all(|c| c.is_ascii_alphanumeric() || c == '.');
    is_code.then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::metadata::MetadataValue;

    fn status_with_code(code: &'static str, message: &str) -> Status {
        let mut status = Status::not_found(message);
        status.metadata_mut().insert(
            strato_proto::ERROR_CODE_METADATA,
            MetadataValue::from_static(code),
        );
        status
    }

    #[test]
    fn prints_like_the_aws_cli() {
        let status = status_with_code(
            "InvalidInstanceID.NotFound",
            "InvalidInstanceID.NotFound: The instance ID 'i-1' does not exist",
        );
        let err = CliError::from_status("DescribeInstances", &status, "unix:/x");
        assert_eq!(
            err.to_string(),
            "An error occurred (InvalidInstanceID.NotFound) when calling the \
             DescribeInstances operation: The instance ID 'i-1' does not exist"
        );
        assert_eq!(err.exit_code(), 254);
    }

    #[test]
    fn keeps_a_message_without_the_prefix() {
        let status = status_with_code("AuthFailure", "token expired");
        let err = CliError::from_status("RunInstances", &status, "unix:/x");
        assert_eq!(
            err.to_string(),
            "An error occurred (AuthFailure) when calling the RunInstances operation: \
             token expired"
        );
    }

    #[test]
    fn falls_back_to_the_message_then_the_grpc_code() {
        let status = Status::invalid_argument("InvalidParameterValue: bad count");
        let err = CliError::from_status("RunInstances", &status, "unix:/x");
        assert!(err
            .to_string()
            .starts_with("An error occurred (InvalidParameterValue) when"));
        assert!(err.to_string().ends_with("operation: bad count"));

        let status = Status::unimplemented("no such method: here");
        let err = CliError::from_status("Console", &status, "unix:/x");
        assert!(err
            .to_string()
            .starts_with("An error occurred (Unimplemented) when"));
        assert!(err.to_string().ends_with("operation: no such method: here"));
    }

    #[test]
    fn newcomers_get_a_hint() {
        let err = |code: &'static str, message: &str| {
            CliError::from_status("RunInstances", &status_with_code(code, message), "unix:/x")
        };
        let hint = err(
            "InvalidParameterValue",
            "Invalid value 't9.huge' for InstanceType.",
        )
        .hint()
        .unwrap();
        assert!(hint.contains("describe-instance-types") && hint.contains("custom-<vcpus>-<MiB>"));
        let hint = err(
            "InvalidAMIID.Malformed",
            "Invalid id: \"probe\" (expecting \"ami-...\")",
        )
        .hint()
        .unwrap();
        assert!(
            hint.contains("describe-images --filters Name=name,Values=probe"),
            "{hint}"
        );
        assert_eq!(
            err("InvalidAMIID.Malformed", "Invalid id: \"ami-x\"").hint(),
            None
        );
        assert_eq!(err("InvalidInstanceID.NotFound", "nope").hint(), None);
        let connect = CliError::Connect {
            endpoint: "unix:/var/lib/strato/stratod.sock".into(),
            detail: "No such file or directory (os error 2)".into(),
        };
        let hint = connect.hint().unwrap();
        for needle in [
            "STRATO_ENDPOINT",
            "--endpoint",
            "scripts/run.sh",
            "unix:/var/lib",
        ] {
            assert!(hint.contains(needle), "{needle}: {hint}");
        }
    }

    #[test]
    fn unavailable_without_a_code_is_a_connection_error() {
        let status = Status::unavailable("connection refused");
        let err = CliError::from_status("DescribeImages", &status, "http://[::1]:1");
        assert_eq!(
            err.to_string(),
            "Could not connect to the endpoint URL: \"http://[::1]:1\": connection refused"
        );
        assert_eq!(err.exit_code(), 255);
    }
}
