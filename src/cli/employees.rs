//! `employee-api employees import|export`: bulk transfer through the same code as the API.

use std::{
    io::{IsTerminal, Write},
    path::PathBuf,
    time::Instant,
};

use super::{EmployeesCommand, Failure, failure, write_failure};
use crate::{
    config::Config,
    db::Db,
    domain::{
        audit::{Action, AuditContext, NewEntry},
        employee::OnConflict,
        listing::{CursorKey, EmployeeQuery, ListParams},
        validation::LocPart,
    },
    server,
    transfer::{
        EXPORT_PAGE, ImportFailure, Importer, check_csv_header, csv_record_to_fields, export_page,
    },
};

/// The progress line on a terminal: rows (counted by lines read), rate and time left; at most
/// 76 columns with ten-million-row files, so it never wraps at 80.
const PROGRESS_TEMPLATE: &str = "{bar:24} {human_pos:>10}/{human_len} rows {rate:>13} eta {eta}";

pub(super) async fn employees(config: Config, cmd: EmployeesCommand) -> Result<(), Failure> {
    let db = server::open_database(&config).await?;
    let done = employees_command(&db, cmd).await;
    super::seal_audit(&db).await;
    done
}

async fn employees_command(db: &Db, cmd: EmployeesCommand) -> Result<(), Failure> {
    match cmd {
        EmployeesCommand::Import {
            file,
            dry_run,
            on_conflict,
        } => import(db, &file, dry_run, on_conflict).await,
        EmployeesCommand::Export {
            format,
            city,
            country,
            sort_by,
            order,
            output,
        } => {
            let params = ListParams {
                sort_by: Some(sort_by),
                order: Some(order),
                city,
                country,
                ..ListParams::default()
            };
            // The export takes no cursor, so no key is ever used to check one.
            let no_cursors = CursorKey::derive(&[]);
            let mut query = EmployeeQuery::parse(&params, 0, &no_cursors).map_err(|errors| {
                failure(
                    errors
                        .iter()
                        .map(|e| format!("{}: {}", e.loc_text(), e.msg))
                        .collect::<Vec<_>>()
                        .join("; "),
                )
            })?;
            query.limit = EXPORT_PAGE;
            db.record(
                &AuditContext::cli(),
                vec![NewEntry::untargeted(Action::EmployeeExport)],
            )
            .await
            .map_err(|e| failure(format!("audit trail: {e}")))?;
            let sink: Box<dyn Write> = match &output {
                Some(path) => Box::new(
                    std::fs::File::create(path)
                        .map_err(|e| failure(format!("{}: {e}", path.display())))?,
                ),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut out = std::io::BufWriter::new(sink);
            // A reader that goes away (`| head`) ends the export quietly.
            let io_err = write_failure;
            out.write_all(&format.preamble()).map_err(io_err)?;
            let mut next = Some(query);
            let mut buf = Vec::new();
            let mut total = 0u64;
            while let Some(query) = next {
                let (rows, after) = export_page(db, &query)
                    .await
                    .map_err(|e| failure(format!("database: {e}")))?;
                buf.clear();
                format.write_rows(&rows, &mut buf);
                out.write_all(&buf).map_err(io_err)?;
                total += rows.len() as u64;
                next = after;
            }
            out.flush().map_err(io_err)?;
            eprintln!("exported {total} employees");
            Ok(())
        }
    }
}

/// Lines in a file (to size the progress bar in rows); `None` when it cannot be read.
fn count_lines(path: &PathBuf) -> Option<u64> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut lines, mut last) = (0u64, b'\n');
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        last = buf[n - 1];
    }
    Some(lines + u64::from(last != b'\n'))
}

/// A progress bar counting data rows, for a file of `lines` lines (the header included).
fn progress_bar(lines: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(lines.saturating_sub(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template(PROGRESS_TEMPLATE)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .with_key(
                "rate",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0} rows/s", state.per_sec());
                },
            ),
    );
    bar
}

