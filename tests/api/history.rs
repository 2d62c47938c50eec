//! Data you can trust: versions and conditional requests (no lost updates), the archive of
//! deleted employees (restore, erase), and the hash-chained audit trail (filters, history,
//! change feed, erasure, tamper evidence, `audit verify`).

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use employee_api::{config::DatabaseUrl, server::housekeeping::erase_expired};
use serde_json::{Value, json};

use crate::{
    db_test,
    helpers::{
        server::{run_cli, stderr, stdout},
        *,
    },
};

fn etag(res: &TestResponse) -> String {
    res.header("etag")
        .unwrap_or_else(|| panic!("an ETag on {}: {}", res.status, res.text()))
        .to_owned()
}

async fn send_with(
    app: &Instance,
    method: Method,
    path: &str,
    token: &str,
    body: Option<Value>,
    headers: &[(&'static str, &str)],
) -> TestResponse {
    let mut req = match body {
        Some(value) => json_req(method, path, Some(token), value.to_string()),
        None => bare_req(method, path, Some(token)),
    };
    for (name, value) in headers {
        req = with_header(req, name, value);
    }
    app.send_request(req).await
}

/// Every page of `path` (an audit or archive listing), following `Link: rel="next"`.
async fn all_pages(app: &Instance, token: &str, path: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut next = Some(path.to_owned());
    while let Some(path) = next.take() {
        let res = app.get(&path, Some(token)).await;
        assert_eq!(res.status, StatusCode::OK, "{path}: {}", res.text());
        out.extend(res.json().as_array().expect("an array").iter().cloned());
        next = res.header("link").map(|link| {
            link.trim_start_matches('<')
                .split('>')
                .next()
                .expect("a link target")
                .to_owned()
        });
    }
    out
}

/// Runs `sql` directly on the app's database (as an attacker with write access would).
async fn execute_sql(app: &TestApp, sql: &str) {
    match &app.database_url {
        DatabaseUrl::Sqlite { path, .. } => {
            let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                .await
                .unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
        DatabaseUrl::Postgres(url) => {
            let pool = sqlx::PgPool::connect(url.expose()).await.unwrap();
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
                .execute(&pool)
                .await
                .unwrap();
            pool.close().await;
        }
    }
}

/// `DATABASE_URL` for running the binary on the app's database.
fn cli_database_url(app: &TestApp) -> String {
    match &app.database_url {
        DatabaseUrl::Sqlite { path, .. } => format!("sqlite://{}", path.display()),
        DatabaseUrl::Postgres(url) => url.expose().to_owned(),
    }
}

fn verify_cli(app: &TestApp) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let url = cli_database_url(app);
    run_cli(
        dir.path(),
        &["audit", "verify"],
        &[
            ("DATABASE_URL", url.as_str()),
            (
                "JWT_SECRET_KEY",
                "a-test-secret-that-is-long-enough-0123456789",
            ),
        ],
        "",
    )
}

db_test!(
    versions_give_strong_etags_304_and_412_with_the_current_tag,
    |app| {
        let admin = app.admin_token().await;
        let created = app
            .post_json("/employees/", Some(&admin), employee_body(7))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
        let v1 = etag(&created);
        assert!(v1.starts_with('"') && !v1.starts_with("W/"), "strong: {v1}");
        assert_eq!(created.header("location"), Some("/employees/7"));

        let read = app.get("/employees/7", Some(&admin)).await;
        assert_eq!(etag(&read), v1, "GET answers the version POST gave");

        let not_modified = send_with(
            &app,
            Method::GET,
            "/employees/7",
            &admin,
            None,
            &[("if-none-match", &v1)],
        )
        .await;
        assert_eq!(not_modified.status, StatusCode::NOT_MODIFIED);
        assert!(not_modified.body.is_empty(), "304 has no body");
        assert_eq!(etag(&not_modified), v1);
        let other = send_with(
            &app,
            Method::GET,
            "/employees/7",
            &admin,
            None,
            &[("if-none-match", "\"1\", \"999999\"")],
        )
        .await;
        assert_eq!(other.status, StatusCode::OK, "no tag matches: the body");

        let changed = send_with(
            &app,
            Method::PATCH,
            "/employees/7",
            &admin,
            Some(json!({"city": "Zürich"})),
            &[("if-match", &v1)],
        )
        .await;
        assert_eq!(changed.status, StatusCode::OK, "{}", changed.text());
        let v2 = etag(&changed);
        assert_ne!(v2, v1, "every write makes a new version");

        // The old tag is stale now: PATCH and DELETE refuse with the current one.
        for method in [Method::PATCH, Method::DELETE] {
            let body = (method == Method::PATCH).then(|| json!({"city": "Bern"}));
            let res = send_with(
                &app,
                method.clone(),
                "/employees/7",
                &admin,
                body,
                &[("if-match", &v1)],
            )
            .await;
            assert_eq!(res.status, StatusCode::PRECONDITION_FAILED, "{method}");
            assert_eq!(etag(&res), v2, "{method}: 412 names the current version");
            assert!(res.detail().contains("changed"), "{}", res.detail());
        }
        // A weak tag never matches If-Match (strong comparison), `*` matches any version.
        let weak = format!("W/{v2}");
        let res = send_with(
            &app,
            Method::PATCH,
            "/employees/7",
            &admin,
            Some(json!({"city": "Bern"})),
            &[("if-match", &weak)],
        )
        .await;
        assert_eq!(res.status, StatusCode::PRECONDITION_FAILED);
        assert_eq!(
            app.get("/employees/7", Some(&admin)).await.json()["city"],
            "Zürich",
            "a refused write changed nothing"
        );
        let res = send_with(
            &app,
            Method::DELETE,
            "/employees/7",
            &admin,
            None,
            &[("if-match", "*")],
        )
        .await;
        assert_eq!(res.status, StatusCode::NO_CONTENT);
        let res = send_with(
            &app,
            Method::DELETE,
            "/employees/7",
            &admin,
            None,
            &[("if-match", "*")],
        )
        .await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "If-Match: * on nothing");
    }
);

db_test!(
    twenty_concurrent_patches_with_the_same_if_match_let_exactly_one_win,
    |app| {
        let admin = app.admin_token().await;
        let created = app
            .post_json("/employees/", Some(&admin), employee_body(20))
            .await;
        let tag = etag(&created);
        let tasks: Vec<_> = (0..20)
            .map(|i| {
                let (app, admin, tag) = (app.instance(), admin.clone(), tag.clone());
                tokio::spawn(async move {
                    send_with(
                        &app,
                        Method::PATCH,
                        "/employees/20",
                        &admin,
                        Some(json!({"city": format!("City {i}")})),
                        &[("if-match", &tag)],
                    )
                    .await
                })
            })
            .collect();
        let mut winners = Vec::new();
        let mut refused = 0;
        for task in tasks {
            let res = task.await.unwrap();
            match res.status {
                StatusCode::OK => winners.push(res.json()["city"].clone()),
                StatusCode::PRECONDITION_FAILED => refused += 1,
                other => panic!("unexpected {other}: {}", res.text()),
            }
        }
        assert_eq!(winners.len(), 1, "exactly one PATCH wins");
        assert_eq!(refused, 19);
        let now = app.get("/employees/20", Some(&admin)).await.json();
        assert_eq!(
            now["city"], winners[0],
            "the winner's write is the one kept"
        );
        let history = app.get("/employees/20/history", Some(&admin)).await.json();
        let updates = history
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "employee.update")
            .count();
        assert_eq!(updates, 1, "one update recorded: {history}");
    }
);

