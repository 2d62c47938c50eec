//! The OpenAPI 3.1 document's frame (info, security scheme, shared components) and the pages
//! that show it: Swagger UI at `/docs` and ReDoc at `/redoc`, both built into the binary. The
//! operations are described on their handlers, in `routes`.

use axum::Router;
use utoipa::{
    IntoParams, Modify, OpenApi, ToResponse,
    openapi::{
        OpenApi as OpenApiDoc,
        security::{ApiKey, ApiKeyValue, Flow, OAuth2, Password, Scopes, SecurityScheme},
    },
};
use utoipa_swagger_ui::SwaggerUi;

use crate::{
    config::settings::{DEFAULT_MAX_OFFSET, DEFAULT_PASSWORD_MIN_LENGTH},
    domain::{employee::Employee, scope::Scope, user::User, validation::FieldError},
    error::{ErrorDetail, ValidationErrorBody},
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Employee Management API",
        description = "Employee records and user accounts. Log in at `/auth/token` (OAuth2 password \
                       flow) and send the token as `Authorization: Bearer <token>`. Any user reads; \
                       administrators create, change and delete.\n\nErrors are `{\"detail\": \"...\"}`; \
                       validation errors (422) are `{\"detail\": [{\"loc\", \"msg\", \"type\"}]}`.",
        license(name = "MIT")
    ),
    components(
        schemas(ErrorDetail, ValidationErrorBody, FieldError, Employee, User),
        responses(
            Unauthorized,
            Forbidden,
            SessionRequired,
            PreconditionFailed,
            PreconditionRequired,
            TooManyRequests,
            PayloadTooLarge,
            NotJson
        )
    ),
    modifiers(&SecurityAddon),
    tags(
        (name = "Authentication", description = "Registration and login"),
        (name = "Users", description = "Accounts"),
        (name = "Employees", description = "Employee records"),
        (name = "Health", description = "Liveness and readiness"),
    )
)]
pub struct ApiDoc;

struct SecurityAddon;

// Responses shared by many operations, described once. Each answer's body is an `ErrorDetail`.

/// Missing, invalid or expired credentials, or a user that no longer exists.
#[derive(ToResponse)]
#[response(
    example = json!({"detail": "Not authenticated"}),
    headers(("WWW-Authenticate" = String, description = "`Bearer`, with `error=\"invalid_token\"` when a token was sent"))
)]
pub struct Unauthorized(pub ErrorDetail);

/// The caller is not an administrator.
#[derive(ToResponse)]
#[response(example = json!({"detail": "The user does not have administrative privileges"}))]
pub struct Forbidden(pub ErrorDetail);

/// `If-Match` named another version of the employee.
#[derive(ToResponse)]
#[response(
    example = json!({"detail": "The employee was changed since you read it: read it again, then retry with its new ETag"}),
    headers(("ETag" = String, description = "The current version's entity tag"))
)]
pub struct PreconditionFailed(pub ErrorDetail);

/// `REQUIRE_IF_MATCH` is on and the write came without `If-Match`.
#[derive(ToResponse)]
#[response(example = json!({"detail": "This request needs If-Match with the ETag from a GET of the employee"}))]
pub struct PreconditionRequired(pub ErrorDetail);

/// An API key was sent where only a login session may act.
#[derive(ToResponse)]
#[response(example = json!({"detail": "This needs a login session; API keys cannot do it"}))]
pub struct SessionRequired(pub ErrorDetail);

/// Over a rate limit or a login throttle.
#[derive(ToResponse)]
#[response(
    example = json!({"detail": "Too many requests"}),
    headers(("Retry-After" = u64, description = "Seconds to wait"))
)]
pub struct TooManyRequests(pub ErrorDetail);

/// The request body is over 1 MiB.
#[derive(ToResponse)]
#[response(example = json!({"detail": "Request body too large"}))]
pub struct PayloadTooLarge(pub ErrorDetail);

/// The request body is not `application/json`.
#[derive(ToResponse)]
#[response(example = json!({"detail": "Unsupported media type: expected application/json"}))]
pub struct NotJson(pub ErrorDetail);

/// The `Idempotency-Key` request header of the operations that create (see
/// `routes::idempotency`).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[expect(dead_code, reason = "describes a request header for OpenAPI only")]
pub struct IdempotencyKeyHeader {
    /// Makes a retry safe (draft-ietf-httpapi-idempotency-key-header): the first answer to a
    /// request with this key is stored for your credential for IDEMPOTENCY_TTL_HOURS (24 by
    /// default), and a repeat of the same request gets that answer again, with
    /// `Idempotent-Replayed: true`, and writes nothing. The same key with another request
    /// (method, path, query, media type or body) is a 422; a repeat while the first still runs
    /// is a 409 with `Retry-After`. A 422 or 5xx answer is not stored: the key stays free. Use a
    /// new key (a UUID, say) for each new request.
    #[param(
        rename = "Idempotency-Key",
        value_type = String,
        required = false,
        min_length = 1,
        max_length = 255,
        pattern = "^[!-~]+$",
        example = json!("8e03978e-40d5-43e8-bc93-6894a57f9324")
    )]
    idempotency_key: Option<String>,
}

