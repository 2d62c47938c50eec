//! One employee record: create, read, change, delete.

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use crate::{
    app::AppState,
    db::employees::Write,
    domain::{
        clock::unix_now,
        employee::{Employee, EmployeeChanges, NewEmployee},
        version::Precondition,
    },
    error::{ApiError, DbResultExt, ErrorDetail, ValidationErrorBody},
    extract::{
        auth::{EmployeeWriter, Principal, ReadAccess, Writer},
        body::JsonObject,
        client::Origin,
        conditional::{IfMatch, IfNoneMatch},
        idempotency::Idempotent,
        path::EmpIdPath,
    },
    openapi::{
        Forbidden, IdempotencyKeyHeader, NotJson, PayloadTooLarge, PreconditionFailed,
        PreconditionRequired, Unauthorized,
    },
    routes::idempotency::at_most_once,
};

/// The employee as a response: its JSON with its strong `ETag`.
fn with_etag(status: StatusCode, employee: Employee) -> Response {
    let etag = HeaderValue::from_str(&employee.etag()).ok();
    let mut res = (status, Json(employee)).into_response();
    if let Some(etag) = etag {
        res.headers_mut().insert(header::ETAG, etag);
    }
    res
}

/// The `If-Match` precondition of a write: 428 when `REQUIRE_IF_MATCH` is on and it is absent.
fn precondition(state: &AppState, if_match: IfMatch) -> Result<Precondition, ApiError> {
    match if_match.0 {
        Some(list) => Ok(list.precondition()),
        None if state.config.require_if_match => Err(ApiError::PreconditionRequired),
        None => Ok(Precondition::None),
    }
}

/// A conditional write's outcome as the answer (`T` on success).
fn written<T>(outcome: Write<T>) -> Result<T, ApiError> {
    match outcome {
        Write::Done(value) => Ok(value),
        Write::NotFound => Err(ApiError::NotFound("Employee not found")),
        Write::PreconditionFailed(current) => Err(ApiError::PreconditionFailed {
            etag: current.etag(),
        }),
    }
}

/// Body of `POST /employees/` (documentation; parsing is in `NewEmployee::from_json`).
#[derive(ToSchema)]
#[schema(as = EmployeeCreate, example = json!({"emp_id": 1001, "emp_name": "Ada Lovelace", "city": "London", "country": "United Kingdom", "emp_dob": "1985-12-10"}))]
#[expect(dead_code, reason = "describes the request body for OpenAPI only")]
#[serde(deny_unknown_fields)]
pub(super) struct EmployeeCreate {
    /// Unique employee number.
    #[schema(minimum = 1, maximum = 9007199254740991_i64)]
    emp_id: i64,
    /// 1-200 characters once trimmed; no control characters inside.
    #[schema(
        pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\x00-\x1f\x7f-\x9f]{0,198}[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    emp_name: String,
    /// 1-100 characters once trimmed; no control characters inside.
    #[schema(
        pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\x00-\x1f\x7f-\x9f]{0,98}[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    city: String,
    /// 1-100 characters once trimmed; no control characters inside.
    #[schema(
        pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\x00-\x1f\x7f-\x9f]{0,98}[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    country: String,
    /// `YYYY-MM-DD`, from 1900-01-01 to today (UTC).
    #[schema(value_type = String, format = Date, pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    emp_dob: String,
}

/// Body of `PATCH /employees/{emp_id}`: any subset; only the fields sent change. `null`,
/// `emp_id`, `id` and unknown fields are rejected.
#[derive(ToSchema)]
#[schema(as = EmployeeUpdate, example = json!({"city": "Zürich", "country": "Switzerland"}))]
#[expect(dead_code, reason = "describes the request body for OpenAPI only")]
#[serde(deny_unknown_fields)]
pub struct EmployeeUpdate {
    /// 1-200 characters once trimmed; no control characters inside.
    #[schema(
        nullable = false,
        pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\x00-\x1f\x7f-\x9f]{0,198}[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    emp_name: Option<String>,
    /// 1-100 characters once trimmed; no control characters inside.
    #[schema(
        nullable = false,
        pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\x00-\x1f\x7f-\x9f]{0,98}[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    city: Option<String>,
    /// 1-100 characters once trimmed; no control characters inside.
    #[schema(
        nullable = false,
        pattern = r"^[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000](?:[^\x00-\x1f\x7f-\x9f]{0,98}[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000])?[\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$"
    )]
    country: Option<String>,
    /// `YYYY-MM-DD`, from 1900-01-01 to today (UTC).
    #[schema(value_type = String, nullable = false, required = false, format = Date, pattern = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")]
    emp_dob: Option<String>,
}

