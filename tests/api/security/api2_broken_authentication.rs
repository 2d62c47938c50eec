//! API2:2023 Broken Authentication: password guessing, enumeration, passwords.

use std::time::{Duration, Instant};

use axum::http::{StatusCode, header};
use employee_api::{config::ThrottleConfig, middleware::BODY_LIMIT};
use serde_json::json;
use tower::ServiceExt;

use crate::{db_test, helpers::*};

db_test!(
    brute_force_on_one_account_is_refused_after_the_free_failures_even_with_the_right_password,
    // The lock lasts the rest of the hour, so the refusals below cannot race a short wait.
    TestApp::configure(|config| config.login_account = LOCKS_FOR_THE_HOUR_AFTER_3),
    |app| {
        app.register_ok("alice").await;
        app.register_ok("bob").await;
        for guess in 1..=3 {
            let res = app
                .login_raw("alice", &format!("wrong guess {guess}"))
                .await;
            assert_eq!(
                res.status,
                StatusCode::UNAUTHORIZED,
                "guess {guess} is a free failure: {}",
                res.text()
            );
        }
        // Past the free failures every attempt is refused unheard, the right password too.
        assert_too_many(
            &app.login_raw("alice", "wrong guess 4").await,
            "fourth guess",
        );
        assert_too_many(
            &app.login_raw("alice", USER_PASSWORD).await,
            "correct password while throttled",
        );
        // Control: the throttle is the account's; another account logs in.
        app.login("bob", USER_PASSWORD).await;
    }
);

db_test!(
    an_account_that_hits_the_hourly_cap_stays_locked_for_the_rest_of_the_hour,
    TestApp::configure(|config| config.login_account = LOCKS_FOR_THE_HOUR_AFTER_3),
    |app| {
        app.register_ok("alice").await;
        for guess in 1..=3 {
            let res = app
                .login_raw("alice", &format!("wrong guess {guess}"))
                .await;
            assert_eq!(
                res.status,
                StatusCode::UNAUTHORIZED,
                "guess {guess}: {}",
                res.text()
            );
        }
        let wait = assert_too_many(
            &app.login_raw("alice", USER_PASSWORD).await,
            "correct password",
        );
        assert!(
            (3000..=3600).contains(&wait),
            "locked for the rest of the hour, got Retry-After {wait}"
        );
    }
);

db_test!(
    unknown_usernames_are_throttled_exactly_like_real_ones,
    TestApp::configure(|config| config.login_account = LOCKS_FOR_THE_HOUR_AFTER_3),
    |app| {
        app.register_ok("alice").await;
        let mut observed = Vec::new();
        for name in ["alice", "nobody-here"] {
            let mut sequence = Vec::new();
            for guess in 1..=5 {
                let res = app.login_raw(name, &format!("wrong guess {guess}")).await;
                sequence.push((
                    res.status,
                    res.body.clone(),
                    res.headers.contains_key(header::RETRY_AFTER),
                ));
            }
            observed.push(sequence);
        }
        let statuses: Vec<_> = observed[0]
            .iter()
            .map(|(status, ..)| status.as_u16())
            .collect();
        assert_eq!(statuses, [401, 401, 401, 429, 429], "real account");
        assert_eq!(
            observed[0], observed[1],
            "an unknown name is throttled differently from a real one"
        );
    }
);

db_test!(
    a_successful_login_resets_the_account_failure_count,
    TestApp::configure(|config| config.login_account = LOCKS_FOR_THE_HOUR_AFTER_3),
    |app| {
        app.register_ok("alice").await;
        let mut statuses = Vec::new();
        for password in [
            "wrong 1",
            "wrong 2",
            USER_PASSWORD,
            "wrong 3",
            "wrong 4",
            "wrong 5",
            "wrong 6",
        ] {
            statuses.push(app.login_raw("alice", password).await.status.as_u16());
        }
        // Without the reset the success would be the third counted attempt and lock at once.
        assert_eq!(statuses, [401, 401, 200, 401, 401, 401, 429]);
    }
);

