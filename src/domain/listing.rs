//! List queries: pagination (offset or keyset cursor), sorting and substring filters.
//! Unknown parameters are rejected, so a typo never silently returns an unfiltered list.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use time::Date;
use utoipa::{IntoParams, ToSchema};

use super::employee::{Employee, fold};
use super::validation::FieldError;

/// The deepest offset any configuration allows (`MAX_OFFSET` is at most this).
pub const OFFSET_CEILING: u64 = 10_000_000;
pub const MAX_LIMIT: u32 = 1000;
pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_FILTER_LEN: usize = 100;
const MAX_CURSOR_LEN: usize = 1024;

/// Offset pagination, as the original API has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub offset: u64,
    pub limit: u32,
}

impl Default for Page {
    fn default() -> Self {
        Self {
            offset: 0,
            limit: DEFAULT_LIMIT,
        }
    }
}

/// A column the employee list can be sorted by. Ties are always broken by `emp_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SortKey {
    #[default]
    EmpId,
    EmpName,
    EmpDob,
    City,
    Country,
}

impl SortKey {
    const ALL: [(&'static str, SortKey); 5] = [
        ("emp_id", SortKey::EmpId),
        ("emp_name", SortKey::EmpName),
        ("emp_dob", SortKey::EmpDob),
        ("city", SortKey::City),
        ("country", SortKey::Country),
    ];

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(name, _)| *name == raw)
            .map(|(_, key)| *key)
    }

    /// The column name; a fixed identifier, safe to place in SQL text.
    pub fn column(self) -> &'static str {
        match self {
            SortKey::EmpId => "emp_id",
            SortKey::EmpName => "emp_name",
            SortKey::EmpDob => "emp_dob",
            SortKey::City => "city",
            SortKey::Country => "country",
        }
    }
}

/// A sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

impl Order {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "asc" => Some(Order::Asc),
            "desc" => Some(Order::Desc),
            _ => None,
        }
    }
}

/// Case-insensitive substring filters, already folded (see [`fold`]). `%`, `_` and `\` are
/// ordinary characters here; the storage layer keeps them literal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filters {
    #[serde(rename = "c", skip_serializing_if = "Option::is_none", default)]
    pub city: Option<String>,
    #[serde(rename = "n", skip_serializing_if = "Option::is_none", default)]
    pub country: Option<String>,
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        self.city.is_none() && self.country.is_none()
    }
}

/// The sort value of the last row of a page, which the next page starts after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SortValue {
    Int(i64),
    Text(String),
}

/// Where a keyset page starts: strictly after (`sort value`, `emp_id`) in the list's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(rename = "s")]
    pub sort: SortKey,
    #[serde(rename = "o")]
    pub order: Order,
    #[serde(flatten)]
    pub filters: Filters,
    #[serde(rename = "v")]
    pub after_value: SortValue,
    #[serde(rename = "k")]
    pub after_emp_id: i64,
}

impl Cursor {
    /// The cursor that continues after `last`, for the same sort and filters.
    pub fn after(last: &Employee, sort: SortKey, order: Order, filters: &Filters) -> Self {
        let after_value = match sort {
            SortKey::EmpId => SortValue::Int(last.emp_id),
            SortKey::EmpName => SortValue::Text(last.emp_name.clone()),
            SortKey::City => SortValue::Text(last.city.clone()),
            SortKey::Country => SortValue::Text(last.country.clone()),
            SortKey::EmpDob => SortValue::Text(format_date(last.emp_dob)),
        };
        Self {
            sort,
            order,
            filters: filters.clone(),
            after_value,
            after_emp_id: last.emp_id,
        }
    }

    /// The opaque token clients pass back as `?cursor=`.
    pub fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// Decodes a token and checks that its value type matches its sort key.
    pub fn decode(token: &str) -> Option<Self> {
        if token.len() > MAX_CURSOR_LEN {
            return None;
        }
        let json = URL_SAFE_NO_PAD.decode(token).ok()?;
        let cursor: Cursor = serde_json::from_slice(&json).ok()?;
        let value_fits = match (&cursor.sort, &cursor.after_value) {
            (SortKey::EmpId, SortValue::Int(v)) => *v == cursor.after_emp_id,
            (SortKey::EmpDob, SortValue::Text(v)) => parse_date(v).is_some(),
            (SortKey::EmpName | SortKey::City | SortKey::Country, SortValue::Text(_)) => true,
            _ => false,
        };
        (value_fits && cursor.after_emp_id >= 0).then_some(cursor)
    }
}

pub fn format_date(date: Date) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    date.format(format).unwrap_or_default()
}

pub fn parse_date(raw: &str) -> Option<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    Date::parse(raw, format).ok()
}

