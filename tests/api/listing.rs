//! Listing employees: pagination (offset and cursor), sorting, filters, counts.

use std::collections::HashSet;

use axum::http::StatusCode;
use serde_json::Value;

use crate::{db_test, helpers::*};

/// Seeds employees whose sort keys tie often, so paging must break ties by emp_id.
async fn seed(app: &TestApp, token: &str) {
    let cities = ["Oslo", "Zürich", "ZÜRICH", "oslo", "São Paulo"];
    let countries = ["Norway", "Switzerland", "Brazil"];
    let names = ["Ann", "Bob", "ann", "Émile"];
    let dobs = ["1980-01-01", "1990-06-15", "1980-01-01", "2000-12-31"];
    for i in 1..=23u64 {
        let n = i as usize;
        app.create_employee(
            token,
            i * 10,
            names[n % 4],
            cities[n % 5],
            countries[n % 3],
            dobs[n % 4],
        )
        .await;
    }
}

fn ids(body: &Value) -> Vec<i64> {
    body.as_array()
        .unwrap()
        .iter()
        .map(|e| e["emp_id"].as_i64().unwrap())
        .collect()
}

/// The next-page URL from a `Link` header, if any.
fn next_link(res: &TestResponse) -> Option<String> {
    let link = res.header("link")?;
    assert!(link.ends_with("; rel=\"next\""), "{link}");
    Some(
        link.trim_start_matches('<')
            .split('>')
            .next()
            .unwrap()
            .to_owned(),
    )
}

db_test!(default_list_is_ordered_by_emp_id_with_total_count, |app| {
    let admin = app.admin_token().await;
    seed(&app, &admin).await;
    let res = app.get("/employees/", Some(&admin)).await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.header("x-total-count"), Some("23"));
    let got = ids(&res.json());
    assert_eq!(got, (1..=23).map(|i| i * 10).collect::<Vec<_>>());
    assert!(res.header("link").is_none(), "no next page");
});

db_test!(
    paging_every_sort_by_offset_and_by_cursor_never_repeats_or_skips,
    |app| {
        let admin = app.admin_token().await;
        seed(&app, &admin).await;
        for sort in ["emp_id", "emp_name", "emp_dob", "city", "country"] {
            for order in ["asc", "desc"] {
                let full = ids(&app
                    .get(
                        &format!("/employees/?sort_by={sort}&order={order}&limit=1000"),
                        Some(&admin),
                    )
                    .await
                    .json());
                assert_eq!(full.len(), 23);
                // Offset pages.
                let mut by_offset = Vec::new();
                for offset in (0..23).step_by(4) {
                    let page = app
                        .get(
                            &format!(
                                "/employees/?sort_by={sort}&order={order}&limit=4&offset={offset}"
                            ),
                            Some(&admin),
                        )
                        .await;
                    by_offset.extend(ids(&page.json()));
                }
                assert_eq!(by_offset, full, "offset paging {sort} {order}");
                // Cursor pages, following Link.
                let mut by_cursor = Vec::new();
                let mut url = format!("/employees/?sort_by={sort}&order={order}&limit=4");
                loop {
                    let page = app.get(&url, Some(&admin)).await;
                    assert_eq!(page.status, StatusCode::OK, "{url}: {}", page.text());
                    by_cursor.extend(ids(&page.json()));
                    match next_link(&page) {
                        Some(next) => url = next,
                        None => break,
                    }
                }
                assert_eq!(by_cursor, full, "cursor paging {sort} {order}");
                let unique: HashSet<_> = full.iter().collect();
                assert_eq!(unique.len(), 23);
            }
        }
    }
);

db_test!(sorting_breaks_ties_by_emp_id_in_the_same_direction, |app| {
    let admin = app.admin_token().await;
    for id in [3, 1, 2] {
        app.create_employee(&admin, id, "Same", "Same", "Same", "1990-01-01")
            .await;
    }
    assert_eq!(
        ids(&app
            .get("/employees/?sort_by=city", Some(&admin))
            .await
            .json()),
        [1, 2, 3]
    );
    assert_eq!(
        ids(&app
            .get("/employees/?sort_by=city&order=desc", Some(&admin))
            .await
            .json()),
        [3, 2, 1]
    );
});

