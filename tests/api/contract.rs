//! The contract: the router and `openapi/obgate.yaml` describe the same routes, and the docs
//! are served from the binary.

use std::collections::BTreeSet;

use crate::helpers::spawn;
use crate::spec;

fn spec_routes() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in spec::spec()["paths"].as_object().unwrap() {
        for method in [
            "get", "put", "post", "delete", "options", "head", "patch", "trace",
        ] {
            if item.get(method).is_some() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test]
async fn router_and_spec_list_the_same_routes() {
    let db = crate::helpers::TestDb::new().await;
    let app = obgate::App::build(crate::helpers::config(&db, &[]))
        .await
        .unwrap();
    let served: BTreeSet<(String, String)> = app
        .routes()
        .iter()
        // axum spells a catch-all `{*rest}`, OpenAPI `{rest}`.
        .map(|(m, p)| (m.to_string(), p.replace("{*", "{")))
        .collect();
    let documented = spec_routes();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in openapi/obgate.yaml: {undocumented:?}"
    );
    assert!(
        unserved.is_empty(),
        "in openapi/obgate.yaml but not served: {unserved:?}"
    );
    assert!(served.len() >= 10);
}

#[tokio::test]
async fn the_spec_is_served_verbatim_and_the_docs_page_renders_it() {
    let app = spawn().await;
    let r = app.get("/openapi.yaml").await;
    assert_eq!(r.status, 200);
    let on_disk =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/obgate.yaml"))
            .unwrap();
    assert_eq!(r.text(), on_disk);

    let r = app.get("/docs").await;
    assert_eq!((r.status, r.header("location")), (303, Some("/docs/")));
    let r = app.get("/docs/").await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("swagger-ui"), "{}", r.text());
    let init = app.get("/docs/swagger-initializer.js").await;
    assert!(
        init.text().contains("\"url\": \"/openapi.yaml\""),
        "{}",
        init.text()
    );
    // Every asset the page loads is served locally: no script or style from the internet.
    for asset in [
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
    ] {
        assert_eq!(
            app.get(&format!("/docs/{asset}")).await.status,
            200,
            "{asset}"
        );
    }
    assert!(
        !r.text().contains("https://"),
        "docs page must not load remote assets"
    );
    assert_eq!(app.get("/docs/no-such-asset.js").await.status, 404);
}

#[test]
fn every_spec_operation_documents_its_errors() {
    for (path, item) in spec::spec()["paths"].as_object().unwrap() {
        let methods = ["get", "put", "post", "delete", "patch"];
        for (method, op) in item
            .as_object()
            .unwrap()
            .iter()
            .filter(|(m, _)| methods.contains(&m.as_str()))
        {
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.contains_key("default"),
                "{method} {path} has no default (error) response"
            );
            if path.starts_with("/api/") {
                assert!(
                    responses.contains_key("401"),
                    "{method} {path} must document 401"
                );
                assert!(
                    op.get("security").is_some(),
                    "{method} {path} must declare its security"
                );
            }
        }
    }
}

#[test]
fn readme_documents_every_configuration_key() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for key in obgate::config::KEYS {
        let row = format!("| `{}` | `{}` |", key.toml, key.env);
        assert!(
            readme.contains(&row),
            "README configuration table lacks {row}"
        );
    }
}

#[test]
fn the_spec_states_the_redirect_uri_rule_the_server_enforces() {
    let pattern = spec::spec()["components"]["schemas"]["RedirectUri"]["pattern"]
        .as_str()
        .unwrap();
    assert_eq!(pattern, obgate::oauth::clients::REDIRECT_URI_PATTERN);
}

#[test]
fn every_field_rule_the_server_enforces_is_the_pattern_the_spec_states() {
    fn patterns(v: &serde_json::Value, out: &mut std::collections::BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) => {
                if let Some(serde_json::Value::String(p)) = m.get("pattern") {
                    out.insert(p.clone());
                }
                m.values().for_each(|x| patterns(x, out));
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| patterns(x, out)),
            _ => {}
        }
    }
    let mut stated = std::collections::BTreeSet::new();
    patterns(spec::spec(), &mut stated);
    use obgate::kyc::rules::*;
    let rules = [
        NAME,
        MIDDLE_NAME,
        DOB,
        STREET,
        PLACE,
        ZIP,
        PROGRAM_ID,
        SSN,
        PHONE,
        PHONE_COUNTRY_CODE,
        EMAIL,
        REASON,
        obgate::kyc::kba::ID,
        obgate::kyc::documents::FILE_NAME,
        obgate::kyc::documents::BASE64,
        obgate::events::webhooks::URL_RULE,
    ];
    for rule in rules {
        assert!(
            stated.contains(rule.pattern),
            "the spec does not state {}",
            rule.pattern
        );
    }
    let countries = spec::spec()["components"]["schemas"]["CountryCode"]["enum"].clone();
    assert_eq!(countries, serde_json::json!(COUNTRIES));
    let events = spec::spec()["components"]["schemas"]["EventType"]["enum"].clone();
    assert_eq!(events, serde_json::json!(obgate::events::EVENT_TYPES));
    let statuses = spec::spec()["components"]["schemas"]["KycStatus"]["enum"].clone();
    let ours: Vec<&str> = obgate::kyc::KycStatus::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(statuses, serde_json::json!(ours));
}