db_test!(
    concurrent_unconditional_patches_all_apply_and_each_entry_starts_where_the_last_ended,
    |app| {
        // Each PATCH starts from the record as its credential check read it; all but the first
        // find it changed by the time they write, and must read it again, not record a stale
        // "from" or lose a write.
        let admin = app.admin_token().await;
        app.post_json("/employees/", Some(&admin), employee_body(21))
            .await;
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                let (app, admin) = (app.instance(), admin.clone());
                tokio::spawn(async move {
                    app.patch_json(
                        "/employees/21",
                        Some(&admin),
                        json!({"city": format!("City {i}")}),
                    )
                    .await
                    .status
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), StatusCode::OK);
        }
        let history = app.get("/employees/21/history", Some(&admin)).await.json();
        let cities: Vec<(Value, Value)> = history
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["action"] == "employee.update")
            .map(|e| {
                let city = &e["changes"]["city"];
                (city["from"].clone(), city["to"].clone())
            })
            .collect();
        assert_eq!(cities.len(), 12, "every PATCH recorded once: {history}");
        assert_eq!(cities[0].0, json!("Oslo"));
        for pair in cities.windows(2) {
            assert_eq!(
                pair[1].0, pair[0].1,
                "each change starts where the last ended"
            );
        }
        let now = app.get("/employees/21", Some(&admin)).await.json();
        assert_eq!(now["city"], cities[11].1, "the last change is the one kept");
    }
);

