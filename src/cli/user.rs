//! `employee-api user ...`: account administration on the server itself.

use std::io::IsTerminal;

use super::{Failure, UserCommand, failure};
use crate::{
    auth::password::PasswordHasher,
    config::Config,
    db::{
        self, Db,
        users::{UserChange, UserFilter},
    },
    domain::{
        audit::{Action, AuditContext, NewEntry},
        clock::{rfc3339, unix_now},
        listing::Page,
        password::PasswordPolicy,
        user::User,
        username::Username,
    },
    server,
};

/// Reads a password without echo from the terminal, or one line from standard input.
fn read_password(prompt: &str) -> Result<String, Failure> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(prompt).map_err(|e| failure(e.to_string()))?;
        let again = rpassword::prompt_password("Repeat: ").map_err(|e| failure(e.to_string()))?;
        if first != again {
            return Err(failure("the passwords do not match"));
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| failure(e.to_string()))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

fn parse_username(raw: &str) -> Result<Username, Failure> {
    Username::parse(raw).map_err(|e| failure(format!("username: {}", e.msg)))
}

/// A storage failure as a one-line message about `username`.
fn db_failure(username: &Username, err: db::Error) -> Failure {
    match err {
        db::Error::Conflict => failure(format!(
            "\"{username}\" is the last active administrator; promote another account first"
        )),
        db::Error::NotFound => failure(format!("no user \"{username}\"")),
        other => failure(format!("database: {other}")),
    }
}

/// The account named `raw` (a one-line failure when the name is invalid or unknown).
async fn find(db: &Db, raw: &str) -> Result<User, Failure> {
    let username = parse_username(raw)?;
    db.user_named(&username)
        .await
        .map_err(|e| db_failure(&username, e))?
        .ok_or_else(|| db_failure(&username, db::Error::NotFound))
}

pub(super) async fn user(config: Config, cmd: UserCommand) -> Result<(), Failure> {
    let db = server::open_database(&config).await?;
    let done = user_command(&config, &db, cmd).await;
    super::seal_audit(&db).await;
    done
}

