//! Bulk import and export over HTTP.

use axum::http::StatusCode;
use serde_json::json;

use crate::{db_test, helpers::*};

const SAMPLE: &str = include_str!("../../examples/employees.csv");

db_test!(the_sample_csv_imports_and_exports_back_identically, |app| {
    let admin = app.admin_token().await;
    let res = app
        .import(Some(&admin), "", "text/csv", SAMPLE.to_owned())
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(
        res.json(),
        json!({"rows": 5, "written": 5, "skipped": 0, "dry_run": false})
    );
    let zoe = app.get("/employees/1004", Some(&admin)).await.json();
    assert_eq!(zoe["emp_name"], "Zoë Müller");
    let export = app.get("/employees/export?format=csv", Some(&admin)).await;
    assert_eq!(export.status, StatusCode::OK);
    assert_eq!(
        export.header("content-type"),
        Some("text/csv; charset=utf-8")
    );
    assert_eq!(
        export.text().replace("\r\n", "\n"),
        SAMPLE,
        "CSV round trip"
    );
});

db_test!(ndjson_export_honours_filters_and_sort, |app| {
    let admin = app.admin_token().await;
    app.import(Some(&admin), "", "text/csv", SAMPLE.to_owned())
        .await;
    let res = app
        .get(
            "/employees/export?format=ndjson&country=s&sort_by=emp_name&order=desc",
            Some(&admin),
        )
        .await;
    let names: Vec<String> = res
        .text()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["emp_name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(names, ["Zoë Müller", "José Ñúñez", "Hopper, Grace"]);
    let bad = app.get("/employees/export?format=xml", Some(&admin)).await;
    assert_eq!(bad.error_locs(), vec!["query.format"]);
    let bad = app.get("/employees/export?limit=5", Some(&admin)).await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
});

db_test!(export_streams_more_rows_than_one_page, |app| {
    let admin = app.admin_token().await;
    // More rows than two import batches (4000) and nine export pages (1000).
    const N: i64 = 9000;
    let mut csv = String::from("emp_id,emp_name,city,country,emp_dob\n");
    for i in 1..=N {
        csv.push_str(&format!("{i},Person {i},City {},Land,1990-01-01\n", i % 7));
    }
    let res = app.import(Some(&admin), "", "text/csv", csv).await;
    assert_eq!(res.json()["written"], N, "{}", res.text());
    // The per-place counters followed every batch.
    let city3 = app.get("/employees/?city=city%203", Some(&admin)).await;
    let expected = (1..=N).filter(|i| i % 7 == 3).count().to_string();
    assert_eq!(city3.header("x-total-count"), Some(expected.as_str()));
    let export = app
        .get("/employees/export?format=ndjson", Some(&admin))
        .await;
    let ids: Vec<i64> = export
        .text()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["emp_id"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(ids, (1..=N).collect::<Vec<_>>());
});

db_test!(
    json_import_validates_every_row_and_stores_nothing_on_error,
    |app| {
        let admin = app.admin_token().await;
        let body = json!([
            employee_body(1),
            {"emp_id": 2, "emp_name": "", "city": "X", "country": "Y", "emp_dob": "1990-01-01"},
            employee_body(3),
            {"emp_id": 4, "emp_name": "A", "city": "X", "country": "Y", "emp_dob": "2999-01-01", "is_admin": true},
        ]);
        let res = app
            .import(Some(&admin), "", "application/json", body.to_string())
            .await;
        assert_eq!(
            res.error_locs(),
            vec!["body.1.emp_name", "body.3.emp_dob", "body.3.is_admin"]
        );
        assert_eq!(
            app.get("/employees/1", Some(&admin)).await.status,
            StatusCode::NOT_FOUND,
            "all or nothing"
        );
    }
);

db_test!(csv_import_reports_bad_rows_by_line_number, |app| {
    let admin = app.admin_token().await;
    let csv = "emp_id,emp_name,city,country,emp_dob\n1,A,B,C,1990-01-01\nx,A,B,C,1990-01-01\n3,A,B,C,1990-02-30\n";
    let res = app.import(Some(&admin), "", "text/csv", csv).await;
    assert_eq!(res.error_locs(), vec!["body.3.emp_id", "body.4.emp_dob"]);
    let res = app
        .import(Some(&admin), "", "text/csv", "emp_id,name\n1,A\n")
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        app.get("/employees/1", Some(&admin)).await.status,
        StatusCode::NOT_FOUND
    );
});

db_test!(conflicts_fail_skip_or_update_as_asked, |app| {
    let admin = app.admin_token().await;
    app.create_employee(&admin, 1001, "Old Name", "Oslo", "Norway", "1950-01-01")
        .await;
    let res = app
        .import(Some(&admin), "", "text/csv", SAMPLE.to_owned())
        .await;
    assert_eq!(res.status, StatusCode::CONFLICT);
    assert!(
        res.detail().contains("emp_id 1001 at 2"),
        "{}",
        res.detail()
    );
    assert_eq!(
        app.get("/employees/1002", Some(&admin)).await.status,
        StatusCode::NOT_FOUND,
        "rolled back"
    );

    let res = app
        .import(
            Some(&admin),
            "?on_conflict=skip",
            "text/csv",
            SAMPLE.to_owned(),
        )
        .await;
    assert_eq!(
        res.json(),
        json!({"rows": 5, "written": 4, "skipped": 1, "dry_run": false})
    );
    assert_eq!(
        app.get("/employees/1001", Some(&admin)).await.json()["emp_name"],
        "Old Name"
    );

    let res = app
        .import(
            Some(&admin),
            "?on_conflict=update",
            "text/csv",
            SAMPLE.to_owned(),
        )
        .await;
    assert_eq!(res.json()["written"], 5);
    assert_eq!(
        app.get("/employees/1001", Some(&admin)).await.json()["emp_name"],
        "Ada Lovelace"
    );
    let count = app.get("/employees/", Some(&admin)).await;
    assert_eq!(
        count.header("x-total-count"),
        Some("5"),
        "updates do not change the count"
    );
    // 1001 moved from Oslo to London: the per-place counts followed the upsert.
    assert_totals_match_rows(
        &app,
        &admin,
        &[
            "city=oslo",
            "city=london",
            "country=norway",
            "country=united",
            "city=o",
        ],
    )
    .await;
});

db_test!(dry_run_reports_and_stores_nothing, |app| {
    let admin = app.admin_token().await;
    let res = app
        .import(Some(&admin), "?dry_run=true", "text/csv", SAMPLE.to_owned())
        .await;
    assert_eq!(
        res.json(),
        json!({"rows": 5, "written": 5, "skipped": 0, "dry_run": true})
    );
    assert_eq!(
        app.get("/employees/1001", Some(&admin)).await.status,
        StatusCode::NOT_FOUND
    );
});

db_test!(
    import_refuses_other_media_types_and_unknown_parameters,
    |app| {
        // Who may import and export is checked with every admin route in the security suite.
        let admin = app.admin_token().await;
        assert_eq!(
            app.import(Some(&admin), "", "text/plain", SAMPLE.to_owned())
                .await
                .status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        );
        assert_eq!(
            app.import(Some(&admin), "?mode=fast", "text/csv", SAMPLE.to_owned())
                .await
                .error_locs(),
            ["query.mode"]
        );
        assert_eq!(
            app.get("/employees/1001", Some(&admin)).await.status,
            StatusCode::NOT_FOUND,
            "a refused import stored rows"
        );
    }
);