db_test!(
    require_if_match_makes_patch_and_delete_answer_428_without_it,
    TestApp::configure(|c| c.require_if_match = true),
    |app| {
        let admin = app.admin_token().await;
        let tag = etag(
            &app.post_json("/employees/", Some(&admin), employee_body(3))
                .await,
        );
        let res = app
            .patch_json("/employees/3", Some(&admin), json!({"city": "Oslo"}))
            .await;
        assert_eq!(
            res.status,
            StatusCode::PRECONDITION_REQUIRED,
            "{}",
            res.text()
        );
        assert!(res.detail().contains("If-Match"), "{}", res.detail());
        let res = app.delete("/employees/3", Some(&admin)).await;
        assert_eq!(res.status, StatusCode::PRECONDITION_REQUIRED);
        assert_eq!(
            app.get("/employees/3", Some(&admin)).await.status,
            StatusCode::OK,
            "nothing was deleted"
        );
        let res = send_with(
            &app,
            Method::PATCH,
            "/employees/3",
            &admin,
            Some(json!({"city": "Oslo"})),
            &[("if-match", &tag)],
        )
        .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        let res = send_with(
            &app,
            Method::DELETE,
            "/employees/3",
            &admin,
            None,
            &[("if-match", &etag(&res))],
        )
        .await;
        assert_eq!(res.status, StatusCode::NO_CONTENT);
    }
);

db_test!(
    the_list_etag_changes_with_every_write_and_answers_304_until_then,
    |app| {
        let admin = app.admin_token().await;
        let user = app.user_token().await;
        app.post_json("/employees/", Some(&admin), employee_body(1))
            .await;
        let first = app.get("/employees/?limit=10", Some(&user)).await;
        let tag = etag(&first);
        assert!(tag.starts_with("W/\""), "weak: {tag}");
        let cached = send_with(
            &app,
            Method::GET,
            "/employees/?limit=10",
            &user,
            None,
            &[("if-none-match", &tag)],
        )
        .await;
        assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
        assert!(cached.body.is_empty());

        let mut seen = BTreeSet::from([tag.clone()]);
        let writes: [(Method, &str, Option<Value>); 3] = [
            (Method::POST, "/employees/", Some(employee_body(2))),
            (Method::PATCH, "/employees/2", Some(json!({"city": "Lima"}))),
            (Method::DELETE, "/employees/1", None),
        ];
        for (method, path, body) in writes {
            let res = app.send(method.clone(), path, Some(&admin), body).await;
            assert!(res.status.is_success(), "{method} {path}: {}", res.text());
            let page = send_with(
                &app,
                Method::GET,
                "/employees/?limit=10",
                &user,
                None,
                &[("if-none-match", &tag)],
            )
            .await;
            assert_eq!(page.status, StatusCode::OK, "after {method} {path}");
            assert!(seen.insert(etag(&page)), "a new tag after {method} {path}");
        }
    }
);

