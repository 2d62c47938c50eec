//! The audit trail, for administrators: every recorded event, oldest first, in pages that
//! follow `after=<seq>`. Sequence numbers are handed out in commit order, so following the
//! `next` links is also a change feed that never misses an entry.

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    app::AppState,
    db::audit::{AuditFilter, StoredEntry},
    domain::{
        audit::{Action, ActorKind},
        clock::rfc3339_millis,
        validation::FieldError,
    },
    error::{ApiError, ValidationErrorBody},
    extract::{auth::UserAdmin, query::ApiQuery},
    openapi::{Forbidden, Unauthorized},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(audit_trail))
}

/// An audit action's dotted name: one of [`Action::ALL`], so the document lists exactly the
/// names the trail records and the `action` filter accepts.
pub struct ActionName;

impl utoipa::PartialSchema for ActionName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "An audit action: the first part names the kind of target.",
            ))
            .enum_values(Some(Action::ALL.map(Action::as_str)))
            .into()
    }
}

impl ToSchema for ActionName {}

/// Who acted: a user, an API key, the command line, the service itself, or nobody logged in.
#[derive(ToSchema)]
pub enum ActorType {
    #[serde(rename = "user")]
    User,
    #[serde(rename = "api_key")]
    ApiKey,
    #[serde(rename = "cli")]
    Cli,
    #[serde(rename = "system")]
    System,
    #[serde(rename = "anonymous")]
    Anonymous,
}

/// A target's id: a number for employees (`emp_id`), users and API keys, text (a UUID) for
/// sessions.
#[derive(ToSchema)]
#[serde(untagged)]
pub enum AuditTargetId {
    Number(i64),
    Text(String),
}

/// Who did it: `{"type": "user" | "api_key" | "cli" | "system" | "anonymous", "id"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditActor {
    #[serde(rename = "type")]
    #[schema(value_type = ActorType)]
    kind: &'static str,
    /// The user's or API key's id; `null` for the command line, the service and anonymous
    /// callers.
    #[schema(required = true)]
    id: Option<i64>,
}

impl AuditActor {
    pub fn new(kind: ActorKind, id: Option<i64>) -> Self {
        AuditActor {
            kind: kind.as_str(),
            id,
        }
    }
}

/// What it was done to: `{"type": "employee" | "user" | "session" | "api_key", "id"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditTarget {
    #[serde(rename = "type")]
    kind: String,
    /// A number for employees (`emp_id`), users and keys.
    #[schema(value_type = Option<AuditTargetId>, required = true)]
    id: Value,
}

/// One entry of the audit trail.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"seq": 42, "at": "2026-12-02T09:41:07.123Z", "actor": {"type": "user", "id": 1},
    "action": "employee.update", "target": {"type": "employee", "id": 1001}, "request_id": "0b6c9c5e-4d51-4c1d-9a6e-52f4f0f2a7b3",
    "client_ip": "203.0.113.7", "session_id": "9b2f4c1e-6a4d-4b8e-9c55-2f0d1e7a3b10",
    "changes": {"city": {"from": "London", "to": "Zürich"}}, "erased": false,
    "hash": "5f0c1a9e8d0b4c599a533f6f3c1b2a105f0c1a9e8d0b4c599a533f6f3c1b2a10"}))]
pub struct AuditEntryRead {
    seq: i64,
    /// RFC 3339, UTC, milliseconds.
    #[schema(format = DateTime)]
    at: String,
    actor: AuditActor,
    /// A dotted name: `employee.create`, `employee.update`, `employee.delete`,
    /// `employee.restore`, `employee.erase`, `employee.import`, `employee.export`,
    /// `user.create`, `user.login`, `user.login_failed`, `user.logout`, `user.update`,
    /// `user.delete`, `user.password_change`, `user.password_reset`, `session.refresh`,
    /// `session.reuse`, `session.revoke`, `api_key.create`, `api_key.revoke`.
    #[schema(value_type = ActionName)]
    action: String,
    target: AuditTarget,
    /// The HTTP request's id (`X-Request-Id`); `null` when no request made the change.
    #[schema(required = true)]
    request_id: Option<String>,
    #[schema(required = true)]
    client_ip: Option<String>,
    /// The login session it was done in; `null` when it was not done in one.
    #[schema(required = true)]
    session_id: Option<String>,
    /// `{"<field>": {"from", "to"}}`; the values read `null` once the person was erased.
    #[schema(value_type = Object)]
    changes: Value,
    /// The personal values of this entry were erased (GDPR art. 17).
    erased: bool,
    /// The entry's link in the hash chain (hex SHA-256).
    hash: String,
}

