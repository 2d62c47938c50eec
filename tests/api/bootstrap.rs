//! Start-up: administrator bootstrap, generated secrets, configuration errors.

use axum::http::StatusCode;
use employee_api::{
    cli::Cli,
    config::{Config, DatabaseUrl, Secret},
    domain::username::Username,
    server::secret_file_for,
};

use crate::{db_test, helpers::*};

/// Without ADMIN_PASSWORD: one administrator, with a generated password that is neither
/// `adminpassword` nor the test's usual one; the password is in the file the log names.
mod without_admin_password_a_random_one_is_generated_and_adminpassword_never_works {
    use super::*;
    use crate::helpers::server::{Server, http_client_from};

    /// On SQLite the password file goes beside the database, in the test's own directory.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let app = TestApp::configure(|c| c.admin_password = None)
            .spawn(Backend::Sqlite)
            .await
            .expect("sqlite always available");
        for wrong in ["adminpassword", ADMIN_PASSWORD] {
            let res = app.login_raw("admin", wrong).await;
            assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{wrong}");
        }
        let admins = app
            .state
            .db
            .list_users(Default::default(), &Default::default())
            .await
            .unwrap();
        assert_eq!(admins.len(), 1);
        assert!(admins[0].is_admin);
        assert_eq!(admins[0].username.as_str(), "admin");
        let DatabaseUrl::Sqlite { path, .. } = &app.database_url else {
            unreachable!()
        };
        let file = employee_api::server::admin_password_file_for(&app.state.config);
        assert!(
            file.starts_with(path.parent().unwrap()),
            "{}",
            file.display()
        );
        let password = std::fs::read_to_string(&file).expect("the password file");
        app.login("admin", password.trim()).await;
    }

    /// On PostgreSQL the file goes to the working directory: the real binary, run in a
    /// temporary one (in process it would land in the repository).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        // The schema is dropped with `_storage`, however the test ends.
        let Some((url, _storage)) = TestApp::fresh_database(Backend::Postgres).await else {
            return;
        };
        let DatabaseUrl::Postgres(secret_url) = &url else {
            unreachable!()
        };
        let server = Server::builder()
            .env("DATABASE_URL", secret_url.expose())
            .env("JWT_SECRET_KEY", SECRET)
            .start()
            .await;
        let file = server.dir().join("employee-api.admin-password");
        let password = std::fs::read_to_string(&file).expect("the password file");
        let client = http_client_from([127, 0, 0, 1].into());
        let mut admins = None;
        for (password, status) in [
            ("adminpassword", 401),
            (ADMIN_PASSWORD, 401),
            (password.trim(), 200),
        ] {
            let res = client
                .post(server.url("/auth/token"))
                .form(&[("username", "admin"), ("password", password)])
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), status, "{password}");
            if status == 200 {
                let token = res.json::<serde_json::Value>().await.unwrap()["access_token"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let users = client
                    .get(server.url("/users/"))
                    .bearer_auth(token)
                    .send()
                    .await
                    .unwrap()
                    .json::<serde_json::Value>()
                    .await
                    .unwrap();
                admins = Some(users);
            }
        }
        let admins = admins.expect("listed");
        assert_eq!(
            admins,
            serde_json::json!([{"id": admins[0]["id"], "username": "admin", "is_admin": true, "is_active": true}])
        );
        let stopped = server.stop().await;
        assert!(stopped.status.success(), "{}", stopped.output);
    }
}

