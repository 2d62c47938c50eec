//! `employee-api user ...`: account administration on the server itself.

use std::io::IsTerminal;

use super::{Failure, UserCommand, failure};
use crate::{
    auth::password::PasswordHasher,
    config::Config,
    db::{self, Db},
    domain::{listing::Page, password::PasswordPolicy, username::Username},
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
        db::Error::Conflict => failure(format!("user \"{username}\" already exists")),
        db::Error::NotFound => failure(format!("no user \"{username}\"")),
        other => failure(format!("database: {other}")),
    }
}

pub(super) async fn user(config: Config, cmd: UserCommand) -> Result<(), Failure> {
    let db = &server::open_database(&config).await?;
    // Only what account management needs: the password rules and the hasher.
    let policy = PasswordPolicy::new(config.password_min_length);
    let hasher = PasswordHasher::new(1).map_err(|e| failure(e.to_string()))?;
    match cmd {
        UserCommand::Create { username, admin } => {
            let username = parse_username(&username)?;
            let hash = new_password_hash(&policy, &hasher, &username, "Password: ").await?;
            let user = db
                .insert_user(&username, &hash, admin)
                .await
                .map_err(|e| db_failure(&username, e))?;
            println!(
                "created user {} (id {}, admin: {})",
                user.username, user.id, user.is_admin
            );
        }
        UserCommand::SetPassword { username } => {
            let username = parse_username(&username)?;
            let hash = new_password_hash(&policy, &hasher, &username, "New password: ").await?;
            db.set_password_hash(&username, &hash)
                .await
                .map_err(|e| db_failure(&username, e))?;
            println!("password changed for {username}");
        }
        UserCommand::List => {
            let mut offset = 0;
            loop {
                let page = Page {
                    offset,
                    limit: 1000,
                };
                let users = db
                    .list_users(page)
                    .await
                    .map_err(|e| failure(format!("database: {e}")))?;
                for u in &users {
                    println!(
                        "{:>6}  {:<64}  {}",
                        u.id,
                        u.username,
                        if u.is_admin { "admin" } else { "" }
                    );
                }
                if users.len() < 1000 {
                    break;
                }
                offset += 1000;
            }
        }
        UserCommand::Delete { username } => {
            let username = parse_username(&username)?;
            db.delete_user(&username)
                .await
                .map_err(|e| db_failure(&username, e))?;
            println!("deleted user {username}");
        }
        UserCommand::Promote { username } => set_admin(db, &username, true).await?,
        UserCommand::Demote { username } => set_admin(db, &username, false).await?,
    }
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
    let password = policy
        .check(&raw, Some(username))
        .map_err(|e| failure(format!("password: {}", e.msg)))?;
    hasher
        .hash(&password)
        .await
        .map_err(|e| failure(e.to_string()))
}

async fn set_admin(db: &Db, username: &str, admin: bool) -> Result<(), Failure> {
    let username = parse_username(username)?;
    db.set_admin(&username, admin)
        .await
        .map_err(|e| db_failure(&username, e))?;
    println!(
        "{username} is {} an administrator",
        if admin { "now" } else { "no longer" }
    );
    Ok(())
}
