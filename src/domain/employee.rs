//! Employee records: the validated field types, the create/update inputs and the stored record.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::{Date, OffsetDateTime, macros::date};
use unicode_normalization::UnicodeNormalization;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    input::{ObjectReader, bounded_text, json_str},
    validation::{FieldError, Invalid, LocPart},
};

/// The largest employee number: 2^53-1, exact in every JSON client (JavaScript included).
pub const MAX_EMP_ID: u64 = 9_007_199_254_740_991;

/// The business key of an employee, 1..=2^53-1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EmpId(i64);

impl EmpId {
    pub fn new(raw: u64) -> Result<Self, Invalid> {
        if raw == 0 {
            return Err(Invalid::new(
                "greater_than_equal",
                "Input should be greater than or equal to 1",
            ));
        }
        if raw > MAX_EMP_ID {
            return Err(Invalid::new(
                "less_than_equal",
                format!("Input should be less than or equal to {MAX_EMP_ID}"),
            ));
        }
        // Cannot truncate: MAX_EMP_ID < i64::MAX.
        Ok(Self(raw as i64))
    }

    /// From a JSON number; only integers (no strings, no fractions) are accepted.
    pub fn from_json(value: &Value) -> Result<Self, Invalid> {
        match value {
            Value::Number(n) if n.is_u64() => Self::new(n.as_u64().unwrap_or_default()),
            Value::Number(n) if n.is_i64() => Err(Invalid::new(
                "greater_than_equal",
                "Input should be greater than or equal to 1",
            )),
            Value::Number(n)
                if n.as_f64()
                    .is_some_and(|f| f.fract() == 0.0 && f > MAX_EMP_ID as f64) =>
            {
                Err(Invalid::new(
                    "less_than_equal",
                    format!("Input should be less than or equal to {MAX_EMP_ID}"),
                ))
            }
            _ => Err(Invalid::new("int_type", "Input should be a valid integer")),
        }
    }