async fn user_command(config: &Config, db: &Db, cmd: UserCommand) -> Result<(), Failure> {
    // Only what account management needs: the password rules and the hasher.
    let policy = PasswordPolicy::new(config.password_min_length);
    let hasher = PasswordHasher::new(1).map_err(|e| failure(e.to_string()))?;
    let now = unix_now();
    match cmd {
        UserCommand::Create { username, admin } => {
            let username = parse_username(&username)?;
            let hash = new_password_hash(&policy, &hasher, &username, "Password: ").await?;
            let user = db
                .insert_user(&username, &hash, admin, &AuditContext::cli())
                .await
                .map_err(|e| match e {
                    db::Error::Conflict => failure(format!("user \"{username}\" already exists")),
                    other => db_failure(&username, other),
                })?;
            println!(
                "created user {} (id {}, admin: {})",
                user.username, user.id, user.is_admin
            );
        }
        UserCommand::SetPassword { username } => {
            let user = find(db, &username).await?;
            let hash =
                new_password_hash(&policy, &hasher, &user.username, "New password: ").await?;
            let ended = db
                .set_password_hash(
                    user.id,
                    &hash,
                    None,
                    Action::UserPasswordReset,
                    &AuditContext::cli(),
                )
                .await
                .map_err(|e| db_failure(&user.username, e))?;
            tracing::warn!(
                event = "authn_password_change",
                by = "cli",
                user_id = user.id,
                sessions_ended = ended,
                "password set from the command line"
            );
            println!(
                "password changed for {}; {ended} sessions ended",
                user.username
            );
        }
        UserCommand::List => {
            let mut offset = 0;
            loop {
                let page = Page {
                    offset,
                    limit: 1000,
                };
                let users = db
                    .list_users(page, &UserFilter::default())
                    .await
                    .map_err(|e| failure(format!("database: {e}")))?;
                for u in &users {
                    super::out(format!(
                        "{:>6}  {:<64}  {:<5}  {}",
                        u.id,
                        u.username,
                        if u.is_admin { "admin" } else { "" },
                        if u.is_active { "" } else { "disabled" }
                    ))?;
                }
                if users.len() < 1000 {
                    break;
                }
                offset += 1000;
            }
        }
        UserCommand::Delete { username } => {
            let user = find(db, &username).await?;
            db.delete_user(user.id, &AuditContext::cli())
                .await
                .map_err(|e| db_failure(&user.username, e))?;
            tracing::warn!(
                event = "authz_admin",
                by = "cli",
                user_id = user.id,
                "account deleted"
            );
            println!("deleted user {}", user.username);
        }
        UserCommand::Promote { username } => {
            change(
                db,
                &username,
                UserChange {
                    is_admin: Some(true),
                    ..UserChange::default()
                },
                "is now an administrator",
            )
            .await?
        }
        UserCommand::Demote { username } => {
            change(
                db,
                &username,
                UserChange {
                    is_admin: Some(false),
                    ..UserChange::default()
                },
                "is no longer an administrator",
            )
            .await?
        }
        UserCommand::Disable { username } => {
            change(
                db,
                &username,
                UserChange {
                    is_active: Some(false),
                    ..UserChange::default()
                },
                "is disabled; its sessions and API keys no longer work",
            )
            .await?
        }
        UserCommand::Enable { username } => {
            change(
                db,
                &username,
                UserChange {
                    is_active: Some(true),
                    ..UserChange::default()
                },
                "is enabled",
            )
            .await?
        }
        UserCommand::Sessions { username } => {
            let user = find(db, &username).await?;
            let sessions = db
                .user_sessions(user.id, now)
                .await
                .map_err(|e| db_failure(&user.username, e))?;
            for s in &sessions {
                println!(
                    "{}  since {}  last used {}  ends {}  {}  {}",
                    s.id,
                    rfc3339(s.created_at),
                    rfc3339(s.last_used_at),
                    rfc3339(s.refresh_expires_at()),
                    s.client_ip,
                    s.user_agent
                );
            }
            println!("{} live sessions", sessions.len());
        }
        UserCommand::Revoke { username, session } => {
            let user = find(db, &username).await?;
            let ended = match session {
                Some(id) => db
                    .revoke_session(
                        user.id,
                        id,
                        "revoked from the command line",
                        now,
                        (
                            &AuditContext::cli(),
                            NewEntry::new(Action::SessionRevoke, id),
                        ),
                    )
                    .await
                    .map(|()| 1)
                    .map_err(|e| match e {
                        db::Error::NotFound => {
                            failure(format!("no live session {id} of \"{}\"", user.username))
                        }
                        other => db_failure(&user.username, other),
                    })?,
                None => db
                    .revoke_user_sessions(
                        user.id,
                        None,
                        "revoked from the command line",
                        now,
                        (
                            &AuditContext::cli(),
                            NewEntry::new(Action::UserLogout, user.id),
                        ),
                    )
                    .await
                    .map_err(|e| db_failure(&user.username, e))?,
            };
            tracing::warn!(
                event = "authn_session_revoked",
                by = "cli",
                user_id = user.id,
                sessions = ended,
                "sessions revoked from the command line"
            );
            println!("{ended} sessions of {} ended", user.username);
        }
    }
    Ok(())
}

/// Applies `change` to the account named `username` and says `done`.
async fn change(db: &Db, username: &str, change: UserChange, done: &str) -> Result<(), Failure> {
    let user = find(db, username).await?;
    db.change_user(user.id, change, unix_now(), &AuditContext::cli())
        .await
        .map_err(|e| db_failure(&user.username, e))?;
    tracing::warn!(event = "authz_admin", by = "cli", user_id = user.id, is_active = ?change.is_active, is_admin = ?change.is_admin, "account changed");
    println!("{} {done}", user.username);
    Ok(())
}

/// Reads a new password for `username` (prompt or stdin), checks the policy, hashes it.
async fn new_password_hash(
    policy: &PasswordPolicy,
    hasher: &PasswordHasher,
    username: &Username,
    prompt: &str,
) -> Result<String, Failure> {
    let raw = read_password(prompt)?;
    if raw.is_empty() {
        return Err(failure(
            "no password given (type one at the prompt, or send it as one line on standard input)",
        ));
    }
    let password = policy
        .check(&raw, Some(username))
        .map_err(|e| failure(format!("password: {}", e.msg)))?;
    hasher
        .hash(&password)
        .await
        .map_err(|e| failure(e.to_string()))
}
