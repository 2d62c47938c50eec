//! Employee records: any user reads, administrators write.

use axum::{
    Json,
    body::{Body, Bytes},
    extract::{FromRequestParts, Path, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Response},
};
use futures_util::StreamExt;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    app::AppState,
    auth::extract::{AdminUser, TokenSubject},
    db::employees::OnConflict,
    domain::{
        employee::{EmpId, Employee, EmployeeChanges, NewEmployee},
        listing::{Cursor, EmployeeQuery},
    },
    error::{
        ApiError, ErrorDetail, FieldError, JsonObject, LocPart, OnConflict as _, QueryPairs,
        ValidationErrorBody,
    },
    transfer::{
        EXPORT_PAGE, ExportFormat, ImportFailure, ImportReport, Importer, check_csv_header,
        csv_record_to_fields, export_page,
    },
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_employee, list_employees))
        .routes(routes!(get_employee, update_employee, delete_employee))
        .routes(routes!(export_employees))
        .routes(routes!(import_employees))
}

/// `{emp_id}` from the path, parsed (422 with `loc: ["path", "emp_id"]` otherwise).
pub struct EmpIdPath(pub EmpId);

impl<S: Send + Sync> FromRequestParts<S> for EmpIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let invalid = |kind, msg: String| ApiError::field("path", "emp_id", kind, msg);
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| invalid("int_parsing", "Input should be a valid integer".into()))?;
        EmpId::parse_str(&raw)
            .map(EmpIdPath)
            .map_err(|e| invalid(e.kind, e.msg))
    }
}

/// Body of `POST /employees/` (documentation; parsing is in `NewEmployee::from_json`).
#[derive(ToSchema)]
#[schema(as = EmployeeCreate, example = json!({"emp_id": 1001, "emp_name": "Ada Lovelace", "city": "London", "country": "United Kingdom", "emp_dob": "1985-12-10"}))]
#[expect(dead_code, reason = "describes the request body for OpenAPI only")]
pub struct EmployeeCreate {
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

/// Offset pagination parameters.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(dead_code, reason = "describes query parameters for OpenAPI only")]
pub struct PageParams {
    /// Rows to skip.
    #[param(minimum = 0, maximum = 10000000, default = 0, required = false)]
    offset: u64,
    /// Rows to return.
    #[param(minimum = 1, maximum = 1000, default = 100, required = false)]
    limit: u32,
}

/// Query parameters of the employee list.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(dead_code, reason = "describes query parameters for OpenAPI only")]
pub struct ListParams {
    /// Rows to skip (offset pagination). Not combinable with `cursor`.
    #[param(minimum = 0, maximum = 10000000, default = 0, required = false)]
    offset: u64,
    /// Rows to return.
    #[param(minimum = 1, maximum = 1000, default = 100, required = false)]
    limit: u32,
    /// Case-insensitive substring of the city (`%`, `_`, `\` match literally).
    #[param(max_length = 100, required = false)]
    city: String,
    /// Case-insensitive substring of the country (`%`, `_`, `\` match literally).
    #[param(max_length = 100, required = false)]
    country: String,
    /// Sort column (default `emp_id`); ties are broken by `emp_id`.
    #[param(inline, required = false)]
    sort_by: SortBy,
    /// Sort direction (default `asc`).
    #[param(inline, required = false)]
    order: SortOrder,
    /// Opaque keyset cursor from a previous page's `Link: rel="next"`; carries the sort and
    /// filters, so send it only with `limit`.
    #[param(max_length = 1024, required = false)]
    cursor: String,
}

#[derive(ToSchema)]
#[allow(non_camel_case_types, reason = "the variants are the wire values")]
pub enum SortBy {
    emp_id,
    emp_name,
    emp_dob,
    city,
    country,
}

#[derive(ToSchema)]
#[allow(non_camel_case_types, reason = "the variants are the wire values")]
pub enum SortOrder {
    asc,
    desc,
}

/// Create an employee (administrators only).
#[utoipa::path(post, path = "/employees/", tag = "Employees",
    security(("OAuth2PasswordBearer" = [])),
    request_body = EmployeeCreate,
    responses(
        (status = 201, description = "Created", body = Employee),
        (status = 401, description = "Not authenticated", body = ErrorDetail, headers(("WWW-Authenticate" = String)), example = json!({"detail": "Not authenticated"})),
        (status = 403, description = "Not an administrator", body = ErrorDetail,
            example = json!({"detail": "The user does not have administrative privileges"})),
        (status = 409, description = "emp_id already exists", body = ErrorDetail,
            example = json!({"detail": "Employee with this emp_id already exists"})),
        (status = 413, description = "Body over 1 MiB", body = ErrorDetail, example = json!({"detail": "Request body too large"})),
        (status = 415, description = "Not application/json", body = ErrorDetail, example = json!({"detail": "Unsupported media type: expected application/json"})),
        (status = 422, description = "Invalid input", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["body", "emp_dob"], "msg": "Date of birth cannot be in the future", "type": "value_error"}]})),
    ))]
