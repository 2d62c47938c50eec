//! Bulk import and export of employees, shared by the CLI and the HTTP API.
//!
//! CSV format: UTF-8, RFC 4180 quoting, a header row naming the columns
//! `emp_id,emp_name,city,country,emp_dob` (any order, all required, no others). Each row is
//! validated with exactly the API's rules. Imports are all-or-nothing: any invalid row or (with
//! `OnConflict::Error`) any existing `emp_id` rolls the whole import back.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::{
    db::{self, Db, import::IMPORT_BATCH},
    domain::{
        audit::AuditContext,
        employee::{Employee, NewEmployee, OnConflict},
        listing::{Cursor, EmployeeQuery},
        validation::{FieldError, LocPart},
    },
};

/// The columns of the CSV format, in export order.
pub const CSV_COLUMNS: [&str; 5] = ["emp_id", "emp_name", "city", "country", "emp_dob"];

/// At most this many row errors are reported; the rest are counted.
pub const MAX_REPORTED_ERRORS: usize = 1000;

/// What an import did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Valid rows read.
    pub rows: u64,
    /// Rows inserted, or replaced with `on_conflict=update`.
    pub written: u64,
    /// Rows left out because the `emp_id` existed (`on_conflict=skip`).
    pub skipped: u64,
    /// True when nothing was stored because this was a dry run.
    pub dry_run: bool,
}

/// Why an import stored nothing.
#[derive(Debug)]
pub enum ImportFailure {
    /// Rows that break the rules, each located by line (CSV) or index (JSON).
    Invalid {
        errors: Vec<FieldError>,
        more: usize,
    },
    /// `emp_id`s that already exist or repeat one earlier in the same input (with
    /// `OnConflict::Error`), in input order.
    Conflict {
        locations: Vec<ConflictAt>,
    },
    Database(db::Error),
}

/// One row refused by `OnConflict::Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictAt {
    /// Where the refused row is (its CSV line or JSON index).
    pub loc: LocPart,
    pub emp_id: i64,
    /// Where the same `emp_id` first appeared in this input, when the row repeats it;
    /// `None` when the `emp_id` was already stored.
    pub first: Option<LocPart>,
}

impl From<db::Error> for ImportFailure {
    fn from(e: db::Error) -> Self {
        ImportFailure::Database(e)
    }
}

/// Accumulates validated rows, writes them in batches inside one transaction, and collects
/// every error. Feed rows with [`Importer::push`], then call [`Importer::finish`].
pub struct Importer<'a> {
    db: &'a Db,
    /// Who imports, for the audit trail.
    ctx: AuditContext,
    mode: OnConflict,
    dry_run: bool,
    tx: Option<db::import::ImportTx>,
    batch: Vec<NewEmployee>,
    batch_locs: Vec<LocPart>,
    report: ImportReport,
    errors: Vec<FieldError>,
    more_errors: usize,
    conflicts: Vec<(LocPart, i64)>,
    /// With `OnConflict::Error`: every row's `emp_id` and index, so a repeat can name the
    /// first occurrence (16 bytes a row; nothing in the other modes).
    seen: Vec<(i64, usize)>,
}

