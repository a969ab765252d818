//! Entry points for the fuzz targets in `fuzz/` (feature `fuzzing`).
//!
//! **Not a stable API**: it exists for the fuzz targets only and changes
//! with the engine. Each function takes untrusted input the way the service
//! receives it (bytes, or documents a request carries), runs one part of the
//! request pipeline over it, and must never panic, whatever the input: a
//! panic is what the fuzzer reports. Engine work runs under a small memory
//! budget and a short deadline, as the embedded backend runs it, so that an
//! input cannot exhaust the fuzzer's memory or time.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bson::{Bson, Document};

use crate::action::{Action, ActionRequest, Command, Reply, UpdateModifications};
use crate::auth::Principal;
use crate::protocol::{decode, parse_body, parse_body_general, parse_plain_body, FindLimits};
use crate::query::aggregate::{AggregateContext, Limits};
use crate::query::budget::{metered, Meter};
use crate::query::update::{
    apply_parsed_pipeline_update, parse_pipeline_update, upsert_seed, validate_replacement,
};
use crate::query::{display_doc, Filter, Pipeline, Projection, SortSpec, UpdateDoc};
use crate::rules::{Enforcer, Functions, Rules};
use crate::Format;

/// The memory budget of one fuzz input's engine work.
pub const MAX_BYTES: usize = 8 * 1024 * 1024;

/// The deadline of one fuzz input's engine work.
pub const MAX_TIME: Duration = Duration::from_millis(500);

/// The database and collection the rules rewrite works in.
const DATABASE: &str = "db";
const COLLECTION: &str = "docs";

/// Parses `bytes` as a JSON array of relaxed Extended JSON values, the
/// split most targets use (`[filter, document, …]`); `None` when the input
/// is not such an array.
pub fn values(bytes: &[u8]) -> Option<Vec<Bson>> {
    let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let serde_json::Value::Array(items) = value else {
        return None;
    };
    items.into_iter().map(|v| Bson::try_from(v).ok()).collect()
}

/// The documents among `values` (other values are dropped).
pub fn documents(values: &[Bson]) -> Vec<Document> {
    values
        .iter()
        .filter_map(|v| v.as_document().cloned())
        .collect()
}

/// Runs `work` under the fuzz meter: [`MAX_BYTES`], [`MAX_TIME`].
fn under_meter<T>(work: impl FnOnce() -> T) -> T {
    let meter = Meter {
        deadline: Instant::now().checked_add(MAX_TIME),
        abandoned: None,
        max_bytes: Some(MAX_BYTES),
        inline_steps: None,
    };
    metered(meter, work).0
}

fn limits() -> Limits {
    Limits::with_max_time(MAX_BYTES, Some(MAX_TIME))
}

/// Decodes a request body for every action as the service does (relaxed
/// Extended JSON → typed request) and encodes what each carries back in
/// both response formats. Returns how many actions accepted the body.
///
/// # Panics
///
/// When the one-pass parser of plain JSON bodies accepts `body` and the
/// general parser disagrees with its document.
pub fn decode_request(body: &[u8]) -> usize {
    if let Some(plain) = parse_plain_body(body) {
        let plain: Document = plain.into_iter().collect();
        match parse_body_general(body) {
            Ok(general) => assert_eq!(plain, general, "the two body parsers disagree"),
            Err(err) => panic!("the general body parser refuses what the plain one took: {err:?}"),
        }
    }
    let Ok(parsed) = parse_body(body) else {
        return 0;
    };
    let limits = FindLimits {
        default: 1000,
        max: 50_000,
    };
    let mut accepted = 0;
    for action in Action::ALL {
        let Ok(request) = decode(action, parsed.clone(), limits) else {
            continue;
        };
        accepted += 1;
        for doc in command_documents(&request.command) {
            for format in [Format::Json, Format::Ejson] {
                let _ = format.document_to_vec(doc);
            }
        }
    }
    accepted
}

/// The documents a command carries.
fn command_documents(command: &Command) -> Vec<&Document> {
    let mut out = Vec::new();
    match command {
        Command::FindOne(q) => {
            out.push(&q.filter);
            out.extend(q.projection.iter().chain(q.sort.iter()));
        }
        Command::Find(q) => {
            out.push(&q.filter);
            out.extend(q.projection.iter().chain(q.sort.iter()));
        }
        Command::InsertOne(doc) => out.push(doc),
        Command::InsertMany(docs) => out.extend(docs.iter()),
        Command::UpdateOne(q) | Command::UpdateMany(q) => {
            out.push(&q.filter);
            match &q.update {
                UpdateModifications::Operators(doc) => out.push(doc),
                UpdateModifications::Pipeline(stages) => out.extend(stages.iter()),
            }
            out.extend(q.array_filters.iter().flatten());
        }
        Command::ReplaceOne(q) => {
            out.push(&q.filter);
            out.push(&q.replacement);
        }
        Command::DeleteOne(filter) | Command::DeleteMany(filter) => out.push(filter),
        Command::Aggregate(stages) => out.extend(stages.iter()),
    }
    out
}