impl From<StoredEntry> for AuditEntryRead {
    fn from(e: StoredEntry) -> Self {
        let p = e.public;
        let fields: Vec<String> = serde_json::from_str(&p.fields).unwrap_or_default();
        let values: Map<String, Value> = e
            .personal
            .as_ref()
            .and_then(|x| serde_json::from_str(&x.data).ok())
            .unwrap_or_default();
        let changes: Map<String, Value> = fields
            .into_iter()
            .map(|f| {
                let value = values
                    .get(&f)
                    .cloned()
                    .unwrap_or(json!({"from": null, "to": null}));
                (f, value)
            })
            .collect();
        let target_id = p
            .target_id
            .map(|t| t.parse::<i64>().map_or(Value::String(t), Value::from))
            .unwrap_or(Value::Null);
        AuditEntryRead {
            seq: p.seq,
            at: rfc3339_millis(p.at),
            actor: AuditActor {
                kind: p.actor.as_str(),
                id: p.actor_id,
            },
            action: p.action,
            target: AuditTarget {
                kind: p.target_type,
                id: target_id,
            },
            request_id: p.request_id,
            client_ip: p.client_ip,
            session_id: p.session_id.map(|s| s.to_string()),
            changes: Value::Object(changes),
            erased: e.erased,
            hash: e.hash.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }
}

/// Query parameters of the audit trail.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AuditParams {
    /// Entries after this sequence number (the `next` link carries it).
    #[param(value_type = i64, minimum = 0, required = false)]
    pub(crate) after: Option<String>,
    /// Entries per page.
    #[param(value_type = u32, minimum = 1, maximum = 1000, default = 100, required = false)]
    pub(crate) limit: Option<String>,
    /// Only this actor's entries (a user's or an API key's id).
    #[param(value_type = i64, required = false)]
    pub(crate) actor_id: Option<String>,
    /// Only this action, e.g. `employee.update`.
    #[param(value_type = ActionName, inline, required = false)]
    pub(crate) action: Option<String>,
    /// Only entries about this target id (an `emp_id`, a user id...).
    #[param(value_type = String, min_length = 1, max_length = 64, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$", required = false)]
    pub(crate) target_id: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    #[param(value_type = String, format = DateTime, required = false)]
    pub(crate) since: Option<String>,
    /// Only entries before this time (RFC 3339).
    #[param(value_type = String, format = DateTime, required = false)]
    pub(crate) until: Option<String>,
}

/// What a page of entries asks for.
pub(crate) struct PageRequest {
    pub after: i64,
    pub limit: i64,
    pub filter: AuditFilter,
}

fn int(
    field: &str,
    raw: Option<&str>,
    min: i64,
    max: i64,
    errors: &mut Vec<FieldError>,
) -> Option<i64> {
    let raw = raw?;
    match raw.parse::<i64>() {
        Ok(v) if (min..=max).contains(&v) => Some(v),
        _ => {
            errors.push(FieldError::at(
                "query",
                field,
                "int_parsing",
                format!("Input should be an integer from {min} to {max}"),
            ));
            None
        }
    }
}

fn time(field: &str, raw: Option<&str>, errors: &mut Vec<FieldError>) -> Option<i64> {
    let raw = raw?;
    match OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339) {
        Ok(t) => Some(i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)),
        Err(_) => {
            errors.push(FieldError::at(
                "query",
                field,
                "datetime_parsing",
                "Input should be an RFC 3339 date and time",
            ));
            None
        }
    }
}

