//! Failures as the API server reports them: a `Status` object with the HTTP code, `reason` and
//! message kubectl prints (`Error from server (NotFound): services "x" not found`). Each is
//! classified once, from its typed cause ([`ApiError`]); store errors map by variant.

use egress_store::StoreError;
use serde_json::{Value, json};

/// A failed request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 401: no or a wrong bearer token.
    #[error("Unauthorized")]
    Unauthorized,
    /// 404 for a path the API does not serve.
    #[error("the server could not find the requested resource")]
    NoSuchPath,
    /// 404 for an object (`services "x" not found`).
    #[error("{0}")]
    NotFound(String),
    /// 409 `AlreadyExists`.
    #[error("{0}")]
    AlreadyExists(String),
    /// 409 `Conflict` (stale resourceVersion, server-side apply field conflicts).
    #[error("{0}")]
    Conflict(String),
    /// 409 `Conflict` of server-side apply: fields other managers own.
    #[error("{message}")]
    FieldConflicts {
        /// The whole message.
        message: String,
        /// Each conflict: `conflict with "manager"` and the field (`.spec.port`).
        causes: Vec<(String, String)>,
    },
    /// 400 `BadRequest`.
    #[error("{0}")]
    BadRequest(String),
    /// 422 `Invalid`: the object failed validation (`The Service "x" is invalid: ...`).
    #[error("{message}")]
    Invalid {
        /// The whole message.
        message: String,
        /// Kind, for `details`.
        kind: String,
        /// Name, for `details`.
        name: String,
        /// Each failed field (`spec.ports[0].port`) and what is wrong with it, for
        /// `details.causes` (kubectl prints them after `The Service "x" is invalid`).
        causes: Vec<(String, String)>,
    },
    /// 400 without a reason: an admission webhook denied the request
    /// (`admission webhook "validation.istio.io" denied the request: ...`).
    #[error("{0}")]
    Denied(String),
    /// 405.
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// 406.
    #[error("{0}")]
    NotAcceptable(String),
    /// 410 `Expired`: a watch from a compacted resourceVersion.
    #[error("{0}")]
    Gone(String),
    /// 415.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 500.
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    /// HTTP status code.
    pub fn code(&self) -> u16 {
        match self {
            ApiError::Unauthorized => 401,
            ApiError::NoSuchPath | ApiError::NotFound(_) => 404,
            ApiError::AlreadyExists(_)
            | ApiError::Conflict(_)
            | ApiError::FieldConflicts { .. } => 409,
            ApiError::BadRequest(_) | ApiError::Denied(_) => 400,
            ApiError::Invalid { .. } => 422,
            ApiError::MethodNotAllowed => 405,
            ApiError::NotAcceptable(_) => 406,
            ApiError::Gone(_) => 410,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::Internal(_) => 500,
        }
    }

    /// `Status.reason` (empty for a webhook denial, as the API server leaves it).
    pub fn reason(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "Unauthorized",
            ApiError::NoSuchPath | ApiError::NotFound(_) => "NotFound",
            ApiError::AlreadyExists(_) => "AlreadyExists",
            ApiError::Conflict(_) | ApiError::FieldConflicts { .. } => "Conflict",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::Denied(_) => "",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::NotAcceptable(_) => "NotAcceptable",
            ApiError::Gone(_) => "Expired",
            ApiError::UnsupportedMediaType(_) => "UnsupportedMediaType",
            ApiError::Internal(_) => "InternalError",
        }
    }

    /// The `Status` object.
    pub fn status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "code": self.code(),
        });
        if !self.reason().is_empty() {
            status["reason"] = Value::from(self.reason());
        }
        if let ApiError::Invalid {
            kind, name, causes, ..
        } = self
        {
            status["details"] = json!({"name": name, "kind": kind});
            if !causes.is_empty() {
                let causes: Vec<Value> = causes
                    .iter()
                    .map(|(field, message)| {
                        json!({"reason": "FieldValueInvalid", "message": message, "field": field})
                    })
                    .collect();
                status["details"]["causes"] = Value::Array(causes);
            }
        }
        if let ApiError::FieldConflicts { causes, .. } = self {
            let causes: Vec<Value> = causes
                .iter()
                .map(|(message, field)| {
                    json!({"reason": "FieldManagerConflict", "message": message, "field": field})
                })
                .collect();
            status["details"] = json!({"causes": causes});
        }
        status
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound { .. } | StoreError::NamespaceNotFound { .. } => {
                ApiError::NotFound(e.to_string())
            }
            StoreError::AlreadyExists { .. } => ApiError::AlreadyExists(e.to_string()),
            StoreError::Conflict { .. } => ApiError::Conflict(e.to_string()),
            StoreError::Expired { .. } => ApiError::Gone(e.to_string()),
            StoreError::InvalidKey { .. } | StoreError::InvalidObject { .. } => {
                ApiError::BadRequest(e.to_string())
            }
            StoreError::Corrupt { .. }
            | StoreError::Io { .. }
            | StoreError::NoStoreDir
            | StoreError::NestedTransaction { .. } => ApiError::Internal(e.to_string()),
        }
    }
}