db_test!(
    fifty_parallel_guesses_get_no_more_tries_than_the_budget,
    TestApp::configure(|config| {
        // Five free failures; a sixth (if the 1 s wait has passed) hits the hourly cap.
        config.login_account = ThrottleConfig {
            free_failures: 5,
            max_failures_per_hour: 6,
        };
        config.login_ip = UNTHROTTLED;
    }),
    |app| {
        app.register_ok("alice").await;
        let mut guesses = tokio::task::JoinSet::new();
        for guess in 0..50 {
            let router = app.router.clone();
            let req = from_peer(
                login_req("alice", &format!("parallel guess {guess}")),
                app.peer,
            );
            guesses.spawn(async move { router.oneshot(req).await.map(|res| res.status()) });
        }
        let (mut heard, mut refused) = (0, 0);
        while let Some(joined) = guesses.join_next().await {
            match joined.expect("guess task").unwrap_or_else(|e| match e {}) {
                StatusCode::UNAUTHORIZED => heard += 1,
                StatusCode::TOO_MANY_REQUESTS => refused += 1,
                other => panic!("unexpected status {other} for a parallel guess"),
            }
        }
        assert!(
            (5..=6).contains(&heard),
            "{heard} guesses were checked (budget 5, at most 6)"
        );
        assert_eq!(heard + refused, 50);
    }
);

db_test!(
    unknown_user_and_wrong_password_give_identical_status_body_and_headers,
    |app| {
        app.register_ok("alice").await;
        let reference = app.login_raw("alice", "not the right password").await;
        assert_eq!(
            reference.status,
            StatusCode::UNAUTHORIZED,
            "{}",
            reference.text()
        );
        assert_eq!(
            reference.json(),
            json!({"detail": "Incorrect username or password"})
        );
        assert_eq!(reference.header("www-authenticate"), Some("Bearer"));
        for name in ["ALICE", "nobody-here", "no", "' OR '1'='1"] {
            let res = app.login_raw(name, "not the right password").await;
            assert_eq!(res.status, reference.status, "{name}");
            assert_eq!(res.body, reference.body, "{name}: body differs");
            assert_eq!(
                comparable_headers(&res),
                comparable_headers(&reference),
                "{name}: headers differ"
            );
        }
    }
);

db_test!(
    unknown_user_and_wrong_password_take_about_the_same_time,
    TestApp::configure(|config| {
        config.login_account = UNTHROTTLED;
        config.login_ip = UNTHROTTLED;
    }),
    |app| {
        app.register_ok("alice").await;
        for name in ["alice", "nobody-here"] {
            app.login_raw(name, "warm-up guess").await;
        }
        // Each round times one login of each kind back to back (alternating which goes first),
        // so load that changes over the run hits both sides of a round alike; the verdict is
        // the median of the rounds' ratios, so a few disturbed rounds cannot decide it. Without
        // the dummy hash an unknown user costs a database lookup against an Argon2 hash: a
        // ratio far below 0.1.
        let mut ratios = Vec::new();
        let (mut known, mut unknown) = (Vec::new(), Vec::new());
        for round in 0..21 {
            let order = if round % 2 == 0 {
                ["alice", "nobody-here"]
            } else {
                ["nobody-here", "alice"]
            };
            let mut took = [Duration::ZERO; 2];
            for name in order {
                let started = Instant::now();
                let res = app.login_raw(name, "wrong password").await;
                let elapsed = started.elapsed();
                assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{name} round {round}");
                took[usize::from(name != "alice")] = elapsed;
            }
            known.push(took[0]);
            unknown.push(took[1]);
            ratios.push(took[1].as_secs_f64() / took[0].as_secs_f64());
        }
        let ratio = median_f64(&mut ratios);
        let (known, unknown) = (median(&mut known), median(&mut unknown));
        eprintln!(
            "login timing ({:?}): wrong password median {known:?}, unknown user median {unknown:?}, median ratio {ratio:.2}",
            app.backend
        );
        assert!(
            (0.5..=2.0).contains(&ratio),
            "unknown user {unknown:?} vs wrong password {known:?} (median ratio {ratio:.2})"
        );
    }
);

