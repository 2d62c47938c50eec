//! One employee record: create, read, change, delete.

use axum::{Json, extract::State, http::StatusCode};
use utoipa::ToSchema;

use crate::{
    app::AppState,
    domain::{
        clock::unix_now,
        employee::{Employee, EmployeeChanges, NewEmployee},
    },
    error::{ApiError, DbResultExt, ErrorDetail, ValidationErrorBody},
    extract::{
        auth::{ReadAccess, Writer},
        body::JsonObject,
        path::EmpIdPath,
    },
    openapi::{Forbidden, NotJson, PayloadTooLarge, Unauthorized},
};

/// Body of `POST /employees/` (documentation; parsing is in `NewEmployee::from_json`).
#[derive(ToSchema)]
#[schema(as = EmployeeCreate, example = json!({"emp_id": 1001, "emp_name": "Ada Lovelace", "city": "London", "country": "United Kingdom", "emp_dob": "1985-12-10"}))]
#[expect(dead_code, reason = "describes the request body for OpenAPI only")]
pub(super) struct EmployeeCreate {
    /// Unique employee number.
    #[schema(minimum = 1, maximum = 9007199254740991_i64)]
    emp_id: i64,
    /// Trimmed; no control characters.
    #[schema(min_length = 1, max_length = 200)]
    emp_name: String,
    #[schema(min_length = 1, max_length = 100)]
    city: String,
    #[schema(min_length = 1, max_length = 100)]
    country: String,
    /// `YYYY-MM-DD`, from 1900-01-01 to today (UTC).
    #[schema(value_type = String, format = Date)]
    emp_dob: String,
}

/// Body of `PATCH /employees/{emp_id}`: any subset; only the fields sent change. `null`,
/// `emp_id`, `id` and unknown fields are rejected.
#[derive(ToSchema)]
#[schema(as = EmployeeUpdate, example = json!({"city": "Zürich", "country": "Switzerland"}))]
#[expect(dead_code, reason = "describes the request body for OpenAPI only")]
pub struct EmployeeUpdate {
    #[schema(min_length = 1, max_length = 200)]
    emp_name: Option<String>,
    #[schema(min_length = 1, max_length = 100)]
    city: Option<String>,
    #[schema(min_length = 1, max_length = 100)]
    country: Option<String>,
    #[schema(value_type = Option<String>, format = Date)]
    emp_dob: Option<String>,
}

/// Create an employee (administrators only).
#[utoipa::path(post, path = "/employees/", tag = "Employees",
    security(("OAuth2PasswordBearer" = ["employees:write"]), ("ApiKey" = [])),
    request_body = EmployeeCreate,
    responses(
        (status = 201, description = "Created", body = Employee),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, description = "emp_id already exists", body = ErrorDetail,
            example = json!({"detail": "Employee with this emp_id already exists"})),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = NotJson),
        (status = 422, description = "Invalid input", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["body", "emp_dob"], "msg": "Date of birth cannot be in the future", "type": "value_error"}]})),
    ))]
pub(super) async fn create_employee(
    State(state): State<AppState>,
    Writer(admin): Writer,
    JsonObject(body): JsonObject,
) -> Result<(StatusCode, Json<Employee>), ApiError> {
    let new = NewEmployee::from_json(vec!["body".into()], body).map_err(ApiError::Validation)?;
    let employee = state
        .db
        .insert_employee(new)
        .await
        .on_conflict("Employee with this emp_id already exists")?;
    tracing::info!(
        event = "employee_created",
        emp_id = employee.emp_id,
        by = admin.user.id,
        "employee created"
    );
    Ok((StatusCode::CREATED, Json(employee)))
}