async fn create_employee(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
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
        by = admin.id,
        "employee created"
    );
    Ok((StatusCode::CREATED, Json(employee)))
}

/// List employees: filter, sort, and page by offset or keyset cursor.
///
/// `X-Total-Count` gives the number of matching rows (skip it with `Prefer: count=none`).
/// `Link: <...>; rel="next"` gives the URL of the next page whenever there is one.
#[utoipa::path(get, path = "/employees/", tag = "Employees",
    security(("OAuth2PasswordBearer" = [])),
    params(
        ListParams,
        ("Prefer" = Option<String>, Header, description = "`count=none` omits X-Total-Count"),
    ),
    responses(
        (status = 200, body = Vec<Employee>, headers(
            ("X-Total-Count" = i64, description = "Rows matching the filters"),
            ("Link" = String, description = "RFC 8288 link to the next page (rel=\"next\")"))),
        (status = 401, description = "Not authenticated", body = ErrorDetail, headers(("WWW-Authenticate" = String)), example = json!({"detail": "Not authenticated"})),
        (status = 422, description = "Invalid or unknown query parameter", body = ValidationErrorBody, example = json!({"detail": [{"loc": ["query", "limit"], "msg": "Input should be less than or equal to 1000", "type": "less_than_equal"}]})),
    ))]
async fn list_employees(
    State(state): State<AppState>,
    TokenSubject(viewer): TokenSubject,
    headers: HeaderMap,
    QueryPairs(query): QueryPairs,
) -> Result<Response, ApiError> {
    let query = EmployeeQuery::parse(&query).map_err(ApiError::Validation)?;
    let with_total = !prefers_no_count(&headers);
    // One query checks that the viewer still exists, counts, and writes the page.
    let page = state
        .db
        .list_page(viewer, &query, with_total)
        .await?
        .ok_or(ApiError::InvalidToken)?;
    tracing::Span::current().record("user_id", viewer);

    let mut res = Response::new(Body::from(page.body));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    match page.total {
        Some(total) => h.insert("x-total-count", HeaderValue::from(total)),
        None => h.insert("preference-applied", HeaderValue::from_static("count=none")),
    };
    if let Some(last) = page.next_after {
        let cursor = Cursor::after(&last, query.sort, query.order, &query.filters);
        let link = format!(
            "</employees/?cursor={}&limit={}>; rel=\"next\"",
            cursor.encode(),
            query.limit
        );
        if let Ok(value) = HeaderValue::from_str(&link) {
            h.insert(header::LINK, value);
        }
    }
    Ok(res)
}

/// True when the client sent `Prefer: count=none` (RFC 7240).
fn prefers_no_count(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("count=none"))
}

