//! The OpenAPI document: a snapshot, so the documented API cannot drift silently, and the
//! contract of the README's endpoint table, so document and README cannot drift apart.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::helpers::is_ci;

fn document() -> Value {
    serde_json::to_value(employee_api::router::openapi_document()).unwrap()
}

/// `tests/snapshots/openapi.snap` pins the whole document. A change fails with a diff; after an
/// intended change, `INSTA_UPDATE=always cargo test openapi` rewrites it for review with
/// `git diff`. Under CI nothing may rewrite it, or a changed API would pass unreviewed: insta
/// writes in place, and passes, with `INSTA_UPDATE=always` or `force` even there, and
/// `INSTA_FORCE_PASS=1` passes without writing, so those are refused.
#[test]
fn openapi_document_matches_the_snapshot() {
    if is_ci() {
        let update = std::env::var("INSTA_UPDATE").unwrap_or_default();
        assert!(
            matches!(update.as_str(), "" | "no" | "auto"),
            "CI=true with INSTA_UPDATE={update}: the snapshot must be checked, not updated"
        );
        let force_pass = std::env::var("INSTA_FORCE_PASS").unwrap_or_default();
        assert!(
            matches!(force_pass.as_str(), "" | "0"),
            "CI=true with INSTA_FORCE_PASS={force_pass}: the snapshot must be checked"
        );
    }
    let current = serde_json::to_string_pretty(&document()).unwrap();
    insta::with_settings!({
        snapshot_path => "../snapshots",
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!("openapi", current);
    });
}

#[test]
fn openapi_is_3_1_with_an_oauth2_password_flow_on_auth_token() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    let scheme = &doc["components"]["securitySchemes"]["OAuth2PasswordBearer"];
    assert_eq!(scheme["type"], "oauth2");
    assert_eq!(scheme["flows"]["password"]["tokenUrl"], "/auth/token");
}

/// `(method, path)` -> the statuses the README's `### Endpoints` table gives it (success and
/// errors). Rows naming several paths (the documentation pages) describe no operation of the
/// API and are left out.
fn readme_endpoints() -> BTreeMap<(String, String), BTreeSet<String>> {
    let readme = include_str!("../../README.md");
    let table = readme
        .split("### Endpoints")
        .nth(1)
        .expect("README.md has an `### Endpoints` section");
    let mut endpoints = BTreeMap::new();
    let rows = table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2); // the header and the |---| line
    for row in rows {
        let cells: Vec<&str> = row.trim_matches('|').split('|').map(str::trim).collect();
        let [method, path, _who, success, errors] = cells[..] else {
            panic!("README endpoint row without five cells: {row}");
        };
        if path.matches('`').count() != 2 {
            continue;
        }
        let statuses = |text: &str| -> Vec<String> {
            text.split(|c: char| !c.is_ascii_digit())
                .filter(|t| t.len() == 3)
                .map(str::to_owned)
                .collect()
        };
        let mut documented: BTreeSet<String> = statuses(success).into_iter().take(1).collect();
        assert_eq!(documented.len(), 1, "no success status in: {row}");
        documented.extend(statuses(errors));
        let previous = endpoints.insert(
            (method.to_lowercase(), path.trim_matches('`').to_owned()),
            documented,
        );
        assert!(previous.is_none(), "listed twice in the README: {row}");
    }
    assert!(endpoints.len() >= 10, "only {endpoints:?}");
    endpoints
}

#[test]
fn every_route_and_status_in_the_readme_table_is_in_the_document() {
    let doc = document();
    let mut missing = Vec::new();
    for ((method, path), statuses) in readme_endpoints() {
        let op = &doc["paths"][&path][&method];
        if !op.is_object() {
            missing.push(format!("{method} {path}"));
            continue;
        }
        for status in statuses {
            if !op["responses"][&status].is_object() {
                missing.push(format!("{method} {path} {status}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "in the README's endpoint table but not in the OpenAPI document: {missing:?}"
    );
    let list_params: Vec<&str> = doc["paths"]["/employees/"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in [
        "offset", "limit", "city", "country", "sort_by", "order", "cursor",
    ] {
        assert!(list_params.contains(&name), "{name} documented");
    }
}

/// The other direction, by route: an operation added to the API is added to the README too.
#[test]
fn the_document_has_no_route_the_readme_table_does_not_list() {
    let readme = readme_endpoints();
    let doc = document();
    let mut extra = Vec::new();
    for (path, operations) in doc["paths"].as_object().expect("paths") {
        for method in operations.as_object().expect("operations").keys() {
            if !readme.contains_key(&(method.clone(), path.clone())) {
                extra.push(format!("{method} {path}"));
            }
        }
    }
    assert!(
        extra.is_empty(),
        "in the OpenAPI document but not in the README's endpoint table: {extra:?}"
    );
}