impl<'a> Importer<'a> {
    pub fn new(db: &'a Db, mode: OnConflict, dry_run: bool, ctx: AuditContext) -> Self {
        Self {
            db,
            ctx,
            mode,
            dry_run,
            tx: None,
            batch: Vec::with_capacity(IMPORT_BATCH),
            batch_locs: Vec::with_capacity(IMPORT_BATCH),
            report: ImportReport {
                dry_run,
                ..Default::default()
            },
            errors: Vec::new(),
            more_errors: 0,
            conflicts: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// Valid rows so far.
    pub fn rows(&self) -> u64 {
        self.report.rows
    }

    fn failed(&self) -> bool {
        !self.errors.is_empty() || self.more_errors > 0 || !self.conflicts.is_empty()
    }

    /// Adds one row located at `loc` (its CSV line or JSON index).
    pub async fn push(
        &mut self,
        loc: LocPart,
        fields: Map<String, Value>,
    ) -> Result<(), ImportFailure> {
        match NewEmployee::from_json(vec!["body".into(), loc.clone()], fields) {
            Ok(row) => {
                self.report.rows += 1;
                if let (OnConflict::Error, LocPart::Index(at)) = (self.mode, &loc) {
                    self.seen.push((row.emp_id.get(), *at));
                }
                if !self.failed() {
                    self.batch.push(row);
                    self.batch_locs.push(loc);
                    if self.batch.len() >= IMPORT_BATCH {
                        self.flush().await?;
                    }
                }
            }
            Err(errors) => {
                // Once anything is wrong nothing will be stored: stop writing, keep checking.
                self.batch.clear();
                self.batch_locs.clear();
                for e in errors {
                    if self.errors.len() < MAX_REPORTED_ERRORS {
                        self.errors.push(e);
                    } else {
                        self.more_errors += 1;
                    }
                }
            }
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ImportFailure> {
        if self.batch.is_empty() {
            return Ok(());
        }
        // In one statement a row may be written only once. With `update` and `skip` the last
        // of any duplicates is kept (later ones win, as they would in separate statements);
        // with `error` the first is, and each repeat is the conflict.
        let keep_first = self.mode == OnConflict::Error;
        let mut last: HashMap<i64, usize> = HashMap::with_capacity(self.batch.len());
        for (i, row) in self.batch.iter().enumerate() {
            if keep_first {
                last.entry(row.emp_id.get()).or_insert(i);
            } else {
                last.insert(row.emp_id.get(), i);
            }
        }
        let mut rows = Vec::with_capacity(last.len());
        let mut row_locs = Vec::with_capacity(last.len());
        let mut duplicates = Vec::new();
        for (i, (row, loc)) in self
            .batch
            .drain(..)
            .zip(self.batch_locs.drain(..))
            .enumerate()
        {
            if last.get(&row.emp_id.get()) == Some(&i) {
                rows.push(row);
                row_locs.push(loc);
            } else {
                duplicates.push((loc, row.emp_id.get()));
            }
        }
        if self.tx.is_none() {
            self.tx = Some(self.db.begin_import(self.ctx.clone()).await?);
        }
        let Some(tx) = self.tx.as_mut() else {
            unreachable!("transaction started above")
        };
        let written: HashSet<i64> = tx
            .insert_batch(&rows, self.mode)
            .await?
            .into_iter()
            .collect();
        self.report.written += written.len() as u64;
        match self.mode {
            OnConflict::Skip => {
                self.report.skipped += (rows.len() - written.len() + duplicates.len()) as u64
            }
            OnConflict::Update => self.report.skipped += duplicates.len() as u64,
            OnConflict::Error => {
                for (row, loc) in rows.iter().zip(row_locs) {
                    if !written.contains(&row.emp_id.get()) {
                        self.conflicts.push((loc, row.emp_id.get()));
                    }
                }
                self.conflicts.extend(duplicates);
            }
        }
        Ok(())
    }

    /// Writes the last batch and commits, or rolls everything back and says why.
    pub async fn finish(mut self) -> Result<ImportReport, ImportFailure> {
        if !self.failed() {
            self.flush().await?;
        }
        let tx = self.tx.take();
        if self.failed() || self.dry_run {
            if let Some(tx) = tx {
                tx.rollback().await?;
            }
            if !self.errors.is_empty() || self.more_errors > 0 {
                return Err(ImportFailure::Invalid {
                    errors: self.errors,
                    more: self.more_errors,
                });
            }
            if !self.conflicts.is_empty() {
                return Err(ImportFailure::Conflict {
                    locations: locate_repeats(self.conflicts, &self.seen),
                });
            }
            return Ok(self.report);
        }
        if let Some(tx) = tx {
            tx.commit().await?;
        }
        Ok(self.report)
    }
}

/// The conflicts in input order, each repeat naming where its `emp_id` first appeared.
fn locate_repeats(mut conflicts: Vec<(LocPart, i64)>, seen: &[(i64, usize)]) -> Vec<ConflictAt> {
    let ids: HashSet<i64> = conflicts.iter().map(|(_, id)| *id).collect();
    let mut first: HashMap<i64, usize> = HashMap::with_capacity(ids.len());
    for (id, at) in seen {
        if ids.contains(id) {
            first.entry(*id).or_insert(*at);
        }
    }
    conflicts.sort_by_key(|(loc, _)| match loc {
        LocPart::Index(at) => *at,
        LocPart::Key(_) => usize::MAX,
    });
    conflicts
        .into_iter()
        .map(|(loc, emp_id)| {
            let first = first
                .get(&emp_id)
                .map(|at| LocPart::Index(*at))
                .filter(|at| *at != loc);
            ConflictAt { loc, emp_id, first }
        })
        .collect()
}

/// Characters that make a spreadsheet read a cell as a formula (OWASP "CSV injection").
const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A text cell as exported: one `'` in front when the text would start a formula, so a
/// spreadsheet shows it as text. Text that already starts with quotes before such a character
/// gets one more, so [`restore_cell`] gives every value back exactly.
pub fn neutralize_cell(text: &str) -> std::borrow::Cow<'_, str> {
    if text.trim_start_matches('\'').starts_with(FORMULA_STARTS) {
        format!("'{text}").into()
    } else {
        text.into()
    }
}

/// The inverse of [`neutralize_cell`], applied to imported text cells: exactly one leading `'`
/// is removed when what follows is quotes and then a formula character.
pub fn restore_cell(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.trim_start_matches('\'').starts_with(FORMULA_STARTS) => rest,
        _ => cell,
    }
}

/// Turns one CSV record into the JSON object the API would have received: `emp_id` as a
/// number when it is one (so the same rules and messages apply), every other field a string
/// (with the export's formula guard taken off; see [`restore_cell`]).
pub fn csv_record_to_fields(headers: &[String], record: &csv::StringRecord) -> Map<String, Value> {
    let mut fields = Map::new();
    for (name, value) in headers.iter().zip(record.iter()) {
        let value = if name == "emp_id" {
            match (value.parse::<u64>(), value.parse::<i64>()) {
                (Ok(n), _) => Value::from(n),
                (_, Ok(n)) => Value::from(n),
                _ => Value::from(value),
            }
        } else {
            Value::from(restore_cell(value))
        };
        fields.insert(name.clone(), value);
    }
    fields
}

/// Checks a CSV header: every column of the format, nothing else, no repeats.
pub fn check_csv_header(headers: &csv::StringRecord) -> Result<Vec<String>, String> {
    let names: Vec<String> = headers
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_owned())
        .collect();
    for column in CSV_COLUMNS {
        if !names.iter().any(|n| n == column) {
            return Err(format!(
                "CSV header is missing the column {column:?} (expected {})",
                CSV_COLUMNS.join(",")
            ));
        }
    }
    if let Some(extra) = names.iter().find(|n| !CSV_COLUMNS.contains(&n.as_str())) {
        return Err(format!(
            "CSV header has an unknown column {extra:?} (expected {})",
            CSV_COLUMNS.join(",")
        ));
    }
    if names.len() != CSV_COLUMNS.len() {
        return Err("CSV header repeats a column".into());
    }
    Ok(names)
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    #[default]
    Csv,
    Ndjson,
}

impl ExportFormat {
    /// The names clients and the command line use.
    pub const NAMES: [&'static str; 2] = ["csv", "ndjson"];

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "csv" => Some(ExportFormat::Csv),
            "ndjson" => Some(ExportFormat::Ndjson),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Csv => "text/csv; charset=utf-8",
            ExportFormat::Ndjson => "application/x-ndjson",
        }
    }