db_test!(
    deleted_employees_are_archived_listed_restored_and_erased,
    |app| {
        let admin = app.admin_token().await;
        let user = app.user_token().await;
        for id in 1..=3 {
            app.post_json("/employees/", Some(&admin), employee_body(id))
                .await;
            let res = app.delete(&format!("/employees/{id}"), Some(&admin)).await;
            assert_eq!(res.status, StatusCode::NO_CONTENT);
            assert_eq!(
                app.get(&format!("/employees/{id}"), Some(&admin))
                    .await
                    .status,
                StatusCode::NOT_FOUND,
                "a deleted employee leaves every read"
            );
        }
        assert_forbidden(
            &app.get("/employees/deleted", Some(&user)).await,
            "users do not see the archive",
        );
        let archive = all_pages(&app, &admin, "/employees/deleted?limit=2").await;
        assert_eq!(archive.len(), 3, "{archive:?}");
        for (entry, id) in archive.iter().zip(1..) {
            assert_eq!(entry["emp_id"], id);
            assert_eq!(entry["emp_name"], employee_body(id)["emp_name"]);
            assert!(
                entry["deleted_at"].as_str().unwrap().ends_with('Z'),
                "{entry}"
            );
            assert_eq!(entry["deleted_by"]["type"], "user");
            assert!(entry["deleted_by"]["id"].is_i64(), "{entry}");
        }

        // Restore: back with its data, gone from the archive.
        let res = app
            .send(Method::POST, "/employees/1/restore", Some(&admin), None)
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        assert_eq!(res.json()["emp_name"], employee_body(1)["emp_name"]);
        assert_eq!(
            etag(&res),
            etag(&app.get("/employees/1", Some(&admin)).await)
        );
        let res = app
            .send(Method::POST, "/employees/1/restore", Some(&admin), None)
            .await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "restored once only");

        // The emp_id was taken meanwhile: 409, and the archived record stays.
        app.post_json("/employees/", Some(&admin), employee_body(2))
            .await;
        let res = app
            .send(Method::POST, "/employees/2/restore", Some(&admin), None)
            .await;
        assert_eq!(res.status, StatusCode::CONFLICT, "{}", res.text());

        // Erase: gone for good.
        let res = app.delete("/employees/deleted/3", Some(&admin)).await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
        let res = app.delete("/employees/deleted/3", Some(&admin)).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
        let res = app
            .send(Method::POST, "/employees/3/restore", Some(&admin), None)
            .await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
        let left: Vec<_> = all_pages(&app, &admin, "/employees/deleted")
            .await
            .iter()
            .map(|e| e["emp_id"].clone())
            .collect();
        assert_eq!(left, vec![json!(2)]);
        for path in ["/employees/deleted/2", "/employees/2/restore"] {
            let method = if path.ends_with("restore") {
                Method::POST
            } else {
                Method::DELETE
            };
            assert_forbidden(
                &app.send(method, path, Some(&user), None).await,
                "only administrators restore or erase",
            );
        }
    }
);

