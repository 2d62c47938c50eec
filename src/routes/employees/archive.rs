//! Deleted employees and the history of a record, for administrators: the archive a DELETE
//! leaves (`DELETED_RETENTION_DAYS`), restoring from it, erasing from it at once (GDPR art. 17),
//! and the audit entries of one `emp_id`.

use axum::{
    Json,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    app::AppState,
    db::{self, employees::DeletedEmployee},
    domain::{clock::rfc3339, employee::Employee, validation::FieldError},
    error::{ApiError, DbResultExt, ErrorDetail, ValidationErrorBody},
    extract::{
        auth::{UserAdmin, Writer},
        client::Origin,
        path::EmpIdPath,
        query::ApiQuery,
    },
    openapi::{Forbidden, Unauthorized},
    routes::audit::{AuditActor, AuditEntryRead, AuditParams, entries_page},
};

/// A deleted employee: the record as it was, when and by whom it was deleted.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = DeletedEmployeeRead, example = json!({"emp_id": 1001, "emp_name": "Ada Lovelace", "city": "London",
    "country": "United Kingdom", "emp_dob": "1985-12-10", "id": "5f0c1a9e-8d0b-4c59-9a53-3f6f3c1b2a10",
    "deleted_at": "2026-12-02T09:41:07Z", "deleted_by": {"type": "user", "id": 1}}))]
pub(super) struct DeletedRead {
    #[serde(flatten)]
    employee: Employee,
    /// RFC 3339, UTC.
    #[schema(format = DateTime)]
    deleted_at: String,
    deleted_by: AuditActor,
}

impl From<DeletedEmployee> for DeletedRead {
    fn from(d: DeletedEmployee) -> Self {
        DeletedRead {
            employee: d.employee,
            deleted_at: rfc3339(d.deleted_at),
            deleted_by: AuditActor::new(d.deleted_by.0, d.deleted_by.1),
        }
    }
}

/// Query parameters of the archive.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DeletedParams {
    /// Where the previous page ended (`<emp_id>.<n>`, from the `next` link).
    #[param(value_type = String, pattern = "^[0-9]{1,16}\\.[0-9]{1,19}$", required = false)]
    after: Option<String>,
    /// Records per page.
    #[param(value_type = u32, minimum = 1, maximum = 1000, default = 100, required = false)]
    limit: Option<String>,
}

fn invalid(field: &str, msg: &str) -> ApiError {
    ApiError::Validation(vec![FieldError::at("query", field, "value_error", msg)])
}

/// Deleted employees, restorable until erased: ordered by `emp_id` (then deletion), in pages.
#[utoipa::path(get, path = "/employees/deleted", tag = "Employees",
    security(("OAuth2PasswordBearer" = ["employees:write"]), ("ApiKey" = [])),
    params(DeletedParams),
    responses(
        (status = 200, description = "Archived records", body = Vec<DeletedRead>, headers(
            ("Link" = String, description = "RFC 8288 link to the next page (rel=\"next\")"))),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, description = "Invalid or unknown query parameter", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["query", "limit"], "msg": "Input should be an integer from 1 to 1000", "type": "value_error"}]})),
    ))]
pub(super) async fn deleted_employees(
    State(state): State<AppState>,
    _admin: Writer,
    ApiQuery(params): ApiQuery<DeletedParams>,
) -> Result<Response, ApiError> {
    let limit = match params.limit.as_deref() {
        None => 100,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|l| (1..=1000).contains(l))
            .ok_or_else(|| invalid("limit", "Input should be an integer from 1 to 1000"))?,
    };
    let after = match params.after.as_deref() {
        None => None,
        Some(raw) => Some(
            raw.split_once('.')
                .and_then(|(a, b)| Some((a.parse::<i64>().ok()?, b.parse::<i64>().ok()?)))
                .filter(|(a, b)| *a >= 0 && *b >= 0)
                .ok_or_else(|| invalid("after", "Input should be the `after` of a next link"))?,
        ),
    };
    let mut rows = state.db.deleted_page(after, limit + 1).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = rows
        .last()
        .filter(|_| more)
        .map(|d| (d.employee.emp_id, d.deleted_seq));
    let body: Vec<DeletedRead> = rows.into_iter().map(DeletedRead::from).collect();
    let mut res = Json(body).into_response();
    if let Some((emp_id, seq)) = next {
        let link = format!("</employees/deleted?after={emp_id}.{seq}&limit={limit}>; rel=\"next\"");
        if let Ok(value) = HeaderValue::from_str(&link) {
            res.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(res)
}

/// Restore the most recently deleted record of `emp_id`.
#[utoipa::path(post, path = "/employees/{emp_id}/restore", tag = "Employees",
    security(("OAuth2PasswordBearer" = ["employees:write"]), ("ApiKey" = [])),
    params(("emp_id" = i64, Path, description = "Employee number, 1..=9007199254740991", minimum = 1, maximum = 9007199254740991_i64)),
    responses(
        (status = 200, description = "Restored", body = Employee, headers(("ETag" = String, description = "The strong entity tag of the restored version"))),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No deleted record of this emp_id", body = ErrorDetail,
            example = json!({"detail": "No deleted employee with this emp_id"})),
        (status = 409, description = "The emp_id was taken meanwhile", body = ErrorDetail,
            example = json!({"detail": "Employee with this emp_id already exists"})),
        (status = 422, description = "emp_id is not an integer in range", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["path", "emp_id"], "msg": "Input should be a valid integer, unable to parse string as an integer", "type": "int_parsing"}]})),
    ))]
