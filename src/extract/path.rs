//! Path parameters, parsed into domain types.

use axum::{
    extract::{FromRequestParts, Path},
    http::request::Parts,
};

use crate::{domain::employee::EmpId, error::ApiError};

/// `{emp_id}` from the path, parsed (422 with `loc: ["path", "emp_id"]` otherwise).
pub struct EmpIdPath(pub EmpId);

impl<S: Send + Sync> FromRequestParts<S> for EmpIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let invalid = |kind, msg: String| ApiError::field("path", "emp_id", kind, msg);
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| invalid("int_parsing", "Input should be a valid integer".into()))?;
        EmpId::parse_str(&raw)
            .map(EmpIdPath)
            .map_err(|e| invalid(e.kind, e.msg))
    }
}