db_test!(
    history_shows_each_version_of_a_record_with_who_what_and_from_where,
    |app| {
        let admin = app.admin_token().await;
        app.post_json("/employees/", Some(&admin), employee_body(5))
            .await;
        let patch = send_with(
            &app,
            Method::PATCH,
            "/employees/5",
            &admin,
            Some(json!({"city": "Porto", "country": "Portugal"})),
            &[("x-request-id", "req-history-1")],
        )
        .await;
        assert_eq!(patch.status, StatusCode::OK);
        app.delete("/employees/5", Some(&admin)).await;
        let last_version = etag(
            &app.send(Method::POST, "/employees/5/restore", Some(&admin), None)
                .await,
        );

        let history = app.get("/employees/5/history", Some(&admin)).await;
        assert_eq!(history.status, StatusCode::OK, "{}", history.text());
        let entries = history.json();
        let actions: Vec<_> = entries
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            actions,
            [
                "employee.create",
                "employee.update",
                "employee.delete",
                "employee.restore"
            ]
        );
        let update = &entries[1];
        assert_eq!(update["target"], json!({"type": "employee", "id": 5}));
        assert_eq!(update["actor"]["type"], "user");
        assert_eq!(update["request_id"], "req-history-1");
        assert!(update["client_ip"].is_string(), "{update}");
        assert!(update["session_id"].is_string(), "{update}");
        assert_eq!(update["erased"], false);
        assert_eq!(
            update["changes"],
            json!({"city": {"from": employee_body(5)["city"], "to": "Porto"},
                   "country": {"from": employee_body(5)["country"], "to": "Portugal"}})
        );
        assert_eq!(update["hash"].as_str().unwrap().len(), 64);
        let create = &entries[0];
        assert_eq!(create["changes"]["emp_name"]["from"], Value::Null);
        assert_eq!(
            create["changes"]["emp_name"]["to"],
            employee_body(5)["emp_name"]
        );
        let seqs: Vec<_> = entries
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "oldest first: {seqs:?}"
        );
        // Reading the history changed nothing: the record is still at its last version.
        let tag = etag(&app.get("/employees/5", Some(&admin)).await);
        assert_eq!(
            tag, last_version,
            "the history is read without writing the record"
        );

        assert_forbidden(
            &app.get("/employees/5/history", Some(&app.user_token().await))
                .await,
            "users do not read history",
        );
    }
);

db_test!(
    the_audit_trail_filters_by_action_actor_target_and_time,
    |app| {
        let admin = app.admin_token().await;
        let user_id = app.register_ok("auditee").await;
        let res = app.login_raw("auditee", "wrong password here").await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
        // Entries carry milliseconds: keep the two groups apart by more than that.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let before = time::OffsetDateTime::now_utc();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        app.post_json("/employees/", Some(&admin), employee_body(11))
            .await;
        app.post_json("/employees/", Some(&admin), employee_body(12))
            .await;

        let all = all_pages(&app, &admin, "/audit?limit=2").await;
        let actions: BTreeSet<_> = all.iter().map(|e| e["action"].as_str().unwrap()).collect();
        for expected in [
            "user.create",
            "user.login",
            "user.login_failed",
            "employee.create",
        ] {
            assert!(actions.contains(expected), "{expected} in {actions:?}");
        }
        let failed = all
            .iter()
            .find(|e| e["action"] == "user.login_failed")
            .unwrap();
        assert_eq!(failed["target"]["id"], user_id, "{failed}");
        assert!(failed["client_ip"].is_string());
        assert!(
            !failed.to_string().contains("wrong password"),
            "never the password"
        );

        let creates = all_pages(&app, &admin, "/audit?action=employee.create").await;
        assert_eq!(creates.len(), 2);
        let by_target = all_pages(&app, &admin, "/audit?target_id=12").await;
        assert!(
            by_target.iter().all(|e| e["target"]["id"] == 12),
            "{by_target:?}"
        );
        let admin_id = creates[0]["actor"]["id"].clone();
        let by_actor = all_pages(&app, &admin, &format!("/audit?actor_id={admin_id}")).await;
        assert!(by_actor.iter().all(|e| e["actor"]["id"] == admin_id));
        assert!(by_actor.len() >= 2);
        let since = before
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        let recent = all_pages(&app, &admin, &format!("/audit?since={since}")).await;
        assert!(
            recent.iter().all(|e| e["action"] == "employee.create"),
            "{recent:?}"
        );
        let older = all_pages(&app, &admin, &format!("/audit?until={since}")).await;
        assert!(older.iter().all(|e| e["action"] != "employee.create"));
        assert_eq!(recent.len() + older.len(), all.len());

        for bad in [
            "/audit?action=employee.explode",
            "/audit?after=-1",
            "/audit?since=yesterday",
            "/audit?limit=1001",
            "/audit?colour=red",
        ] {
            let res = app.get(bad, Some(&admin)).await;
            assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        }
        assert_forbidden(
            &app.get("/audit", Some(&app.user_token().await)).await,
            "users do not read the audit trail",
        );
    }
);