pub(super) async fn restore_employee(
    State(state): State<AppState>,
    Writer(admin): Writer,
    origin: Origin,
    EmpIdPath(emp_id): EmpIdPath,
) -> Result<Response, ApiError> {
    let employee = state
        .db
        .restore_employee(emp_id, &admin.audit(&origin))
        .await
        .map_err(|e| match e {
            db::Error::NotFound => ApiError::NotFound("No deleted employee with this emp_id"),
            db::Error::Conflict => ApiError::Conflict("Employee with this emp_id already exists"),
            other => other.into(),
        })?;
    tracing::info!(
        event = "employee_restored",
        emp_id = employee.emp_id,
        by = admin.user.id,
        "employee restored"
    );
    let etag = HeaderValue::from_str(&employee.etag()).ok();
    let mut res = Json(employee).into_response();
    if let Some(etag) = etag {
        res.headers_mut().insert(header::ETAG, etag);
    }
    Ok(res)
}

/// Erase the deleted records of `emp_id` now: the archive and the personal values of every
/// audit entry about them (GDPR art. 17). The erasure itself is recorded, without them.
#[utoipa::path(delete, path = "/employees/deleted/{emp_id}", tag = "Employees",
    security(("OAuth2PasswordBearer" = ["employees:write"]), ("ApiKey" = [])),
    params(("emp_id" = i64, Path, description = "Employee number, 1..=9007199254740991", minimum = 1, maximum = 9007199254740991_i64)),
    responses(
        (status = 204, description = "Erased"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No deleted record of this emp_id", body = ErrorDetail,
            example = json!({"detail": "No deleted employee with this emp_id"})),
        (status = 422, description = "emp_id is not an integer in range", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["path", "emp_id"], "msg": "Input should be a valid integer, unable to parse string as an integer", "type": "int_parsing"}]})),
    ))]
pub(super) async fn erase_employee(
    State(state): State<AppState>,
    Writer(admin): Writer,
    origin: Origin,
    EmpIdPath(emp_id): EmpIdPath,
) -> Result<StatusCode, ApiError> {
    let erased = state
        .db
        .erase_deleted(emp_id, &admin.audit(&origin))
        .await
        .on_not_found("No deleted employee with this emp_id")?;
    tracing::warn!(
        event = "employee_erased",
        emp_id = emp_id.get(),
        records = erased,
        by = admin.user.id,
        "deleted employee erased"
    );
    Ok(StatusCode::NO_CONTENT)
}

/// The history of `emp_id`: its audit entries, oldest first (every record that held this
/// `emp_id`, including deleted and erased ones).
#[utoipa::path(get, path = "/employees/{emp_id}/history", tag = "Employees",
    security(("OAuth2PasswordBearer" = ["users:admin"]), ("ApiKey" = [])),
    params(
        ("emp_id" = i64, Path, description = "Employee number, 1..=9007199254740991", minimum = 1, maximum = 9007199254740991_i64),
        AuditParams,
    ),
    responses(
        (status = 200, description = "Entries, oldest first", body = Vec<AuditEntryRead>, headers(
            ("Link" = String, description = "RFC 8288 link to the next page (rel=\"next\")"))),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, description = "Invalid path or query parameter", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["path", "emp_id"], "msg": "Input should be a valid integer, unable to parse string as an integer", "type": "int_parsing"}]})),
    ))]
pub(super) async fn employee_history(
    State(state): State<AppState>,
    _admin: UserAdmin,
    EmpIdPath(emp_id): EmpIdPath,
    ApiQuery(params): ApiQuery<AuditParams>,
) -> Result<Response, ApiError> {
    let mut request = params.parse()?;
    request.filter.target_type = Some("employee".to_owned());
    request.filter.target_id = Some(emp_id.get().to_string());
    let path = format!("/employees/{}/history", emp_id.get());
    let keep = [
        ("actor_id", params.actor_id.as_deref()),
        ("action", params.action.as_deref()),
        ("since", params.since.as_deref()),
        ("until", params.until.as_deref()),
    ];
    entries_page(&state, &path, &keep, request).await
}