/// Follows `Link: rel="next"` from `first` to the end; the ids of every page in order, and the
/// number of pages. `between_pages` runs after each page but the last, with that page's ids.
async fn page_through<F, Fut>(
    app: &TestApp,
    token: &str,
    first: &str,
    mut between_pages: F,
) -> (Vec<i64>, usize)
where
    F: FnMut(Vec<i64>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (mut seen, mut pages) = (Vec::new(), 0);
    let mut url = first.to_owned();
    loop {
        let page = app.get(&url, Some(token)).await;
        assert_eq!(page.status, StatusCode::OK, "{url}: {}", page.text());
        let got = ids(&page.json());
        seen.extend(&got);
        pages += 1;
        match next_link(&page) {
            Some(next) => url = next,
            None => return (seen, pages),
        }
        between_pages(got).await;
    }
}

db_test!(
    cursor_paging_survives_deleting_the_cursor_row_and_inserting_after_it,
    |app| {
        let admin = app.admin_token().await;
        for id in 1..=10 {
            app.create_employee(&admin, id * 10, "N", "C", "K", "1990-01-01")
                .await;
        }
        // After each page: the row the cursor points at goes, a row right after it comes, a
        // row further on goes, and one before the cursor comes.
        let (seen, pages) = page_through(&app, &admin, "/employees/?limit=3", |page| {
            let admin = admin.clone();
            let app = &app;
            async move {
                let last = *page.last().expect("a full page") as u64;
                let res = app
                    .delete(&format!("/employees/{last}"), Some(&admin))
                    .await;
                assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
                app.create_employee(&admin, last + 5, "N", "C", "K", "1990-01-01")
                    .await;
                app.delete(&format!("/employees/{}", last + 20), Some(&admin))
                    .await;
                app.create_employee(&admin, last - 1, "N", "C", "K", "1990-01-01")
                    .await;
            }
        })
        .await;
        // Page 1: 10 20 30; then 35 40 60 (50 gone); then 65 70 90 (80 gone); then 95 100.
        assert_eq!(seen, [10, 20, 30, 35, 40, 60, 65, 70, 90, 95, 100]);
        assert_eq!(pages, 4);
    }
);

db_test!(
    cursor_paging_under_a_concurrent_writer_never_repeats_or_skips_a_stable_row,
    |app| {
        let admin = app.admin_token().await;
        // Stable rows are multiples of 10; the writer adds and removes the ones in between.
        for id in 1..=40 {
            app.create_employee(&admin, id * 10, "N", "C", "K", "1990-01-01")
                .await;
        }
        let changes = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (app, admin, changes, stop) =
                (app.instance(), admin.clone(), changes.clone(), stop.clone());
            tokio::spawn(async move {
                let mut n: u64 = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let id = (n % 40) * 10 + 1 + n % 9;
                    let created = app
                        .post_json("/employees/", Some(&admin), employee_body(id))
                        .await;
                    assert!(
                        matches!(created.status, StatusCode::CREATED | StatusCode::CONFLICT),
                        "{}",
                        created.text()
                    );
                    if n.is_multiple_of(3) {
                        app.delete(&format!("/employees/{id}"), Some(&admin)).await;
                    }
                    changes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    n += 1;
                }
            })
        };
        // Every page is read after at least one more change than the page before it.
        let (seen, pages) = page_through(&app, &admin, "/employees/?limit=7", |_| {
            let changes = changes.clone();
            async move {
                let before = changes.load(std::sync::atomic::Ordering::SeqCst);
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
                while changes.load(std::sync::atomic::Ordering::SeqCst) == before {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the writer made no change"
                    );
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            }
        })
        .await;
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        writer.await.expect("the writer task");
        assert!(pages >= 6, "only {pages} pages");
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "a row repeated or out of order: {seen:?}"
        );
        let stable: Vec<i64> = seen.iter().copied().filter(|id| id % 10 == 0).collect();
        assert_eq!(
            stable,
            (1..=40).map(|i| i * 10).collect::<Vec<i64>>(),
            "a stable row was skipped"
        );
    }
);

db_test!(
    city_and_country_filters_are_unicode_case_insensitive_substrings,
    |app| {
        let admin = app.admin_token().await;
        app.create_employee(&admin, 1, "A", "Zürich", "Switzerland", "1990-01-01")
            .await;
        app.create_employee(&admin, 2, "B", "ZÜRICH", "Schweiz", "1990-01-01")
            .await;
        app.create_employee(&admin, 3, "C", "Zurich", "USA", "1990-01-01")
            .await;
        app.create_employee(&admin, 4, "D", "São Paulo", "Brasil", "1990-01-01")
            .await;
        let cases = [
            ("city=z%C3%BCrich", vec![1, 2]),
            ("city=%C3%BCR", vec![1, 2]),
            ("city=%C3%9C", vec![1, 2]),
            ("city=zurich", vec![3]),
            ("city=S%C3%83O", vec![4]),
            ("city=s%C3%A3o%20p", vec![4]),
            ("city=rich&country=sw", vec![1]),
            ("country=s", vec![1, 2, 3, 4]),
            ("country=SCHWEIZ", vec![2]),
            ("city=", vec![1, 2, 3, 4]),
        ];
        for (query, expected) in cases {
            let res = app.get(&format!("/employees/?{query}"), Some(&admin)).await;
            assert_eq!(res.status, StatusCode::OK, "{query}");
            assert_eq!(ids(&res.json()), expected, "{query}");
            assert_eq!(
                res.header("x-total-count"),
                Some(expected.len().to_string().as_str()),
                "{query}"
            );
        }
    }
);