db_test!(
    a_follower_of_the_change_feed_never_misses_an_entry_under_concurrent_writers,
    |app| {
        let admin = app.admin_token().await;
        let writers: Vec<_> = (0..4u64)
            .map(|w| {
                let (app, admin) = (app.instance(), admin.clone());
                tokio::spawn(async move {
                    for i in 0..25 {
                        let id = 1000 + w * 100 + i;
                        let res = app
                            .post_json("/employees/", Some(&admin), employee_body(id))
                            .await;
                        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
                        let res = app
                            .patch_json(
                                &format!("/employees/{id}"),
                                Some(&admin),
                                json!({"city": "Riga"}),
                            )
                            .await;
                        assert_eq!(res.status, StatusCode::OK);
                    }
                })
            })
            .collect();
        // The follower reads small pages from where it stopped, as a client polling the feed.
        let mut seen: Vec<i64> = Vec::new();
        let mut after = 0;
        let mut polls = 0;
        loop {
            let done = writers.iter().all(|w| w.is_finished());
            loop {
                let page = app
                    .get(&format!("/audit?after={after}&limit=7"), Some(&admin))
                    .await;
                assert_eq!(page.status, StatusCode::OK);
                let entries = page.json();
                let entries = entries.as_array().unwrap();
                seen.extend(entries.iter().map(|e| e["seq"].as_i64().unwrap()));
                polls += 1;
                match entries.last() {
                    Some(last) => after = last["seq"].as_i64().unwrap(),
                    None => break,
                }
            }
            if done {
                break;
            }
            tokio::task::yield_now().await;
        }
        for w in writers {
            w.await.unwrap();
        }
        let everything: Vec<i64> = all_pages(&app, &admin, "/audit?limit=1000")
            .await
            .iter()
            .map(|e| e["seq"].as_i64().unwrap())
            .collect();
        assert!(everything.len() >= 200, "{}", everything.len());
        assert!(polls > 1);
        assert_eq!(
            seen, everything,
            "the follower saw every entry, once, in order"
        );
        assert!(
            everything.windows(2).all(|w| w[1] == w[0] + 1),
            "sequence numbers have no gaps"
        );
    }
);

db_test!(
    concurrent_writes_with_conflicts_among_them_record_exactly_the_writes_that_happened,
    |app| {
        // On SQLite, concurrent writes commit in groups; a refused create must neither take
        // its neighbours down with it nor leave an entry behind.
        let admin = app.admin_token().await;
        app.create_employee(&admin, 3000, "Old", "Oslo", "Norway", "1980-01-01")
            .await;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..40u64 {
            let (app, admin) = (app.instance(), admin.clone());
            tasks.spawn(async move {
                let res = match i % 4 {
                    // Taken: 10 creates of 3000.
                    0 => {
                        app.post_json("/employees/", Some(&admin), employee_body(3000))
                            .await
                    }
                    // Missing: 10 changes to nobody.
                    1 => {
                        app.patch_json("/employees/3999", Some(&admin), json!({"city": "Riga"}))
                            .await
                    }
                    // New: 20 creates of their own emp_id.
                    _ => {
                        app.post_json("/employees/", Some(&admin), employee_body(3001 + i))
                            .await
                    }
                };
                (i, res.status)
            });
        }
        let mut created = BTreeSet::new();
        for (i, status) in tasks.join_all().await {
            let expected = match i % 4 {
                0 => StatusCode::CONFLICT,
                1 => StatusCode::NOT_FOUND,
                _ => StatusCode::CREATED,
            };
            assert_eq!(status, expected, "request {i}");
            if status == StatusCode::CREATED {
                created.insert(3001 + i as i64);
            }
        }
        assert_eq!(created.len(), 20);
        let recorded: Vec<i64> = all_pages(&app, &admin, "/audit?action=employee.create")
            .await
            .iter()
            .map(|e| e["target"]["id"].as_i64().unwrap())
            .filter(|id| *id != 3000)
            .collect();
        assert_eq!(recorded.len(), 20, "one entry per create: {recorded:?}");
        assert_eq!(recorded.iter().copied().collect::<BTreeSet<_>>(), created);
        assert_eq!(
            all_pages(&app, &admin, "/audit?action=employee.create&target_id=3000")
                .await
                .len(),
            1,
            "the refused creates recorded nothing"
        );
        for id in &created {
            let res = app.get(&format!("/employees/{id}"), Some(&admin)).await;
            assert_eq!(res.status, StatusCode::OK);
            assert_ne!(etag(&res), "\"0\"", "the row took its entry's version");
        }
        let verified = verify_cli(&app);
        assert!(verified.status.success(), "{}", stderr(&verified));
    }
);