/// Parses `filter` and evaluates it against `doc` (with and without its
/// errors), then as a `$elemMatch`-style value condition against each
/// field of `doc`. Returns whether `doc` matched, or the error message.
pub fn filter(filter: &Document, doc: &Document) -> Result<bool, String> {
    under_meter(|| {
        let _ = display_doc(filter);
        let parsed = Filter::parse(filter).map_err(|e| e.message)?;
        let matched = parsed.try_matches(doc).map_err(|e| e.message);
        let _ = parsed.matches(doc);
        let _ = parsed.id_equality();
        let _ = parsed.matched_array_index(doc);
        if let Ok(cond) = Filter::parse_value_condition(filter) {
            for value in doc.values() {
                let _ = cond.matches_value(value);
                let _ = cond.matches_element(value);
            }
        }
        matched
    })
}

/// Parses `projection` both as a find projection (applied with the array
/// index `filter` matched, for `$`) and as a `$project`, and applies each
/// to `doc`; also parses it as a sort and sorts `[doc, projected]`.
pub fn projection(
    projection: &Document,
    doc: &Document,
    filter: Option<&Document>,
) -> Result<Document, String> {
    under_meter(|| {
        let matched = filter
            .and_then(|f| Filter::parse(f).ok())
            .and_then(|f| f.matched_array_index(doc));
        if let Ok(aggregate) = Projection::parse_aggregate(projection) {
            let _ = aggregate.apply(doc);
        }
        if let Ok(sort) = SortSpec::parse(projection) {
            let mut docs = vec![doc.clone(), projection.clone()];
            sort.sort(&mut docs);
            let _ = sort.top(docs.iter(), 0, 1);
        }
        let parsed = Projection::parse(projection).map_err(|e| e.message)?;
        parsed.apply_with_match(doc, matched).map_err(|e| e.message)
    })
}

/// Applies `update` (operators, or a pipeline when it is an array) to
/// `doc`, with `array_filters` and the array index `filter` matched; then
/// as an upsert to the document `filter` seeds. Returns the updated `doc`.
pub fn update(
    update: &Bson,
    doc: &Document,
    filter: Option<&Document>,
    array_filters: Option<&[Document]>,
) -> Result<Document, String> {
    under_meter(|| {
        let matched = filter
            .and_then(|f| Filter::parse(f).ok())
            .and_then(|f| f.matched_array_index(doc));
        let seed = filter.map(upsert_seed);
        match update {
            Bson::Array(stages) => {
                let stages = documents(stages);
                let parsed = parse_pipeline_update(&stages).map_err(|e| e.message)?;
                if let Some(Ok(seed)) = seed {
                    let _ = apply_parsed_pipeline_update(&parsed, &seed);
                }
                apply_parsed_pipeline_update(&parsed, doc).map_err(|e| e.message)
            }
            Bson::Document(ops) if ops.keys().next().is_some_and(|k| k.starts_with('$')) => {
                let parsed = UpdateDoc::parse(ops, array_filters).map_err(|e| e.message)?;
                let _ = parsed.uses_positional();
                if let Some(Ok(mut seed)) = seed {
                    let _ = parsed.apply(&mut seed, true);
                }
                let mut out = doc.clone();
                parsed
                    .apply_with_match(&mut out, false, matched)
                    .map_err(|e| e.message)?;
                Ok(out)
            }
            Bson::Document(replacement) => {
                validate_replacement(replacement).map_err(|e| e.message)?;
                Ok(replacement.clone())
            }
            _ => Err("the update is neither a document nor an array".into()),
        }
    })
}

/// The collections a fuzzed pipeline sees: every name holds `docs`.
struct FuzzCollections<'a> {
    docs: &'a [Document],
}

impl AggregateContext for FuzzCollections<'_> {
    fn collection(&self, _name: &str) -> Vec<Document> {
        self.docs.to_vec()
    }

    fn limits(&self) -> Limits {
        limits()
    }
}

