//! The employee list: filters, sort, offset or keyset pages, and the exact total.

use axum::{
    body::Body,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use crate::{
    app::AppState,
    domain::employee::Employee,
    domain::{
        clock::unix_now,
        listing::{Cursor, EmployeeQuery, ListParams},
        version::list_tag_opaque,
    },
    error::{ApiError, ValidationErrorBody},
    extract::{auth::ReadAccess, conditional::IfNoneMatch, query::ApiQuery},
    openapi::Unauthorized,
};

/// List employees: filter, sort, and page by offset or keyset cursor.
///
/// `X-Total-Count` gives the number of matching rows (skip it with `Prefer: count=none`).
/// `Link: <...>; rel="next"` gives the URL of the next page whenever there is one.
#[utoipa::path(get, path = "/employees/", tag = "Employees",
    security(("OAuth2PasswordBearer" = ["employees:read"]), ("ApiKey" = [])),
    params(
        ListParams,
        ("Prefer" = Option<String>, Header, nullable = false, description = "`count=none` omits X-Total-Count"),
        ("If-None-Match" = Option<String>, Header, nullable = false, pattern = r#"^(?:[ \t]*\*[ \t]*|[ \t,]*(?:W/)?"[!#-~]*"(?:[ \t]*,[ \t,]*(?:W/)?"[!#-~]*")*[ \t,]*)$"#, description = "The weak ETag of an earlier page: 304 while no employee has changed since"),
    ),
    responses(
        (status = 200, description = "A page of employees", body = Vec<Employee>, headers(
            ("X-Total-Count" = i64, description = "Rows matching the filters"),
            ("Link" = String, description = "RFC 8288 link to the next page (rel=\"next\")"),
            ("ETag" = String, description = "Weak entity tag: the data version of all employees"))),
        (status = 304, description = "Not modified: no employee changed since the `If-None-Match` ETag", headers(("ETag" = String))),
        (status = 401, response = Unauthorized),
        (status = 431, description = "Request head (line and headers) over 16 KiB, refused before routing: a cursor is far shorter, even percent-encoded"),
        (status = 422, description = "Invalid or unknown query parameter", body = ValidationErrorBody,
            example = json!({"detail": [{"loc": ["query", "limit"], "msg": "Input should be less than or equal to 1000", "type": "less_than_equal"}]})),
    ))]
pub(super) async fn list_employees(
    State(state): State<AppState>,
    ReadAccess(viewer): ReadAccess,
    headers: HeaderMap,
    IfNoneMatch(if_none_match): IfNoneMatch,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Response, ApiError> {
    let query = EmployeeQuery::parse(&params, state.config.max_offset, &state.cursor_key)
        .map_err(ApiError::Validation)?;
    if let Some(tags) = if_none_match {
        let version = state
            .db
            .list_version(&viewer, unix_now())
            .await?
            .ok_or(ApiError::InvalidToken)?;
        if tags.matches_weakly(&list_tag_opaque(version)) {
            let mut res = StatusCode::NOT_MODIFIED.into_response();
            res.headers_mut().insert(header::ETAG, list_etag(version));
            return Ok(res);
        }
    }
    let with_total = !prefers_no_count(&headers);
    // One query checks that the viewer still exists, counts, and writes the page.
    let page = state
        .db
        .list_page(&viewer, &query, with_total, unix_now())
        .await?
        .ok_or(ApiError::InvalidToken)?;

    let mut res = Response::new(Body::from(page.body));
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(header::ETAG, list_etag(page.data_version));
    match page.total {
        Some(total) => h.insert("x-total-count", HeaderValue::from(total)),
        None => h.insert("preference-applied", HeaderValue::from_static("count=none")),
    };
    if let Some(last) = page.next_after {
        let cursor = Cursor::after(&last, query.sort, query.order, &query.filters);
        let link = format!(
            "</employees/?cursor={}&limit={}>; rel=\"next\"",
            cursor.encode(&state.cursor_key),
            query.limit
        );
        if let Ok(value) = HeaderValue::from_str(&link) {
            h.insert(header::LINK, value);
        }
    }
    Ok(res)
}

/// The weak ETag of a list at data version `version`.
fn list_etag(version: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("W/\"{}\"", list_tag_opaque(version)))
        .unwrap_or(HeaderValue::from_static("W/\"e0\""))
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
