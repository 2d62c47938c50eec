//! Safe retries with `Idempotency-Key` on `POST /employees/` and `POST /employees/import`: a
//! repeat gets the first answer (`Idempotent-Replayed: true`) and writes nothing; the same key
//! with another request is a 422; a repeat while the first runs is a 409; keys belong to one
//! credential; claims have a lease; answers expire and are purged.

use std::time::{Duration, Instant};

use axum::{
    body::Body,
    http::{HeaderValue, Method, Request, StatusCode},
};
use employee_api::{
    db::idempotency::{Claim, ClaimId, StoredAnswer},
    domain::{
        clock::unix_now,
        idempotency::{Fingerprint, IdempotencyKey, Owner},
    },
    server::housekeeping::purge_idempotency_keys,
};
use serde_json::{Value, json};

use crate::{db_test, helpers::*};

const KEY: &str = "8e03978e-40d5-43e8-bc93-6894a57f9324";
const CSV: &str = "emp_id,emp_name,city,country,emp_dob\r\n\
                   11,Ada Lovelace,London,United Kingdom,1985-12-10\r\n\
                   12,Karl Weiss,Bern,Switzerland,1979-03-02\r\n";

/// `req` with `Idempotency-Key: key` (raw bytes, so tests can send what a client could).
fn keyed(mut req: Request<Body>, key: &[u8]) -> Request<Body> {
    req.headers_mut().append(
        "idempotency-key",
        HeaderValue::from_bytes(key).expect("a header value"),
    );
    req
}

/// `POST /employees/` with `body` as `token`, under `key`.
async fn create_keyed(app: &Instance, token: &str, key: &str, body: &Value) -> TestResponse {
    let req = json_req(Method::POST, "/employees/", Some(token), body.to_string());
    app.send_request(keyed(req, key.as_bytes())).await
}

/// `POST /employees/import{query}` with a CSV body as `token`, under `key`.
async fn import_keyed(app: &Instance, token: &str, key: &str, query: &str) -> TestResponse {
    let req = with_header(
        bare_req(
            Method::POST,
            &format!("/employees/import{query}"),
            Some(token),
        ),
        "content-type",
        "text/csv",
    );
    let (parts, _) = req.into_parts();
    let req = Request::from_parts(parts, Body::from(CSV));
    app.send_request(keyed(req, key.as_bytes())).await
}

fn replayed(res: &TestResponse) -> Option<&str> {
    res.header("idempotent-replayed")
}

/// The 422 of a key used for another request.
fn assert_key_reused(res: &TestResponse, case: &str) {
    assert_invalid_at(res, "header.idempotency-key", case);
    assert_eq!(
        res.json()["detail"][0]["type"],
        "idempotency_key_reused",
        "{case}"
    );
    assert_eq!(replayed(res), None, "{case}: a refusal is no replay");
}

/// `X-Total-Count` of the whole list.
async fn employee_total(app: &Instance, token: &str) -> String {
    let res = app.get("/employees/", Some(token)).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    res.header("x-total-count").unwrap_or_default().to_owned()
}

/// How many audit entries record `action`.
async fn audit_count(app: &Instance, admin: &str, action: &str) -> usize {
    let res = app
        .get(&format!("/audit?action={action}&limit=1000"), Some(admin))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    res.json().as_array().expect("a list of entries").len()
}

async fn user_id(app: &Instance, token: &str) -> i64 {
    app.get("/users/me", Some(token)).await.json()["id"]
        .as_i64()
        .expect("an id")
}

/// The fingerprint the server computes for `POST /employees/` with `body`, as `helpers` sends it.
fn create_fingerprint(body: &Value) -> Fingerprint {
    Fingerprint::of(
        "POST",
        "/employees/",
        "",
        b"application/json",
        body.to_string().as_bytes(),
    )
}

fn key(raw: &str) -> IdempotencyKey {
    IdempotencyKey::parse(raw.as_bytes()).expect("a valid key")
}