db_test!(
    erasure_removes_personal_values_from_the_trail_and_the_chain_still_verifies,
    |app| {
        let admin = app.admin_token().await;
        let mut body = employee_body(9);
        body["emp_name"] = json!("Quintessa Erasable");
        app.post_json("/employees/", Some(&admin), body).await;
        app.patch_json("/employees/9", Some(&admin), json!({"city": "Tallinn"}))
            .await;
        app.post_json("/employees/", Some(&admin), employee_body(10))
            .await;
        app.delete("/employees/9", Some(&admin)).await;
        let res = app.delete("/employees/deleted/9", Some(&admin)).await;
        assert_eq!(res.status, StatusCode::NO_CONTENT);

        let history = app.get("/employees/9/history", Some(&admin)).await.json();
        let entries = history.as_array().unwrap();
        let (erase, before) = entries.split_last().unwrap();
        assert_eq!(erase["action"], "employee.erase");
        assert_eq!(
            erase["changes"],
            json!({}),
            "the erasure holds no personal data"
        );
        assert_eq!(before.len(), 3, "{history}");
        for entry in before {
            assert_eq!(entry["erased"], true, "{entry}");
            let changes = entry["changes"].as_object().unwrap();
            assert!(!changes.is_empty(), "the changed fields are still named");
            for change in changes.values() {
                assert_eq!(change, &json!({"from": null, "to": null}), "{entry}");
            }
        }
        assert!(!history.to_string().contains("Quintessa"));
        let other = app.get("/employees/10/history", Some(&admin)).await.json();
        assert_eq!(other[0]["erased"], false, "other people keep their history");
        assert!(
            !app.get("/audit?limit=1000", Some(&admin))
                .await
                .text()
                .contains("Quintessa")
        );

        let verified = verify_cli(&app);
        assert!(verified.status.success(), "{}", stderr(&verified));
        assert!(
            stdout(&verified).contains("audit trail OK"),
            "{}",
            stdout(&verified)
        );
    }
);

db_test!(
    editing_deleting_or_reordering_the_trail_breaks_verification_at_that_entry,
    |app| {
        let admin = app.admin_token().await;
        for id in 1..=4 {
            app.post_json("/employees/", Some(&admin), employee_body(id))
                .await;
        }
        let creates = all_pages(&app, &admin, "/audit?action=employee.create").await;
        let seq = |i: usize| creates[i]["seq"].as_i64().unwrap();
        assert!(app.state.db.verify_audit().await.unwrap().is_ok());

        // A changed action (metadata): the entry's hash no longer matches.
        execute_sql(
            &app,
            &format!(
                "UPDATE audit_entries SET action = 'employee.update' WHERE seq = {}",
                seq(1)
            ),
        )
        .await;
        let out = verify_cli(&app);
        assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
        assert!(
            stderr(&out).contains(&format!("entry {}", seq(1))),
            "names the entry: {}",
            stderr(&out)
        );
        execute_sql(
            &app,
            &format!(
                "UPDATE audit_entries SET action = 'employee.create' WHERE seq = {}",
                seq(1)
            ),
        )
        .await;
        assert!(
            app.state.db.verify_audit().await.unwrap().is_ok(),
            "restored"
        );

        // An edited personal value: its hash no longer matches the entry.
        execute_sql(
            &app,
            &format!(
                "UPDATE audit_personal SET data = replace(data, 'Oslo', 'Paris') WHERE seq = {}",
                seq(2)
            ),
        )
        .await;
        let broken = app.state.db.verify_audit().await.unwrap().unwrap_err();
        assert!(broken.to_string().contains(&seq(2).to_string()), "{broken}");

        // A deleted entry: a gap.
        execute_sql(
            &app,
            &format!(
                "DELETE FROM audit_personal WHERE seq >= {0}; DELETE FROM audit_entries WHERE seq = {0}",
                seq(3)
            ),
        )
        .await;
        let out = verify_cli(&app);
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("BROKEN"), "{}", stderr(&out));
    }
);

