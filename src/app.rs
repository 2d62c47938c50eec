//! Application state and the complete router: routes, middleware, fallbacks.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    body::Body,
    error_handling::HandleErrorLayer,
    extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State},
    http::{HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use tower::{BoxError, ServiceBuilder};

use tower_http::{
    catch_panic::CatchPanicLayer,
    cors::{AllowOrigin, CorsLayer},
    limit::RequestBodyLimitLayer,
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, RequestId, SetRequestIdLayer},
    timeout::TimeoutLayer,
    trace::TraceLayer,
};

use crate::{
    auth::{
        extract::{VerifiedSubject, bearer_token},
        password::PasswordHasher,
        token::TokenKeys,
    },
    config::{Config, Secret},
    db::Db,
    domain::password::PasswordPolicy,
    error::ApiError,
    rate_limit::{Decision, Limiters, client_ip},
    redis_store::RedisStore,
    routes,
};

/// The largest request body accepted: 1 MiB.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Everything a handler may need. Cloning is one reference-count increment: axum clones the
/// state several times per request, and a struct of separate `Arc`s made that about a quarter
/// of the CPU of a simple request (measured with perf).
#[derive(Clone)]
pub struct AppState(Arc<SharedState>);

impl std::ops::Deref for AppState {
    type Target = SharedState;

    fn deref(&self) -> &SharedState {
        &self.0
    }
}

/// The contents of [`AppState`].
pub struct SharedState {
    pub db: Db,
    pub tokens: Arc<TokenKeys>,
    pub hasher: PasswordHasher,
    pub policy: Arc<PasswordPolicy>,
    pub limiters: Arc<Limiters>,
    pub redis: Option<RedisStore>,
    pub config: Arc<Config>,
    /// Set when shutdown begins: `/readyz` answers 503 so load balancers stop sending traffic.
    pub shutting_down: Arc<AtomicBool>,
}

impl AppState {
    /// Builds the state. `secret` is the resolved JWT secret; `redis_prefix` namespaces keys.
    pub fn new(
        config: Config,
        db: Db,
        secret: &Secret,
        redis_prefix: &str,
    ) -> Result<Self, ApiError> {
        let redis = match &config.redis_url {
            Some(url) => Some(
                RedisStore::new(url.expose(), redis_prefix)
                    .map_err(|e| ApiError::internal("REDIS_URL", e))?,
            ),
            None => None,
        };
        let limiters = Limiters::new(&config, redis.clone());
        Ok(Self(Arc::new(SharedState {
            db,
            tokens: Arc::new(TokenKeys::new(
                secret.expose().as_bytes(),
                config.jwt_algorithm,
                config.token_ttl,
            )),
            hasher: PasswordHasher::new(config.hash_concurrency)?,
            policy: Arc::new(PasswordPolicy::new(config.password_min_length)),
            limiters,
            redis,
            config: Arc::new(config),
            shutting_down: Arc::new(AtomicBool::new(false)),
        })))
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}

/// The complete application. Layers run top to bottom on the way in (see comments).
pub fn build_router(state: AppState) -> Router {
    let (router, openapi) = routes::router().split_for_parts();
    let router = router.merge(crate::openapi::docs_router(openapi));
    let config = state.config.clone();

    let overload = ServiceBuilder::new()
        // Past the cap, answer 503 at once instead of queueing without bound.
        .layer(HandleErrorLayer::new(|_: BoxError| async {
            ApiError::Unavailable {
                retry_after_secs: 1,
            }
            .into_response()
        }))
        .load_shed()
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            config.max_concurrent_requests,
        ));

    // `Router::layer` wraps everything added so far, so the LAST layer below is the OUTERMOST:
    // read this list bottom-up for the order a request passes through.
    let request_id = HeaderName::from_static("x-request-id");
    router
        .fallback(|| async { ApiError::NotFound("Not Found") })
        // Innermost: charge the request to its client (after the cheap refusals above it).
        .layer(middleware::from_fn_with_state(state.clone(), rate_limit))
        // Content-Length over the limit is refused before reading; chunked bodies are cut off
        // at the limit while being read (the extractors turn that into 413).
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(RequestBodyLimitLayer::new(BODY_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .layer(overload)
        .layer(cors_layer(&config))
        .layer(middleware::from_fn(json_error_bodies))
        .layer(middleware::from_fn(record_metrics))
        .layer(middleware::from_fn(security_headers))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(make_span)
                .on_response(on_response),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        // A client's request id is checked first, so every later log line carries a clean one.
        .layer(middleware::from_fn(drop_malformed_request_id))
        // Outermost: a panic anywhere becomes a plain 500, never a dropped connection.
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("handler panicked".into()).into_response()
        }))
        .with_state(state)
}

fn make_span(req: &Request) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", MatchedPath::as_str);
    let request_id = req
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %req.method(),
        route,
        request_id,
        user_id = tracing::field::Empty,
    )
}

