//! API errors: an EC2 error code plus a sentence, turned into a gRPC status whose message is
//! "<Code>: <message>" and whose `ec2-error-code` metadata entry carries the code alone (the
//! convention documented in `proto/strato/v1/common.proto`).

use tonic::Status;

mod codes;

pub use codes::{ErrorCode, UnknownCode};

/// An error the API reports to its caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ApiError {
    /// EC2 error code, e.g. `InvalidInstanceID.NotFound`.
    pub code: ErrorCode,
    /// What went wrong, for a person.
    pub message: String,
}

impl ApiError {
    /// An error with this code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// `InvalidParameterValue`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidParameterValue, message)
    }

    /// `MissingParameter`.
    pub fn missing(name: &str) -> Self {
        Self::new(
            ErrorCode::MissingParameter,
            format!("The request must contain the parameter {name}"),
        )
    }

    /// `IncorrectInstanceState`.
    pub fn incorrect_state(id: &str, state: &str, action: &str) -> Self {
        Self::new(
            ErrorCode::IncorrectInstanceState,
            format!("The instance '{id}' is not in a state from which it can be {action} (it is {state})."),
        )
    }

    /// `InternalError`: a fault of the host, not of the request.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InternalError, message)
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        let mut status = Status::new(e.code.grpc(), format!("{}: {}", e.code, e.message));
        status.metadata_mut().insert(
            strato_proto::ERROR_CODE_METADATA,
            tonic::metadata::MetadataValue::from_static(e.code.as_str()),
        );
        status
    }
}

impl From<crate::db::DbError> for ApiError {
    fn from(e: crate::db::DbError) -> Self {
        tracing::error!(error = %e, "state store failure");
        if let crate::db::DbError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) = &e {
            if f.code == rusqlite::ErrorCode::DiskFull {
                return ApiError::internal(
                    "The state store failed: the disk of the host's data directory is full; nothing was changed.",
                );
            }
        }
        ApiError::internal(format!("The state store failed: {e}"))
    }
}

/// An error and its sources as one line, for logs and messages at the edge.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut msg = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    msg
}

/// Result of an API operation.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    #[test]
    fn status_carries_code_in_message_and_metadata() {
        let s: Status =
            ApiError::new(ErrorCode::InvalidInstanceIdNotFound, "no such instance").into();
        assert_eq!(s.code(), Code::NotFound);
        assert_eq!(s.message(), "InvalidInstanceID.NotFound: no such instance");
        let md = s.metadata().get(strato_proto::ERROR_CODE_METADATA).unwrap();
        assert_eq!(md.to_str().unwrap(), "InvalidInstanceID.NotFound");
    }

    #[test]
    fn grpc_codes_follow_the_ec2_code() {
        let c = |code: &str| Status::from(ApiError::new(code.parse().unwrap(), "x")).code();
        assert_eq!(c("IncorrectInstanceState"), Code::FailedPrecondition);
        assert_eq!(c("AuthFailure"), Code::PermissionDenied);
        assert_eq!(c("InvalidParameterValue"), Code::InvalidArgument);
        assert_eq!(c("InvalidAMIName.Duplicate"), Code::AlreadyExists);
        assert_eq!(c("InternalError"), Code::Internal);
        assert_eq!(
            c("InvalidLaunchTemplateName.AlreadyExistsException"),
            Code::AlreadyExists
        );
        assert_eq!(
            c("InvalidLaunchTemplateName.NotFoundException"),
            Code::NotFound
        );
        assert_eq!(c("InvalidLaunchTemplateId.VersionNotFound"), Code::NotFound);
        assert_eq!(c("InvalidPlacementGroup.InUse"), Code::FailedPrecondition);
        assert_eq!(c("InsufficientInstanceCapacity"), Code::ResourceExhausted);
    }
}