/// Claims `raw_key` for `owner`'s `POST /employees/` of `body` at `now`, as a request running
/// on another instance would, and returns the claim.
async fn claim_as_running_request(
    app: &TestApp,
    owner: &Owner,
    raw_key: &str,
    body: &Value,
    now: i64,
) -> ClaimId {
    let claim = app
        .state
        .db
        .claim_idempotency_key(
            owner,
            &key(raw_key),
            &create_fingerprint(body),
            now,
            app.state.idempotency_terms(),
        )
        .await
        .expect("the claim is recorded");
    match claim {
        Claim::Claimed(claim) => claim,
        other => panic!("the key was free, yet: {other:?}"),
    }
}

db_test!(
    a_repeat_gets_the_first_answer_replayed_and_creates_nothing,
    |app| {
        let admin = app.admin_token().await;
        let body = employee_body(1);
        let first = create_keyed(&app, &admin, KEY, &body).await;
        assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
        assert_eq!(replayed(&first), None, "the first answer is no replay");

        let again = create_keyed(&app, &admin, KEY, &body).await;
        assert_eq!(again.status, StatusCode::CREATED, "{}", again.text());
        assert_eq!(replayed(&again), Some("true"));
        assert_eq!(again.body, first.body, "the same body, byte for byte");
        for name in ["location", "etag", "content-type"] {
            assert!(first.header(name).is_some(), "the first answer has {name}");
            assert_eq!(again.header(name), first.header(name), "{name}");
        }
        assert_hardened(&again, "the replay still gets the security headers");

        // Nothing else happened: one employee, one creation in the audit trail.
        assert_eq!(employee_total(&app, &admin).await, "1");
        assert_eq!(audit_count(&app, &admin, "employee.create").await, 1);

        // It is the stored answer, not a fresh read: after a change, the replay still shows
        // the employee as created.
        let patched = app
            .patch_json("/employees/1", Some(&admin), json!({"city": "Bergen"}))
            .await;
        assert_eq!(patched.status, StatusCode::OK, "{}", patched.text());
        let later = create_keyed(&app, &admin, KEY, &body).await;
        assert_eq!(later.body, first.body);
        assert_eq!(later.header("etag"), first.header("etag"));
        assert_ne!(patched.header("etag"), first.header("etag"));
        assert_eq!(audit_count(&app, &admin, "employee.create").await, 1);
    }
);

db_test!(
    concurrent_repeats_of_one_keyed_request_create_exactly_once,
    |app| {
        let admin = app.admin_token().await;
        let body = employee_body(1);
        let tasks: Vec<_> = (0..10)
            .map(|_| {
                let (instance, admin, body) = (app.instance(), admin.clone(), body.clone());
                tokio::spawn(async move { create_keyed(&instance, &admin, KEY, &body).await })
            })
            .collect();
        let mut fresh = 0;
        for task in tasks {
            let res = task.await.expect("the request task ends");
            match (res.status, replayed(&res)) {
                (StatusCode::CREATED, None) => fresh += 1,
                (StatusCode::CREATED, Some("true")) => {}
                (StatusCode::CONFLICT, None) => {
                    assert_eq!(
                        res.detail(),
                        "A request with this Idempotency-Key is still running: retry when it has finished"
                    );
                    assert_eq!(retry_after(&res, "in use"), 1);
                }
                (status, marker) => panic!("{status} {marker:?}: {}", res.text()),
            }
        }
        assert_eq!(fresh, 1, "exactly one of the repeats ran");
        assert_eq!(employee_total(&app, &admin).await, "1");
        assert_eq!(audit_count(&app, &admin, "employee.create").await, 1);
    }
);

db_test!(
    the_same_key_with_another_request_is_a_422_and_writes_nothing,
    |app| {
        let admin = app.admin_token().await;
        let first = create_keyed(&app, &admin, KEY, &employee_body(1)).await;
        assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());

        let another_body = create_keyed(&app, &admin, KEY, &employee_body(2)).await;
        assert_key_reused(&another_body, "another body");
        let another_path = app
            .send_request(keyed(
                json_req(
                    Method::POST,
                    "/employees/import",
                    Some(&admin),
                    json!([employee_body(3)]).to_string(),
                ),
                KEY.as_bytes(),
            ))
            .await;
        assert_key_reused(&another_path, "another path");
        let another_media_type = app
            .send_request(keyed(
                with_header(
                    json_req(
                        Method::POST,
                        "/employees/",
                        Some(&admin),
                        employee_body(1).to_string(),
                    ),
                    "content-type",
                    "application/json; charset=utf-8",
                ),
                KEY.as_bytes(),
            ))
            .await;
        assert_key_reused(&another_media_type, "another media type");

        for emp_id in [2, 3] {
            let res = app.get(&format!("/employees/{emp_id}"), Some(&admin)).await;
            assert_eq!(res.status, StatusCode::NOT_FOUND, "employee {emp_id}");
        }
        assert_eq!(employee_total(&app, &admin).await, "1");
        // The key still holds its first answer.
        let again = create_keyed(&app, &admin, KEY, &employee_body(1)).await;
        assert_eq!(replayed(&again), Some("true"));
        assert_eq!(again.body, first.body);
    }
);

