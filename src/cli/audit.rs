//! `employee-api audit verify`: walks the audit trail's hash chain and says whether it holds.

use clap::Subcommand;

use super::{Failure, failure, out};
use crate::{config::Config, server};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the hash chain from the first entry to the head; exit 1 naming the first broken
    /// entry, 0 when every entry matches its hash and its predecessor.
    #[command(after_help = "Example: employee-api audit verify")]
    Verify,
}

pub(super) async fn audit(config: Config, cmd: AuditCommand) -> Result<(), Failure> {
    let db = server::open_database(&config).await?;
    match cmd {
        AuditCommand::Verify => {
            match db
                .verify_audit()
                .await
                .map_err(|e| failure(format!("database: {e}")))?
            {
                Ok((entries, head)) => out(format!(
                    "audit trail OK: {entries} entries, head {}",
                    hex(&head)
                )),
                Err(broken) => Err(failure(format!("audit trail BROKEN: {broken}"))),
            }
        }
    }
}

/// Lower-case hex, as the head is logged and shown by the API.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
