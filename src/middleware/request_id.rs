//! Request ids: a client's `X-Request-Id` is kept only when it is short and plain; otherwise
//! (and when absent) a UUID is made. The id is returned on every response and carried by
//! every log line of the request.

use axum::{extract::Request, http::HeaderName, middleware::Next, response::Response};

/// The header that carries the request id.
pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Drops a client's request id unless it is 1-64 of `A-Za-z0-9-_.:` (so log lines cannot be
/// forged through it); the id layer then generates a fresh one.
pub async fn drop_malformed(mut req: Request, next: Next) -> Response {
    let valid = req.headers().get(&HEADER).is_none_or(|v| {
        let b = v.as_bytes();
        !b.is_empty()
            && b.len() <= 64
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
    });
    if !valid {
        req.headers_mut().remove(&HEADER);
    }
    next.run(req).await
}
