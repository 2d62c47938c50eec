//! What a first start creates: the token secret (SQLite only, when none is configured) and
//! the administrator (when none exists).

use std::path::{Path, PathBuf};

use super::{StartupError, fail};
use crate::{
    app::AppState,
    config::{Config, DatabaseUrl, Secret},
    db,
    domain::{audit::AuditContext, password::Password, username::Username},
    files,
};

/// The JWT secret: the configured one, or (SQLite only) one generated once and kept in a
/// 0600 file beside the database so tokens survive restarts.
pub fn resolve_secret(config: &Config) -> Result<Secret, StartupError> {
    if let Some(secret) = &config.jwt_secret {
        return Ok(secret.clone());
    }
    let DatabaseUrl::Sqlite { path, .. } = &config.database_url else {
        return Err(StartupError(
            "JWT_SECRET_KEY: required with PostgreSQL".into(),
        ));
    };
    let file = secret_file_for(path);
    if file.exists() {
        files::check_private(&file).map_err(StartupError)?;
    }
    if let Ok(existing) = std::fs::read_to_string(&file) {
        let existing = existing.trim().to_owned();
        if existing.len() >= crate::config::min_secret_len(config.jwt_algorithm) {
            return Ok(Secret::new(existing));
        }
        return Err(StartupError(format!(
            "{}: too short for {}; delete it to regenerate",
            file.display(),
            crate::config::algorithm_name(config.jwt_algorithm)
        )));
    }
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    files::write_private_file(&file, &hex)
        .map_err(|e| fail(&format!("cannot write {}", file.display()), e))?;
    tracing::warn!(
        file = %file.display(),
        "JWT_SECRET_KEY is not set: generated a random secret and saved it beside the database (set JWT_SECRET_KEY to manage it yourself)"
    );
    Ok(Secret::new(hex))
}

/// What [`resolve_secret`] would refuse about a secret file that already exists (readable by
/// others, too short), found without creating anything: `serve` checks it before binding,
/// `employee-api config` as part of its checks.
pub fn check_secret_file(config: &Config) -> Result<(), StartupError> {
    let (None, DatabaseUrl::Sqlite { path, .. }) = (&config.jwt_secret, &config.database_url)
    else {
        return Ok(());
    };
    let file = secret_file_for(path);
    if !file.exists() {
        return Ok(());
    }
    files::check_private(&file).map_err(StartupError)?;
    let existing = std::fs::read_to_string(&file).map_err(|e| {
        StartupError(format!(
            "cannot read {}: {}",
            file.display(),
            files::io_reason(&e)
        ))
    })?;
    if existing.trim().len() < crate::config::min_secret_len(config.jwt_algorithm) {
        return Err(StartupError(format!(
            "{}: too short for {}; delete it to regenerate",
            file.display(),
            crate::config::algorithm_name(config.jwt_algorithm)
        )));
    }
    Ok(())
}

/// `data/employees.db` -> `data/employees.db.jwt-secret`.
pub fn secret_file_for(db_path: &Path) -> PathBuf {
    let mut name = db_path.as_os_str().to_owned();
    name.push(".jwt-secret");
    PathBuf::from(name)
}

/// Creates the administrator when none exists. Without ADMIN_PASSWORD a random password is
/// generated and printed once.
pub async fn ensure_admin(state: &AppState) -> Result<(), StartupError> {
    let db = &state.db;
    if db
        .admin_exists()
        .await
        .map_err(|e| fail("checking for an administrator", e))?
    {
        return Ok(());
    }
    let config = &state.config;
    let username = &config.admin_username;
    let (password, generated) = match &config.admin_password {
        Some(secret) => {
            let password = state
                .policy
                .check(secret.expose(), Some(username))
                .map_err(|e| StartupError(format!("ADMIN_PASSWORD: {}", e.msg)))?;
            (password, false)
        }
        None => (generate_password(), true),
    };
    let hash = state
        .hasher
        .hash(&password)
        .await
        .map_err(|e| fail("hashing the admin password", e))?;
    match db
        .insert_user(username, &hash, true, &AuditContext::system())
        .await
    {
        Ok(_) => {}
        Err(db::Error::Conflict) => {
            // Another instance may have just created it; a plain user of that name is refused.
            if db
                .admin_exists()
                .await
                .map_err(|e| fail("checking for an administrator", e))?
            {
                return Ok(());
            }
            return Err(StartupError(format!(
                "ADMIN_USERNAME: a non-admin user named {username:?} already exists; choose another name or promote it with `employee-api user promote {username}`"
            )));
        }
        Err(e) => return Err(fail("creating the administrator", e)),
    }
    if generated {
        hand_over_generated_password(config, username, &password)?;
    } else {
        tracing::info!(event = "user_created", username = %username, "administrator created from ADMIN_PASSWORD");
    }
    Ok(())
}

/// Gives the operator a generated admin password without it ever entering the log stream: on
/// the terminal (standard error) when there is one, else in an owner-only file whose path is
/// logged.
fn hand_over_generated_password(
    config: &Config,
    username: &Username,
    password: &Password,
) -> Result<(), StartupError> {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() {
        eprintln!(
            "\n  Created administrator \"{username}\" with generated password: {}\n  It is shown only now. Change it with `employee-api user set-password {username}`.\n",
            password.expose()
        );
        return Ok(());
    }
    let file = admin_password_file_for(config);
    files::write_private_file(&file, &format!("{}\n", password.expose()))
        .map_err(|e| fail(&format!("cannot write {}", file.display()), e))?;
    tracing::warn!(
        event = "user_created",
        username = %username,
        file = %file.display(),
        "created the administrator with a generated password, written (owner-only) to the file named here; read it, change it with `employee-api user set-password`, then delete the file"
    );
    Ok(())
}

/// Where a generated admin password goes when there is no terminal: beside the SQLite
/// database, or in the working directory with PostgreSQL.
pub fn admin_password_file_for(config: &Config) -> PathBuf {
    match &config.database_url {
        DatabaseUrl::Sqlite { path, .. } => {
            let mut name = path.as_os_str().to_owned();
            name.push(".admin-password");
            PathBuf::from(name)
        }
        DatabaseUrl::Postgres(_) => PathBuf::from("employee-api.admin-password"),
    }
}

/// 24 characters from a 62-letter alphabet: about 143 bits.
pub fn generate_password() -> Password {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut raw = [0u8; 24];
    rand::fill(&mut raw);
    let text: String = raw
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    Password::for_login(&text)
        .unwrap_or_else(|_| unreachable!("24 ASCII characters are a valid password"))
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn config_at(dir: &Path) -> Config {
        Config::defaults_for(DatabaseUrl::Sqlite {
            path: dir.join("employees.db"),
            read_only: false,
        })
    }

    #[test]
    fn the_generated_secret_is_kept_owner_only_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_at(dir.path());
        let first = resolve_secret(&config).unwrap();
        let file = secret_file_for(&dir.path().join("employees.db"));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            resolve_secret(&config).unwrap(),
            first,
            "reused after a restart"
        );
    }

    #[test]
    fn a_secret_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = config_at(dir.path());
        resolve_secret(&config).unwrap();
        let file = secret_file_for(&dir.path().join("employees.db"));
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = resolve_secret(&config).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
