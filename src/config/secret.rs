//! Values that must never be printed: secrets, and database URLs that may carry a password.

use std::{fmt, path::PathBuf};

/// A secret string whose `Debug`/`Display` never reveal it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Where the data lives.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// A SQLite file; `read_only` (`?mode=ro`): opened without write access, never created,
    /// every write refused.
    Sqlite {
        path: PathBuf,
        read_only: bool,
    },
    Postgres(Secret),
}

impl DatabaseUrl {
    /// Accepts `sqlite://PATH[?mode=ro|rw|rwc]`, `sqlite:PATH` and `postgres://` /
    /// `postgresql://` URLs.
    pub fn parse(raw: &str) -> Result<Self, String> {
        if let Some(rest) = raw
            .strip_prefix("sqlite://")
            .or_else(|| raw.strip_prefix("sqlite:"))
        {
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            if path.is_empty() || path == ":memory:" {
                return Err(
                    "DATABASE_URL: a SQLite database needs a file path (sqlite://PATH)".into(),
                );
            }
            let mut read_only = false;
            for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
                if key == "mode" {
                    read_only = match value.as_ref() {
                        "ro" => true,
                        "rw" | "rwc" => false,
                        _ => {
                            return Err(
                                "DATABASE_URL: a SQLite mode is ro (read-only), rw or rwc".into()
                            );
                        }
                    };
                }
            }
            return Ok(DatabaseUrl::Sqlite {
                path: PathBuf::from(path),
                read_only,
            });
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return Ok(DatabaseUrl::Postgres(Secret::new(raw)));
        }
        Err("DATABASE_URL: must start with sqlite:// or postgres://".into())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for DatabaseUrl {
    /// Shows the URL with any password replaced by `***`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatabaseUrl::Sqlite { path, read_only } => {
                let mode = if *read_only { "?mode=ro" } else { "" };
                write!(f, "sqlite://{}{mode}", path.display())
            }
            DatabaseUrl::Postgres(url) => f.write_str(&mask_url_secrets(url.expose())),
        }
    }
}

/// A URL with every secret replaced by `***`: the user-info password and any `password` or
/// `sslpassword` query parameter (libpq accepts both). A URL that does not parse is not shown
/// at all, since it might still hold a password.
pub fn mask_url_secrets(raw: &str) -> String {
    let Ok(mut url) = url::Url::parse(raw) else {
        return "(unparseable URL, not shown)".to_owned();
    };
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    if url.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let secret = matches!(key.as_ref(), "password" | "sslpassword");
                let value = if secret { "***".into() } else { value };
                (key.into_owned(), value.into_owned())
            })
            .collect();
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_debug_masks_the_password() {
        let url = DatabaseUrl::parse("postgres://app:s3cret@db.internal:5432/emp").unwrap();
        let shown = format!("{url:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("app:***@db.internal"), "{shown}");
    }

    #[test]
    fn password_query_parameters_are_masked_too() {
        let shown = mask_url_secrets(
            "postgres://app@db/emp?sslmode=require&password=s3cret&sslpassword=k3y",
        );
        assert!(
            !shown.contains("s3cret") && !shown.contains("k3y"),
            "{shown}"
        );
        assert!(shown.contains("sslmode=require"), "{shown}");
    }

    #[test]
    fn an_unparseable_url_is_not_shown() {
        assert!(!mask_url_secrets("postgres://a:pw@[bad").contains("pw"));
    }

    #[test]
    fn secret_debug_is_masked() {
        assert_eq!(format!("{:?}", Secret::new("abc")), "***");
    }

    #[test]
    fn sqlite_urls_need_a_path() {
        assert!(DatabaseUrl::parse("sqlite://data/x.db").is_ok());
        assert!(DatabaseUrl::parse("sqlite::memory:").is_err());
        assert!(DatabaseUrl::parse("mysql://x").is_err());
    }

    #[test]
    fn mode_ro_opens_a_sqlite_database_read_only() {
        let url = DatabaseUrl::parse("sqlite://data/x.db?mode=ro").unwrap();
        assert_eq!(
            url,
            DatabaseUrl::Sqlite {
                path: "data/x.db".into(),
                read_only: true
            }
        );
        assert_eq!(url.to_string(), "sqlite://data/x.db?mode=ro");
        for writable in ["sqlite://data/x.db", "sqlite:data/x.db?mode=rwc"] {
            assert!(
                matches!(
                    DatabaseUrl::parse(writable),
                    Ok(DatabaseUrl::Sqlite {
                        read_only: false,
                        ..
                    })
                ),
                "{writable}"
            );
        }
        assert!(DatabaseUrl::parse("sqlite://data/x.db?mode=memory").is_err());
    }
}
