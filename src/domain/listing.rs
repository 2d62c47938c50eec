//! List queries: pagination (offset or keyset cursor), sorting and substring filters.
//! Unknown parameters are rejected, so a typo never silently returns an unfiltered list.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::Date;
use utoipa::{IntoParams, ToSchema};

use super::{
    employee::{City, Country, DateOfBirth, EmpId, EmpName, Employee, fold},
    validation::FieldError,
};

/// The deepest offset any configuration allows (`MAX_OFFSET` is at most this).
pub const OFFSET_CEILING: u64 = 10_000_000;
pub const MAX_LIMIT: u32 = 1000;
pub const DEFAULT_LIMIT: u32 = 100;
pub const MAX_FILTER_LEN: usize = 100;
/// The longest cursor accepted: room for the longest sort value and filters, in 4-byte
/// characters, as base64.
pub const MAX_CURSOR_LEN: usize = 4096;

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

    /// The opaque token clients pass back as `?cursor=`: the cursor as base64url JSON, a dot,
    /// and a MAC of that JSON under `key` (so a client can neither forge nor alter one).
    pub fn encode(&self, key: &CursorKey) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&json),
            URL_SAFE_NO_PAD.encode(key.tag(&json))
        )
    }

    /// Decodes a token made by [`Cursor::encode`] under `key`: the MAC must match, and every
    /// field must pass the checks the same value gets as a query parameter or stored field.
    pub fn decode(token: &str, key: &CursorKey) -> Option<Self> {
        if token.len() > MAX_CURSOR_LEN {
            return None;
        }
        let (body, tag) = token.split_once('.')?;
        let json = URL_SAFE_NO_PAD.decode(body).ok()?;
        key.verify(&json, &URL_SAFE_NO_PAD.decode(tag).ok()?)?;
        let cursor: Cursor = serde_json::from_slice(&json).ok()?;
        cursor.is_well_formed().then_some(cursor)
    }

    /// Whether every field is something the service could have written: folded filters of
    /// 1..=100 characters without control characters, an `emp_id` in range, and a sort value
    /// of the sort key's type and bounds.
    fn is_well_formed(&self) -> bool {
        let filter_ok = |f: &Option<String>| {
            f.as_ref().is_none_or(
                |v| matches!(parse_filter("cursor", v), Ok(Some(folded)) if folded == *v),
            )
        };
        let text_ok = |v: &str, max: usize| {
            let len = v.chars().count();
            (1..=max).contains(&len) && !v.chars().any(char::is_control) && v.trim() == v
        };
        let emp_id_ok = u64::try_from(self.after_emp_id).is_ok_and(|k| EmpId::new(k).is_ok());
        let value_ok = match (&self.sort, &self.after_value) {
            (SortKey::EmpId, SortValue::Int(v)) => *v == self.after_emp_id,
            (SortKey::EmpDob, SortValue::Text(v)) => {
                parse_date(v).is_some_and(|d| d >= DateOfBirth::EARLIEST && format_date(d) == *v)
            }
            (SortKey::EmpName, SortValue::Text(v)) => text_ok(v, EmpName::MAX_LEN),
            (SortKey::City, SortValue::Text(v)) => text_ok(v, City::MAX_LEN),
            (SortKey::Country, SortValue::Text(v)) => text_ok(v, Country::MAX_LEN),
            _ => false,
        };
        filter_ok(&self.filters.city) && filter_ok(&self.filters.country) && emp_id_ok && value_ok
    }
}

/// The key that signs list cursors: derived from the token secret (so every instance sharing
/// `JWT_SECRET_KEY` accepts the others' cursors), never the secret itself.
#[derive(Clone)]
pub struct CursorKey([u8; 32]);

/// Bytes of the MAC a cursor carries (128 bits).
const TAG_LEN: usize = 16;

impl CursorKey {
    /// HMAC-SHA256(secret, "employee-api cursor v1").
    pub fn derive(secret: &[u8]) -> Self {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts a key of any length"));
        mac.update(b"employee-api cursor v1");
        Self(mac.finalize().into_bytes().into())
    }

    fn mac(&self) -> Hmac<Sha256> {
        <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC accepts a key of any length"))
    }

    fn tag(&self, data: &[u8]) -> Vec<u8> {
        let mut mac = self.mac();
        mac.update(data);
        mac.finalize().into_bytes()[..TAG_LEN].to_vec()
    }

    /// `Some` when `tag` is `data`'s tag (compared in constant time).
    fn verify(&self, data: &[u8], tag: &[u8]) -> Option<()> {
        let mut mac = self.mac();
        mac.update(data);
        (tag.len() == TAG_LEN).then_some(())?;
        mac.verify_truncated_left(tag).ok()
    }
}