    /// The first bytes of an export (the CSV header row).
    pub fn preamble(self) -> Vec<u8> {
        match self {
            ExportFormat::Csv => format!("{}\r\n", CSV_COLUMNS.join(",")).into_bytes(),
            ExportFormat::Ndjson => Vec::new(),
        }
    }

    /// Appends `rows` in this format to `out`. CSV text cells that would start a spreadsheet
    /// formula are written with a leading `'` ([`neutralize_cell`]); NDJSON is written as is.
    pub fn write_rows(self, rows: &[Employee], out: &mut Vec<u8>) {
        match self {
            ExportFormat::Csv => {
                let mut writer = csv::WriterBuilder::new()
                    .terminator(csv::Terminator::CRLF)
                    .from_writer(out);
                for e in rows {
                    let dob = crate::domain::listing::format_date(e.emp_dob);
                    let _ = writer.write_record([
                        e.emp_id.to_string().as_str(),
                        &neutralize_cell(&e.emp_name),
                        &neutralize_cell(&e.city),
                        &neutralize_cell(&e.country),
                        &dob,
                    ]);
                }
                let _ = writer.flush();
            }
            ExportFormat::Ndjson => {
                for e in rows {
                    if serde_json::to_writer(&mut *out, e).is_ok() {
                        out.push(b'\n');
                    }
                }
            }
        }
    }
}

/// Rows fetched per page while exporting: memory stays bounded by one page.
pub const EXPORT_PAGE: u32 = 1000;

/// The next page of an export after `query` (keyset, so each page costs the same at any
/// depth); returns the rows and the query for the page after, if any.
pub async fn export_page(
    db: &Db,
    query: &EmployeeQuery,
) -> Result<(Vec<Employee>, Option<EmployeeQuery>), db::Error> {
    let mut rows = db.list_employees(query).await?;
    let more = rows.len() > query.limit as usize;
    rows.truncate(query.limit as usize);
    let next = match (more, rows.last()) {
        (true, Some(last)) => Some(EmployeeQuery {
            after: Some(Cursor::after(last, query.sort, query.order, &query.filters)),
            offset: 0,
            ..query.clone()
        }),
        _ => None,
    };
    Ok((rows, next))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_that_start_a_formula_are_exported_as_text_and_imported_back_exactly() {
        for (stored, exported) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+London", "'+London"),
            ("-5", "'-5"),
            ("@UK", "'@UK"),
            ("'=already quoted", "''=already quoted"),
            ("O'Brien", "O'Brien"),
            ("'quoted", "'quoted"),
            ("Zürich", "Zürich"),
        ] {
            assert_eq!(neutralize_cell(stored), exported, "{stored}");
            assert_eq!(restore_cell(exported), stored, "{exported}");
        }
    }
}