/// One employee by `emp_id`.
#[utoipa::path(get, path = "/employees/{emp_id}", tag = "Employees",
    security(("OAuth2PasswordBearer" = [])),
    params(("emp_id" = i64, Path, description = "Employee number, 1..=9007199254740991", minimum = 1, maximum = 9007199254740991_i64)),
    responses(
        (status = 200, body = Employee),
        (status = 401, description = "Not authenticated", body = ErrorDetail, headers(("WWW-Authenticate" = String)), example = json!({"detail": "Not authenticated"})),
        (status = 404, description = "No such employee", body = ErrorDetail, example = json!({"detail": "Employee not found"})),
        (status = 422, description = "emp_id is not an integer in range", body = ValidationErrorBody, example = json!({"detail": [{"loc": ["query", "limit"], "msg": "Input should be less than or equal to 1000", "type": "less_than_equal"}]})),
    ))]
async fn get_employee(
    State(state): State<AppState>,
    TokenSubject(user_id): TokenSubject,
    EmpIdPath(emp_id): EmpIdPath,
) -> Result<Json<Employee>, ApiError> {
    // The per-request user check and the read share one query on this, the hottest route.
    let (user, employee) = state
        .db
        .employee_seen_by(user_id, emp_id)
        .await?
        .ok_or(ApiError::InvalidToken)?;
    tracing::Span::current().record("user_id", user.id);
    employee
        .map(Json)
        .ok_or(ApiError::NotFound("Employee not found"))
}

/// Change some fields of an employee (administrators only).
#[utoipa::path(patch, path = "/employees/{emp_id}", tag = "Employees",
    security(("OAuth2PasswordBearer" = [])),
    params(("emp_id" = i64, Path, description = "Employee number, 1..=9007199254740991", minimum = 1, maximum = 9007199254740991_i64)),
    request_body = EmployeeUpdate,
    responses(
        (status = 200, body = Employee),
        (status = 401, description = "Not authenticated", body = ErrorDetail, headers(("WWW-Authenticate" = String)), example = json!({"detail": "Not authenticated"})),
        (status = 403, description = "Not an administrator", body = ErrorDetail, example = json!({"detail": "The user does not have administrative privileges"})),
        (status = 404, description = "No such employee", body = ErrorDetail, example = json!({"detail": "Employee not found"})),
        (status = 413, description = "Body over 1 MiB", body = ErrorDetail, example = json!({"detail": "Request body too large"})),
        (status = 415, description = "Not application/json", body = ErrorDetail, example = json!({"detail": "Unsupported media type: expected application/json"})),
        (status = 422, description = "Invalid input", body = ValidationErrorBody, example = json!({"detail": [{"loc": ["query", "limit"], "msg": "Input should be less than or equal to 1000", "type": "less_than_equal"}]})),
    ))]
async fn update_employee(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
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
        by = admin.id,
        "employee updated"
    );
    Ok(Json(employee))
}

/// Delete an employee (administrators only).
#[utoipa::path(delete, path = "/employees/{emp_id}", tag = "Employees",
    security(("OAuth2PasswordBearer" = [])),
    params(("emp_id" = i64, Path, description = "Employee number, 1..=9007199254740991", minimum = 1, maximum = 9007199254740991_i64)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not authenticated", body = ErrorDetail, headers(("WWW-Authenticate" = String)), example = json!({"detail": "Not authenticated"})),
        (status = 403, description = "Not an administrator", body = ErrorDetail, example = json!({"detail": "The user does not have administrative privileges"})),
        (status = 404, description = "No such employee", body = ErrorDetail, example = json!({"detail": "Employee not found"})),
        (status = 422, description = "emp_id is not an integer in range", body = ValidationErrorBody, example = json!({"detail": [{"loc": ["query", "limit"], "msg": "Input should be less than or equal to 1000", "type": "less_than_equal"}]})),
    ))]