/// Create an employee (administrators only).
#[utoipa::path(post, path = "/employees/", tag = "Employees",
    security(("OAuth2PasswordBearer" = ["employees:write"]), ("ApiKey" = [])),
    params(IdempotencyKeyHeader),
    request_body = EmployeeCreate,
    responses(
        (status = 201, description = "Created (or, with `Idempotent-Replayed: true`, the stored answer to the first request with this Idempotency-Key)", body = Employee, headers(
            ("ETag" = String, description = "The strong entity tag of this version"),
            ("Location" = String, description = "The employee's URL"),
            ("Idempotent-Replayed" = String, description = "`true` on a replayed answer; absent otherwise"))),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, description = "emp_id already exists (an answer stored for an Idempotency-Key like a 201), or a request with this Idempotency-Key is still running (with Retry-After)", body = ErrorDetail,
            headers(("Retry-After" = u64, description = "With an Idempotency-Key still in use: seconds to wait")),
            examples(
                ("emp_id_taken" = (value = json!({"detail": "Employee with this emp_id already exists"}))),
                ("idempotency_key_in_use" = (value = json!({"detail": "A request with this Idempotency-Key is still running: retry when it has finished"}))))),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = NotJson),
        (status = 422, description = "Invalid input, an invalid Idempotency-Key, or one already used for a different request; never stored", body = ValidationErrorBody,
            examples(
                ("invalid_field" = (value = json!({"detail": [{"loc": ["body", "emp_dob"], "msg": "Date of birth cannot be in the future", "type": "value_error"}]}))),
                ("idempotency_key_too_long" = (value = json!({"detail": [{"loc": ["header", "idempotency-key"], "msg": "String should have at most 255 characters", "type": "string_too_long"}]}))),
                ("idempotency_key_reused" = (value = json!({"detail": [{"loc": ["header", "idempotency-key"], "msg": "This Idempotency-Key was used for a different request (method, path, query, media type or body): send a new key with a new request", "type": "idempotency_key_reused"}]}))))),
    ))]
pub(super) async fn create_employee(
    State(state): State<AppState>,
    Writer(admin): Writer,
    origin: Origin,
    Idempotent {
        keyed,
        body: JsonObject(body),
    }: Idempotent<JsonObject>,
) -> Result<Response, ApiError> {
    at_most_once(&state, &admin, keyed, || {
        create(&state, &admin, &origin, body)
    })
    .await
}

/// The creation itself: parse, insert, answer 201 with `ETag` and `Location`.
async fn create(
    state: &AppState,
    admin: &Principal,
    origin: &Origin,
    body: Map<String, Value>,
) -> Result<Response, ApiError> {
    let new = NewEmployee::from_json(vec!["body".into()], body).map_err(ApiError::Validation)?;
    let employee = state
        .db
        .insert_employee(new, &admin.audit(origin))
        .await
        .on_conflict("Employee with this emp_id already exists")?;
    tracing::info!(
        event = "employee_created",
        emp_id = employee.emp_id,
        by = admin.user.id,
        "employee created"
    );
    let location = HeaderValue::from_str(&format!("/employees/{}", employee.emp_id)).ok();
    let mut res = with_etag(StatusCode::CREATED, employee);
    if let Some(location) = location {
        res.headers_mut().insert(header::LOCATION, location);
    }
    Ok(res)
}

/// One employee by `emp_id`.
#[utoipa::path(get, path = "/employees/{emp_id}", tag = "Employees",
    security(("OAuth2PasswordBearer" = ["employees:read"]), ("ApiKey" = [])),
    params(
        ("emp_id" = i64, Path, description = "Employee number, 1..=9007199254740991", minimum = 1, maximum = 9007199254740991_i64),
        ("If-None-Match" = Option<String>, Header, nullable = false, pattern = r#"^(?:[ \t]*\*[ \t]*|[ \t,]*(?:W/)?"[!#-~]*"(?:[ \t]*,[ \t,]*(?:W/)?"[!#-~]*")*[ \t,]*)$"#, description = "An ETag from an earlier answer: 304 while it is still current"),
    ),
    responses(
        (status = 200, description = "The employee", body = Employee, headers(("ETag" = String, description = "The strong entity tag of this version"))),
        (status = 304, description = "Not modified: the `If-None-Match` ETag is current", headers(("ETag" = String))),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such employee", body = ErrorDetail, example = json!({"detail": "Employee not found"})),
        (status = 422, description = "emp_id is not an integer in range", body = ValidationErrorBody, example = json!({"detail": [{"loc": ["path", "emp_id"], "msg": "Input should be a valid integer, unable to parse string as an integer", "type": "int_parsing"}]})),
    ))]
