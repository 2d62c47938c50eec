//! Bulk import and export of employees over HTTP (the CLI shares the same `transfer` code).

use axum::{
    Json,
    body::{Body, Bytes},
    extract::State,
    http::header,
    response::{IntoResponse, Response},
};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;

use crate::{
    app::AppState,
    domain::{
        audit::{Action, NewEntry},
        employee::OnConflict,
        listing::{EmployeeQuery, ListParams, Order, SortKey},
        validation::{FieldError, LocPart, summarize},
    },
    error::{ApiError, ErrorDetail, ValidationErrorBody},
    extract::{
        auth::{Principal, Writer},
        body::ImportBody,
        client::Origin,
        idempotency::Idempotent,
        query::ApiQuery,
    },
    openapi::{Forbidden, IdempotencyKeyHeader, PayloadTooLarge, Unauthorized},
    routes::idempotency::at_most_once,
    transfer::{
        EXPORT_PAGE, ExportFormat, ImportFailure, ImportReport, Importer, check_csv_header,
        csv_record_to_fields, export_page,
    },
};

use super::crud::EmployeeCreate;

/// Query parameters of the export: the list's filters and sort, and the format.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ExportParams {
    /// Output format (default `csv`).
    #[param(value_type = ExportFormat, inline, required = false)]
    format: Option<String>,
    /// Case-insensitive substring of the city.
    #[param(value_type = String, max_length = 100, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$", required = false)]
    city: Option<String>,
    /// Case-insensitive substring of the country.
    #[param(value_type = String, max_length = 100, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$", required = false)]
    country: Option<String>,
    /// Sort column (default `emp_id`); ties are broken by `emp_id`.
    #[param(value_type = SortKey, inline, required = false)]
    sort_by: Option<String>,
    /// Sort direction (default `asc`).
    #[param(value_type = Order, inline, required = false)]
    order: Option<String>,
}

/// The CSV body of an import, described for OpenAPI (the parser is `transfer::Importer`).
pub(super) struct CsvImport;

impl utoipa::PartialSchema for CsvImport {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "CSV (RFC 4180), UTF-8, an optional byte order mark. The first row names the \
                 columns `emp_id`, `emp_name`, `city`, `country` and `emp_dob`, each once, in any \
                 order, and no others; every further row is one employee, its fields checked as \
                 EmployeeCreate's. Errors are located as `[\"body\", <line>, \"<field>\"]`.",
            ))
            .min_length(Some(1))
            .into()
    }
}

impl utoipa::ToSchema for CsvImport {}

/// Query parameters of the import.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ImportParams {
    /// What to do with an `emp_id` that already exists (default `error`).
    #[param(value_type = OnConflict, inline, required = false)]
    on_conflict: Option<String>,
    /// Validate and report, store nothing.
    #[param(value_type = bool, default = false, required = false)]
    dry_run: Option<String>,
}

/// Export employees as CSV or NDJSON (administrators only), streamed page by page with
/// constant memory; same filters and sort as the list.
#[utoipa::path(get, path = "/employees/export", tag = "Employees",
    security(("OAuth2PasswordBearer" = ["employees:write"]), ("ApiKey" = [])),
    params(ExportParams),
    responses(
        (status = 200, description = "The export", content(
            (String = "text/csv", example = "emp_id,emp_name,city,country,emp_dob\r\n1001,Ada Lovelace,London,United Kingdom,1985-12-10\r\n"),
            (String = "application/x-ndjson"))),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 422, description = "Invalid or unknown query parameter", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["query", "format"], "msg": "Input should be 'csv' or 'ndjson'", "type": "literal_error"}]})),
    ))]
