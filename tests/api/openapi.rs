//! The OpenAPI document: a snapshot, so the documented API cannot drift silently, and the
//! parts clients rely on.

use serde_json::Value;

fn document() -> Value {
    serde_json::to_value(employee_api::router::openapi_document()).unwrap()
}

/// `tests/snapshots/openapi.snap` pins the whole document. A change fails with a diff; after an
/// intended change, `INSTA_UPDATE=always cargo test openapi` rewrites it for review with
/// `git diff`. Under CI insta never writes it.
#[test]
fn openapi_document_matches_the_snapshot() {
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

#[test]
fn every_route_and_status_of_the_contract_is_documented() {
    let doc = document();
    let expect = [
        ("/", "get", &["200"][..]),
        ("/auth/register", "post", &["201", "409", "422"]),
        ("/auth/token", "post", &["200", "401", "422"]),
        ("/users/me", "get", &["200", "401"]),
        ("/users/", "get", &["200", "401", "403"]),
        ("/employees/", "post", &["201", "401", "403", "409", "422"]),
        ("/employees/", "get", &["200", "401", "422"]),
        ("/employees/{emp_id}", "get", &["200", "401", "404", "422"]),
        (
            "/employees/{emp_id}",
            "patch",
            &["200", "401", "403", "404", "422"],
        ),
        (
            "/employees/{emp_id}",
            "delete",
            &["204", "401", "403", "404"],
        ),
        ("/healthz", "get", &["200"]),
        ("/readyz", "get", &["200", "503"]),
    ];
    for (path, method, statuses) in expect {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} documented");
        for status in statuses {
            assert!(
                op["responses"][status].is_object(),
                "{method} {path} documents {status}"
            );
        }
    }
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