/// Streams a CSV file through the importer, with a progress bar (rows, rate, time left) on a
/// terminal and a plain line every 100,000 rows otherwise.
async fn import(db: &Db, file: &PathBuf, dry_run: bool, mode: OnConflict) -> Result<(), Failure> {
    let started = Instant::now();
    let stdin = file.as_os_str() == "-";
    let reader: Box<dyn std::io::Read> = if stdin {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(file).map_err(|e| {
            failure(format!(
                "{}: {}",
                file.display(),
                crate::files::io_reason(&e)
            ))
        })?)
    };
    let bar = (std::io::stderr().is_terminal() && !stdin)
        .then(|| count_lines(file))
        .flatten()
        .map(progress_bar);
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(std::io::BufReader::with_capacity(1 << 20, reader));
    let names = csv
        .headers()
        .map_err(|e| failure(format!("CSV header: {e}")))
        .and_then(|h| check_csv_header(h).map_err(failure))?;
    let mut importer = Importer::new(db, mode, dry_run, AuditContext::cli());
    let mut record = csv::StringRecord::new();
    let mut records = 0u64;
    loop {
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                records += 1;
                let line = record.position().map_or(0, |p| p.line()) as usize;
                importer
                    .push(LocPart::Index(line), csv_record_to_fields(&names, &record))
                    .await
                    .map_err(report_failure)?;
                match &bar {
                    // Rows are counted by lines: a quoted field may span several.
                    Some(bar) if records.is_multiple_of(256) => {
                        bar.set_position(line.saturating_sub(1) as u64)
                    }
                    Some(_) => {}
                    None if records.is_multiple_of(100_000) => eprintln!(
                        "{records} rows read ({:.0} rows/s)",
                        records as f64 / started.elapsed().as_secs_f64()
                    ),
                    None => {}
                }
            }
            Err(e) => {
                if let Some(bar) = &bar {
                    bar.finish_and_clear();
                }
                let line = e.position().map_or(0, |p| p.line());
                return Err(failure(format!(
                    "line {line}: malformed CSV ({e}); nothing was imported"
                )));
            }
        }
    }
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = importer.finish().await.map_err(report_failure)?;
    let secs = started.elapsed().as_secs_f64();
    let rate = report.rows as f64 / secs.max(1e-9);
    let summary = if report.dry_run {
        format!(
            "checked {} rows: would write {}, skip {} (dry run, nothing stored) in {secs:.1} s ({rate:.0} rows/s)",
            report.rows, report.written, report.skipped
        )
    } else {
        format!(
            "imported {} rows ({} written, {} skipped) in {secs:.1} s ({rate:.0} rows/s)",
            report.rows, report.written, report.skipped
        )
    };
    super::out(summary)
}

/// Prints every problem of a failed import, one per line, and returns the summary failure.
fn report_failure(f: ImportFailure) -> Failure {
    match f {
        ImportFailure::Invalid { errors, more } => {
            for e in &errors {
                let (line, field) = match e.loc.as_slice() {
                    [_, LocPart::Index(line), LocPart::Key(field)] => (*line, field.as_str()),
                    [_, LocPart::Index(line)] => (*line, ""),
                    _ => (0, ""),
                };
                eprintln!("line {line}: {field}: {}", e.msg);
            }
            failure(format!(
                "{} invalid values{}; nothing was imported",
                errors.len(),
                if more > 0 {
                    format!(" (and {more} more)")
                } else {
                    String::new()
                }
            ))
        }
        ImportFailure::Conflict { locations } => {
            for conflict in locations.iter().take(1000) {
                let (LocPart::Index(line), id) = (&conflict.loc, conflict.emp_id) else {
                    continue;
                };
                match &conflict.first {
                    Some(LocPart::Index(first)) => {
                        eprintln!("line {line}: emp_id {id} appears again (first on line {first})")
                    }
                    _ => eprintln!("line {line}: emp_id {id} already exists"),
                }
            }
            failure(format!(
                "{} rows conflict; nothing was imported (see --on-conflict)",
                locations.len()
            ))
        }
        ImportFailure::Database(e) => failure(format!("database: {e}; nothing was imported")),
    }
}