impl AuditParams {
    pub(crate) fn parse(&self) -> Result<PageRequest, ApiError> {
        let mut errors = Vec::new();
        let after = int("after", self.after.as_deref(), 0, i64::MAX, &mut errors).unwrap_or(0);
        let limit = int("limit", self.limit.as_deref(), 1, 1000, &mut errors).unwrap_or(100);
        let actor_id = int(
            "actor_id",
            self.actor_id.as_deref(),
            i64::MIN,
            i64::MAX,
            &mut errors,
        );
        let action = match self.action.as_deref() {
            None => None,
            Some(raw) => match Action::parse(raw) {
                Some(a) => Some(a.as_str().to_owned()),
                None => {
                    errors.push(FieldError::at(
                        "query",
                        "action",
                        "literal_error",
                        "Input should be one of the recorded actions, such as 'employee.update'",
                    ));
                    None
                }
            },
        };
        let target_id = self.target_id.clone();
        if target_id.as_ref().is_some_and(|t| {
            t.is_empty() || t.chars().count() > 64 || t.chars().any(char::is_control)
        }) {
            errors.push(FieldError::at(
                "query",
                "target_id",
                "string_too_long",
                "String should have 1 to 64 characters, without control characters",
            ));
        }
        let since = time("since", self.since.as_deref(), &mut errors);
        let until = time("until", self.until.as_deref(), &mut errors);
        if !errors.is_empty() {
            return Err(ApiError::Validation(errors));
        }
        Ok(PageRequest {
            after,
            limit,
            filter: AuditFilter {
                actor_id,
                action,
                target_type: None,
                target_id,
                since,
                until,
            },
        })
    }
}

/// A page of entries as the answer, with `Link: <path?after=...>; rel="next"` when it is full
/// (more may follow). `query` is the rest of the query string to keep in the link.
pub(crate) async fn entries_page(
    state: &AppState,
    path: &str,
    keep: &[(&str, Option<&str>)],
    request: PageRequest,
) -> Result<Response, ApiError> {
    let entries = state
        .db
        .audit_page(&request.filter, request.after, request.limit)
        .await?;
    let full = entries.len() as i64 == request.limit;
    let last = entries.last().map(|e| e.public.seq);
    let body: Vec<AuditEntryRead> = entries.into_iter().map(AuditEntryRead::from).collect();
    let mut res = Json(body).into_response();
    if let (true, Some(last)) = (full, last) {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in keep {
            if let Some(value) = value {
                query.append_pair(name, value);
            }
        }
        query.append_pair("after", &last.to_string());
        query.append_pair("limit", &request.limit.to_string());
        let link = format!("<{path}?{}>; rel=\"next\"", query.finish());
        if let Ok(value) = HeaderValue::from_str(&link) {
            res.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(res)
}

/// The audit trail: recorded events, oldest first, filtered, in pages.
///
/// Follow `Link: rel="next"` (or ask again with `after=<last seq>` until a page comes back
/// short) to read new entries as they are committed: none is ever skipped.
#[utoipa::path(get, path = "/audit", tag = "Audit",
    security(("OAuth2PasswordBearer" = ["users:admin"]), ("ApiKey" = [])),
    params(AuditParams),
    responses(
        (status = 200, description = "Entries, oldest first", body = Vec<AuditEntryRead>, headers(
            ("Link" = String, description = "RFC 8288 link to the next page (rel=\"next\")"))),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, description = "Invalid or unknown query parameter", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["query", "action"], "msg": "Input should be one of the recorded actions, such as 'employee.update'", "type": "literal_error"}]})),
    ))]
async fn audit_trail(
    State(state): State<AppState>,
    _admin: UserAdmin,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Response, ApiError> {
    let request = params.parse()?;
    let keep = [
        ("actor_id", params.actor_id.as_deref()),
        ("action", params.action.as_deref()),
        ("target_id", params.target_id.as_deref()),
        ("since", params.since.as_deref()),
        ("until", params.until.as_deref()),
    ];
    entries_page(&state, "/audit", &keep, request).await
}