pub(super) async fn export_employees(
    State(state): State<AppState>,
    Writer(admin): Writer,
    origin: Origin,
    ApiQuery(params): ApiQuery<ExportParams>,
) -> Result<Response, ApiError> {
    let format = params.format.as_deref().map(|raw| {
        ExportFormat::parse(raw).ok_or_else(|| {
            FieldError::at(
                "query",
                "format",
                "literal_error",
                "Input should be 'csv' or 'ndjson'",
            )
        })
    });
    let list = ListParams {
        city: params.city,
        country: params.country,
        sort_by: params.sort_by,
        order: params.order,
        ..ListParams::default()
    };
    let (format, mut query) = match (
        format.transpose(),
        EmployeeQuery::parse(&list, state.config.max_offset, &state.cursor_key),
    ) {
        (Ok(format), Ok(query)) => (format.unwrap_or_default(), query),
        (format, query) => {
            let mut errors = format.err().into_iter().collect::<Vec<_>>();
            errors.extend(query.err().unwrap_or_default());
            return Err(ApiError::Validation(errors));
        }
    };
    query.limit = EXPORT_PAGE;
    // Who read everyone's records, and when: recorded before the first byte leaves.
    state
        .db
        .record(
            &admin.audit(&origin),
            vec![NewEntry::untargeted(Action::EmployeeExport)],
        )
        .await?;
    tracing::info!(
        event = "employees_exported",
        by = admin.user.id,
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
    security(("OAuth2PasswordBearer" = ["employees:write"]), ("ApiKey" = [])),
    params(ImportParams, IdempotencyKeyHeader),
    request_body(description = "CSV with a header row, or a JSON array of EmployeeCreate", content(
        (CsvImport = "text/csv", example = "emp_id,emp_name,city,country,emp_dob\r\n1001,Ada Lovelace,London,United Kingdom,1985-12-10\r\n"),
        (Vec<EmployeeCreate> = "application/json", example = json!([
            {"emp_id": 1001, "emp_name": "Ada Lovelace", "city": "London", "country": "United Kingdom", "emp_dob": "1985-12-10"},
            {"emp_id": 1002, "emp_name": "Alan Turing", "city": "Wilmslow", "country": "United Kingdom", "emp_dob": "1912-06-23"}])))),
    responses(
        (status = 200, description = "Imported (or, with dry_run, would import; or, with `Idempotent-Replayed: true`, the stored report of the first request with this Idempotency-Key)", body = ImportReport,
            headers(("Idempotent-Replayed" = String, description = "`true` on a replayed answer; absent otherwise")),
            example = json!({"rows": 2, "written": 2, "skipped": 0, "dry_run": false})),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 409, description = "Some emp_id already exists (on_conflict=error): no row stored, the answer stored for an Idempotency-Key like a 200; or a request with this Idempotency-Key is still running (with Retry-After)", body = ErrorDetail,
            headers(("Retry-After" = u64, description = "With an Idempotency-Key still in use: seconds to wait")),
            examples(
                ("emp_id_conflict" = (value = json!({"detail": "2 rows conflict with existing or repeated emp_id: emp_id 7 at 3, emp_id 9 at 5"}))),
                ("idempotency_key_in_use" = (value = json!({"detail": "A request with this Idempotency-Key is still running: retry when it has finished"}))))),
        (status = 413, response = PayloadTooLarge),
        (status = 415, description = "Neither text/csv nor application/json", body = ErrorDetail, example = json!({"detail": "Unsupported media type: expected text/csv or application/json"})),
        (status = 422, description = "Invalid rows, located by CSV line or JSON index, nothing stored; an invalid Idempotency-Key, or one already used for a different request (another body, media type or query). Never stored", body = ValidationErrorBody,
            examples(
                ("invalid_row" = (value = json!({"detail": [{"loc": ["body", 3, "emp_dob"], "msg": "Date of birth cannot be in the future", "type": "value_error"}]}))),
                ("idempotency_key_invalid" = (value = json!({"detail": [{"loc": ["header", "idempotency-key"], "msg": "The key may hold only visible ASCII characters (no spaces)", "type": "string_pattern_mismatch"}]}))),
                ("idempotency_key_reused" = (value = json!({"detail": [{"loc": ["header", "idempotency-key"], "msg": "This Idempotency-Key was used for a different request (method, path, query, media type or body): send a new key with a new request", "type": "idempotency_key_reused"}]}))))),
    ))]
pub(super) async fn import_employees(
    State(state): State<AppState>,
    Writer(admin): Writer,
    origin: Origin,
    ApiQuery(params): ApiQuery<ImportParams>,
    Idempotent { keyed, body }: Idempotent<ImportBody>,
) -> Result<Response, ApiError> {
    at_most_once(&state, &admin, keyed, || {
        import(&state, &admin, &origin, &params, body)
    })
    .await
}

/// The import itself: every row checked, then all stored or none; the report as the answer.
async fn import(
    state: &AppState,
    admin: &Principal,
    origin: &Origin,
    params: &ImportParams,
    body: ImportBody,
) -> Result<Json<ImportReport>, ApiError> {
    let (mode, dry_run) = parse_import_params(params)?;
    let mut importer = Importer::new(&state.db, mode, dry_run, admin.audit(origin));
    match body {
        ImportBody::Json(body) => {
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
        ImportBody::Csv(body) => {
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
    }
    let report = importer.finish().await.map_err(import_error)?;
    tracing::info!(
        event = "employees_imported",
        by = admin.user.id,
        rows = report.rows,
        written = report.written,
        dry_run,
        "import"
    );
    Ok(Json(report))
}

fn parse_import_params(params: &ImportParams) -> Result<(OnConflict, bool), ApiError> {
    let mut errors = Vec::new();
    let mode = match params.on_conflict.as_deref() {
        None => OnConflict::default(),
        Some(raw) => OnConflict::parse(raw).unwrap_or_else(|| {
            errors.push(FieldError::at(
                "query",
                "on_conflict",
                "literal_error",
                "Input should be 'error', 'skip' or 'update'",
            ));
            OnConflict::default()
        }),
    };
    let dry_run = match params.dry_run.as_deref() {
        None | Some("false" | "0") => false,
        Some("true" | "1") => true,
        Some(_) => {
            errors.push(FieldError::at(
                "query",
                "dry_run",
                "bool_parsing",
                "Input should be a valid boolean",
            ));
            false
        }
    };
    if errors.is_empty() {
        Ok((mode, dry_run))
    } else {
        Err(ApiError::Validation(errors))
    }
}

/// The HTTP answer for a failed import.
fn import_error(failure: ImportFailure) -> ApiError {
    match failure {
        ImportFailure::Invalid { errors, more } => ApiError::Validation(summarize(errors, more)),
        ImportFailure::Conflict { locations } => {
            let shown: Vec<String> = locations
                .iter()
                .take(20)
                .map(|c| {
                    let at = |loc: &LocPart| match loc {
                        LocPart::Index(i) => i.to_string(),
                        LocPart::Key(k) => k.clone(),
                    };
                    match &c.first {
                        Some(first) => format!(
                            "emp_id {} at {} (repeats {})",
                            c.emp_id,
                            at(&c.loc),
                            at(first)
                        ),
                        None => format!("emp_id {} at {}", c.emp_id, at(&c.loc)),
                    }
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