impl Modify for SecurityAddon {
    fn modify(&self, openapi: &mut OpenApiDoc) {
        let components = openapi.components.get_or_insert_with(Default::default);
        // The password flow with its refresh endpoint and every scope, so clients and Swagger
        // UI's "Authorize" can discover them.
        let scopes: Scopes = Scope::ALL
            .into_iter()
            .map(|s| (s.as_str().to_owned(), s.description().to_owned()))
            .collect();
        components.add_security_scheme(
            "OAuth2PasswordBearer",
            SecurityScheme::OAuth2(OAuth2::with_description(
                [Flow::Password(Password::with_refresh_url(
                    "/auth/token",
                    scopes,
                    "/auth/token",
                ))],
                "Log in at /auth/token (grant_type=password); refresh there too \
                 (grant_type=refresh_token). Access tokens carry the scopes requested, limited \
                 to what the account may hold.",
            )),
        );
        // API keys for scripts: `X-API-Key`, or the same key as a bearer token.
        components.add_security_scheme(
            "ApiKey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "An API key (`emp_...`) from POST /api-keys; its scopes were chosen at creation.",
            ))),
        );
    }
}

/// The limits the document states that settings choose, so the document served says what this
/// server accepts: the deepest `offset` (`MAX_OFFSET`) and the shortest new password
/// (`PASSWORD_MIN_LENGTH`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_offset: u64,
    pub password_min_length: usize,
}

impl Default for Limits {
    /// The limits at their default settings.
    fn default() -> Self {
        Self {
            max_offset: DEFAULT_MAX_OFFSET,
            password_min_length: DEFAULT_PASSWORD_MIN_LENGTH,
        }
    }
}

/// The new-password fields whose minimum length is `PASSWORD_MIN_LENGTH`: (schema, property).
const NEW_PASSWORDS: [(&str, &str); 3] = [
    ("UserCreate", "password"),
    ("PasswordChange", "new_password"),
    ("PasswordReset", "new_password"),
];

/// `doc` with `limits` written in: the maximum of every `offset` query parameter and the
/// minimum length of every new password. (The handlers declare the widest values the settings
/// allow; this narrows them to the configured ones.)
pub fn with_limits(doc: OpenApiDoc, limits: Limits) -> OpenApiDoc {
    let Ok(mut json) = serde_json::to_value(&doc) else {
        return doc;
    };
    if let Some(paths) = json["paths"].as_object_mut() {
        for operation in paths.values_mut().filter_map(|p| p.as_object_mut()) {
            for op in operation.values_mut() {
                let params = op["parameters"].as_array_mut().into_iter().flatten();
                for param in params.filter(|p| p["name"] == "offset" && p["in"] == "query") {
                    param["schema"]["maximum"] = limits.max_offset.into();
                }
            }
        }
    }
    for (schema, property) in NEW_PASSWORDS {
        let field = &mut json["components"]["schemas"][schema]["properties"][property];
        if field.is_object() {
            field["minLength"] = limits.password_min_length.into();
        }
    }
    serde_json::from_value(json).unwrap_or(doc)
}

/// The ReDoc bundle (redoc 2.5.4, MIT; see assets/README.md), served from the binary.
const REDOC_JS: &[u8] = include_bytes!("../assets/redoc/redoc.standalone.js");

/// The ReDoc page: no inline script, nothing from other origins.
const REDOC_HTML: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Employee Management API - ReDoc</title>
</head>
<body>
<redoc spec-url="/openapi.json"></redoc>
<script src="/redoc/redoc.standalone.js"></script>
</body>
</html>
"#;

/// `/openapi.json`, the Swagger UI at `/docs` and ReDoc at `/redoc`.
pub fn docs_router<S: Clone + Send + Sync + 'static>(openapi: OpenApiDoc) -> Router<S> {
    use axum::{http::header, response::Html, routing::get};
    let config = utoipa_swagger_ui::Config::new(["/openapi.json"]).validator_url("none");
    Router::from(
        SwaggerUi::new("/docs")
            .url("/openapi.json", openapi)
            .config(config),
    )
    .route("/redoc", get(|| async { Html(REDOC_HTML) }))
    .route(
        "/redoc/redoc.standalone.js",
        get(|| async {
            (
                [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                REDOC_JS,
            )
        }),
    )
}