db_test!(
    invalid_idempotency_keys_are_a_422_at_the_header_and_write_nothing,
    |app| {
        let admin = app.admin_token().await;
        let long = "k".repeat(256);
        let cases: [(&str, &[u8], &str); 5] = [
            ("empty", b"", "string_too_short"),
            ("256 characters", long.as_bytes(), "string_too_long"),
            ("a space", b"two words", "string_pattern_mismatch"),
            ("a tab", b"tab\there", "string_pattern_mismatch"),
            (
                "not ASCII",
                "schl\u{fc}ssel".as_bytes(),
                "string_pattern_mismatch",
            ),
        ];
        for (case, raw, kind) in cases {
            let req = json_req(
                Method::POST,
                "/employees/",
                Some(&admin),
                employee_body(1).to_string(),
            );
            let res = app.send_request(keyed(req, raw)).await;
            assert_invalid_at(&res, "header.idempotency-key", case);
            assert_eq!(res.json()["detail"][0]["type"], kind, "{case}");
        }
        let twice = keyed(
            keyed(
                json_req(
                    Method::POST,
                    "/employees/",
                    Some(&admin),
                    employee_body(1).to_string(),
                ),
                b"one",
            ),
            b"two",
        );
        let res = app.send_request(twice).await;
        assert_invalid_at(&res, "header.idempotency-key", "two keys");
        let import = import_keyed(&app, &admin, &long, "").await;
        assert_invalid_at(&import, "header.idempotency-key", "import, 256 characters");
        assert_eq!(
            employee_total(&app, &admin).await,
            "0",
            "nothing was written"
        );

        // 255 visible characters, quotes and all, are a key.
        let longest = format!("\"{}\"", "k".repeat(253));
        let res = create_keyed(&app, &admin, &longest, &employee_body(1)).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        let res = create_keyed(&app, &admin, &longest, &employee_body(1)).await;
        assert_eq!(replayed(&res), Some("true"));
    }
);

