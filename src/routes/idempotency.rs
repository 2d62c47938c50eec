//! Safe retries of the operations that create (`POST /employees/` and `POST /employees/import`):
//! [`at_most_once`] runs an operation once per credential and `Idempotency-Key`, and answers a
//! repeat with the first answer, stored, plus `Idempotent-Replayed: true`.
//!
//! The key is claimed in the database before the operation runs, so a repeat that arrives
//! meanwhile gets 409 instead of running a second time. Which answers are stored is
//! [`is_final`]'s decision; the others give the key up, so a retry runs anew.

use std::future::Future;

use axum::{
    body::{Body, HttpBody, to_bytes},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::{
    app::AppState,
    db::{
        Db,
        idempotency::{Claim, ClaimId, MAX_STORED_BODY, StoredAnswer},
    },
    domain::{
        clock::unix_now,
        idempotency::{IdempotencyKey, Owner},
        validation::FieldError,
    },
    error::ApiError,
    extract::{
        auth::Principal,
        idempotency::{HEADER, KeyedRequest},
    },
};

/// The response header that marks a replayed answer.
pub const REPLAYED: &str = "idempotent-replayed";

/// The headers of an answer that are stored with it: what a client reads of a creation. Never
/// `Set-Cookie`, the `RateLimit-*` fields, `Retry-After`, `WWW-Authenticate` or the request id:
/// those are about the request at hand, and the middleware sets them afresh on the replay.
const KEPT_HEADERS: [HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::LOCATION,
    header::CONTENT_LOCATION,
    header::ETAG,
    header::LAST_MODIFIED,
];

/// The first request usually ends within milliseconds; its claim ends with it, or at the
/// latest with its lease.
const IN_USE_RETRY_AFTER_SECS: u64 = 1;

/// Whether `status` is the final word on its request, stored and replayed. Not stored:
/// - 5xx: the server failed; a retry should run the request again;
/// - 408 and 429: the request was cut short or not served;
/// - 401 and 403: about the credential, not the request (the extractors answer these before
///   any key is claimed; this is the second line);
/// - 422: the request was refused as invalid, and nothing was written; the client corrects it
///   and may send it under the same key.
///
/// Everything else is: the 2xx, and a 409 that says the `emp_id` exists (what the data was when
/// the request ran: a repeat gets that answer even if the employee has been deleted since).
fn is_final(status: StatusCode) -> bool {
    !(status.is_server_error()
        || matches!(
            status,
            StatusCode::REQUEST_TIMEOUT
                | StatusCode::TOO_MANY_REQUESTS
                | StatusCode::UNAUTHORIZED
                | StatusCode::FORBIDDEN
                | StatusCode::UNPROCESSABLE_ENTITY
        ))
}

/// Whose answers these are: the API key, or the user of a login session.
fn owner_of(principal: &Principal) -> Owner {
    match &principal.api_key {
        Some(key) => Owner::api_key(key.id),
        None => Owner::user(principal.user.id),
    }
}

/// Runs `operation` for `principal`; with a key (`keyed`), at most once per credential and key:
///
/// - a repeat of an answered request (same fingerprint) gets the stored answer, and nothing
///   else happens;
/// - a repeat while the first still runs gets 409 with `Retry-After`;
/// - the same key with a different request gets 422 at `header.idempotency-key`.
///
/// Errors of the operation come back as responses (`Ok`), stored or not by [`is_final`]; `Err`
/// is only the key's own refusals and a database that cannot take the claim (503).
pub async fn at_most_once<F, Fut, R>(
    state: &AppState,
    principal: &Principal,
    keyed: Option<KeyedRequest>,
    operation: F,
) -> Result<Response, ApiError>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<R, ApiError>>,
    R: IntoResponse,
{
    let Some(KeyedRequest { key, fingerprint }) = keyed else {
        return operation().await.map(IntoResponse::into_response);
    };
    let owner = owner_of(principal);
    let terms = state.idempotency_terms();
    let claim = match state
        .db
        .claim_idempotency_key(&owner, &key, &fingerprint, unix_now(), terms)
        .await?
    {
        Claim::Claimed(claim) => claim,
        Claim::Answered(answer) => {
            tracing::info!(
                event = "idempotent_replay",
                owner = owner.as_str(),
                status = answer.status,
                "stored answer replayed"
            );
            return replay(answer);
        }
        Claim::Running => {
            tracing::info!(
                event = "idempotency_key_in_use",
                owner = owner.as_str(),
                "repeat while the first request runs"
            );
            return Err(ApiError::IdempotencyKeyInUse {
                retry_after_secs: IN_USE_RETRY_AFTER_SECS,
            });
        }
        Claim::Mismatch => {
            return Err(ApiError::Validation(vec![FieldError::new(
                vec!["header".into(), HEADER.into()],
                "idempotency_key_reused",
                "This Idempotency-Key was used for a different request (method, path, query, \
                 media type or body): send a new key with a new request",
            )]));
        }
    };
    let held = Held {
        db: state.db.clone(),
        owner,
        key,
        claim,
        settled: false,
    };
    let response = operation().await.into_response();
    if !is_final(response.status()) {
        held.release().await;
        return Ok(response);
    }
    let (parts, body) = response.into_parts();
    // The operations' answers are whole JSON bodies of known length; anything else is not
    // stored (and then not replayable: the key is given up).
    let fits = body
        .size_hint()
        .exact()
        .is_some_and(|len| len <= MAX_STORED_BODY as u64);
    if !fits {
        tracing::warn!("an answer too large to store for its Idempotency-Key; the key is released");
        held.release().await;
        return Ok(Response::from_parts(parts, body));
    }
    let bytes = match to_bytes(body, MAX_STORED_BODY).await {
        Ok(bytes) => bytes,
        Err(e) => {
            held.release().await;
            return Err(ApiError::internal("reading an answer to store", e));
        }
    };
    let answer = StoredAnswer {
        status: parts.status.as_u16(),
        headers: kept_headers(&parts.headers),
        body: bytes.to_vec(),
    };
    held.store(&answer, terms.ttl).await;
    Ok(Response::from_parts(parts, Body::from(bytes)))
}

fn kept_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    KEPT_HEADERS
        .iter()
        .flat_map(|name| {
            headers.get_all(name).iter().filter_map(move |value| {
                value
                    .to_str()
                    .ok()
                    .map(|value| (name.as_str().to_owned(), value.to_owned()))
            })
        })
        .collect()
}