/// One employee by `emp_id`.
#[utoipa::path(get, path = "/employees/{emp_id}", tag = "Employees",
    security(("OAuth2PasswordBearer" = ["employees:read"]), ("ApiKey" = [])),
    params(("emp_id" = i64, Path, description = "Employee number, 1..=9007199254740991", minimum = 1, maximum = 9007199254740991_i64)),
    responses(
        (status = 200, body = Employee),
        (status = 401, response = Unauthorized),
        (status = 404, description = "No such employee", body = ErrorDetail, example = json!({"detail": "Employee not found"})),
        (status = 422, description = "emp_id is not an integer in range", body = ValidationErrorBody, example = json!({"detail": [{"loc": ["path", "emp_id"], "msg": "Input should be a valid integer, unable to parse string as an integer", "type": "int_parsing"}]})),
    ))]
pub(super) async fn get_employee(
    State(state): State<AppState>,
    ReadAccess(credential): ReadAccess,
    EmpIdPath(emp_id): EmpIdPath,
) -> Result<Json<Employee>, ApiError> {
    // The per-request credential check and the read share one query on this, the hottest
    // route.
    let (_viewer, employee) = state
        .db
        .employee_seen_by(&credential, emp_id, unix_now())
        .await?
        .ok_or(ApiError::InvalidToken)?;
    employee
        .map(Json)
        .ok_or(ApiError::NotFound("Employee not found"))
}

/// Change some fields of an employee (administrators only).
#[utoipa::path(patch, path = "/employees/{emp_id}", tag = "Employees",
    security(("OAuth2PasswordBearer" = ["employees:write"]), ("ApiKey" = [])),
    params(("emp_id" = i64, Path, description = "Employee number, 1..=9007199254740991", minimum = 1, maximum = 9007199254740991_i64)),
    request_body = EmployeeUpdate,
    responses(
        (status = 200, body = Employee),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such employee", body = ErrorDetail, example = json!({"detail": "Employee not found"})),
        (status = 413, response = PayloadTooLarge),
        (status = 415, response = NotJson),
        (status = 422, description = "Invalid input", body = ValidationErrorBody, example = json!({"detail": [{"loc": ["body", "emp_id"], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"}]})),
    ))]
pub(super) async fn update_employee(
    State(state): State<AppState>,
    Writer(admin): Writer,
    EmpIdPath(emp_id): EmpIdPath,
    JsonObject(body): JsonObject,
) -> Result<Json<Employee>, ApiError> {
    let changes = EmployeeChanges::from_json(body).map_err(ApiError::Validation)?;
    let updated = if changes.is_empty() {
        state.db.employee(emp_id).await?
    } else {
        state.db.update_employee(emp_id, &changes).await?
    };
    let employee = updated.ok_or(ApiError::NotFound("Employee not found"))?;
    tracing::info!(
        event = "employee_updated",
        emp_id = employee.emp_id,
        by = admin.user.id,
        "employee updated"
    );
    Ok(Json(employee))
}

/// Delete an employee (administrators only).
#[utoipa::path(delete, path = "/employees/{emp_id}", tag = "Employees",
    security(("OAuth2PasswordBearer" = ["employees:write"]), ("ApiKey" = [])),
    params(("emp_id" = i64, Path, description = "Employee number, 1..=9007199254740991", minimum = 1, maximum = 9007199254740991_i64)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No such employee", body = ErrorDetail, example = json!({"detail": "Employee not found"})),
        (status = 422, description = "emp_id is not an integer in range", body = ValidationErrorBody, example = json!({"detail": [{"loc": ["path", "emp_id"], "msg": "Input should be a valid integer, unable to parse string as an integer", "type": "int_parsing"}]})),
    ))]
pub(super) async fn delete_employee(
    State(state): State<AppState>,
    Writer(admin): Writer,
    EmpIdPath(emp_id): EmpIdPath,
) -> Result<StatusCode, ApiError> {
    state
        .db
        .delete_employee(emp_id)
        .await
        .on_not_found("Employee not found")?;
    tracing::info!(
        event = "employee_deleted",
        emp_id = emp_id.get(),
        by = admin.user.id,
        "employee deleted"
    );
    Ok(StatusCode::NO_CONTENT)
}