db_test!(each_credential_has_its_own_idempotency_keys, |app| {
    let admin = app.admin_token().await;
    let first = create_keyed(&app, &admin, KEY, &employee_body(1)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());

    // The administrator's API key is another credential: the same key, another request, runs.
    let created = app
        .post_json(
            "/api-keys",
            Some(&admin),
            json!({"name": "sync", "scopes": ["employees:write"]}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let api_key = created.json()["key"].as_str().unwrap().to_owned();
    let by_key = create_keyed(&app, &api_key, KEY, &employee_body(2)).await;
    assert_eq!(by_key.status, StatusCode::CREATED, "{}", by_key.text());
    assert_eq!(replayed(&by_key), None);
    let by_key_again = create_keyed(&app, &api_key, KEY, &employee_body(2)).await;
    assert_eq!(replayed(&by_key_again), Some("true"));
    assert_eq!(by_key_again.body, by_key.body);

    // Another administrator: its own keys too.
    let other_id = app.register_ok("bob").await;
    let promoted = app
        .patch_json(
            &format!("/users/{other_id}"),
            Some(&admin),
            json!({"is_admin": true}),
        )
        .await;
    assert_eq!(promoted.status, StatusCode::OK, "{}", promoted.text());
    let bob = app.login("bob", USER_PASSWORD).await;
    let by_bob = create_keyed(&app, &bob, KEY, &employee_body(1)).await;
    assert_eq!(
        by_bob.status,
        StatusCode::CONFLICT,
        "bob's request ran (emp_id 1 exists), it was not answered with the admin's 201: {}",
        by_bob.text()
    );
    assert_eq!(replayed(&by_bob), None);

    // Another login of the same user is the same credential: its client keeps its answers.
    let admin_again = app.admin_token().await;
    assert_ne!(admin_again, admin);
    let relogged = create_keyed(&app, &admin_again, KEY, &employee_body(1)).await;
    assert_eq!(relogged.status, StatusCode::CREATED);
    assert_eq!(replayed(&relogged), Some("true"));
    assert_eq!(relogged.body, first.body);
    assert_eq!(employee_total(&app, &admin).await, "2");
});

db_test!(
    a_repeat_while_the_first_request_runs_is_a_409_with_retry_after,
    |app| {
        let admin = app.admin_token().await;
        let owner = Owner::user(user_id(&app, &admin).await);
        let body = employee_body(1);
        let claim = claim_as_running_request(&app, &owner, KEY, &body, unix_now()).await;

        let res = create_keyed(&app, &admin, KEY, &body).await;
        assert_eq!(res.status, StatusCode::CONFLICT, "{}", res.text());
        assert_eq!(
            res.detail(),
            "A request with this Idempotency-Key is still running: retry when it has finished"
        );
        assert_eq!(retry_after(&res, "key in use"), 1);
        assert_eq!(replayed(&res), None);
        let missing = app.get("/employees/1", Some(&admin)).await;
        assert_eq!(
            missing.status,
            StatusCode::NOT_FOUND,
            "the repeat did not run"
        );

        // The first request gives the key up (it failed): the retry runs.
        app.state
            .db
            .release_idempotency_key(&owner, &key(KEY), &claim)
            .await
            .unwrap();
        let retry = create_keyed(&app, &admin, KEY, &body).await;
        assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.text());
        assert_eq!(replayed(&retry), None);
    }
);

db_test!(
    an_abandoned_claim_is_taken_over_once_its_lease_has_run_out,
    |app| {
        let admin = app.admin_token().await;
        let owner = Owner::user(user_id(&app, &admin).await);
        let body = employee_body(1);
        // Claimed by a request that died: its lease ended a second ago.
        let lease = app.state.idempotency_terms().lease;
        assert!(
            lease > app.state.config.request_timeout.as_secs() as i64,
            "the lease outlasts any request"
        );
        let stale =
            claim_as_running_request(&app, &owner, KEY, &body, unix_now() - lease - 1).await;

        let retry = create_keyed(&app, &admin, KEY, &body).await;
        assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.text());
        assert_eq!(replayed(&retry), None);

        // The dead request's claim is void: it can neither store an answer nor free the key.
        let late = StoredAnswer {
            status: 500,
            headers: vec![],
            body: b"late".to_vec(),
        };
        let stored = app
            .state
            .db
            .store_idempotent_answer(&owner, &key(KEY), &stale, &late, unix_now(), 3600)
            .await
            .unwrap();
        assert!(!stored, "a taken-over claim stores nothing");
        app.state
            .db
            .release_idempotency_key(&owner, &key(KEY), &stale)
            .await
            .unwrap();
        let again = create_keyed(&app, &admin, KEY, &body).await;
        assert_eq!(replayed(&again), Some("true"));
        assert_eq!(again.status, StatusCode::CREATED);
        assert_eq!(again.body, retry.body);
    }
);

db_test!(a_409_for_a_taken_emp_id_is_stored_and_replayed, |app| {
    let admin = app.admin_token().await;
    app.create_employee(&admin, 1, "Ada", "London", "UK", "1985-12-10")
        .await;
    let first = create_keyed(&app, &admin, KEY, &employee_body(1)).await;
    assert_eq!(first.status, StatusCode::CONFLICT, "{}", first.text());
    assert_eq!(first.detail(), "Employee with this emp_id already exists");
    assert_eq!(replayed(&first), None);

    // The employee goes; the repeat still gets the answer the request got, and creates nothing.
    let deleted = app.delete("/employees/1", Some(&admin)).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let again = create_keyed(&app, &admin, KEY, &employee_body(1)).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(replayed(&again), Some("true"));
    assert_eq!(again.body, first.body);
    let missing = app.get("/employees/1", Some(&admin)).await;
    assert_eq!(
        missing.status,
        StatusCode::NOT_FOUND,
        "the repeat did not run"
    );
    assert_eq!(audit_count(&app, &admin, "employee.create").await, 1);
});

