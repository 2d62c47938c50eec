//! Employee create, read, update, delete, and their validation.

use axum::{
    body::Body,
    http::{Method, Request, StatusCode, header},
};
use serde_json::{Value, json};

use crate::{db_test, helpers::*};

db_test!(
    admin_creates_an_employee_and_anyone_logged_in_reads_it,
    |app| {
        let admin = app.admin_token().await;
        let created = app
            .create_employee(
                &admin,
                42,
                "  Ada Lovelace ",
                "London",
                "United Kingdom",
                "1985-12-10",
            )
            .await;
        assert_eq!(created["emp_name"], "Ada Lovelace", "trimmed");
        assert_eq!(created["emp_dob"], "1985-12-10");
        assert!(uuid::Uuid::parse_str(created["id"].as_str().unwrap()).is_ok());
        let user = app.user_token().await;
        let res = app.get("/employees/42", Some(&user)).await;
        assert_eq!(res.status, StatusCode::OK);
        assert_eq!(res.json(), created);
    }
);

db_test!(emp_id_at_the_json_safe_maximum_round_trips, |app| {
    let admin = app.admin_token().await;
    app.create_employee(
        &admin,
        9_007_199_254_740_991,
        "Max",
        "Oslo",
        "Norway",
        "1990-01-01",
    )
    .await;
    let res = app.get("/employees/9007199254740991", Some(&admin)).await;
    assert_eq!(res.json()["emp_id"], 9_007_199_254_740_991_u64);
});

db_test!(creating_an_existing_emp_id_returns_409, |app| {
    let admin = app.admin_token().await;
    app.create_employee(&admin, 7, "A", "B", "C", "1990-01-01")
        .await;
    let res = app
        .post_json("/employees/", Some(&admin), employee_body(7))
        .await;
    assert_eq!(res.status, StatusCode::CONFLICT);
    assert_eq!(res.detail(), "Employee with this emp_id already exists");
});

/// One field replaced in an otherwise valid body; each must give a 422 at `loc`.
fn with_field(field: &str, value: Value) -> Value {
    let mut body = employee_body(100);
    body[field] = value;
    body
}

db_test!(
    every_create_validation_rule_returns_422_at_its_field,
    |app| {
        let admin = app.admin_token().await;
        let cases: Vec<(&str, Value, &str)> = vec![
            ("emp_id zero", with_field("emp_id", json!(0)), "body.emp_id"),
            (
                "emp_id negative",
                with_field("emp_id", json!(-3)),
                "body.emp_id",
            ),
            (
                "emp_id above 2^53-1",
                with_field("emp_id", json!(9_007_199_254_740_992_u64)),
                "body.emp_id",
            ),
            (
                "emp_id string",
                with_field("emp_id", json!("12")),
                "body.emp_id",
            ),
            (
                "emp_id fraction",
                with_field("emp_id", json!(1.5)),
                "body.emp_id",
            ),
            (
                "name empty",
                with_field("emp_name", json!("")),
                "body.emp_name",
            ),
            (
                "name whitespace",
                with_field("emp_name", json!("   ")),
                "body.emp_name",
            ),
            (
                "name 201 chars",
                with_field("emp_name", json!("n".repeat(201))),
                "body.emp_name",
            ),
            (
                "name control char",
                with_field("emp_name", json!("a\u{0}b")),
                "body.emp_name",
            ),
            (
                "name not a string",
                with_field("emp_name", json!(["x"])),
                "body.emp_name",
            ),
            (
                "city 101 chars",
                with_field("city", json!("c".repeat(101))),
                "body.city",
            ),
            (
                "city newline",
                with_field("city", json!("Os\nlo")),
                "body.city",
            ),
            (
                "country empty",
                with_field("country", json!("")),
                "body.country",
            ),
            (
                "dob before 1900",
                with_field("emp_dob", json!("1899-12-31")),
                "body.emp_dob",
            ),
            (
                "dob not a date",
                with_field("emp_dob", json!("2001-02-29")),
                "body.emp_dob",
            ),
            (
                "dob wrong format",
                with_field("emp_dob", json!("10/12/1985")),
                "body.emp_dob",
            ),
            (
                "dob null",
                with_field("emp_dob", Value::Null),
                "body.emp_dob",
            ),
            (
                "unknown field",
                with_field("salary", json!(1)),
                "body.salary",
            ),
            (
                "client-chosen id",
                with_field("id", json!("5f0c1a9e-8d0b-4c59-9a53-3f6f3c1b2a10")),
                "body.id",
            ),
        ];
        for (case, body, loc) in cases {
            let res = app.post_json("/employees/", Some(&admin), body).await;
            assert_eq!(res.error_locs(), vec![loc], "{case}");
        }
        let mut missing = employee_body(100);
        missing.as_object_mut().unwrap().remove("city");
        let res = app.post_json("/employees/", Some(&admin), missing).await;
        assert_eq!(res.error_locs(), vec!["body.city"]);
        assert_eq!(res.json()["detail"][0]["type"], "missing");
        assert_eq!(
            app.get("/employees/100", Some(&admin)).await.status,
            StatusCode::NOT_FOUND,
            "nothing was stored"
        );

        // Tomorrow, by the date the server reads too: an attempt that straddles midnight UTC
        // proves nothing (the server may have judged it a day later) and is made again.
        let app = &app;
        let res = on_one_utc_day(|today| {
            let admin = admin.clone();
            async move {
                let tomorrow = (today + time::Duration::days(1)).to_string();
                let res = app
                    .post_json(
                        "/employees/",
                        Some(&admin),
                        with_field("emp_dob", json!(tomorrow)),
                    )
                    .await;
                if res.status == StatusCode::CREATED {
                    app.delete("/employees/100", Some(&admin)).await;
                }
                res
            }
        })
        .await;
        assert_eq!(res.error_locs(), ["body.emp_dob"], "dob tomorrow");
    }
);

