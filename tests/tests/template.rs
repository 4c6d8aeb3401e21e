//! Checks `template.yaml` against the code it deploys: the tables match
//! `rt_relay_shared::store::schema::TABLES`, the routes of both APIs are exactly
//! `rt_relay_shared::routes::ROUTES` (function, authorizer on or off), every function is a
//! workspace crate, no IAM grant uses a wildcard action, and cfn-lint passes.
//!
//! The YAML is read through cfn-lint's own CloudFormation loader (from the project's
//! `.venv`, installed by `scripts/tools.sh`), which turns short intrinsic tags (`!Ref`,
//! `!GetAtt`, `!Sub`, ...) into their long JSON forms exactly as CloudFormation does; the
//! tests then work on plain `serde_json::Value`s. Without the tools these tests fail, with
//! a message saying how to install them: they never skip.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Command,
    sync::OnceLock,
};

use rt_relay_shared::{
    config::{table_variable, FunctionTables},
    routes::{self, Access, Api},
    store::schema::{KeyAttr, TableDef, TableKind, TABLES},
    warmup,
};
use serde_json::{json, Value};

/// The workspace root (this crate lives in `<root>/tests`).
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests crate has a parent directory")
}

/// The virtualenv holding cfn-lint: `$VENV` if set, as in `scripts/*.sh`, else `<root>/.venv`.
fn venv_tool(name: &str) -> PathBuf {
    let venv = std::env::var_os("VENV").map(PathBuf::from).unwrap_or_else(|| root().join(".venv"));
    let tool = venv.join("bin").join(name);
    assert!(
        tool.is_file(),
        "{} is missing: run scripts/tools.sh to install cfn-lint and the other template tools",
        tool.display()
    );
    tool
}

/// Prints the template as JSON, intrinsic tags in long form, through cfn-lint's decoder.
const DECODE_TEMPLATE: &str = r#"
import json, sys
from cfnlint.decode import decode
template, problems = decode(sys.argv[1])
if problems or template is None:
    for p in problems:
        print(p, file=sys.stderr)
    sys.exit(3)
json.dump(template, sys.stdout)
"#;

/// `template.yaml`, parsed once.
fn template() -> &'static Value {
    static TEMPLATE: OnceLock<Value> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        let python = venv_tool("python");
        let out = Command::new(&python)
            .arg("-c")
            .arg(DECODE_TEMPLATE)
            .arg(root().join("template.yaml"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}; run scripts/tools.sh", python.display()));
        assert!(
            out.status.success(),
            "decoding template.yaml failed ({}); if cfnlint is not importable, run scripts/tools.sh:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("the decoder prints JSON")
    })
}

fn resources() -> &'static serde_json::Map<String, Value> {
    template()["Resources"].as_object().expect("template has a Resources map")
}

fn resources_of_type(kind: &str) -> Vec<(&'static str, &'static Value)> {
    resources().iter().filter(|(_, r)| r["Type"] == kind).map(|(id, r)| (id.as_str(), r)).collect()
}

fn key_type(attr: KeyAttr) -> &'static str {
    if attr.numeric {
        "N"
    } else {
        "S"
    }
}

/// A `KeySchema` list as `[(attribute, HASH|RANGE)]`.
fn key_schema(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .unwrap_or_else(|| panic!("KeySchema is not a list: {v}"))
        .iter()
        .map(|k| {
            (
                k["AttributeName"].as_str().unwrap_or("?").to_owned(),
                k["KeyType"].as_str().unwrap_or("?").to_owned(),
            )
        })
        .collect()
}

fn expected_key_schema(hash: KeyAttr, range: Option<KeyAttr>) -> Vec<(String, String)> {
    let mut keys = vec![(hash.name.to_owned(), "HASH".to_owned())];
    if let Some(r) = range {
        keys.push((r.name.to_owned(), "RANGE".to_owned()));
    }
    keys
}