/// Parses `stages` and runs them over `docs` (every collection a
/// `$lookup`/`$unionWith` names holds `docs` too), whole and split after a
/// leading `$match` as the embedded backend runs it. Returns the output.
pub fn pipeline(stages: &[Document], docs: &[Document]) -> Result<Vec<Document>, String> {
    under_meter(|| {
        let parsed = Pipeline::parse(stages).map_err(|e| e.message)?;
        let ctx = FuzzCollections { docs };
        let _ = parsed.reads_input();
        if let Some(first) = parsed.leading_match() {
            let borrowed: Vec<&Document> = docs.iter().filter(|d| first.matches(d)).collect();
            if let Ok((next, input)) = parsed.run_prefix(1, borrowed.iter().copied().map(Ok), &ctx)
            {
                let _ = parsed.run_from(next, input, &ctx);
            }
        }
        parsed.run(docs.to_vec(), &ctx).map_err(|e| e.message)
    })
}

/// The fixed rule set the rules rewrite fuzzes against: roles chosen by
/// user data and by the document, document filters with `%%user`
/// expansions, hidden and read-only fields, nested field permissions and a
/// filter.
pub const RULES_JSON: &str = r#"{
  "collections": [{
    "database": "db", "collection": "docs",
    "roles": [
      {"name": "admin", "apply_when": {"%%user.data.role": "admin"}, "read": true, "write": true},
      {"name": "owner", "apply_when": {"owner": "%%user.id"},
       "document_filters": {"write": {"owner": "%%user.id"}},
       "fields": {"salary": {"read": true},
                  "profile": {"read": true, "fields": {"email": {"write": true}}}},
       "additional_fields": {"read": true, "write": true}},
      {"name": "reader", "apply_when": {"%%user.data.group": {"$in": ["staff", "guests"]}},
       "document_filters": {"read": {"public": true},
                            "write": false},
       "fields": {"salary": {}, "secret": {"read": false}},
       "additional_fields": {"read": true}}
    ],
    "filters": [{"name": "no-drafts", "apply_when": {"%%user.data.group": "guests"},
                 "query": {"draft": {"$ne": true}}, "projection": {"internal": 0}}]
  }],
  "default_rule": {"roles": [{"name": "reader", "read": true, "write": false}]}
}"#;

fn enforcer() -> Result<&'static Enforcer, &'static str> {
    static ENFORCER: OnceLock<Result<Enforcer, String>> = OnceLock::new();
    ENFORCER
        .get_or_init(|| {
            let rules = Rules::from_json(RULES_JSON)?;
            crate::rules::compile(&rules, Functions::default())
        })
        .as_ref()
        .map_err(String::as_str)
}

/// The fixed principal of the rules rewrite: a staff user.
fn principal() -> Principal {
    let mut data = Document::new();
    data.insert("group", "staff");
    Principal::user("alice", "api-key").with_data(data)
}

/// Decodes `body` for `action` (its `dataSource`, `database` and
/// `collection` default to the rule set's namespace), rewrites the request
/// under [`RULES_JSON`] for a fixed staff user, and passes `docs` through the
/// reply guard as the backend's answer. Returns the rewritten request's
/// documents (rendered) or the refusal's message.
pub fn rules_rewrite(action: Action, body: &Document, docs: &[Document]) -> Result<String, String> {
    let enforcer = enforcer().map_err(|e| format!("the fixed rule set does not load: {e}"))?;
    let mut body = body.clone();
    for (field, default) in [
        ("dataSource", "mongodb-atlas"),
        ("database", DATABASE),
        ("collection", COLLECTION),
    ] {
        if !body.contains_key(field) {
            body.insert(field, default);
        }
    }
    let limits = FindLimits {
        default: 1000,
        max: 50_000,
    };
    let mut request: ActionRequest =
        decode(action, body.into(), limits).map_err(|e| e.message().to_owned())?;
    let (parts, ()) = http::Request::new(()).into_parts();
    under_meter(|| {
        let authorization = enforcer
            .authorize(&principal(), &parts, &mut request)
            .map_err(|e| e.message().to_owned())?;
        let reply = match action {
            Action::FindOne => Reply::Document(docs.first().cloned()),
            _ => Reply::Documents(docs.to_vec()),
        };
        authorization
            .guard
            .finish(reply)
            .map_err(|e| e.message().to_owned())?;
        if let Some(check) = &authorization.check {
            for doc in docs {
                let _ = check.check(docs.first(), doc);
            }
        }
        let rendered: Vec<String> = command_documents(&request.command)
            .into_iter()
            .map(display_doc)
            .collect();
        Ok(rendered.join(" "))
    })
}