db_test!(dob_of_today_and_of_1900_01_01_are_accepted, |app| {
    let admin = app.admin_token().await;
    // Today by the date the server reads too (see `on_one_utc_day`); each attempt has its own
    // emp_id, the day's number, so one that straddled midnight does not get in the way.
    let app = &app;
    let (today, res) = on_one_utc_day(|today| {
        let admin = admin.clone();
        async move {
            let emp_id = u64::try_from(today.to_julian_day()).expect("a positive day number");
            let mut body = employee_body(emp_id);
            body["emp_dob"] = json!(today.to_string());
            (
                today,
                app.post_json("/employees/", Some(&admin), body).await,
            )
        }
    })
    .await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "dob {today}: {}",
        res.text()
    );
    assert_eq!(res.json()["emp_dob"], today.to_string());
    app.create_employee(&admin, 2, "A", "B", "C", "1900-01-01")
        .await;
});

db_test!(
    malformed_json_and_non_objects_return_422_and_other_media_types_415,
    |app| {
        let admin = app.admin_token().await;
        let send = |content_type: &'static str, body: &'static str| {
            Request::builder()
                .method(Method::POST)
                .uri("/employees/")
                .header(header::AUTHORIZATION, format!("Bearer {admin}"))
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body))
                .unwrap()
        };
        for body in ["{", "[1,2]", "\"x\"", "", "{\"emp_id\": 1,}"] {
            let res = app.send_request(send("application/json", body)).await;
            assert_eq!(
                res.status,
                StatusCode::UNPROCESSABLE_ENTITY,
                "{body:?}: {}",
                res.text()
            );
        }
        let res = app.send_request(send("text/plain", "{}")).await;
        assert_eq!(res.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        assert!(res.detail().contains("application/json"));
    }
);

db_test!(
    get_with_a_bad_emp_id_returns_422_and_a_missing_one_404,
    |app| {
        let token = app.user_token().await;
        for bad in [
            "abc",
            "0",
            "-1",
            "1.5",
            "9007199254740992",
            "99999999999999999999999",
        ] {
            let res = app.get(&format!("/employees/{bad}"), Some(&token)).await;
            assert_eq!(res.error_locs(), vec!["path.emp_id"], "{bad}");
        }
        let res = app.get("/employees/12345", Some(&token)).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND);
        assert_eq!(res.detail(), "Employee not found");
    }
);

db_test!(patch_changes_only_the_fields_sent, |app| {
    let admin = app.admin_token().await;
    let before = app
        .create_employee(&admin, 5, "Eve", "Paris", "France", "1970-03-03")
        .await;
    let res = app
        .patch_json(
            "/employees/5",
            Some(&admin),
            json!({"city": " Zürich ", "emp_dob": "1971-04-04"}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let after = res.json();
    assert_eq!(after["city"], "Zürich");
    assert_eq!(after["emp_dob"], "1971-04-04");
    for same in ["emp_id", "emp_name", "country", "id"] {
        assert_eq!(after[same], before[same], "{same}");
    }
    assert_eq!(app.get("/employees/5", Some(&admin)).await.json(), after);
    let res = app
        .patch_json("/employees/5", Some(&admin), json!({}))
        .await;
    assert_eq!(res.json(), after, "an empty patch changes nothing");
});

db_test!(delete_returns_204_with_an_empty_body_then_404, |app| {
    let admin = app.admin_token().await;
    app.create_employee(&admin, 8, "A", "B", "C", "1990-01-01")
        .await;
    let res = app.delete("/employees/8", Some(&admin)).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    assert!(res.body.is_empty());
    assert_eq!(
        app.delete("/employees/8", Some(&admin)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("/employees/8", Some(&admin)).await.status,
        StatusCode::NOT_FOUND
    );
});

db_test!(
    fifty_concurrent_creates_of_one_emp_id_give_one_201_and_49_409,
    |app| {
        let admin = app.admin_token().await;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let (app, token) = (app.instance(), admin.clone());
            tasks.spawn(async move {
                app.post_json("/employees/", Some(&token), employee_body(77))
                    .await
                    .status
            });
        }
        let statuses = tasks.join_all().await;
        let created = statuses
            .iter()
            .filter(|s| **s == StatusCode::CREATED)
            .count();
        let conflicts = statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count();
        assert_eq!((created, conflicts), (1, 49), "{statuses:?}");
    }
);
