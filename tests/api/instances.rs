//! Two real server processes on one PostgreSQL schema, as behind a load balancer: whatever ends
//! a credential on one (logout, revocation, demotion, password change, a revoked key) is
//! refused by the other on its very next request. And the security events of all of it are in
//! the logs, with the session id and never a token or key.

use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{server::Server, *};

const ADMIN_PW: &str = "a long root passphrase for two";

struct Pair {
    a: Server,
    b: Server,
    client: Client,
}

impl Pair {
    async fn login(&self, on: &Server, username: &str, password: &str) -> Value {
        let res = self
            .client
            .post(on.url("/auth/token"))
            .form(&[("username", username), ("password", password)])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "login as {username}");
        res.json().await.unwrap()
    }

    async fn status(&self, req: RequestBuilder) -> StatusCode {
        req.send().await.unwrap().status()
    }
}

fn token(body: &Value, field: &str) -> String {
    body[field].as_str().expect(field).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_ends_a_credential_on_one_instance_is_refused_by_the_other_at_once() {
    let Some((database_url, _storage)) = TestApp::fresh_database(Backend::Postgres).await else {
        return;
    };
    let employee_api::config::DatabaseUrl::Postgres(url) = &database_url else {
        unreachable!()
    };
    let start = || {
        Server::builder()
            .env("DATABASE_URL", url.expose())
            .env("JWT_SECRET_KEY", SECRET)
            .env("ADMIN_PASSWORD", ADMIN_PW)
            .env("RATE_LIMIT_PER_MINUTE", "0")
            .start()
    };
    // One after the other: the first applies the migrations and creates the administrator.
    let a = start().await;
    let b = start().await;
    let pair = Pair {
        a,
        b,
        client: Client::new(),
    };
    let (a, b, http) = (&pair.a, &pair.b, &pair.client);

    let register = http
        .post(a.url("/auth/register"))
        .json(&json!({"username": "alice", "password": USER_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(register.status(), StatusCode::CREATED);

    // A logout on A: B refuses the session's access token on the next request.
    let alice = pair.login(a, "alice", USER_PASSWORD).await;
    let alice_access = token(&alice, "access_token");
    let me_on_b = || http.get(b.url("/users/me")).bearer_auth(&alice_access);
    assert_eq!(pair.status(me_on_b()).await, StatusCode::OK);
    let logout = http
        .post(a.url("/auth/logout"))
        .bearer_auth(&alice_access)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    assert_eq!(pair.status(me_on_b()).await, StatusCode::UNAUTHORIZED);
    let refreshed_on_b = http
        .post(b.url("/auth/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &token(&alice, "refresh_token")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed_on_b.status(), StatusCode::BAD_REQUEST);

    // A password change on B ends alice's other session, held on A.
    let on_a = pair.login(a, "alice", USER_PASSWORD).await;
    let on_b = pair.login(b, "alice", USER_PASSWORD).await;
    let changed = http
        .post(b.url("/users/me/password"))
        .bearer_auth(token(&on_b, "access_token"))
        .json(
            &json!({"current_password": USER_PASSWORD, "new_password": "a quieter river of bells"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), StatusCode::NO_CONTENT);
    let a_session = || {
        http.get(a.url("/employees/"))
            .bearer_auth(token(&on_a, "access_token"))
    };
    assert_eq!(pair.status(a_session()).await, StatusCode::UNAUTHORIZED);

    // A promoted administrator is demoted on A: B refuses its admin call at once.
    let admin = token(&pair.login(a, "admin", ADMIN_PW).await, "access_token");
    let alice_id = http
        .get(a.url("/users/?username=alice"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()[0]["id"]
        .clone();
    let set_admin = |to: bool| {
        http.patch(a.url(&format!("/users/{alice_id}")))
            .bearer_auth(&admin)
            .json(&json!({"is_admin": to}))
    };
    assert_eq!(pair.status(set_admin(true)).await, StatusCode::OK);
    let alice_admin = token(
        &pair.login(b, "alice", "a quieter river of bells").await,
        "access_token",
    );
    let users_on_b = || http.get(b.url("/users/")).bearer_auth(&alice_admin);
    assert_eq!(pair.status(users_on_b()).await, StatusCode::OK);
    assert_eq!(pair.status(set_admin(false)).await, StatusCode::OK);
    assert_eq!(pair.status(users_on_b()).await, StatusCode::FORBIDDEN);

    // A key revoked on B stops working on A.
    let created: Value = http
        .post(a.url("/api-keys"))
        .bearer_auth(&admin)
        .json(&json!({"name": "sync", "scopes": ["employees:read"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = token(&created, "key");
    let with_key = || http.get(a.url("/employees/")).header("x-api-key", &key);
    assert_eq!(pair.status(with_key()).await, StatusCode::OK);
    let revoked = http
        .delete(b.url(&format!("/api-keys/{}", created["id"])))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    assert_eq!(pair.status(with_key()).await, StatusCode::UNAUTHORIZED);

    // The security events were logged with the session id, never a secret.
    let logs = format!("{}{}", a.output(), b.output());
    for event in [
        "authn_login_success",
        "authn_logout",
        "authn_password_change",
        "authz_admin",
        "authz_api_key_created",
        "authz_api_key_revoked",
    ] {
        assert!(logs.contains(event), "no {event} in the logs:\n{logs}");
    }
    let sid = claims_of(&alice_access)["sid"].as_str().unwrap().to_owned();
    assert!(logs.contains(&sid), "the logout's session id is not logged");
    for secret in [
        alice_access.as_str(),
        &token(&alice, "refresh_token"),
        &token(&on_a, "refresh_token"),
        &admin,
        &key,
        USER_PASSWORD,
        ADMIN_PW,
    ] {
        assert!(!logs.contains(secret), "a secret is in the logs");
    }
}
