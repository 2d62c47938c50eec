//! The text of list queries: sort, filters, offset or keyset, and the counts. Only fixed
//! identifiers (from [`SortKey::column`]), numbered placeholders and the page size (an integer
//! the query parser bounded to 1..=1000) are ever written into the text; every value is bound.
//! What differs between the backends is decided by [`Dialect`].

use crate::{
    db::statement::{Param, Statement},
    domain::listing::{Cursor, EmployeeQuery, Filters, Order, SortKey, SortValue, parse_date},
};

/// The columns of a page row, in the order the readers expect them.
const COLUMNS: &str = "e.emp_id, e.emp_name, e.city, e.country, e.emp_dob, e.id";

/// The SQL spoken by one backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Sqlite,
}

/// Escapes `%`, `_` and `\` so a LIKE pattern matches them literally (with `ESCAPE '\'`).
fn like_literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl Dialect {
    /// A literal substring test of `column` against the bound `value`: `strpos` or `instr`,
    /// which treat `%`, `_` and `\` as ordinary characters.
    fn contains(self, column: &str, value: &str) -> String {
        match self {
            Dialect::Postgres => format!("strpos({column}, {value}) > 0"),
            Dialect::Sqlite => format!("instr({column}, {value}) > 0"),
        }
    }

    /// The list's test of one folded column while walking employees.
    ///
    /// PostgreSQL: `LIKE '%x%'`, which the pg_trgm GIN indexes serve (the planner sees each
    /// value: such statements are planned per execution). SQLite: `instr()` while walking the
    /// sort order's index, which stops after a page of matches.
    fn row_filter(self, column: &str, value: &str, sql: &mut Statement) -> String {
        match self {
            Dialect::Postgres => {
                let p = sql.bind(Param::Text(format!("%{}%", like_literal(value))));
                format!("{column} LIKE {p} ESCAPE '\\'")
            }
            Dialect::Sqlite => {
                let p = sql.bind(Param::Text(value.to_owned()));
                self.contains(column, &p)
            }
        }
    }

    /// The FROM clause and condition that reach the employees of the places `filters` match
    /// (`employee_places`, then `employees_place_idx`), for a filter that matches few rows.
    fn through_places(self, filters: &Filters, sql: &mut Statement) -> (String, String) {
        match self {
            Dialect::Sqlite => (
                "employees e INDEXED BY employees_place_idx".to_owned(),
                format!(
                    "(e.city_folded, e.country_folded) IN \
                     (SELECT city_folded, country_folded FROM employee_places WHERE {})",
                    self.place_conds(filters, "", sql)
                ),
            ),
            // LATERAL with OFFSET 0 keeps the nested loop: for each matching place, its
            // employees by employees_place_idx (the planner cannot tell how few places
            // strpos() keeps, and would otherwise hash-join the whole table).
            Dialect::Postgres => (
                "employee_places p CROSS JOIN LATERAL (SELECT * FROM employees \
                   WHERE city_folded = p.city_folded AND country_folded = p.country_folded \
                   OFFSET 0) e"
                    .to_owned(),
                self.place_conds(filters, "p.", sql),
            ),
        }
    }

    /// The FROM clause when walking the sort order. SQLite, filtered: walk the sort order's
    /// own index. Left to choose, SQLite 3.51 scans all of employees_place_idx (it holds the
    /// filtered columns) and sorts every match: 200 ms for "london" by name instead of 4 ms.
    fn walk_from(self, sort: SortKey, filtered: bool) -> String {
        match (self, filtered, sort) {
            (Dialect::Sqlite, true, SortKey::EmpId) => "employees e NOT INDEXED".to_owned(),
            (Dialect::Sqlite, true, _) => {
                format!("employees e INDEXED BY employees_{}_idx", sort.column())
            }
            _ => "employees e".to_owned(),
        }
    }

    /// The conditions on `employee_places` (aliased `alias`, e.g. `p.`) that select the places
    /// `filters` match: the same literal substring test the list applies.
    fn place_conds(self, filters: &Filters, alias: &str, sql: &mut Statement) -> String {
        let mut conds = Vec::new();
        for (column, value) in folded_filters(filters) {
            let p = sql.bind(Param::Text(value.to_owned()));
            conds.push(self.contains(&format!("{alias}{column}"), &p));
        }
        conds.join(" AND ")
    }

    /// A scalar subquery giving the number of employees matching `filters`. Without filters
    /// it reads the counter the triggers keep; with filters it sums the per-place counters
    /// (`employee_places`, one row per distinct folded (city, country) pair) whose place
    /// passes the same substring tests, so a common city costs a few hundred short rows, not a
    /// visit to each of its employees.
    pub(crate) fn count(self, filters: &Filters, sql: &mut Statement) -> String {
        if filters.is_empty() {
            return "(SELECT n FROM employee_count)".to_owned();
        }
        format!(
            "(SELECT CAST(coalesce(sum(n), 0) AS BIGINT) FROM employee_places WHERE {})",
            self.place_conds(filters, "", sql)
        )
    }

    /// The SELECT of at most `fetch` rows of the list, its parameters bound into `sql`.
    ///
    /// `by_place` (with filters): reach the rows through the places that match instead of
    /// walking the sort order (SQLite) or intersecting the trigram index (PostgreSQL).
    pub(crate) fn rows(
        self,
        query: &EmployeeQuery,
        fetch: i64,
        by_place: bool,
        sql: &mut Statement,
    ) -> String {
        let filtered = !query.filters.is_empty();
        let (from, mut conds) = if by_place && filtered {
            let (from, cond) = self.through_places(&query.filters, sql);
            (from, vec![cond])
        } else {
            let conds = folded_filters(&query.filters)
                .map(|(column, value)| self.row_filter(&format!("e.{column}"), value, sql))
                .collect();
            (self.walk_from(query.sort, filtered), conds)
        };
        let column = query.sort.column();
        let cmp = match query.order {
            Order::Asc => ">",
            Order::Desc => "<",
        };
        if let Some(cursor) = &query.after {
            conds.push(keyset_condition(cursor, column, cmp, sql));
        }
        let where_clause = if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        };
        let order_by = order_by(query, "e.");
        // The page size is written into the text, and OFFSET only when there is one: then the
        // statement of a first or cursor page has no parameter that changes its best plan, so
        // PostgreSQL settles on a cached generic plan instead of planning it again on every
        // request (a third of its CPU per page under perf). See `plan_is_stable`.
        let mut text =
            format!("SELECT {COLUMNS} FROM {from}{where_clause} ORDER BY {order_by} LIMIT {fetch}");
        if query.after.is_none() && query.offset > 0 {
            let offset = sql.bind(Param::Int(query.offset as i64));
            text.push_str(&format!(" OFFSET {offset}"));
        }
        text
    }
}