/// The stored answer as a response, marked as a replay.
fn replay(answer: StoredAnswer) -> Result<Response, ApiError> {
    let corrupt = |what: &str| ApiError::internal("stored idempotent answer", what);
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() =
        StatusCode::from_u16(answer.status).map_err(|_| corrupt("invalid status"))?;
    let headers = response.headers_mut();
    for (name, value) in answer.headers {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| corrupt("header name"))?;
        let value = HeaderValue::from_str(&value).map_err(|_| corrupt("header value"))?;
        headers.append(name, value);
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    Ok(response)
}

/// A claim on a key while its operation runs. Dropped before it is settled (the request was
/// cancelled by its timeout, the client went away, the handler panicked, or the answer could
/// not be stored), it gives the key up from a background task, so a retry need not wait for
/// the lease to run out.
struct Held {
    db: Db,
    owner: Owner,
    key: IdempotencyKey,
    claim: ClaimId,
    settled: bool,
}

impl Held {
    /// Stores the answer under the claim.
    async fn store(mut self, answer: &StoredAnswer, ttl: i64) {
        let stored = self
            .db
            .store_idempotent_answer(&self.owner, &self.key, &self.claim, answer, unix_now(), ttl)
            .await;
        match stored {
            Ok(true) => self.settled = true,
            Ok(false) => {
                // Only after the lease ran out, which outlasts any request: a clock jump.
                self.settled = true;
                tracing::warn!(
                    owner = self.owner.as_str(),
                    "an Idempotency-Key claim was taken over before its answer was stored"
                );
            }
            Err(e) => tracing::warn!(
                error = %e,
                "could not store the answer for an Idempotency-Key; the key is released"
            ),
        }
    }

    /// Gives the key up: a retry runs anew.
    async fn release(mut self) {
        self.settled = true;
        release(&self.db, &self.owner, &self.key, &self.claim).await;
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (db, owner, key, claim) = (
            self.db.clone(),
            self.owner.clone(),
            self.key.clone(),
            self.claim.clone(),
        );
        runtime.spawn(async move { release(&db, &owner, &key, &claim).await });
    }
}

async fn release(db: &Db, owner: &Owner, key: &IdempotencyKey, claim: &ClaimId) {
    if let Err(e) = db.release_idempotency_key(owner, key, claim).await {
        tracing::warn!(
            error = %e,
            "could not release an Idempotency-Key claim; it ends with its lease"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_answers_are_stored_and_answers_that_invite_a_retry_are_not() {
        for (status, stored) in [
            (StatusCode::OK, true),
            (StatusCode::CREATED, true),
            (StatusCode::CONFLICT, true),
            (StatusCode::NOT_FOUND, true),
            (StatusCode::UNPROCESSABLE_ENTITY, false),
            (StatusCode::UNAUTHORIZED, false),
            (StatusCode::FORBIDDEN, false),
            (StatusCode::REQUEST_TIMEOUT, false),
            (StatusCode::TOO_MANY_REQUESTS, false),
            (StatusCode::INTERNAL_SERVER_ERROR, false),
            (StatusCode::SERVICE_UNAVAILABLE, false),
        ] {
            assert_eq!(is_final(status), stored, "{status}");
        }
    }

    #[test]
    fn only_the_headers_a_client_reads_of_a_creation_are_kept() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("content-type", "application/json"),
            ("location", "/employees/7"),
            ("etag", "\"12\""),
            ("set-cookie", "session=secret"),
            ("ratelimit-remaining", "3"),
            ("retry-after", "5"),
            ("www-authenticate", "Bearer"),
            ("x-request-id", "abc"),
        ] {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let mut kept = kept_headers(&headers);
        kept.sort();
        assert_eq!(
            kept,
            [
                ("content-type".to_owned(), "application/json".to_owned()),
                ("etag".to_owned(), "\"12\"".to_owned()),
                ("location".to_owned(), "/employees/7".to_owned()),
            ]
        );
    }
}