/// Every way `table` in the template differs from `def`; empty when they agree.
fn table_drift(def: &TableDef, table: &Value) -> Vec<String> {
    let mut drift = Vec::new();
    let props = &table["Properties"];
    let id = def.logical_id;

    let declared: BTreeMap<String, String> = props["AttributeDefinitions"]
        .as_array()
        .map(|defs| {
            defs.iter()
                .map(|d| {
                    (
                        d["AttributeName"].as_str().unwrap_or("?").to_owned(),
                        d["AttributeType"].as_str().unwrap_or("?").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let wanted: BTreeMap<String, String> = def
        .key_attributes()
        .into_iter()
        .map(|a| (a.name.to_owned(), key_type(a).to_owned()))
        .collect();
    if declared != wanted {
        drift.push(format!("{id}: AttributeDefinitions {declared:?}, schema.rs wants {wanted:?}"));
    }

    let keys = key_schema(&props["KeySchema"]);
    if keys != expected_key_schema(def.hash, None) {
        drift.push(format!(
            "{id}: KeySchema {keys:?}, schema.rs wants hash key {:?} only",
            def.hash.name
        ));
    }

    let mut template_indexes: BTreeMap<String, (Vec<(String, String)>, Value)> = BTreeMap::new();
    for gsi in props["GlobalSecondaryIndexes"].as_array().into_iter().flatten() {
        let name = gsi["IndexName"].as_str().unwrap_or("?").to_owned();
        template_indexes.insert(name, (key_schema(&gsi["KeySchema"]), gsi["Projection"].clone()));
    }
    let schema_names: BTreeSet<&str> = def.indexes.iter().map(|i| i.name).collect();
    let template_names: BTreeSet<&str> = template_indexes.keys().map(String::as_str).collect();
    if schema_names != template_names {
        drift.push(format!("{id}: indexes {template_names:?}, schema.rs wants {schema_names:?}"));
    }
    for index in def.indexes {
        let Some((keys, projection)) = template_indexes.get(index.name) else { continue };
        let want = expected_key_schema(index.hash, Some(index.range));
        if *keys != want {
            drift.push(format!(
                "{id}: index {} keys {keys:?}, schema.rs wants {want:?}",
                index.name
            ));
        }
        if *projection != json!({"ProjectionType": "ALL"}) {
            drift.push(format!(
                "{id}: index {} projection {projection}, schema.rs wants ALL",
                index.name
            ));
        }
    }

    let stream = &props["StreamSpecification"];
    let view = stream["StreamViewType"].as_str();
    if stream.is_null() != def.stream.is_none() || (def.stream.is_some() && view != def.stream) {
        drift.push(format!("{id}: stream view {view:?}, schema.rs wants {:?}", def.stream));
    }

    let ttl = &props["TimeToLiveSpecification"];
    let ttl_attr = if ttl["Enabled"] == json!(true) { ttl["AttributeName"].as_str() } else { None };
    if ttl_attr != def.ttl {
        drift.push(format!(
            "{id}: TTL attribute {ttl_attr:?} (enabled), schema.rs wants {:?}",
            def.ttl
        ));
    }
    drift
}

#[test]
fn tables_match_the_schema_in_shared() {
    // GIVEN the table definitions the code and the local stack use
    // WHEN the template's DynamoDB tables are compared with them
    let tables = resources_of_type("AWS::DynamoDB::Table");
    let template_ids: BTreeSet<&str> = tables.iter().map(|(id, _)| *id).collect();
    let schema_ids: BTreeSet<&str> = TABLES.iter().map(|d| d.logical_id).collect();
    // THEN the same tables exist, with the same keys, indexes, stream and TTL
    assert_eq!(template_ids, schema_ids, "template.yaml tables differ from schema.rs TABLES");
    let drift: Vec<String> =
        TABLES.iter().flat_map(|def| table_drift(def, &resources()[def.logical_id])).collect();
    assert!(
        drift.is_empty(),
        "template.yaml drifted from shared/src/store/schema.rs:\n  {}",
        drift.join("\n  ")
    );
}

#[test]
fn drift_in_a_table_is_detected() {
    // GIVEN the template's notifications table with a changed index key and no stream
    let def = TABLES
        .iter()
        .find(|d| d.kind == TableKind::Notifications)
        .expect("schema has a notifications table");
    let mut table = resources()[def.logical_id].clone();
    table["Properties"]["GlobalSecondaryIndexes"][0]["KeySchema"][1]["AttributeName"] =
        json!("created_at");
    table["Properties"]
        .as_object_mut()
        .expect("table has Properties")
        .remove("StreamSpecification");
    // WHEN it is compared with the schema
    let drift = table_drift(def, &table);
    // THEN both differences are reported
    assert!(drift.iter().any(|d| d.contains("index by-feed keys")), "{drift:?}");
    assert!(drift.iter().any(|d| d.contains("stream view")), "{drift:?}");
}

/// A function's environment as deployed: the Globals' variables, then its own.
fn environment(function: &Value) -> serde_json::Map<String, Value> {
    let mut vars = template()["Globals"]["Function"]["Environment"]["Variables"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    if let Some(own) = function["Properties"]["Environment"]["Variables"].as_object() {
        vars.extend(own.clone());
    }
    vars
}

#[test]
fn table_environment_variables_name_the_right_table() {
    for (id, function) in resources_of_type("AWS::Serverless::Function") {
        let vars = environment(function);
        for def in &TABLES {
            let var = table_variable(def.kind);
            if let Some(value) = vars.get(var) {
                assert_eq!(
                    *value,
                    json!({"Ref": def.logical_id}),
                    "{id}: {var} must be !Ref {}",
                    def.logical_id
                );
            }
        }
        let stray: Vec<&String> = vars
            .keys()
            .filter(|k| {
                k.ends_with("_TABLE")
                    && !TABLES.iter().any(|d| table_variable(d.kind) == k.as_str())
            })
            .collect();
        assert!(stray.is_empty(), "{id}: unknown table variables {stray:?}");
        // Each function is given exactly the tables its main reads (config::FunctionTables),
        // no more: a missing one fails its cold start, an extra one is a table it never uses.
        let binary = function["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap_or("");
        let own = FunctionTables::ALL
            .into_iter()
            .find(|f| f.function == binary)
            .unwrap_or_else(|| panic!("{id}: no config::FunctionTables entry for {binary}"));
        let wanted: BTreeSet<&str> = own.tables.iter().map(|k| table_variable(*k)).collect();
        let given: BTreeSet<&str> =
            vars.keys().map(String::as_str).filter(|k| k.ends_with("_TABLE")).collect();
        assert_eq!(given, wanted, "{id}: table variables differ from config::FunctionTables");
    }
}

#[test]
fn the_log_level_parameter_reaches_every_function_and_rust_log_is_not_pinned() {
    // The functions use the Lambda runtime's log set-up (telemetry::init_lambda), which
    // reads AWS_LAMBDA_LOG_LEVEL, set by Lambda from LoggingConfig.ApplicationLogLevel.
    let globals = &template()["Globals"]["Function"]["LoggingConfig"];
    assert_eq!(globals["ApplicationLogLevel"], json!({"Ref": "LogLevel"}));
    assert_eq!(globals["LogFormat"], "JSON");
    for (id, function) in resources_of_type("AWS::Serverless::Function") {
        let own = &function["Properties"]["LoggingConfig"];
        for key in ["ApplicationLogLevel", "LogFormat"] {
            assert!(own.get(key).is_none(), "{id}: LoggingConfig.{key} overrides the Globals'");
        }
        assert!(!environment(function).contains_key("RUST_LOG"), "{id}: RUST_LOG is pinned");
    }
}

/// `[package] name` of a Cargo.toml, read without a TOML parser (the manifests are simple).
fn package_name(manifest: &str) -> Option<String> {
    let mut in_package = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_package = line == "[package]";
        } else if in_package {
            if let Some(rest) = line.strip_prefix("name") {
                let value = rest.trim_start().strip_prefix('=')?.trim();
                return Some(value.trim_matches('"').to_owned());
            }
        }
    }
    None
}

#[test]
fn every_function_is_a_workspace_crate_of_the_same_name() {
    let functions = resources_of_type("AWS::Serverless::Function");
    assert!(!functions.is_empty(), "template.yaml declares no functions");
    let workspace =
        std::fs::read_to_string(root().join("Cargo.toml")).expect("read workspace Cargo.toml");
    let mut binaries = BTreeSet::new();
    for (id, function) in &functions {
        let meta = &function["Metadata"];
        assert_eq!(meta["BuildMethod"], "rust-cargolambda", "{id}: Metadata.BuildMethod");
        let binary = meta["BuildProperties"]["Binary"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: Metadata.BuildProperties.Binary is missing"));
        // `sam build` runs cargo lambda from CodeUri; the binaries are workspace members.
        assert_eq!(
            function["Properties"]["CodeUri"], ".",
            "{id}: CodeUri must be the workspace root"
        );
        let dir = root().join("functions").join(binary);
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap_or_else(|e| {
            panic!("{id}: binary {binary}: cannot read functions/{binary}/Cargo.toml: {e}")
        });
        assert_eq!(
            package_name(&manifest).as_deref(),
            Some(binary),
            "{id}: functions/{binary} package name"
        );
        assert!(
            dir.join("src/main.rs").is_file(),
            "{id}: functions/{binary}/src/main.rs is missing"
        );
        assert!(
            workspace.contains(&format!("\"functions/{binary}\"")),
            "{id}: functions/{binary} is not a member of the workspace"
        );
        assert!(binaries.insert(binary), "{id}: binary {binary} is deployed twice");
    }
    // And the other way: no function crate is left out of the template.
    let crates: BTreeSet<String> = std::fs::read_dir(root().join("functions"))
        .expect("read functions/")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let deployed: BTreeSet<String> = binaries.iter().map(|b| b.to_string()).collect();
    assert_eq!(crates, deployed, "crates under functions/ and functions in template.yaml differ");
}

/// A deployed route as `"<route key> -> <function logical id> (key|public)"`, the form both
/// the template and the routes table are reduced to for comparison.
fn route_line(route_key: &str, function: &str, keyed: bool) -> String {
    format!("{route_key} -> {function} ({})", if keyed { "key" } else { "public" })
}

/// Asserts that `deployed` (route lines read from the template) are exactly the routes
/// table's rows of `api` that a function serves (the OpenAPI document is served by the local
/// gateway only), and that each row's logical id is the function crate the table names.
fn assert_deployed_as_in_the_table(api: Api, deployed: &BTreeSet<String>) {
    let mut want = BTreeSet::new();
    for r in routes::routes_of(api) {
        let Some(f) = r.function() else { continue };
        want.insert(route_line(&r.route_key(), f.logical_id, matches!(r.access, Access::Key(_))));
        let resource = resources().get(f.logical_id).unwrap_or_else(|| {
            panic!("the routes table names {}; template.yaml has no such resource", f.logical_id)
        });
        assert_eq!(resource["Type"], "AWS::Serverless::Function", "{}", f.logical_id);
        assert_eq!(
            resource["Metadata"]["BuildProperties"]["Binary"], f.name,
            "{}: the routes table says it is functions/{}",
            f.logical_id, f.name
        );
    }
    assert_eq!(*deployed, want, "template.yaml ({api:?} API) vs shared/src/routes.rs");
}

#[test]
fn http_routes_are_the_routes_table_and_can_be_deployed() {
    // GIVEN every HttpApi event of every function in the template
    let mut deployed = BTreeSet::new();
    for (id, function) in resources_of_type("AWS::Serverless::Function") {
        for event in
            function["Properties"]["Events"].as_object().into_iter().flat_map(|m| m.values())
        {
            if event["Type"] != "HttpApi" {
                continue;
            }
            let path = event["Properties"]["Path"]
                .as_str()
                .unwrap_or_else(|| panic!("{id}: HttpApi event without Path"));
            let method = event["Properties"]["Method"].as_str().unwrap_or("?");
            // An HTTP API cannot hold a route key ending in "/": the import drops or rejects it.
            assert!(path == "/" || !path.ends_with('/'), "{id}: route {method} {path} ends in '/'");
            assert_eq!(
                event["Properties"]["ApiId"],
                json!({"Ref": "HttpApi"}),
                "{id}: {method} {path} is not on HttpApi"
            );
            // Keyed routes keep the API's default (API key) authorizer; public ones say NONE.
            let auth = &event["Properties"]["Auth"];
            let keyed = if auth.is_null() {
                true
            } else if *auth == json!({"Authorizer": "NONE"}) {
                false
            } else {
                panic!("{id}: {method} {path} has Auth {auth}: want none or {{Authorizer: NONE}}")
            };
            deployed.insert(route_line(&format!("{method} {path}"), id, keyed));
        }
    }
    // THEN they are exactly the routes table's HTTP rows served by functions
    assert_deployed_as_in_the_table(Api::Http, &deployed);
}

#[test]
fn websocket_routes_are_the_routes_table() {
    // GIVEN every route of the WebSocket API, followed to the function its integration invokes
    let mut deployed = BTreeSet::new();
    for (id, route) in resources_of_type("AWS::ApiGatewayV2::Route") {
        let props = &route["Properties"];
        assert_eq!(props["ApiId"], json!({"Ref": "WebSocketApi"}), "{id}");
        let key = props["RouteKey"].as_str().unwrap_or_else(|| panic!("{id}: no RouteKey"));
        let target = props["Target"]["Fn::Sub"].as_str().unwrap_or_default();
        let integration = target
            .strip_prefix("integrations/${")
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or_else(|| panic!("{id}: Target {target:?} is not integrations/${{X}}"));
        let uri = resources()[integration]["Properties"]["IntegrationUri"]["Fn::Sub"]
            .as_str()
            .unwrap_or_default();
        let function = uri
            .split("/functions/${")
            .nth(1)
            .and_then(|rest| rest.split_once(".Arn}"))
            .map(|(f, _)| f)
            .unwrap_or_else(|| panic!("{integration}: IntegrationUri {uri:?} invokes no function"));
        let keyed = match props["AuthorizationType"].as_str() {
            Some("CUSTOM") => true,
            Some("NONE") => false,
            other => panic!("{id}: AuthorizationType {other:?}"),
        };
        deployed.insert(route_line(key, function, keyed));
    }
    // THEN they are exactly the routes table's WebSocket rows
    assert_deployed_as_in_the_table(Api::WebSocket, &deployed);
}

#[test]
fn both_apis_demand_an_api_key_checked_by_the_authorizer_function() {
    let authorizer_arn = json!({"Fn::GetAtt": ["AuthorizerFunction", "Arn"]});
    let auth = &resources()["HttpApi"]["Properties"]["Auth"];
    let default = auth["DefaultAuthorizer"].as_str().expect("HttpApi has a DefaultAuthorizer");
    let http = &auth["Authorizers"][default];
    assert_eq!(http["FunctionArn"], authorizer_arn, "the HTTP API's default authorizer");
    // The function answers payload 2.0 simple responses (handlers::authorizer).
    assert_eq!(http["AuthorizerPayloadFormatVersion"], "2.0");
    assert_eq!(http["EnableSimpleResponses"], true);
    assert_eq!(http["Identity"]["Headers"], json!(["Authorization"]));

    let connect = &resources()["WsConnectRoute"]["Properties"];
    assert_eq!(connect["RouteKey"], "$connect");
    assert_eq!(connect["AuthorizationType"], "CUSTOM");
    let ws_id = connect["AuthorizerId"]["Ref"].as_str().expect("$connect names its authorizer");
    let ws = &resources()[ws_id]["Properties"];
    assert_eq!(ws["AuthorizerType"], "REQUEST");
    assert_eq!(ws["IdentitySource"], json!(["route.request.querystring.api_key"]));
    let uri = ws["AuthorizerUri"]["Fn::Sub"].as_str().expect("AuthorizerUri is a !Sub");
    assert!(uri.contains("${AuthorizerFunction.Arn}"), "WebSocket authorizer invokes {uri}");
}

#[test]
fn only_the_authorizer_reads_api_keys() {
    let readers: BTreeSet<String> = iam_statements()
        .into_iter()
        .filter(|(_, s)| {
            s["Effect"] == "Allow" && s["Resource"].to_string().contains("ApiKeysTable")
        })
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        readers,
        BTreeSet::from(["AuthorizerFunction".to_owned(), "KeyOperatorsPolicy".to_owned()])
    );
}

/// Every IAM statement in the template, with where it is.
fn iam_statements() -> Vec<(String, &'static Value)> {
    fn statements_of(doc: &'static Value) -> Vec<&'static Value> {
        match &doc["Statement"] {
            Value::Array(list) => list.iter().collect(),
            Value::Null => Vec::new(),
            one => vec![one],
        }
    }
    let mut found = Vec::new();
    for (id, resource) in resources() {
        let props = &resource["Properties"];
        match resource["Type"].as_str() {
            Some("AWS::Serverless::Function") => {
                for policy in props["Policies"].as_array().into_iter().flatten() {
                    // Only inline documents: named or templated SAM policies hide their grants.
                    assert!(
                        policy.get("Statement").is_some(),
                        "{id}: Policies entry {policy} is not an inline statement list; spell out each grant"
                    );
                    found.extend(statements_of(policy).into_iter().map(|s| (id.clone(), s)));
                }
            }
            Some("AWS::IAM::Role") => {
                for policy in props["Policies"].as_array().into_iter().flatten() {
                    found.extend(
                        statements_of(&policy["PolicyDocument"])
                            .into_iter()
                            .map(|s| (id.clone(), s)),
                    );
                }
            }
            Some(
                "AWS::IAM::Policy"
                | "AWS::IAM::ManagedPolicy"
                | "AWS::SQS::QueuePolicy"
                | "AWS::SNS::TopicPolicy",
            ) => {
                found.extend(
                    statements_of(&props["PolicyDocument"]).into_iter().map(|s| (id.clone(), s)),
                );
            }
            _ => {}
        }
    }
    found
}

fn strings(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn no_iam_statement_grants_a_wildcard_action() {
    let statements = iam_statements();
    assert!(statements.len() >= 8, "expected per-function statements, found {}", statements.len());
    let mut problems = Vec::new();
    for (id, s) in &statements {
        if s["Effect"] != "Allow" {
            continue;
        }
        if !s["NotAction"].is_null() {
            problems.push(format!("{id}: Allow with NotAction"));
        }
        let actions = strings(&s["Action"]);
        if actions.is_empty() {
            problems.push(format!("{id}: statement without literal actions: {s}"));
        }
        for action in actions.iter().filter(|a| a.contains('*')) {
            problems.push(format!("{id}: wildcard action {action:?}"));
        }
        if strings(&s["Resource"]).contains(&"*") {
            problems.push(format!("{id}: Resource \"*\" for {actions:?}"));
        }
    }
    assert!(
        problems.is_empty(),
        "IAM statements are not least-privilege:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn only_the_push_functions_manage_connections() {
    let managers: BTreeSet<String> = iam_statements()
        .into_iter()
        .filter(|(_, s)| {
            s["Effect"] == "Allow"
                && strings(&s["Action"]).iter().any(|a| a.starts_with("execute-api:"))
        })
        .map(|(id, _)| id)
        .collect();
    assert_eq!(
        managers,
        BTreeSet::from([
            "KeyOperatorsPolicy".to_owned(),
            "PushNotificationsFunction".to_owned(),
            "PushWorkerFunction".to_owned()
        ])
    );
    // The push and its workers may only post; the operators (closing a revoked key's
    // sockets) only delete.
    for (id, statement) in iam_statements() {
        if !strings(&statement["Action"]).iter().any(|a| a.starts_with("execute-api:")) {
            continue;
        }
        let resource = statement["Resource"].to_string();
        let method = if id == "PushNotificationsFunction" || id == "PushWorkerFunction" {
            "/POST/@connections/*"
        } else {
            "/DELETE/@connections/*"
        };
        assert!(
            resource.contains(method) && resource.matches("@connections").count() == 1,
            "{id}: {resource}"
        );
    }
}

/// Runs cfn-lint on the template with `extra` arguments before it; errors and warnings fail.
fn assert_cfn_lint_passes(extra: &[&str]) {
    let cfn_lint = venv_tool("cfn-lint");
    let out = Command::new(&cfn_lint)
        .current_dir(root())
        .args(extra)
        .arg("--")
        .arg("template.yaml")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; run scripts/tools.sh", cfn_lint.display()));
    // The exit status is a bit mask: 2 errors, 4 warnings, 8 informational (allowed).
    let code = out.status.code().unwrap_or(-1);
    assert!(
        code >= 0 && code & !8 == 0,
        "cfn-lint {extra:?} template.yaml exited {code}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn cfn_lint_passes() {
    assert_cfn_lint_passes(&[]);
}

/// AWS's serverless rules (PyPI `cfn-lint-serverless`): log groups with a retention for
/// every function, access logs on both APIs, and the rest. A rule that does not apply is
/// suppressed in the template itself, next to its reason.
#[test]
fn serverless_rules_pass() {
    assert_cfn_lint_passes(&["--append-rules", "cfn_lint_serverless.rules"]);
}

/// Access logs name the API key by its public id and never log the key itself (the
/// `Authorization` header, the WebSocket `api_key` query parameter) or any query string.
#[test]
fn access_logs_carry_the_key_id_and_never_the_key_or_query_string() {
    let http = &resources()["HttpApi"]["Properties"]["AccessLogSettings"]["Format"];
    let ws = &resources()["WebSocketStage"]["Properties"]["AccessLogSettings"]["Format"];
    for (name, format) in [("HttpApi", http), ("WebSocketStage", ws)] {
        let format = format.as_str().unwrap_or_else(|| panic!("{name} has an access log format"));
        assert!(format.contains("$context.authorizer.key_id"), "{name}: {format}");
        for leak in ["querystring", "header", "api_key", "path", "authorizer.key\"", "$input"] {
            assert!(!format.to_lowercase().contains(leak), "{name} logs {leak}: {format}");
        }
    }
    let ws_settings = &resources()["WebSocketStage"]["Properties"]["DefaultRouteSettings"];
    assert_ne!(
        ws_settings["DataTraceEnabled"],
        json!(true),
        "DataTraceEnabled logs whole requests"
    );
}

/// Every function has a reserved concurrency from a template parameter with a default.
#[test]
fn every_function_reserves_concurrency() {
    let functions = resources_of_type("AWS::Serverless::Function");
    assert!(!functions.is_empty());
    for (name, function) in functions {
        let reserved = &function["Properties"]["ReservedConcurrentExecutions"];
        let parameter = reserved["Fn::If"][1]["Ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no reserved concurrency parameter: {reserved}"));
        let default = &template()["Parameters"][parameter]["Default"];
        assert!(default.as_u64().is_some_and(|d| d >= 1), "{name}: {parameter} default {default}");
    }
}

/// RT's credentials never sit in a function's environment: the RT callers get the secret's
/// ARN, and the only secret anyone may read is that one.
#[test]
fn rt_credentials_come_from_one_secret_only_the_rt_callers_read() {
    let relay_secret =
        json!({"Fn::If": ["CreatesRelaySecret", {"Ref": "RelaySecret"}, {"Ref": "RtSecretArn"}]});
    let mut readers = BTreeSet::new();
    let mut rt_callers = BTreeSet::new();
    for (name, function) in resources_of_type("AWS::Serverless::Function") {
        let env = environment(function);
        for var in ["RT_PASSWORD", "RT_TOKEN", "RT_USERNAME", "WEBHOOK_SECRET"] {
            assert!(!env.contains_key(var), "{name} has {var} in its environment");
        }
        if env.contains_key("RT_API_URL") {
            assert_eq!(env.get("RELAY_SECRET_ARN"), Some(&relay_secret), "{name}");
            rt_callers.insert(name.to_owned());
        }
    }
    for (id, statement) in iam_statements() {
        let actions = strings(&statement["Action"]);
        if actions.iter().any(|a| a.starts_with("secretsmanager:")) {
            assert_eq!(actions, ["secretsmanager:GetSecretValue"], "{id}");
            assert_eq!(statement["Resource"], relay_secret, "{id}");
            readers.insert(id);
        }
    }
    assert!(rt_callers.contains("PostTicketFunction") && rt_callers.contains("GetTicketFunction"));
    assert_eq!(readers, rt_callers, "exactly the functions that call RT read the secret");
}

/// The fan-out queue carries the sharded push's tasks and the resumes: only the push, its
/// workers (remainders, continuations) and `ws-connect` (a `$connect` with `since`) send to
/// it, each given its URL, and none may do more with it than send.
#[test]
fn only_the_push_its_workers_and_ws_connect_send_to_the_fanout_queue() {
    let queue = json!({"Fn::GetAtt": ["FanoutQueue", "Arn"]});
    let mut senders = BTreeSet::new();
    for (id, statement) in iam_statements() {
        let on_queue = statement["Resource"] == queue
            || statement["Resource"].as_array().is_some_and(|r| r.contains(&queue));
        if statement["Effect"] != "Allow" || !on_queue {
            continue;
        }
        assert_eq!(strings(&statement["Action"]), ["sqs:SendMessage"], "{id}: {statement}");
        senders.insert(id);
    }
    let want = ["PushNotificationsFunction", "PushWorkerFunction", "WsConnectFunction"];
    assert_eq!(senders, want.map(String::from).into_iter().collect());
    for id in want {
        let vars = environment(&resources()[id]);
        assert_eq!(vars.get("PUSH_QUEUE_URL"), Some(&json!({"Ref": "FanoutQueue"})), "{id}");
    }
}

/// A resume runs in `push-worker`: it waits for the settle horizon and the handshake before
/// its replay, which stops `WORKER_MARGIN` before the timeout; the timeout leaves it at
/// least as long again to replay (a longer replay continues in the next invocation).
#[test]
fn the_push_worker_s_timeout_leaves_a_resume_time_to_replay() {
    let timeout = resources()["PushWorkerFunction"]["Properties"]["Timeout"]
        .as_u64()
        .expect("PushWorkerFunction sets its Timeout");
    let before_replay = rt_relay_shared::feed::FeedSettings::default().settle
        + rt_relay_shared::usecases::resume::HANDSHAKE_GRACE
        + rt_relay_shared::wiring::WORKER_MARGIN;
    assert!(
        std::time::Duration::from_secs(timeout) >= 2 * before_replay,
        "Timeout {timeout} s leaves a resume too little time (needs {before_replay:?} before replaying)"
    );
}

/// Every `$connect` with `since` sends one resume task: the fan-out queue must take more
/// sends per second than API Gateway admits new connections (500/s), which a plain FIFO
/// queue (300/s) does not; high-throughput FIFO scopes deduplication and throughput to
/// the message group.
#[test]
fn the_fanout_queue_is_a_high_throughput_fifo_queue() {
    let queue = &resources()["FanoutQueue"]["Properties"];
    assert_eq!(queue["FifoQueue"], true);
    assert_eq!(queue["DeduplicationScope"], "messageGroup");
    assert_eq!(queue["FifoThroughputLimit"], "perMessageGroupId");
}

#[test]
fn every_function_s_warm_up_read_is_granted_by_its_role() {
    // The Resource a grant names, as the loader gives it: the table's ARN, or an index's.
    let table_arn = |logical: &str| json!({"Fn::GetAtt": [logical, "Arn"]});
    let index_arns = |logical: &str, index: &str| {
        [format!("${{{logical}.Arn}}/index/*"), format!("${{{logical}.Arn}}/index/{index}")]
            .map(|s| json!({"Fn::Sub": s}))
    };
    let statements = iam_statements();
    let mut checked = 0;
    for (id, function) in resources_of_type("AWS::Serverless::Function") {
        let binary = function["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap_or("");
        let Some(probe) = warmup::probe_of(binary) else { continue };
        let def = TABLES.iter().find(|d| d.kind == probe.table()).expect("schema");
        let (action, resources) = match probe {
            warmup::Probe::Get(_) => ("dynamodb:GetItem", vec![table_arn(def.logical_id)]),
            warmup::Probe::Query(_, index) => {
                ("dynamodb:Query", index_arns(def.logical_id, index).to_vec())
            }
        };
        let granted = statements.iter().any(|(owner, s)| {
            owner == id
                && s["Effect"] == "Allow"
                && strings(&s["Action"]).contains(&action)
                && match &s["Resource"] {
                    Value::Array(list) => list.iter().any(|r| resources.contains(r)),
                    one => resources.contains(one),
                }
        });
        assert!(
            granted,
            "{id}: its warm-up makes {probe:?}, which needs {action} on {resources:?}"
        );
        checked += 1;
    }
    assert_eq!(checked, warmup::PROBES.len(), "every probe belongs to a deployed function");
}