/// The ORDER BY of the list (columns prefixed by `alias`), ties broken by `emp_id`.
pub fn order_by(query: &EmployeeQuery, alias: &str) -> String {
    let dir = match query.order {
        Order::Asc => "ASC",
        Order::Desc => "DESC",
    };
    match query.sort {
        SortKey::EmpId => format!("{alias}emp_id {dir}"),
        sort => format!("{alias}{} {dir}, {alias}emp_id {dir}", sort.column()),
    }
}

/// Whether the list statement for `query` may be kept prepared. A substring filter's best
/// plan depends on its value (a rare city: the trigram index; a common one: walk the sort
/// index and stop early), and so does a large OFFSET's: those are planned per execution (an
/// unnamed statement), so PostgreSQL never falls back to one generic plan for every value.
pub fn plan_is_stable(query: &EmployeeQuery) -> bool {
    query.filters.is_empty() && (query.after.is_some() || query.offset == 0)
}

/// The folded columns and the values the filters hold.
fn folded_filters(filters: &Filters) -> impl Iterator<Item = (&'static str, &str)> {
    [
        ("city_folded", filters.city.as_deref()),
        ("country_folded", filters.country.as_deref()),
    ]
    .into_iter()
    .filter_map(|(column, value)| value.map(|v| (column, v)))
}

/// `(sort column, emp_id)` strictly after the cursor's position, in the list's direction.
fn keyset_condition(cursor: &Cursor, column: &str, cmp: &str, sql: &mut Statement) -> String {
    if cursor.sort == SortKey::EmpId {
        let p = sql.bind(Param::Int(cursor.after_emp_id));
        return format!("e.emp_id {cmp} {p}");
    }
    let value = match (&cursor.after_value, cursor.sort) {
        (SortValue::Text(v), SortKey::EmpDob) => {
            parse_date(v).map_or(Param::Text(v.clone()), Param::Date)
        }
        (SortValue::Text(v), _) => Param::Text(v.clone()),
        (SortValue::Int(v), _) => Param::Int(*v),
    };
    let v = sql.bind(value);
    let k = sql.bind(Param::Int(cursor.after_emp_id));
    format!("(e.{column}, e.emp_id) {cmp} ({v}, {k})")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_wildcards_and_backslash_are_escaped() {
        assert_eq!(like_literal(r"50%_a\b"), r"50\%\_a\\b");
    }

    #[test]
    fn values_are_bound_never_written_into_the_text() {
        let query = EmployeeQuery {
            filters: Filters {
                city: Some("o'slo%".into()),
                country: None,
            },
            ..EmployeeQuery::default()
        };
        for dialect in [Dialect::Postgres, Dialect::Sqlite] {
            for by_place in [false, true] {
                let mut sql = Statement::default();
                let text = dialect.rows(&query, 101, by_place, &mut sql);
                assert!(!text.contains("o'slo"), "{dialect:?}: {text}");
                assert!(text.contains("$1"), "{dialect:?}: {text}");
            }
        }
    }
}