impl std::fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorKey(***)")
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
    /// Checks `offset` (0..=`max_offset`) and `limit` (1..=MAX_LIMIT), reporting both.
    pub fn parse(params: &PageParams, max_offset: u64) -> Result<Self, Vec<FieldError>> {
        let mut page = Page::default();
        let mut errors = Vec::new();
        if let Some(raw) = &params.offset {
            match parse_offset(raw, max_offset) {
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

/// An offset within `max_offset`; past it, the message names the cursor as the way deeper.
fn parse_offset(raw: &str, max_offset: u64) -> Result<u64, FieldError> {
    let offset = parse_int("offset", raw, 0, OFFSET_CEILING)?;
    if offset > max_offset {
        return Err(query_error(
            "offset",
            "less_than_equal",
            format!(
                "Input should be less than or equal to {max_offset}; to page deeper, follow the \
                 cursor in the `Link: rel=\"next\"` header"
            ),
        ));
    }
    Ok(offset)
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
    #[param(value_type = String, max_length = 100, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$", required = false)]
    pub city: Option<String>,
    /// Case-insensitive substring of the country (`%`, `_`, `\` match literally).
    #[param(value_type = String, max_length = 100, pattern = r"^[^\x00-\x1f\x7f-\x9f]*$", required = false)]
    pub country: Option<String>,
    /// Sort column (default `emp_id`); ties are broken by `emp_id`.
    #[param(value_type = SortKey, inline, required = false)]
    pub sort_by: Option<String>,
    /// Sort direction (default `asc`).
    #[param(value_type = Order, inline, required = false)]
    pub order: Option<String>,
    /// Opaque keyset cursor from a previous page's `Link: rel="next"`; carries the sort and
    /// filters, so send it only with `limit`.
    #[param(value_type = String, max_length = 4096, pattern = "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$", required = false)]
    pub cursor: Option<String>,
}

impl EmployeeQuery {
    /// Checks the list's parameters (also used by the export), reporting every bad one.
    /// `offset` may go up to `max_offset`; a `cursor` must be one `key` signed.
    pub fn parse(
        params: &ListParams,
        max_offset: u64,
        key: &CursorKey,
    ) -> Result<Self, Vec<FieldError>> {
        let mut q = EmployeeQuery::default();
        let mut errors = Vec::new();
        let mut collect = |result: Result<(), FieldError>| {
            if let Err(e) = result {
                errors.push(e);
            }
        };
        if let Some(raw) = &params.offset {
            collect(parse_offset(raw, max_offset).map(|v| q.offset = v));
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
        if let Some(token) = &params.cursor
            && errors.is_empty()
        {
            match Cursor::decode(token, key) {
                None => errors.push(query_error("cursor", "value_error", "Invalid cursor")),
                // A cursor carries its own sort and filters. Parameters that repeat them (as
                // generated clients send their documented defaults) are fine; ones that
                // contradict them are not.
                Some(cursor) if !q.agrees_with(params, &cursor) => errors.push(query_error(
                    "cursor",
                    "value_error",
                    "A cursor carries its own sort and filters; send only cursor and limit",
                )),
                Some(cursor) => {
                    q.sort = cursor.sort;
                    q.order = cursor.order;
                    q.filters = cursor.filters.clone();
                    q.offset = 0;
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

    /// Whether the parameters sent beside `cursor` (already parsed into `self`) say the same:
    /// no offset but 0, and any sort, order or filter sent equal to the cursor's.
    fn agrees_with(&self, params: &ListParams, cursor: &Cursor) -> bool {
        self.offset == 0
            && (params.sort_by.is_none() || self.sort == cursor.sort)
            && (params.order.is_none() || self.order == cursor.order)
            && (params.city.is_none() || self.filters.city == cursor.filters.city)
            && (params.country.is_none() || self.filters.country == cursor.filters.country)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> CursorKey {
        CursorKey::derive(b"a test secret of thirty-two bytes!")
    }

    /// The parameters as the query extractor builds them from `list`.
    fn pairs(list: &[(&str, &str)]) -> ListParams {
        let query = serde_urlencoded::to_string(list).unwrap();
        serde_urlencoded::from_str(&query).unwrap()
    }

    fn parse(list: &[(&str, &str)]) -> Result<EmployeeQuery, Vec<FieldError>> {
        EmployeeQuery::parse(&pairs(list), 10_000, &key())
    }

    fn city_cursor() -> Cursor {
        Cursor {
            sort: SortKey::City,
            order: Order::Desc,
            filters: Filters {
                city: Some("o".into()),
                country: None,
            },
            after_value: SortValue::Text("Oslo".into()),
            after_emp_id: 7,
        }
    }

    /// A token for `json` as the server would sign it (for forged contents).
    fn signed(json: &str) -> String {
        let key = key();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(json),
            URL_SAFE_NO_PAD.encode(key.tag(json.as_bytes()))
        )
    }

    #[test]
    fn defaults_are_offset_zero_limit_100_by_emp_id_ascending() {
        let q = parse(&[]).unwrap();
        assert_eq!(
            (q.offset, q.limit, q.sort, q.order),
            (0, 100, SortKey::EmpId, Order::Asc)
        );
    }

    #[test]
    fn out_of_range_and_unknown_values_are_rejected() {
        for bad in [
            ("limit", "0"),
            ("limit", "1001"),
            ("limit", "-1"),
            ("offset", "10001"),
            ("offset", "x"),
            ("sort_by", "password_hash"),
            ("order", "up"),
        ] {
            assert!(parse(&[bad]).is_err(), "{bad:?}");
        }
        assert!(parse(&[("city", &"a".repeat(101))]).is_err());
    }

    #[test]
    fn an_offset_past_the_maximum_names_the_cursor_as_the_way_deeper() {
        let errors = parse(&[("offset", "10001")]).unwrap_err();
        assert!(errors[0].msg.contains("cursor"), "{}", errors[0].msg);
        assert_eq!(parse(&[("offset", "10000")]).unwrap().offset, 10_000);
    }

    #[test]
    fn filters_are_folded_and_empty_means_none() {
        let q = parse(&[("city", "ZÜR"), ("country", "")]).unwrap();
        assert_eq!(q.filters.city.as_deref(), Some("zür"));
        assert_eq!(q.filters.country, None);
    }

    #[test]
    fn cursor_round_trips_and_carries_sort_and_filters() {
        let cursor = city_cursor();
        let q = parse(&[("cursor", &cursor.encode(&key())), ("limit", "5")]).unwrap();
        assert_eq!(q.after.as_ref(), Some(&cursor));
        assert_eq!((q.sort, q.order, q.limit), (SortKey::City, Order::Desc, 5));
    }

    #[test]
    fn parameters_beside_a_cursor_must_agree_with_it() {
        let token = city_cursor().encode(&key());
        for agreeing in [
            vec![("offset", "0")],
            vec![("sort_by", "city"), ("order", "desc"), ("city", "O")],
        ] {
            let mut list = vec![("cursor", token.as_str())];
            list.extend(agreeing.iter().copied());
            assert!(parse(&list).is_ok(), "{agreeing:?}");
        }
        for contradicting in [("offset", "5"), ("sort_by", "emp_id"), ("city", "x")] {
            assert!(
                parse(&[("cursor", &token), contradicting]).is_err(),
                "{contradicting:?}"
            );
        }
    }

    #[test]
    fn cursors_signed_with_another_key_or_altered_are_rejected() {
        let token = city_cursor().encode(&key());
        let other = city_cursor().encode(&CursorKey::derive(b"another secret, also 32 bytes...."));
        assert!(Cursor::decode(&other, &key()).is_none());
        let (body, tag) = token.split_once('.').unwrap();
        let mut json = URL_SAFE_NO_PAD.decode(body).unwrap();
        json[5] ^= 1;
        assert!(
            Cursor::decode(&format!("{}.{tag}", URL_SAFE_NO_PAD.encode(json)), &key()).is_none()
        );
        assert!(Cursor::decode(body, &key()).is_none(), "unsigned");
        assert!(parse(&[("cursor", "garbage!")]).is_err());
    }

    #[test]
    fn signed_but_impossible_cursor_fields_are_rejected() {
        for json in [
            r#"{"s":"emp_id","o":"asc","c":"\u0000","v":1,"k":1}"#,
            r#"{"s":"emp_id","o":"asc","c":"OSLO","v":1,"k":1}"#,
            r#"{"s":"emp_id","o":"asc","v":0,"k":0}"#,
            r#"{"s":"emp_id","o":"asc","v":9007199254740992,"k":9007199254740992}"#,
            r#"{"s":"emp_dob","o":"asc","v":"not a date","k":1}"#,
            r#"{"s":"emp_dob","o":"asc","v":"1899-12-31","k":1}"#,
            r#"{"s":"city","o":"asc","v":"","k":1}"#,
            r#"{"s":"city","o":"asc","v":"a\tb","k":1}"#,
            r#"{"s":"emp_id","o":"asc","v":"7","k":7}"#,
        ] {
            assert!(Cursor::decode(&signed(json), &key()).is_none(), "{json}");
        }
        assert!(
            Cursor::decode(&signed(r#"{"s":"emp_id","o":"asc","v":1,"k":1}"#), &key()).is_some()
        );
    }
}