db_test!(
    a_422_for_invalid_input_is_not_stored_and_leaves_the_key_free,
    |app| {
        let admin = app.admin_token().await;
        let mut invalid = employee_body(1);
        invalid["emp_dob"] = json!("2999-01-01");
        for attempt in ["first", "repeat"] {
            let res = create_keyed(&app, &admin, KEY, &invalid).await;
            assert_invalid_at(&res, "body.emp_dob", attempt);
            assert_eq!(replayed(&res), None, "{attempt}: a 422 is never replayed");
        }
        // Corrected, under the same key: it runs (no 422 for another request), then replays.
        let corrected = create_keyed(&app, &admin, KEY, &employee_body(1)).await;
        assert_eq!(
            corrected.status,
            StatusCode::CREATED,
            "{}",
            corrected.text()
        );
        assert_eq!(replayed(&corrected), None);
        let again = create_keyed(&app, &admin, KEY, &employee_body(1)).await;
        assert_eq!(replayed(&again), Some("true"));
        assert_eq!(audit_count(&app, &admin, "employee.create").await, 1);
    }
);

db_test!(
    an_import_repeat_gets_the_first_report_and_imports_nothing,
    |app| {
        let admin = app.admin_token().await;
        let first = import_keyed(&app, &admin, KEY, "?on_conflict=skip").await;
        assert_eq!(first.status, StatusCode::OK, "{}", first.text());
        assert_eq!(
            first.json(),
            json!({"rows": 2, "written": 2, "skipped": 0, "dry_run": false})
        );
        assert_eq!(replayed(&first), None);

        let again = import_keyed(&app, &admin, KEY, "?on_conflict=skip").await;
        assert_eq!(again.status, StatusCode::OK, "{}", again.text());
        assert_eq!(replayed(&again), Some("true"));
        assert_eq!(
            again.body, first.body,
            "the first report, not \"skipped\": 2"
        );
        assert_eq!(again.header("content-type"), first.header("content-type"));
        assert_eq!(audit_count(&app, &admin, "employee.import").await, 2);
        assert_eq!(employee_total(&app, &admin).await, "2");

        // The query is part of the request: another mode under the same key is another request.
        let other_mode = import_keyed(&app, &admin, KEY, "?on_conflict=update").await;
        assert_key_reused(&other_mode, "another on_conflict");
        assert_eq!(audit_count(&app, &admin, "employee.import").await, 2);
    }
);

db_test!(the_purge_keeps_answers_within_their_ttl, |app| {
    let admin = app.admin_token().await;
    let first = create_keyed(&app, &admin, KEY, &employee_body(1)).await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
    assert_eq!(purge_idempotency_keys(&app.state).await, 0);
    let again = create_keyed(&app, &admin, KEY, &employee_body(1)).await;
    assert_eq!(replayed(&again), Some("true"));
});

db_test!(
    expired_answers_and_abandoned_claims_are_purged_and_the_key_runs_anew,
    TestApp::configure(|c| c.idempotency_ttl = Duration::from_secs(1)),
    |app| {
        let admin = app.admin_token().await;
        let owner = Owner::user(user_id(&app, &admin).await);
        let first = create_keyed(&app, &admin, KEY, &employee_body(1)).await;
        assert_eq!(first.status, StatusCode::CREATED, "{}", first.text());
        // A claim abandoned long ago, under another key, past its TTL too.
        claim_as_running_request(
            &app,
            &owner,
            "abandoned",
            &employee_body(9),
            unix_now() - 60,
        )
        .await;

        // The answer expires a second after it was stored; the purge then deletes both rows.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut purged = 0;
        while purged < 2 {
            assert!(Instant::now() < deadline, "purged {purged} of 2 rows");
            purged += purge_idempotency_keys(&app.state).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(purged, 2);

        // The key is free: another request under it runs (no 422, no replay).
        let anew = create_keyed(&app, &admin, KEY, &employee_body(2)).await;
        assert_eq!(anew.status, StatusCode::CREATED, "{}", anew.text());
        assert_eq!(replayed(&anew), None);
        let abandoned = create_keyed(&app, &admin, "abandoned", &employee_body(9)).await;
        assert_eq!(
            abandoned.status,
            StatusCode::CREATED,
            "{}",
            abandoned.text()
        );
    }
);
