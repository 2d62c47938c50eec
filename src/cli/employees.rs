//! `employee-api employees import|export`: bulk transfer through the same code as the API.

use std::{
    io::{IsTerminal, Write},
    path::PathBuf,
    time::Instant,
};

use super::{EmployeesCommand, Failure, failure};
use crate::{
    config::Config,
    db::Db,
    domain::{
        employee::OnConflict,
        listing::{CursorKey, EmployeeQuery, ListParams},
        validation::LocPart,
    },
    server,
    transfer::{
        EXPORT_PAGE, ImportFailure, Importer, check_csv_header, csv_record_to_fields, export_page,
    },
};

pub(super) async fn employees(config: Config, cmd: EmployeesCommand) -> Result<(), Failure> {
    let db = server::open_database(&config).await?;
    match cmd {
        EmployeesCommand::Import {
            file,
            dry_run,
            on_conflict,
        } => import(&db, &file, dry_run, on_conflict).await,
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
            let sink: Box<dyn Write> = match &output {
                Some(path) => Box::new(
                    std::fs::File::create(path)
                        .map_err(|e| failure(format!("{}: {e}", path.display())))?,
                ),
                None => Box::new(std::io::stdout().lock()),
            };
            let mut out = std::io::BufWriter::new(sink);
            let io_err = |e: std::io::Error| failure(format!("write: {e}"));
            out.write_all(&format.preamble()).map_err(io_err)?;
            let mut next = Some(query);
            let mut buf = Vec::new();
            let mut total = 0u64;
            while let Some(query) = next {
                let (rows, after) = export_page(&db, &query)
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

/// Streams a CSV file through the importer, with a progress bar on a terminal and a plain
/// line every 100,000 rows otherwise.
async fn import(db: &Db, file: &PathBuf, dry_run: bool, mode: OnConflict) -> Result<(), Failure> {
    let started = Instant::now();
    let (reader, size): (Box<dyn std::io::Read>, u64) = if file.as_os_str() == "-" {
        (Box::new(std::io::stdin().lock()), 0)
    } else {
        let f =
            std::fs::File::open(file).map_err(|e| failure(format!("{}: {e}", file.display())))?;
        let size = f.metadata().map(|m| m.len()).unwrap_or(0);
        (Box::new(f), size)
    };
    let bar = (std::io::stderr().is_terminal() && size > 0).then(|| {
        let bar = indicatif::ProgressBar::new(size);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {bytes}/{total_bytes} {per_sec} eta {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let reader: Box<dyn std::io::Read> = match &bar {
        Some(bar) => Box::new(bar.wrap_read(reader)),
        None => reader,
    };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_reader(std::io::BufReader::with_capacity(1 << 20, reader));
    let names = csv
        .headers()
        .map_err(|e| failure(format!("CSV header: {e}")))
        .and_then(|h| check_csv_header(h).map_err(failure))?;
    let mut importer = Importer::new(db, mode, dry_run);
    let mut record = csv::StringRecord::new();
    loop {
        match csv.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map_or(0, |p| p.line()) as usize;
                importer
                    .push(LocPart::Index(line), csv_record_to_fields(&names, &record))
                    .await
                    .map_err(report_failure)?;
                if bar.is_none() && importer.rows().is_multiple_of(100_000) && importer.rows() > 0 {
                    eprintln!(
                        "{} rows read ({:.0} rows/s)",
                        importer.rows(),
                        importer.rows() as f64 / started.elapsed().as_secs_f64()
                    );
                }
            }
            Err(e) => {
                let line = e.position().map_or(0, |p| p.line());
                return Err(failure(format!(
                    "line {line}: malformed CSV ({e}); nothing was imported"
                )));
            }
        }
    }
    let report = importer.finish().await.map_err(report_failure)?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{} {} rows ({} written, {} skipped{}) in {secs:.1} s ({:.0} rows/s)",
        if report.dry_run {
            "checked"
        } else {
            "imported"
        },
        report.rows,
        report.written,
        report.skipped,
        if report.dry_run {
            "; dry run, nothing stored"
        } else {
            ""
        },
        report.rows as f64 / secs.max(1e-9)
    );
    Ok(())
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
            for (loc, id) in locations.iter().take(1000) {
                if let LocPart::Index(line) = loc {
                    eprintln!("line {line}: emp_id {id} already exists (or appears twice)");
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