db_test!(
    failed_logins_are_limited_per_client_ip_across_accounts,
    TestApp::configure(|config| {
        config.login_ip = LOCKS_FOR_THE_HOUR_AFTER_3;
        config.login_account = UNTHROTTLED;
    }),
    |app| {
        app.register_ok("alice").await;
        for n in 1..=3 {
            let res = app.login_raw(&format!("carol-{n}"), "wrong").await;
            assert_eq!(
                res.status,
                StatusCode::UNAUTHORIZED,
                "account {n}: {}",
                res.text()
            );
        }
        assert_too_many(
            &app.login_raw("carol-4", "wrong").await,
            "fourth account from the same IP",
        );
        assert_too_many(
            &app.login_raw("alice", USER_PASSWORD).await,
            "correct login from the throttled IP",
        );
        let spoofed = with_header(
            login_req("alice", USER_PASSWORD),
            "x-forwarded-for",
            "198.51.100.7",
        );
        assert_too_many(
            &app.send_request(spoofed).await,
            "spoofed X-Forwarded-For from an untrusted peer",
        );

        let elsewhere = other_peer(10);
        let res = app
            .send_request(from_peer(login_req("alice", USER_PASSWORD), elsewhere))
            .await;
        assert_eq!(
            res.status,
            StatusCode::OK,
            "another client is unaffected: {}",
            res.text()
        );
        let res = app
            .send_request(from_peer(login_req("carol-1", "wrong"), elsewhere))
            .await;
        assert_eq!(
            res.status,
            StatusCode::UNAUTHORIZED,
            "another client's failure: {}",
            res.text()
        );
    }
);

db_test!(
    common_and_context_passwords_are_rejected_with_the_reason,
    TestApp::configure(|config| {
        config.login_account = UNTHROTTLED;
        config.login_ip = UNTHROTTLED;
    }),
    |app| {
        let cases = [
            ("carol", "1qaz2wsx3edc4rfv", "password_too_common"),
            ("carol", "1QAZ2WSX3EDC4RFV", "password_too_common"),
            ("carol", "qazwsxedcrfvtgb", "password_too_common"),
            ("carol", "123456789987654321", "password_too_common"),
            ("carol", "employee-employee-2024", "password_context_word"),
            ("carol", "AdminAdminAdmin!!!", "password_context_word"),
            (
                "margaret",
                "my name is margaret, hello",
                "password_contains_username",
            ),
            (
                "margaret",
                "MY NAME IS MARGARET, HELLO",
                "password_contains_username",
            ),
            ("carol", "short-pw", "string_too_short"),
        ];
        for (username, password, kind) in cases {
            let res = app.register(username, password).await;
            assert_invalid_at(&res, "body.password", password);
            assert_eq!(res.json()["detail"][0]["type"], kind, "{password}");
            assert_eq!(
                app.login_raw(username, password).await.status,
                StatusCode::UNAUTHORIZED,
                "{password} created {username}"
            );
        }
        // Control: the same names register with an acceptable password.
        app.register_ok("carol").await;
        app.register_ok("margaret").await;
    }
);

db_test!(
    passwords_differing_only_after_byte_72_are_different_passwords,
    |app| {
        let base = "q7-".repeat(30);
        let (real, other) = (format!("{base}AAAAAAAAAA"), format!("{base}BBBBBBBBBB"));
        assert_eq!(real.len(), 100);
        assert_eq!(
            app.register("alice", &real).await.status,
            StatusCode::CREATED
        );
        let res = app.login_raw("alice", &other).await;
        assert_eq!(
            res.status,
            StatusCode::UNAUTHORIZED,
            "bcrypt-style truncation at 72 bytes: {}",
            res.text()
        );
        app.login("alice", &real).await;
    }
);

db_test!(
    a_huge_login_password_is_refused_before_any_hashing_and_is_not_a_counted_attempt,
    TestApp::configure(|config| {
        // One failure locks for the hour: had either huge attempt reached the throttle (which
        // every hashed attempt passes first), the wrong login below would get 429.
        let one = ThrottleConfig {
            free_failures: 1,
            max_failures_per_hour: 1,
        };
        config.login_account = one;
        config.login_ip = one;
    }),
    |app| {
        app.register_ok("alice").await;
        // 3,000 characters fit the 4 KiB body limit of /auth/*: the form is read and the
        // password refused as a field.
        let res = app.login_raw("alice", &"a".repeat(3_000)).await;
        assert_eq!(
            res.error_locs(),
            ["body.password"],
            "3,000-character password"
        );
        assert!(!res.text().contains("aaaaaaaa"), "the password was echoed");
        // Past the limit (100 kB, or 2 MiB, over the 1 MiB of other routes): refused as a
        // body, unread.
        for size in [100_000, 2 * BODY_LIMIT] {
            let res = app.login_raw("alice", &"a".repeat(size)).await;
            assert_too_large(&res, &format!("{size}-byte password"));
        }

        let res = app.login_raw("alice", "a wrong password").await;
        assert_eq!(
            res.status,
            StatusCode::UNAUTHORIZED,
            "the first counted attempt: {}",
            res.text()
        );
        // Control: the throttle is on, and that one attempt used the budget.
        assert_too_many(
            &app.login_raw("alice", USER_PASSWORD).await,
            "after the one counted failure",
        );
    }
);