fn on_response(res: &Response, latency: Duration, _span: &tracing::Span) {
    tracing::info!(
        status = res.status().as_u16(),
        latency_ms = latency.as_secs_f64() * 1000.0,
        "request finished"
    );
}

/// Counts each request and its latency per method, matched route and status.
async fn record_metrics(req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().as_str().to_owned();
    // The route template, never the raw path, so label values stay few.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("<unmatched>", MatchedPath::as_str)
        .to_owned();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(started.elapsed().as_secs_f64());
    res
}

/// Keeps a client's `X-Request-Id` only when it is short and plain; otherwise a fresh one is
/// generated (so log lines cannot be forged through it).
async fn drop_malformed_request_id(mut req: Request, next: Next) -> Response {
    let valid = req.headers().get("x-request-id").is_none_or(|v| {
        let b = v.as_bytes();
        !b.is_empty()
            && b.len() <= 64
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.:".contains(c))
    });
    if !valid {
        req.headers_mut().remove("x-request-id");
    }
    next.run(req).await
}

/// Headers every response carries (OWASP secure headers).
async fn security_headers(req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let is_docs = path.starts_with("/docs") || path.starts_with("/redoc");
    let mut res = next.run(req).await;
    let headers = res.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    headers.remove(header::SERVER);
    if is_docs {
        // Swagger UI and ReDoc: their own scripts and styles only, nothing from other origins.
        // ReDoc's search runs in a worker made from a blob: URL.
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
                 connect-src 'self'; worker-src 'self' blob:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            ),
        );
        headers
            .entry(header::CACHE_CONTROL)
            .or_insert(HeaderValue::from_static("no-cache"));
    } else {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res
}

/// Gives error responses produced outside the handlers (405 from routing, 413 from the body
/// limit, 408 from the timeout) the same `{"detail": ...}` body as every other error.
async fn json_error_bodies(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return res;
    }
    let (mut parts, _) = res.into_parts();
    let detail = match status {
        StatusCode::METHOD_NOT_ALLOWED => "Method Not Allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "Request body too large",
        StatusCode::REQUEST_TIMEOUT => "Request timed out",
        StatusCode::NOT_FOUND => "Not Found",
        other => other.canonical_reason().unwrap_or("Error"),
    };
    let body = serde_json::json!({ "detail": detail }).to_string();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

fn cors_layer(config: &Config) -> CorsLayer {
    if config.cors_allowed_origins.is_empty() {
        // No CORS headers at all: browsers keep the same-origin policy.
        return CorsLayer::new();
    }
    let origins: Vec<HeaderValue> = config
        .cors_allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([
            HeaderName::from_static("x-total-count"),
            header::LINK,
            HeaderName::from_static("x-request-id"),
        ])
        .max_age(Duration::from_secs(600))
}

/// Paths that are never rate limited: probes from the orchestrator or load balancer.
fn is_probe(path: &str) -> bool {
    matches!(path, "/healthz" | "/readyz")
}

/// Charges each request to its client (user id for a valid token, else IP address).
async fn rate_limit(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let subject = bearer_token(req.headers()).and_then(|t| state.tokens.verify(t));
    if let Some(id) = subject {
        req.extensions_mut().insert(VerifiedSubject(id));
    }
    let Some(bucket) = state
        .limiters
        .requests
        .as_ref()
        .filter(|_| !is_probe(req.uri().path()))
    else {
        return next.run(req).await;
    };
    let key = match subject {
        Some(id) => format!("u:{id}"),
        None => {
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0);
            format!(
                "ip:{}",
                client_ip(peer, req.headers(), &state.config.trusted_proxies)
            )
        }
    };
    let decision = bucket.check(&key).await;
    let mut res = if decision.allowed {
        next.run(req).await
    } else {
        tracing::warn!(event = "excess_rate_limit_exceeded", client = %key, "request budget exhausted");
        metrics::counter!("rate_limit_rejections_total", "limit" => "request").increment(1);
        ApiError::TooManyRequests {
            retry_after_secs: decision.retry_after_secs,
        }
        .into_response()
    };
    add_rate_limit_headers(&mut res, &decision, 60);
    res
}

/// RateLimit fields of draft-ietf-httpapi-ratelimit-headers-06.
pub fn add_rate_limit_headers(res: &mut Response, d: &Decision, window_secs: u64) {
    let headers = res.headers_mut();
    headers.insert("ratelimit-limit", HeaderValue::from(d.limit));
    headers.insert("ratelimit-remaining", HeaderValue::from(d.remaining));
    headers.insert("ratelimit-reset", HeaderValue::from(d.reset_secs));
    if let Ok(policy) = HeaderValue::from_str(&format!("{};w={window_secs}", d.limit)) {
        headers.insert("ratelimit-policy", policy);
    }
}