pub(super) async fn get_employee(
    State(state): State<AppState>,
    ReadAccess(credential): ReadAccess,
    EmpIdPath(emp_id): EmpIdPath,
    IfNoneMatch(if_none_match): IfNoneMatch,
) -> Result<Response, ApiError> {
    // The per-request credential check and the read share one query on this, the hottest
    // route.
    let (_viewer, employee) = state
        .db
        .employee_seen_by(&credential, emp_id, unix_now())
        .await?
        .ok_or(ApiError::InvalidToken)?;
    let employee = employee.ok_or(ApiError::NotFound("Employee not found"))?;
    if if_none_match.is_some_and(|tags| tags.matches_weakly(&employee.version.to_string())) {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(etag) = HeaderValue::from_str(&employee.etag()) {
            res.headers_mut().insert(header::ETAG, etag);
        }
        return Ok(res);
    }
    Ok(with_etag(StatusCode::OK, employee))
}

/// Change some fields of an employee (administrators only).
#[utoipa::path(patch, path = "/employees/{emp_id}", tag = "Employees",
    security(("OAuth2PasswordBearer" = ["employees:write"]), ("ApiKey" = [])),
    params(
        ("emp_id" = i64, Path, description = "Employee number, 1..=9007199254740991", minimum = 1, maximum = 9007199254740991_i64),
        ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^(?:[ \t]*\*[ \t]*|[ \t,]*(?:W/)?"[!#-~]*"(?:[ \t]*,[ \t,]*(?:W/)?"[!#-~]*")*[ \t,]*)$"#, description = "The ETag the change is based on: 412 if the employee changed since (required with REQUIRE_IF_MATCH)"),
    ),
    request_body = EmployeeUpdate,
    responses(
        (status = 200, description = "The employee as changed", body = Employee, headers(("ETag" = String, description = "The strong entity tag of the new version"))),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such employee", body = ErrorDetail, example = json!({"detail": "Employee not found"})),
        (status = 412, response = PreconditionFailed),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = NotJson),
        (status = 422, description = "Invalid input", body = ValidationErrorBody, example = json!({"detail": [{"loc": ["body", "emp_id"], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"}]})),
        (status = 428, response = PreconditionRequired),
    ))]
pub(super) async fn update_employee(
    State(state): State<AppState>,
    EmployeeWriter {
        admin,
        emp_id,
        current,
    }: EmployeeWriter,
    origin: Origin,
    if_match: IfMatch,
    JsonObject(body): JsonObject,
) -> Result<Response, ApiError> {
    let changes = EmployeeChanges::from_json(body).map_err(ApiError::Validation)?;
    let precondition = precondition(&state, if_match)?;
    let outcome = state
        .db
        .update_employee(
            emp_id,
            current,
            &changes,
            &precondition,
            &admin.audit(&origin),
        )
        .await?;
    let employee = written(outcome)?;
    tracing::info!(
        event = "employee_updated",
        emp_id = employee.emp_id,
        by = admin.user.id,
        "employee updated"
    );
    Ok(with_etag(StatusCode::OK, employee))
}

/// Delete an employee (administrators only).
#[utoipa::path(delete, path = "/employees/{emp_id}", tag = "Employees",
    security(("OAuth2PasswordBearer" = ["employees:write"]), ("ApiKey" = [])),
    params(
        ("emp_id" = i64, Path, description = "Employee number, 1..=9007199254740991", minimum = 1, maximum = 9007199254740991_i64),
        ("If-Match" = Option<String>, Header, nullable = false, pattern = r#"^(?:[ \t]*\*[ \t]*|[ \t,]*(?:W/)?"[!#-~]*"(?:[ \t]*,[ \t,]*(?:W/)?"[!#-~]*")*[ \t,]*)$"#, description = "The ETag the deletion is based on: 412 if the employee changed since (required with REQUIRE_IF_MATCH)"),
    ),
    responses(
        (status = 204, description = "Deleted: gone from every read, kept in the archive (`/employees/deleted`) for DELETED_RETENTION_DAYS"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such employee", body = ErrorDetail, example = json!({"detail": "Employee not found"})),
        (status = 412, response = PreconditionFailed),
        (status = 422, description = "emp_id is not an integer in range", body = ValidationErrorBody, example = json!({"detail": [{"loc": ["path", "emp_id"], "msg": "Input should be a valid integer, unable to parse string as an integer", "type": "int_parsing"}]})),
        (status = 428, response = PreconditionRequired),
    ))]
pub(super) async fn delete_employee(
    State(state): State<AppState>,
    EmployeeWriter {
        admin,
        emp_id,
        current,
    }: EmployeeWriter,
    origin: Origin,
    if_match: IfMatch,
) -> Result<StatusCode, ApiError> {
    let precondition = precondition(&state, if_match)?;
    let outcome = state
        .db
        .delete_employee(emp_id, current, &precondition, &admin.audit(&origin))
        .await?;
    written(outcome)?;
    tracing::info!(
        event = "employee_deleted",
        emp_id = emp_id.get(),
        by = admin.user.id,
        "employee deleted"
    );
    Ok(StatusCode::NO_CONTENT)
}