db_test!(
    a_restart_creates_no_admin_and_resets_no_password_when_one_exists,
    |app| {
        // Two restarts on the same database: one with another ADMIN_PASSWORD, one with another
        // ADMIN_USERNAME and password as well.
        let (_, other_password) = app
            .second_instance(|c| {
                c.admin_password = Some(Secret::new("another-root-passphrase-9931"))
            })
            .await;
        let (_, other_admin) = app
            .second_instance(|c| {
                c.admin_username = Username::parse("boss").expect("valid username");
                c.admin_password = Some(Secret::new("a-third-root-passphrase-5521"));
            })
            .await;
        for (case, instance) in [
            ("new password", &other_password),
            ("new admin", &other_admin),
        ] {
            assert_eq!(
                instance
                    .login_raw(ADMIN_USERNAME, "another-root-passphrase-9931")
                    .await
                    .status,
                StatusCode::UNAUTHORIZED,
                "{case}: the admin's password was reset"
            );
            assert_eq!(
                instance
                    .login_raw("boss", "a-third-root-passphrase-5521")
                    .await
                    .status,
                StatusCode::UNAUTHORIZED,
                "{case}: a second admin was created"
            );
            instance.login(ADMIN_USERNAME, ADMIN_PASSWORD).await;
        }
        let admin = app.admin_token().await;
        let users = app.get("/users/", Some(&admin)).await.json();
        assert_eq!(
            users,
            serde_json::json!([{"id": users[0]["id"], "username": "admin", "is_admin": true, "is_active": true}]),
            "exactly the one administrator"
        );
    }
);

#[tokio::test]
async fn generated_secret_is_kept_in_a_private_file_and_survives_a_restart() {
    let (url, _keep) = TestApp::fresh_database(Backend::Sqlite).await.unwrap();
    let DatabaseUrl::Sqlite { path, .. } = &url else {
        unreachable!()
    };
    let mut config = test_config(url.clone());
    config.jwt_secret = None;

    let (first, router) = TestApp::start_on(url.clone(), config.clone()).await;
    let secret_file = secret_file_for(path);
    let meta = std::fs::metadata(&secret_file).expect("secret file written");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }
    assert!(
        std::fs::read_to_string(&secret_file).unwrap().trim().len() >= 64,
        "256 bits, hex"
    );
    let session = uuid::Uuid::new_v4();
    let scopes = employee_api::domain::scope::Scopes::allowed_for(false);
    let token = first.tokens.issue(1, session, scopes).unwrap();
    drop(router);
    first.db.close().await;

    let (second, _router) = TestApp::start_on(url, config).await;
    assert_eq!(
        second.tokens.verify(&token).map(|t| t.user_id),
        Some(1),
        "a token issued before the restart still validates"
    );
}

fn config_error(args: &[&str]) -> String {
    use clap::Parser;
    let mut argv = vec!["employee-api"];
    argv.extend_from_slice(args);
    let cli = Cli::try_parse_from(argv).expect("arguments parse");
    Config::from_settings(cli.settings)
        .expect_err("configuration must be refused")
        .to_string()
}

#[test]
fn serving_postgres_without_a_secret_is_refused() {
    use clap::Parser;
    let cli = Cli::try_parse_from([
        "employee-api",
        "--database-url",
        "postgres://u@127.0.0.1/db",
    ])
    .unwrap();
    let config =
        Config::from_settings(cli.settings).expect("valid for migrate and the other commands");
    let msg = employee_api::server::resolve_secret(&config)
        .expect_err("serve needs the secret")
        .to_string();
    assert!(msg.starts_with("JWT_SECRET_KEY"), "{msg}");
}

#[test]
fn secrets_shorter_than_the_hash_are_refused() {
    for (alg, len) in [("HS256", 31), ("HS384", 47), ("HS512", 63)] {
        let secret = "k".repeat(len);
        let msg = config_error(&["--jwt-algorithm", alg, "--jwt-secret-key", &secret]);
        assert!(
            msg.contains(&format!("at least {}", len + 1)),
            "{alg}: {msg}"
        );
        assert!(!msg.contains(&secret), "the secret is not echoed");
    }
}

#[test]
fn unknown_algorithms_and_low_password_minimums_are_refused() {
    assert!(config_error(&["--jwt-algorithm", "RS256"]).starts_with("JWT_ALGORITHM"));
    assert!(config_error(&["--jwt-algorithm", "none"]).starts_with("JWT_ALGORITHM"));
    assert!(config_error(&["--password-min-length", "7"]).starts_with("PASSWORD_MIN_LENGTH"));
    assert!(config_error(&["--cors-allowed-origins", "*"]).starts_with("CORS_ALLOWED_ORIGINS"));
    assert!(config_error(&["--cors-allowed-origins", "null"]).starts_with("CORS_ALLOWED_ORIGINS"));
}