/// A parsed `GET /employees/` query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmployeeQuery {
    pub sort: SortKey,
    pub order: Order,
    pub filters: Filters,
    pub limit: u32,
    /// Offset pagination (0 when a cursor is used).
    pub offset: u64,
    pub after: Option<Cursor>,
}

impl Default for EmployeeQuery {
    fn default() -> Self {
        Self {
            sort: SortKey::default(),
            order: Order::default(),
            filters: Filters::default(),
            limit: DEFAULT_LIMIT,
            offset: 0,
            after: None,
        }
    }
}

fn query_error(field: &str, kind: &'static str, msg: impl Into<String>) -> FieldError {
    FieldError::at("query", field, kind, msg)
}

fn parse_int<T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy>(
    field: &str,
    raw: &str,
    min: T,
    max: T,
) -> Result<T, FieldError> {
    let value: T = raw.parse().map_err(|_| {
        query_error(
            field,
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
        )
    })?;
    if value < min {
        return Err(query_error(
            field,
            "greater_than_equal",
            format!("Input should be greater than or equal to {min}"),
        ));
    }
    if value > max {
        return Err(query_error(
            field,
            "less_than_equal",
            format!("Input should be less than or equal to {max}"),
        ));
    }
    Ok(value)
}

fn parse_filter(field: &str, raw: &str) -> Result<Option<String>, FieldError> {
    if raw.chars().count() > MAX_FILTER_LEN {
        return Err(query_error(
            field,
            "string_too_long",
            format!("String should have at most {MAX_FILTER_LEN} characters"),
        ));
    }
    if raw.chars().any(char::is_control) {
        return Err(query_error(
            field,
            "string_pattern_mismatch",
            "Control characters are not allowed",
        ));
    }
    Ok((!raw.is_empty()).then(|| fold(raw)))
}

/// The offset-paging parameters as sent (`GET /users/`); [`Page::parse`] checks them.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Rows to skip.
    #[param(value_type = u64, minimum = 0, maximum = 10000000, default = 0, required = false)]
    pub offset: Option<String>,
    /// Rows to return.
    #[param(value_type = u32, minimum = 1, maximum = 1000, default = 100, required = false)]
    pub limit: Option<String>,
}

impl Page {
    /// Checks `offset` (0..=OFFSET_CEILING) and `limit` (1..=MAX_LIMIT), reporting both.
    pub fn parse(params: &PageParams) -> Result<Self, Vec<FieldError>> {
        let mut page = Page::default();
        let mut errors = Vec::new();
        if let Some(raw) = &params.offset {
            match parse_int("offset", raw, 0, OFFSET_CEILING) {
                Ok(v) => page.offset = v,
                Err(e) => errors.push(e),
            }
        }
        if let Some(raw) = &params.limit {
            match parse_int("limit", raw, 1, MAX_LIMIT) {
                Ok(v) => page.limit = v,
                Err(e) => errors.push(e),
            }
        }
        if errors.is_empty() {
            Ok(page)
        } else {
            Err(errors)
        }
    }
}

/// The list's query parameters as sent (`GET /employees/`); [`EmployeeQuery::parse`] checks
/// them.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Rows to skip (offset pagination). Not combinable with `cursor`.
    #[param(value_type = u64, minimum = 0, maximum = 10000000, default = 0, required = false)]
    pub offset: Option<String>,
    /// Rows to return.
    #[param(value_type = u32, minimum = 1, maximum = 1000, default = 100, required = false)]
    pub limit: Option<String>,
    /// Case-insensitive substring of the city (`%`, `_`, `\` match literally).
    #[param(value_type = String, max_length = 100, required = false)]
    pub city: Option<String>,
    /// Case-insensitive substring of the country (`%`, `_`, `\` match literally).
    #[param(value_type = String, max_length = 100, required = false)]
    pub country: Option<String>,
    /// Sort column (default `emp_id`); ties are broken by `emp_id`.
    #[param(value_type = SortKey, inline, required = false)]
    pub sort_by: Option<String>,
    /// Sort direction (default `asc`).
    #[param(value_type = Order, inline, required = false)]
    pub order: Option<String>,
    /// Opaque keyset cursor from a previous page's `Link: rel="next"`; carries the sort and
    /// filters, so send it only with `limit`.
    #[param(value_type = String, max_length = 1024, required = false)]
    pub cursor: Option<String>,
}