#[cfg(test)]
mod tests {
    use bson::doc;

    use super::*;

    /// Runs one seed file of `target` through the target's entry point, as
    /// the fuzz target in `fuzz/fuzz_targets/` does.
    fn run_seed(target: &str, data: &[u8]) {
        if target == "ejson_decode" {
            decode_request(data);
            return;
        }
        let Some(values) = values(data) else {
            return;
        };
        let docs = documents(&values);
        match target {
            "filter" => {
                if let (Some(f), Some(d)) = (docs.first(), docs.get(1)) {
                    let _ = filter(f, d);
                }
            }
            "projection" => {
                if let (Some(p), Some(d)) = (docs.first(), docs.get(1)) {
                    let _ = projection(p, d, docs.get(2));
                }
            }
            "update" => {
                if let (Some(u), Some(Bson::Document(d))) = (values.first(), values.get(1)) {
                    let af = values
                        .get(3)
                        .and_then(|v| v.as_array())
                        .map(|a| documents(a));
                    let f = values.get(2).and_then(|v| v.as_document());
                    let _ = update(u, d, f, af.as_deref());
                }
            }
            "pipeline" => {
                if let Some(Bson::Array(stages)) = values.first() {
                    let _ = pipeline(&documents(stages), &documents(&values[1..]));
                }
            }
            "rules_rewrite" => {
                let action = values
                    .first()
                    .and_then(|v| v.as_str())
                    .and_then(|name| Action::ALL.into_iter().find(|a| a.name() == name));
                if let (Some(action), Some(Bson::Document(body))) = (action, values.get(1)) {
                    let _ = rules_rewrite(action, body, &documents(&values[2..]));
                }
            }
            other => panic!("no entry point for corpus directory {other}"),
        }
    }

    #[test]
    fn every_committed_seed_runs_without_a_panic() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        let mut seeds = 0;
        for target in std::fs::read_dir(&root).expect("fuzz/corpus exists") {
            let target = target.unwrap().path();
            let name = target.file_name().unwrap().to_string_lossy().into_owned();
            for seed in std::fs::read_dir(&target).unwrap() {
                let data = std::fs::read(seed.unwrap().path()).unwrap();
                run_seed(&name, &data);
                seeds += 1;
            }
        }
        assert!(seeds >= 6 * 20, "only {seeds} seeds in fuzz/corpus");
    }

    #[test]
    fn entry_points_evaluate() {
        let d = doc! {"_id": 1, "a": 5, "tags": ["x", "y"]};
        assert_eq!(filter(&doc! {"a": {"$gt": 4}}, &d), Ok(true));
        assert_eq!(filter(&doc! {"tags": "z"}, &d), Ok(false));
        let err = filter(&doc! {"$expr": {"$divide": ["$a", 0]}}, &d).unwrap_err();
        assert!(err.contains("divide by zero"), "{err}");
        assert_eq!(
            projection(&doc! {"tags.$": 1}, &d, Some(&doc! {"tags": "y"})),
            Ok(doc! {"_id": 1, "tags": ["y"]})
        );
        assert_eq!(
            update(&Bson::Document(doc! {"$inc": {"a": 1}}), &d, None, None),
            Ok(doc! {"_id": 1, "a": 6, "tags": ["x", "y"]})
        );
        let out = pipeline(&[doc! {"$count": "n"}], &[d.clone(), d.clone()]).unwrap();
        assert_eq!(out, vec![doc! {"n": 2}]);
        assert_eq!(decode_request(b"not json"), 0);
        assert!(
            decode_request(br#"{"dataSource":"s","database":"d","collection":"c","filter":{}}"#)
                > 0
        );
    }

    #[test]
    fn pipelines_run_under_the_small_memory_budget() {
        let stages = [doc! {"$project": {"r": {"$range": [0, 100_000_000]}}}];
        let err = pipeline(&stages, &[doc! {"_id": 1}]).unwrap_err();
        assert!(err.contains("used too much memory"), "{err}");
    }

    #[test]
    fn the_rules_rewrite_adds_the_read_filter_of_the_staff_role() {
        let body = doc! {"filter": {"a": 1}};
        let docs = [doc! {"_id": 1, "public": true, "salary": 5}];
        let rewritten = rules_rewrite(Action::Find, &body, &docs).unwrap();
        assert!(rewritten.contains("public"), "{rewritten}");
        let err = rules_rewrite(Action::InsertOne, &doc! {"document": {"a": 1}}, &[]).unwrap_err();
        assert!(!err.is_empty());
    }
}
