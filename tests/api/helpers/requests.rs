//! Request builders, client addresses, and request bodies with a will of their own.

use std::{
    convert::Infallible,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{
    Router,
    body::{Body, Bytes, HttpBody},
    extract::ConnectInfo,
    http::{Method, Request, header},
};
use http_body_util::BodyExt;
use hyper::body::Frame;
use tower::ServiceExt;

use super::TestResponse;

/// A client address other than `app.peer` (TEST-NET-1, so it never collides with a real one).
pub fn other_peer(last_octet: u8) -> SocketAddr {
    SocketAddr::from(([192, 0, 2, last_octet], 40_000))
}

/// Makes `req` appear to come from `peer`.
pub fn from_peer(mut req: Request<Body>, peer: SocketAddr) -> Request<Body> {
    req.extensions_mut().insert(ConnectInfo(peer));
    req
}

/// Makes `req` appear to come from `peer`, unless it already names its client address.
pub fn from_peer_unless_set(req: Request<Body>, peer: SocketAddr) -> Request<Body> {
    if req.extensions().get::<ConnectInfo<SocketAddr>>().is_some() {
        req
    } else {
        from_peer(req, peer)
    }
}

/// A request without a body, with a bearer token when given.
pub fn bare_req(method: Method, path: &str, token: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    builder.body(Body::empty()).expect("valid request")
}

pub fn get_req(path: &str, token: Option<&str>) -> Request<Body> {
    bare_req(Method::GET, path, token)
}

/// A request with an `application/json` body (the body need not be valid JSON).
pub fn json_req(
    method: Method,
    path: &str,
    token: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let (parts, _) = with_header(
        bare_req(method, path, token),
        "content-type",
        "application/json",
    )
    .into_parts();
    Request::from_parts(parts, body.into())
}

/// `POST /auth/token` with a form body.
pub fn login_req(username: &str, password: &str) -> Request<Body> {
    let form = serde_urlencoded::to_string([("username", username), ("password", password)])
        .expect("form encodes");
    Request::builder()
        .method(Method::POST)
        .uri("/auth/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(form))
        .expect("valid request")
}

pub fn with_header(mut req: Request<Body>, name: &'static str, value: &str) -> Request<Body> {
    req.headers_mut()
        .insert(name, value.parse().expect("valid header value"));
    req
}

/// Sends `req` to any router (e.g. a second instance) and reads the whole answer.
pub async fn call(router: &Router, req: Request<Body>) -> TestResponse {
    let res = router
        .clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    let (parts, body) = res.into_parts();
    let body = body.collect().await.expect("response body").to_bytes();
    TestResponse {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for paths and queries).
pub fn pct(text: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        }
    }
    out
}

/// `data` as a request body in `size`-byte pieces, with no length known in advance (as
/// `Transfer-Encoding: chunked`): only reading it finds out how long it is.
pub fn chunked(data: &[u8], size: usize) -> Body {
    let pieces: Vec<Bytes> = data.chunks(size).map(Bytes::copy_from_slice).collect();
    Body::new(Pieces(pieces.into_iter()))
}

struct Pieces(std::vec::IntoIter<Bytes>);

impl HttpBody for Pieces {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.next().map(|b| Ok(Frame::data(b))))
    }
}

/// A request body whose sender never sends anything (a stalled or slowloris client). It
/// signals `reading` the first time the server asks it for data: from then on the request is
/// past every layer that could refuse it early, and holds its place.
pub struct Stalled {
    reading: Arc<tokio::sync::Notify>,
}

impl Stalled {
    /// The body, and what fires once the server starts reading it.
    pub fn body() -> (Body, Arc<tokio::sync::Notify>) {
        let reading = Arc::new(tokio::sync::Notify::new());
        (
            Body::new(Stalled {
                reading: reading.clone(),
            }),
            reading,
        )
    }
}

impl HttpBody for Stalled {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        // `notify_one` stores a permit, so a waiter that arrives later still wakes.
        self.reading.notify_one();
        Poll::Pending
    }
}

/// A JSON `POST` to `path` as `token` whose body never arrives, and what fires once the
/// server starts reading it (see [`Stalled`]).
pub fn stalled_post(path: &str, token: &str) -> (Request<Body>, Arc<tokio::sync::Notify>) {
    let (body, reading) = Stalled::body();
    (json_req(Method::POST, path, Some(token), body), reading)
}

/// A socket address written out, e.g. `"[::ffff:127.0.0.1]:5000"`.
pub fn addr(text: &str) -> SocketAddr {
    text.parse()
        .unwrap_or_else(|_| panic!("{text:?} is a socket address"))
}