async fn delete_employee(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    EmpIdPath(emp_id): EmpIdPath,
) -> Result<StatusCode, ApiError> {
    if !state.db.delete_employee(emp_id).await? {
        return Err(ApiError::NotFound("Employee not found"));
    }
    tracing::info!(
        event = "employee_deleted",
        emp_id = emp_id.get(),
        by = admin.id,
        "employee deleted"
    );
    Ok(StatusCode::NO_CONTENT)
}

/// Query parameters of the export.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(dead_code, reason = "describes query parameters for OpenAPI only")]
pub struct ExportParams {
    /// Output format (default `csv`).
    #[param(inline, required = false)]
    format: ExportFormatParam,
    /// Case-insensitive substring of the city.
    #[param(max_length = 100, required = false)]
    city: String,
    /// Case-insensitive substring of the country.
    #[param(max_length = 100, required = false)]
    country: String,
    /// Sort column (default `emp_id`); ties are broken by `emp_id`.
    #[param(inline, required = false)]
    sort_by: SortBy,
    /// Sort direction (default `asc`).
    #[param(inline, required = false)]
    order: SortOrder,
}

#[derive(ToSchema)]
#[allow(non_camel_case_types, reason = "the variants are the wire values")]
pub enum ExportFormatParam {
    csv,
    ndjson,
}

/// Query parameters of the import.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(dead_code, reason = "describes query parameters for OpenAPI only")]
pub struct ImportParams {
    /// What to do with an `emp_id` that already exists (default `error`).
    #[param(inline, required = false)]
    on_conflict: OnConflictParam,
    /// Validate and report, store nothing.
    #[param(default = false, required = false)]
    dry_run: bool,
}

#[derive(ToSchema)]
#[allow(non_camel_case_types, reason = "the variants are the wire values")]
pub enum OnConflictParam {
    error,
    skip,
    update,
}

/// Export employees as CSV or NDJSON (administrators only), streamed page by page with
/// constant memory; same filters and sort as the list.
#[utoipa::path(get, path = "/employees/export", tag = "Employees",
    security(("OAuth2PasswordBearer" = [])),
    params(ExportParams),
    responses(
        (status = 200, description = "The export", content(
            (String = "text/csv", example = "emp_id,emp_name,city,country,emp_dob\r\n1001,Ada Lovelace,London,United Kingdom,1985-12-10\r\n"),
            (String = "application/x-ndjson"))),
        (status = 401, description = "Not authenticated", body = ErrorDetail, headers(("WWW-Authenticate" = String)), example = json!({"detail": "Not authenticated"})),
        (status = 403, description = "Not an administrator", body = ErrorDetail, example = json!({"detail": "The user does not have administrative privileges"})),
        (status = 422, description = "Invalid or unknown query parameter", body = ValidationErrorBody, example = json!({"detail": [{"loc": ["query", "limit"], "msg": "Input should be less than or equal to 1000", "type": "less_than_equal"}]})),
    ))]