impl EmployeeQuery {
    /// Checks the list's parameters (also used by the export), reporting every bad one.
    pub fn parse(params: &ListParams) -> Result<Self, Vec<FieldError>> {
        let mut q = EmployeeQuery::default();
        let mut errors = Vec::new();
        let mut collect = |result: Result<(), FieldError>| {
            if let Err(e) = result {
                errors.push(e);
            }
        };
        if let Some(raw) = &params.offset {
            collect(parse_int("offset", raw, 0, OFFSET_CEILING).map(|v| q.offset = v));
        }
        if let Some(raw) = &params.limit {
            collect(parse_int("limit", raw, 1, MAX_LIMIT).map(|v| q.limit = v));
        }
        if let Some(raw) = &params.sort_by {
            collect(SortKey::parse(raw).map(|v| q.sort = v).ok_or_else(|| {
                query_error(
                    "sort_by",
                    "literal_error",
                    "Input should be 'emp_id', 'emp_name', 'emp_dob', 'city' or 'country'",
                )
            }));
        }
        if let Some(raw) = &params.order {
            collect(Order::parse(raw).map(|v| q.order = v).ok_or_else(|| {
                query_error("order", "literal_error", "Input should be 'asc' or 'desc'")
            }));
        }
        if let Some(raw) = &params.city {
            collect(parse_filter("city", raw).map(|v| q.filters.city = v));
        }
        if let Some(raw) = &params.country {
            collect(parse_filter("country", raw).map(|v| q.filters.country = v));
        }
        if let Some(token) = &params.cursor {
            // A cursor carries its own sort and filters: only `limit` may travel with it.
            let explicit = params.offset.is_some()
                || params.sort_by.is_some()
                || params.order.is_some()
                || params.city.is_some()
                || params.country.is_some();
            match Cursor::decode(token) {
                None => errors.push(query_error("cursor", "value_error", "Invalid cursor")),
                Some(_) if explicit => errors.push(query_error(
                    "cursor",
                    "value_error",
                    "A cursor carries its own sort and filters; send only cursor and limit",
                )),
                Some(cursor) => {
                    q.sort = cursor.sort;
                    q.order = cursor.order;
                    q.filters = cursor.filters.clone();
                    q.after = Some(cursor);
                }
            }
        }
        if errors.is_empty() {
            Ok(q)
        } else {
            Err(errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The parameters as the query extractor builds them from `list`.
    fn pairs(list: &[(&str, &str)]) -> ListParams {
        let query = serde_urlencoded::to_string(list).unwrap();
        serde_urlencoded::from_str(&query).unwrap()
    }

    #[test]
    fn defaults_are_offset_zero_limit_100_by_emp_id_ascending() {
        let q = EmployeeQuery::parse(&ListParams::default()).unwrap();
        assert_eq!(
            (q.offset, q.limit, q.sort, q.order),
            (0, 100, SortKey::EmpId, Order::Asc)
        );
    }

    #[test]
    fn out_of_range_and_unknown_parameters_are_rejected() {
        for bad in [
            ("limit", "0"),
            ("limit", "1001"),
            ("limit", "-1"),
            ("offset", "10000001"),
            ("offset", "x"),
            ("sort_by", "password_hash"),
            ("order", "up"),
        ] {
            assert!(EmployeeQuery::parse(&pairs(&[bad])).is_err(), "{bad:?}");
        }
        assert!(EmployeeQuery::parse(&pairs(&[("city", &"a".repeat(101))])).is_err());
    }

    #[test]
    fn filters_are_folded_and_empty_means_none() {
        let q = EmployeeQuery::parse(&pairs(&[("city", "ZÜR"), ("country", "")])).unwrap();
        assert_eq!(q.filters.city.as_deref(), Some("zür"));
        assert_eq!(q.filters.country, None);
    }

    #[test]
    fn cursor_round_trips_and_carries_sort_and_filters() {
        let cursor = Cursor {
            sort: SortKey::City,
            order: Order::Desc,
            filters: Filters {
                city: Some("o".into()),
                country: None,
            },
            after_value: SortValue::Text("Oslo".into()),
            after_emp_id: 7,
        };
        let q =
            EmployeeQuery::parse(&pairs(&[("cursor", &cursor.encode()), ("limit", "5")])).unwrap();
        assert_eq!(q.after.as_ref(), Some(&cursor));
        assert_eq!((q.sort, q.order, q.limit), (SortKey::City, Order::Desc, 5));
        assert!(
            EmployeeQuery::parse(&pairs(&[
                ("cursor", &cursor.encode()),
                ("sort_by", "emp_id")
            ]))
            .is_err()
        );
        assert!(EmployeeQuery::parse(&pairs(&[("cursor", "garbage!")])).is_err());
    }

    #[test]
    fn cursor_with_mismatched_value_type_is_rejected() {
        let bad = Cursor {
            sort: SortKey::EmpDob,
            order: Order::Asc,
            filters: Filters::default(),
            after_value: SortValue::Text("not a date".into()),
            after_emp_id: 1,
        };
        assert!(Cursor::decode(&bad.encode()).is_none());
    }
}