    /// From a path or query segment: ASCII digits only.
    pub fn parse_str(raw: &str) -> Result<Self, Invalid> {
        if raw.is_empty() || raw.len() > 20 || !raw.bytes().all(|b| b.is_ascii_digit()) {
            if raw.starts_with('-') && raw.len() > 1 && raw[1..].bytes().all(|b| b.is_ascii_digit())
            {
                return Err(Invalid::new(
                    "greater_than_equal",
                    "Input should be greater than or equal to 1",
                ));
            }
            return Err(Invalid::new(
                "int_parsing",
                "Input should be a valid integer, unable to parse string as an integer",
            ));
        }
        match raw.parse::<u64>() {
            Ok(n) => Self::new(n),
            Err(_) => Self::new(u64::MAX),
        }
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

macro_rules! text_field {
    ($(#[$doc:meta])* $name:ident, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            pub const MAX_LEN: usize = $max;

            /// Trims, then requires 1..=MAX_LEN characters and no control characters.
            pub fn from_json(value: &Value) -> Result<Self, Invalid> {
                bounded_text(value, 1, Self::MAX_LEN).map(Self)
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

text_field!(
    /// An employee's full name, 1-200 characters.
    EmpName,
    200
);
text_field!(
    /// A city name, 1-100 characters.
    City,
    100
);
text_field!(
    /// A country name, 1-100 characters.
    Country,
    100
);

/// The case- and form-insensitive key that the substring filters compare: Unicode default
/// caseless matching on compatibility-normalised text, NFKC(full case fold(NFKC(text))). So
/// `Straße` and `STRASSE` both fold to `strasse`, the ligature `ﬁ` to `fi`, `ẞ` to `ss`, `ſ`
/// to `s`, and composed and decomposed accents alike. Folding is language-neutral: `I` folds
/// to `i` and the Turkish dotless `ı` stays `ı` (so `ı` and `i` do not match), and `İ`
/// becomes `i` plus a combining dot above. Applied to stored values and to queries alike, on
/// both backends; [`FOLD_VERSION`] names this rule in the database.
pub fn fold(text: &str) -> String {
    use caseless::Caseless;
    let once: String = text.nfkc().default_case_fold().nfkc().collect();
    // Folding is idempotent for all of Unicode bar a few compatibility characters whose fold
    // normalises into something foldable again; a second pass settles those.
    let twice: String = once.chars().default_case_fold().nfkc().collect();
    if twice == once { once } else { twice }
}

/// The version of [`fold`] the stored `*_folded` columns must be brought to (see
/// `db::Db::migrate`). Bump it when `fold` changes.
pub const FOLD_VERSION: &str = "fold-2-full-case-folding";

/// A date of birth: a real calendar date from 1900-01-01 to today (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateOfBirth(Date);

impl DateOfBirth {
    pub const EARLIEST: Date = date!(1900 - 01 - 01);

    pub fn from_json(value: &Value) -> Result<Self, Invalid> {
        let raw = json_str(value)
            .map_err(|_| Invalid::new("date_type", "Input should be a valid date"))?;
        Self::parse(raw, OffsetDateTime::now_utc().date())
    }

    /// Parses strict `YYYY-MM-DD`, checking the range against `today`.
    pub fn parse(raw: &str, today: Date) -> Result<Self, Invalid> {
        let format =
            time::macros::format_description!("[year repr:full base:calendar]-[month]-[day]");
        let bytes = raw.as_bytes();
        let shaped = bytes.len() == 10
            && bytes[4] == b'-'
            && bytes[7] == b'-'
            && bytes
                .iter()
                .enumerate()
                .all(|(i, b)| i == 4 || i == 7 || b.is_ascii_digit());
        let date = shaped
            .then(|| Date::parse(raw, format).ok())
            .flatten()
            .ok_or_else(|| {
                Invalid::new(
                    "date_from_datetime_parsing",
                    "Input should be a valid date in the format YYYY-MM-DD",
                )
            })?;
        if date < Self::EARLIEST {
            return Err(Invalid::new(
                "value_error",
                "Date of birth cannot be before 1900-01-01",
            ));
        }
        if date > today {
            return Err(Invalid::new(
                "value_error",
                "Date of birth cannot be in the future",
            ));
        }
        Ok(Self(date))
    }

    pub fn get(self) -> Date {
        self.0
    }
}

/// A validated new employee.
#[derive(Debug, Clone)]
pub struct NewEmployee {
    pub emp_id: EmpId,
    pub emp_name: EmpName,
    pub city: City,
    pub country: Country,
    pub emp_dob: DateOfBirth,
}

impl NewEmployee {
    /// Parses a JSON object located at `prefix` (e.g. `["body"]`), reporting every failure.
    pub fn from_json(
        prefix: Vec<LocPart>,
        fields: Map<String, Value>,
    ) -> Result<Self, Vec<FieldError>> {
        let mut r = ObjectReader::new(prefix, fields);
        let emp_id = r.required("emp_id", EmpId::from_json);
        let emp_name = r.required("emp_name", EmpName::from_json);
        let city = r.required("city", City::from_json);
        let country = r.required("country", Country::from_json);
        let emp_dob = r.required("emp_dob", DateOfBirth::from_json);
        r.finish()?;
        match (emp_id, emp_name, city, country, emp_dob) {
            (Some(emp_id), Some(emp_name), Some(city), Some(country), Some(emp_dob)) => Ok(Self {
                emp_id,
                emp_name,
                city,
                country,
                emp_dob,
            }),
            // finish() reported an error for each missing piece.
            _ => Err(Vec::new()),
        }
    }
}

/// A validated partial update: only the fields present change.
#[derive(Debug, Clone, Default)]
pub struct EmployeeChanges {
    pub emp_name: Option<EmpName>,
    pub city: Option<City>,
    pub country: Option<Country>,
    pub emp_dob: Option<DateOfBirth>,
}

impl EmployeeChanges {
    /// `emp_id`, `id`, `null` values and unknown fields are all rejected.
    pub fn from_json(fields: Map<String, Value>) -> Result<Self, Vec<FieldError>> {
        let mut r = ObjectReader::new(vec!["body".into()], fields);
        let changes = Self {
            emp_name: r.optional("emp_name", EmpName::from_json),
            city: r.optional("city", City::from_json),
            country: r.optional("country", Country::from_json),
            emp_dob: r.optional("emp_dob", DateOfBirth::from_json),
        };
        r.finish()?;
        Ok(changes)
    }

    pub fn is_empty(&self) -> bool {
        self.emp_name.is_none()
            && self.city.is_none()
            && self.country.is_none()
            && self.emp_dob.is_none()
    }
}

/// What an import does with an `emp_id` that already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnConflict {
    /// Refuse the whole import (the default).
    #[default]
    Error,
    /// Keep the stored row, ignore the imported one.
    Skip,
    /// Replace the stored row's fields (its `id` is kept).
    Update,
}

impl OnConflict {
    /// The names clients and the command line use, in declaration order.
    pub const NAMES: [&'static str; 3] = ["error", "skip", "update"];

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "error" => Some(OnConflict::Error),
            "skip" => Some(OnConflict::Skip),
            "update" => Some(OnConflict::Update),
            _ => None,
        }
    }
}

/// A stored employee, as the API returns it (EmployeeRead).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = EmployeeRead, example = json!({
    "emp_id": 1001, "emp_name": "Ada Lovelace", "city": "London", "country": "United Kingdom",
    "emp_dob": "1985-12-10", "id": "5f0c1a9e-8d0b-4c59-9a53-3f6f3c1b2a10"
}))]
pub struct Employee {
    /// Employee number, 1..=9007199254740991.
    #[schema(value_type = i64, minimum = 1, maximum = 9007199254740991_i64)]
    pub emp_id: i64,
    pub emp_name: String,
    pub city: String,
    pub country: String,
    #[schema(value_type = String, format = Date)]
    pub emp_dob: Date,
    /// Server-assigned identifier.
    pub id: Uuid,
    /// The audit entry of the last write (0: written before the audit trail existed). Sent as
    /// the strong `ETag`, not in the body.
    #[serde(skip)]
    #[schema(ignore)]
    pub version: i64,
}

