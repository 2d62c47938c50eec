//! SQL built at run time: the text with numbered placeholders, and the values bound to them.
//! Only fixed identifiers and placeholders are ever written into the text; every value is
//! bound.

use time::Date;
use uuid::Uuid;

/// A value bound to a statement, in placeholder order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Param {
    Text(String),
    Int(i64),
    Bool(bool),
    Date(Date),
    Uuid(Uuid),
    Bytes(Vec<u8>),
}

/// A statement's text and its parameters, named `$1`, `$2`, ... in the text.
#[derive(Debug, Clone, Default)]
pub(crate) struct Statement {
    pub text: String,
    pub params: Vec<Param>,
}

impl Statement {
    /// Appends `param` and returns its placeholder (`$n`).
    pub fn bind(&mut self, param: Param) -> String {
        self.params.push(param);
        format!("${}", self.params.len())
    }
}

/// Binds `params` to a sqlx query in placeholder order.
pub(crate) fn bind_all<'q, DB, O>(
    mut query: sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments>,
    params: Vec<Param>,
) -> sqlx::query::QueryAs<'q, DB, O, <DB as sqlx::Database>::Arguments>
where
    DB: sqlx::Database,
    String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Date: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Uuid: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Vec<u8>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for param in params {
        query = match param {
            Param::Text(v) => query.bind(v),
            Param::Int(v) => query.bind(v),
            Param::Bool(v) => query.bind(v),
            Param::Date(v) => query.bind(v),
            Param::Uuid(v) => query.bind(v),
            Param::Bytes(v) => query.bind(v),
        };
    }
    query
}