db_test!(filtered_cursor_pages_keep_the_filter, |app| {
    let admin = app.admin_token().await;
    for id in 1..=9 {
        let city = if id % 3 == 0 { "Bergen" } else { "Oslo" };
        app.create_employee(&admin, id, "N", city, "Norway", "1990-01-01")
            .await;
    }
    let first = app.get("/employees/?city=osl&limit=4", Some(&admin)).await;
    assert_eq!(ids(&first.json()), [1, 2, 4, 5]);
    assert_eq!(first.header("x-total-count"), Some("6"));
    let second = app.get(&next_link(&first).unwrap(), Some(&admin)).await;
    assert_eq!(ids(&second.json()), [7, 8]);
    assert!(next_link(&second).is_none());
});

db_test!(prefer_count_none_omits_the_total, |app| {
    let admin = app.admin_token().await;
    app.create_employee(&admin, 1, "A", "B", "C", "1990-01-01")
        .await;
    let req = axum::http::Request::builder()
        .uri("/employees/")
        .header("authorization", format!("Bearer {admin}"))
        .header("prefer", "count=none")
        .body(axum::body::Body::empty())
        .unwrap();
    let res = app.send_request(req).await;
    assert_eq!(res.status, StatusCode::OK);
    assert!(res.header("x-total-count").is_none());
    assert_eq!(res.header("preference-applied"), Some("count=none"));
});

/// X-Total-Count of `city=osl`, `city=berg`, `country=nor` and `country=swe`.
async fn totals(app: &TestApp, token: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for q in ["city=osl", "city=berg", "country=nor", "country=swe"] {
        let res = app.get(&format!("/employees/?{q}"), Some(token)).await;
        out.push(res.header("x-total-count").unwrap().parse().unwrap());
    }
    out
}

db_test!(filtered_totals_follow_creates_moves_and_deletes, |app| {
    let admin = app.admin_token().await;
    let queries = [
        "city=osl",
        "city=OSLO",
        "city=berg",
        "city=o",
        "country=nor",
        "country=swe",
        "city=osl&country=nor",
        "city=berg&country=den",
        "city=zzz",
    ];
    for (id, city) in [(1, "Oslo"), (2, "OSLO"), (3, "Bergen"), (4, "Oslo")] {
        app.create_employee(&admin, id, "A", city, "Norway", "1990-01-01")
            .await;
    }
    assert_eq!(totals(&app, &admin).await, [3, 1, 4, 0]);
    assert_totals_match_rows(&app, &admin, &queries).await;

    // Moving employee 1 to Bergen, and 3 to Sweden; a name-only change moves nothing.
    app.patch_json(
        "/employees/1",
        Some(&admin),
        serde_json::json!({"city": "Bergen"}),
    )
    .await;
    app.patch_json(
        "/employees/3",
        Some(&admin),
        serde_json::json!({"country": "Sweden"}),
    )
    .await;
    app.patch_json(
        "/employees/2",
        Some(&admin),
        serde_json::json!({"emp_name": "B"}),
    )
    .await;
    assert_eq!(totals(&app, &admin).await, [2, 2, 3, 1]);
    assert_totals_match_rows(&app, &admin, &queries).await;

    // Deleting the last employee of a place leaves it counted as zero.
    app.delete("/employees/3", Some(&admin)).await;
    app.delete("/employees/2", Some(&admin)).await;
    assert_eq!(totals(&app, &admin).await, [1, 1, 2, 0]);
    assert_totals_match_rows(&app, &admin, &queries).await;
});

db_test!(total_count_follows_inserts_and_deletes, |app| {
    let admin = app.admin_token().await;
    let count = |res: TestResponse| res.header("x-total-count").unwrap().to_owned();
    assert_eq!(count(app.get("/employees/", Some(&admin)).await), "0");
    for id in 1..=3 {
        app.create_employee(&admin, id, "A", "B", "C", "1990-01-01")
            .await;
    }
    app.delete("/employees/2", Some(&admin)).await;
    assert_eq!(count(app.get("/employees/", Some(&admin)).await), "2");
});