impl Employee {
    /// Builds the read model from validated parts.
    pub fn new(id: Uuid, e: NewEmployee) -> Self {
        Self {
            emp_id: e.emp_id.get(),
            emp_name: e.emp_name.0,
            city: e.city.0,
            country: e.country.0,
            emp_dob: e.emp_dob.get(),
            id,
            version: 0,
        }
    }

    /// The strong entity tag of this version (RFC 9110 §8.8.3).
    pub fn etag(&self) -> String {
        format!("\"{}\"", self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn emp_id_accepts_the_json_safe_range_only() {
        assert!(EmpId::from_json(&json!(1)).is_ok());
        assert!(EmpId::from_json(&json!(MAX_EMP_ID)).is_ok());
        assert_eq!(
            EmpId::from_json(&json!(0)).unwrap_err().kind,
            "greater_than_equal"
        );
        assert_eq!(
            EmpId::from_json(&json!(-5)).unwrap_err().kind,
            "greater_than_equal"
        );
        assert_eq!(
            EmpId::from_json(&json!(MAX_EMP_ID + 1)).unwrap_err().kind,
            "less_than_equal"
        );
        assert_eq!(
            EmpId::from_json(&json!(1e30)).unwrap_err().kind,
            "less_than_equal"
        );
        assert_eq!(EmpId::from_json(&json!(1.5)).unwrap_err().kind, "int_type");
        assert_eq!(EmpId::from_json(&json!("7")).unwrap_err().kind, "int_type");
    }

    #[test]
    fn emp_id_in_a_path_must_be_plain_digits() {
        assert_eq!(EmpId::parse_str("42").unwrap().get(), 42);
        assert!(EmpId::parse_str("99999999999999999999999").is_err());
        assert!(EmpId::parse_str("+4").is_err());
        assert!(EmpId::parse_str("4a").is_err());
        assert!(EmpId::parse_str("").is_err());
        assert_eq!(
            EmpId::parse_str("-1").unwrap_err().kind,
            "greater_than_equal"
        );
    }

    #[test]
    fn dates_must_be_real_and_in_range() {
        let today = date!(2026 - 06 - 15);
        assert!(DateOfBirth::parse("2000-02-29", today).is_ok());
        assert!(DateOfBirth::parse("2001-02-29", today).is_err());
        assert!(DateOfBirth::parse("1900-01-01", today).is_ok());
        assert!(DateOfBirth::parse("1899-12-31", today).is_err());
        assert!(DateOfBirth::parse("2026-06-15", today).is_ok());
        assert_eq!(
            DateOfBirth::parse("2026-06-16", today).unwrap_err().msg,
            "Date of birth cannot be in the future"
        );
        for bad in [
            "2000-1-01",
            "20000-01-01",
            "2000/01/01",
            "2000-01-01T00:00:00",
            " 2000-01-01",
        ] {
            assert!(DateOfBirth::parse(bad, today).is_err(), "{bad}");
        }
    }

    #[test]
    fn fold_is_unicode_aware() {
        assert_eq!(fold("ZÜRICH"), "zürich");
        assert_eq!(fold("Zu\u{308}rich"), "zürich");
        assert!(fold("İstanbul").starts_with('i'));
    }

    #[test]
    fn fold_is_full_case_folding_on_nfkc() {
        assert_eq!(fold("Straße"), "strasse");
        assert_eq!(fold("STRASSE"), "strasse");
        assert_eq!(
            fold("Großenhain"),
            "grossenhain",
            "ß in the middle of a word"
        );
        assert_eq!(fold("ẞ"), "ss", "capital sharp s");
        assert_eq!(fold("ﬁnland"), "finland", "ligature");
        assert_eq!(fold("ΣΊΣΥΦΟΣ"), fold("σίσυφος"), "final sigma");
        assert_eq!(fold("ſ"), "s", "long s");
        assert_eq!(fold("Ｗｉｄｅ"), "wide", "full-width letters");
        // Turkish: language-neutral folding. Dotless ı stays ı; İ is i + U+0307.
        assert_eq!(fold("ISTANBUL"), "istanbul");
        assert_eq!(fold("ıstanbul"), "ıstanbul");
        assert_eq!(fold("İstanbul"), "i\u{307}stanbul");
    }

    #[test]
    fn fold_is_idempotent_for_every_character() {
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let once = fold(c.encode_utf8(&mut [0; 4]));
            assert_eq!(fold(&once), once, "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn update_rejects_emp_id_null_and_unknown_fields() {
        let Value::Object(m) = json!({"emp_id": 3}) else {
            unreachable!()
        };
        assert!(EmployeeChanges::from_json(m).is_err());
        let Value::Object(m) = json!({"city": null}) else {
            unreachable!()
        };
        assert!(EmployeeChanges::from_json(m).is_err());
        let Value::Object(m) = json!({"city": "Oslo"}) else {
            unreachable!()
        };
        assert_eq!(
            EmployeeChanges::from_json(m)
                .unwrap()
                .city
                .unwrap()
                .as_str(),
            "Oslo"
        );
    }
}