db_test!(
    archived_records_past_the_retention_are_erased_by_housekeeping,
    |app| {
        let admin = app.admin_token().await;
        for id in [31, 32] {
            app.post_json("/employees/", Some(&admin), employee_body(id))
                .await;
            app.delete(&format!("/employees/{id}"), Some(&admin)).await;
        }
        // Record 31 was deleted 31 days ago (the default retention is 30 days).
        execute_sql(
            &app,
            "UPDATE deleted_employees SET deleted_at = deleted_at - 31 * 86400 WHERE emp_id = 31",
        )
        .await;
        erase_expired(&app.state).await;

        let left: Vec<_> = all_pages(&app, &admin, "/employees/deleted")
            .await
            .iter()
            .map(|e| e["emp_id"].clone())
            .collect();
        assert_eq!(
            left,
            vec![json!(32)],
            "only the record within the retention stays"
        );
        let history = app.get("/employees/31/history", Some(&admin)).await.json();
        let (erase, before) = history.as_array().unwrap().split_last().unwrap();
        assert_eq!(erase["action"], "employee.erase");
        assert_eq!(erase["actor"]["type"], "system", "{erase}");
        assert!(before.iter().all(|e| e["erased"] == true), "{history}");
        let kept = app.get("/employees/32/history", Some(&admin)).await.json();
        assert!(
            kept.as_array()
                .unwrap()
                .iter()
                .all(|e| e["erased"] == false)
        );
        assert!(app.state.db.verify_audit().await.unwrap().is_ok());
    }
);

db_test!(
    imports_exports_logouts_and_account_changes_are_in_the_trail,
    |app| {
        let admin = app.admin_token().await;
        let csv = "emp_id,emp_name,city,country,emp_dob\n\
                   41,Ada One,Oslo,Norway,1990-01-01\n\
                   42,Ada Two,Oslo,Norway,1991-02-02\n";
        let res = app.import(Some(&admin), "", "text/csv", csv).await;
        assert!(res.status.is_success(), "{}", res.text());
        let res = app.get("/employees/export", Some(&admin)).await;
        assert_eq!(res.status, StatusCode::OK);
        let user = app.user_token().await;
        let res = app.post_form("/auth/logout", Some(&user), &[]).await;
        assert!(res.status.is_success(), "{}", res.text());

        let imports = all_pages(&app, &admin, "/audit?action=employee.import").await;
        let ids: Vec<_> = imports.iter().map(|e| e["target"]["id"].clone()).collect();
        assert_eq!(
            ids,
            vec![json!(41), json!(42)],
            "one entry per imported row"
        );
        assert_eq!(imports[0]["changes"]["emp_name"]["to"], "Ada One");
        assert_eq!(
            all_pages(&app, &admin, "/audit?action=employee.export")
                .await
                .len(),
            1
        );
        let logouts = all_pages(&app, &admin, "/audit?action=user.logout").await;
        assert_eq!(logouts.len(), 1, "{logouts:?}");
        assert_eq!(logouts[0]["actor"]["type"], "user");
        let created = all_pages(&app, &admin, "/audit?action=user.create").await;
        assert!(
            created.iter().all(|e| !e.to_string().contains("argon2")),
            "no password hash in the trail"
        );
    }
);