async fn export_employees(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    QueryPairs(mut pairs): QueryPairs,
) -> Result<Response, ApiError> {
    let mut format = ExportFormat::Csv;
    let mut errors = Vec::new();
    pairs.retain(|(k, v)| {
        if k != "format" {
            return true;
        }
        match ExportFormat::parse(v) {
            Some(f) => format = f,
            None => errors.push(FieldError::at(
                "query",
                "format",
                "literal_error",
                "Input should be 'csv' or 'ndjson'",
            )),
        }
        false
    });
    if let Some((key, _)) = pairs
        .iter()
        .find(|(k, _)| matches!(k.as_str(), "limit" | "offset" | "cursor"))
    {
        errors.push(FieldError::at(
            "query",
            key,
            "extra_forbidden",
            "Unknown query parameter",
        ));
    }
    let mut query = EmployeeQuery::parse(&pairs).map_err(ApiError::Validation)?;
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    query.limit = EXPORT_PAGE;
    tracing::info!(
        event = "employees_exported",
        by = admin.id,
        "export started"
    );

    let db = state.db.clone();
    let first = std::iter::once(Ok::<_, std::io::Error>(Bytes::from(format.preamble())));
    let pages = futures_util::stream::unfold(Some(query), move |next| {
        let db = db.clone();
        async move {
            let query = next?;
            match export_page(&db, &query).await {
                Ok((rows, next)) => {
                    let mut chunk = Vec::with_capacity(rows.len() * 96);
                    format.write_rows(&rows, &mut chunk);
                    Some((Ok(Bytes::from(chunk)), next))
                }
                Err(e) => {
                    // Headers are already sent: end the body early (the client sees a
                    // truncated transfer) and log the cause.
                    tracing::error!(error = %e, "export failed part-way");
                    Some((Err(std::io::Error::other("export failed")), None))
                }
            }
        }
    });
    let body = Body::from_stream(futures_util::stream::iter(first).chain(pages));
    let filename = match format {
        ExportFormat::Csv => "attachment; filename=\"employees.csv\"",
        ExportFormat::Ndjson => "attachment; filename=\"employees.ndjson\"",
    };
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::CONTENT_DISPOSITION, filename),
        ],
        body,
    )
        .into_response())
}

/// Import employees from CSV (`text/csv`, see the README for the format) or a JSON array of
/// EmployeeCreate objects (administrators only). Every row is checked with the same rules as
/// `POST /employees/`; all rows are stored or none.
#[utoipa::path(post, path = "/employees/import", tag = "Employees",
    security(("OAuth2PasswordBearer" = [])),
    params(ImportParams),
    request_body(description = "CSV with a header row, or a JSON array of EmployeeCreate", content(
        (String = "text/csv", example = "emp_id,emp_name,city,country,emp_dob\r\n1001,Ada Lovelace,London,United Kingdom,1985-12-10\r\n"),
        (Vec<EmployeeCreate> = "application/json"))),
    responses(
        (status = 200, description = "Imported (or, with dry_run, would import)", body = ImportReport,
            example = json!({"rows": 2, "written": 2, "skipped": 0, "dry_run": false})),
        (status = 401, description = "Not authenticated", body = ErrorDetail, headers(("WWW-Authenticate" = String)), example = json!({"detail": "Not authenticated"})),
        (status = 403, description = "Not an administrator", body = ErrorDetail, example = json!({"detail": "The user does not have administrative privileges"})),
        (status = 409, description = "Some emp_id already exists (on_conflict=error); nothing stored", body = ErrorDetail,
            example = json!({"detail": "2 rows conflict with existing or repeated emp_id: emp_id 7 at 3, emp_id 9 at 5"})),
        (status = 413, description = "Body over 1 MiB (use the CLI for larger files)", body = ErrorDetail, example = json!({"detail": "Request body too large"})),
        (status = 415, description = "Neither text/csv nor application/json", body = ErrorDetail, example = json!({"detail": "Unsupported media type: expected text/csv or application/json"})),
        (status = 422, description = "Invalid rows, located by CSV line or JSON index; nothing stored", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["body", 3, "emp_dob"], "msg": "Date of birth cannot be in the future", "type": "value_error"}]})),
    ))]
