//! `Idempotency-Key` with the body it guards: [`Idempotent<B>`] reads the key (422 at
//! `header.idempotency-key` when it is not 1-255 visible ASCII characters), and, only when one
//! was sent, buffers the body to fingerprint the request before handing it to `B`. What is done
//! with the key is in `routes::idempotency`.

use axum::{
    body::Body,
    extract::{FromRequest, Request},
    http::{HeaderMap, header},
};

use crate::{
    domain::{
        idempotency::{Fingerprint, IdempotencyKey},
        validation::FieldError,
    },
    error::ApiError,
    extract::body::read_body,
};

/// The request header, as axum names it.
pub const HEADER: &str = "idempotency-key";

/// A request that carried a valid `Idempotency-Key`: the key and what the request was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedRequest {
    pub key: IdempotencyKey,
    pub fingerprint: Fingerprint,
}

/// A request body `B`, with the [`KeyedRequest`] when the request carried a key. It reads the
/// body, so it is the handler's last extractor: the credential is checked (401, 403) before the
/// body is read or any key is looked at.
#[derive(Debug)]
pub struct Idempotent<B> {
    pub keyed: Option<KeyedRequest>,
    pub body: B,
}

/// The key of the request, if it sent one: 422 for an invalid one or for several.
fn read_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let mut values = headers.get_all(HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let refuse = |kind, msg: &str| {
        ApiError::Validation(vec![FieldError::new(
            vec!["header".into(), HEADER.into()],
            kind,
            msg,
        )])
    };
    if values.next().is_some() {
        return Err(refuse(
            "too_many_values",
            "Send one Idempotency-Key, not several",
        ));
    }
    IdempotencyKey::parse(value.as_bytes())
        .map(Some)
        .map_err(|invalid| refuse(invalid.kind, &invalid.msg))
}

impl<S, B> FromRequest<S> for Idempotent<B>
where
    S: Send + Sync,
    B: FromRequest<S, Rejection = ApiError>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let Some(key) = read_key(req.headers())? else {
            return Ok(Idempotent {
                keyed: None,
                body: B::from_request(req, state).await?,
            });
        };
        let (parts, body) = req.into_parts();
        // Within the body limit (413) and deadline (408), like every body.
        let bytes = read_body(Request::from_parts(parts.clone(), body), state).await?;
        let fingerprint = Fingerprint::of(
            parts.method.as_str(),
            parts.uri.path(),
            parts.uri.query().unwrap_or(""),
            parts
                .headers
                .get(header::CONTENT_TYPE)
                .map_or(&[][..], |v| v.as_bytes()),
            &bytes,
        );
        let body = B::from_request(Request::from_parts(parts, Body::from(bytes)), state).await?;
        Ok(Idempotent {
            keyed: Some(KeyedRequest { key, fingerprint }),
            body,
        })
    }
}