/// One login attempt: when it was sent and answered (test clock), and the answer.
struct Attempt {
    sent: Instant,
    answered: Instant,
    res: TestResponse,
}

async fn attempt(app: &TestApp, password: &str) -> Attempt {
    let sent = Instant::now();
    let res = app.login_raw("alice", password).await;
    Attempt {
        sent,
        answered: Instant::now(),
        res,
    }
}

/// Logs in as alice with `password` until an attempt is heard (not 429), every 50 ms, for at
/// most `wait` + 10 s; attempts refused by the throttle are not counted. Returns the refusals
/// and the heard attempt.
async fn attempt_until_heard(
    app: &TestApp,
    password: &str,
    wait: Duration,
) -> (Vec<Attempt>, Attempt) {
    let deadline = Instant::now() + wait + Duration::from_secs(10);
    let mut refused = Vec::new();
    loop {
        let next = attempt(app, password).await;
        if next.res.status != StatusCode::TOO_MANY_REQUESTS {
            return (refused, next);
        }
        assert_too_many(&next.res, "while the account waits");
        refused.push(next);
        assert!(
            Instant::now() < deadline,
            "still throttled more than {wait:?} + 10 s into a {wait:?} wait"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Seconds from `from` to `to` on the test clock, negative when `to` is earlier.
fn secs_between(from: Instant, to: Instant) -> f64 {
    if to >= from {
        (to - from).as_secs_f64()
    } else {
        -(from - to).as_secs_f64()
    }
}

db_test!(
    login_waits_double_from_one_second_and_the_account_unlocks_after_each,
    TestApp::configure(|config| {
        config.login_account = ThrottleConfig {
            free_failures: 1,
            max_failures_per_hour: 100,
        };
        config.login_ip = UNTHROTTLED;
    }),
    |app| {
        app.register_ok("alice").await;
        let mut heard = attempt(&app, "wrong 1").await;
        assert_eq!(
            heard.res.status,
            StatusCode::UNAUTHORIZED,
            "{}",
            heard.res.text()
        );
        // Each heard failure starts the next wait at some moment while it was in flight
        // (before its hash), and the next attempt is judged at some moment while it is in
        // flight. So the next heard attempt cannot be answered sooner than the wait after the
        // last one was sent; and a refusal's Retry-After is the rest of the wait, rounded up,
        // at some moment while the refusal was in flight.
        for (step, secs) in [(1, 1_u64), (2, 2), (3, 4)] {
            let wait = Duration::from_secs(secs);
            let last = step == 3;
            let password = if last { USER_PASSWORD } else { "wrong again" };
            let (refused, next) = attempt_until_heard(&app, password, wait).await;
            let waited = next.answered - heard.sent;
            let announced: Vec<u64> = refused
                .iter()
                .map(|r| retry_after(&r.res, "refusal"))
                .collect();
            eprintln!("wait {step}: heard again after {waited:?}; Retry-After {announced:?}");
            assert!(
                waited >= wait,
                "wait {step}: heard again after {waited:?}, before the {wait:?} wait ended"
            );
            let idle = next.sent.saturating_duration_since(heard.answered);
            assert!(
                idle < 2 * wait + Duration::from_secs(1),
                "wait {step}: heard again only {idle:?} after the last answer (the wait is {wait:?})"
            );
            for (r, value) in refused.iter().zip(&announced) {
                let most = secs as f64 - secs_between(heard.answered, r.sent);
                let least = secs as f64 - secs_between(heard.sent, r.answered);
                assert!(
                    (least.ceil().max(1.0)..=most.ceil()).contains(&(*value as f64)),
                    "wait {step}: Retry-After {value}, but {least:.3}..{most:.3} s of it were left"
                );
            }
            let expected = if last {
                StatusCode::OK
            } else {
                StatusCode::UNAUTHORIZED
            };
            assert_eq!(
                next.res.status,
                expected,
                "wait {step}: {}",
                next.res.text()
            );
            heard = next;
        }
        // Unlocked and reset by the success: a wrong password is heard again.
        let res = app.login_raw("alice", "wrong after the success").await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED, "{}", res.text());
    }
);