async fn import_employees(
    State(state): State<AppState>,
    AdminUser(admin): AdminUser,
    QueryPairs(pairs): QueryPairs,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<ImportReport>, ApiError> {
    let (mode, dry_run) = parse_import_params(&pairs)?;
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .unwrap_or_default();
    let mut importer = Importer::new(&state.db, mode, dry_run);
    match media.as_str() {
        "application/json" => {
            let Ok(Value::Array(items)) = serde_json::from_slice::<Value>(&body) else {
                return Err(ApiError::field(
                    "body",
                    "",
                    "list_type",
                    "Input should be a valid JSON array",
                ));
            };
            for (i, item) in items.into_iter().enumerate() {
                let fields = match item {
                    Value::Object(map) => map,
                    _ => serde_json::Map::from_iter([("_".to_owned(), Value::Null)]),
                };
                importer
                    .push(LocPart::Index(i), fields)
                    .await
                    .map_err(import_error)?;
            }
        }
        "text/csv" => {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(true)
                .from_reader(body.as_ref());
            let names = reader
                .headers()
                .map_err(|_| ApiError::field("body", "", "csv_invalid", "Unreadable CSV header"))
                .and_then(|h| {
                    check_csv_header(h)
                        .map_err(|msg| ApiError::field("body", "", "csv_header", msg))
                })?;
            for record in reader.records() {
                let record = record.map_err(|e| {
                    let line = e.position().map_or(0, |p| p.line());
                    ApiError::Validation(vec![FieldError::new(
                        vec!["body".into(), LocPart::Index(line as usize)],
                        "csv_invalid",
                        "Malformed CSV row (check quoting and the number of fields)",
                    )])
                })?;
                let line = record.position().map_or(0, |p| p.line()) as usize;
                importer
                    .push(LocPart::Index(line), csv_record_to_fields(&names, &record))
                    .await
                    .map_err(import_error)?;
            }
        }
        _ => {
            return Err(ApiError::UnsupportedMediaType(
                "Unsupported media type: expected text/csv or application/json",
            ));
        }
    }
    let report = importer.finish().await.map_err(import_error)?;
    tracing::info!(
        event = "employees_imported",
        by = admin.id,
        rows = report.rows,
        written = report.written,
        dry_run,
        "import"
    );
    Ok(Json(report))
}

fn parse_import_params(pairs: &[(String, String)]) -> Result<(OnConflict, bool), ApiError> {
    let mut mode = OnConflict::Error;
    let mut dry_run = false;
    let mut errors = Vec::new();
    for (key, value) in pairs {
        match (key.as_str(), value.as_str()) {
            ("on_conflict", "error") => mode = OnConflict::Error,
            ("on_conflict", "skip") => mode = OnConflict::Skip,
            ("on_conflict", "update") => mode = OnConflict::Update,
            ("on_conflict", _) => errors.push(FieldError::at(
                "query",
                key,
                "literal_error",
                "Input should be 'error', 'skip' or 'update'",
            )),
            ("dry_run", "true" | "1") => dry_run = true,
            ("dry_run", "false" | "0") => dry_run = false,
            ("dry_run", _) => errors.push(FieldError::at(
                "query",
                key,
                "bool_parsing",
                "Input should be a valid boolean",
            )),
            _ => errors.push(FieldError::at(
                "query",
                key,
                "extra_forbidden",
                "Unknown query parameter",
            )),
        }
    }
    if errors.is_empty() {
        Ok((mode, dry_run))
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// The HTTP answer for a failed import.
fn import_error(failure: ImportFailure) -> ApiError {
    match failure {
        ImportFailure::Invalid { mut errors, more } => {
            if more > 0 {
                errors.push(FieldError::new(
                    vec!["body".into()],
                    "too_many_errors",
                    format!("{more} more errors not shown"),
                ));
            }
            ApiError::Validation(errors)
        }
        ImportFailure::Conflict { locations } => {
            let shown: Vec<String> = locations
                .iter()
                .take(20)
                .map(|(loc, id)| match loc {
                    LocPart::Index(i) => format!("emp_id {id} at {i}"),
                    LocPart::Key(k) => format!("emp_id {id} at {k}"),
                })
                .collect();
            ApiError::ConflictDetail(format!(
                "{} rows conflict with existing or repeated emp_id: {}{}",
                locations.len(),
                shown.join(", "),
                if locations.len() > 20 { ", ..." } else { "" }
            ))
        }
        ImportFailure::Database(e) => ApiError::from(e),
    }
}
