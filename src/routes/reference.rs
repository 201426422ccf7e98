//! `GET /api`: a readable reference of the JSON API, rendered on the server from the OpenAPI
//! document this server serves at `/api/v1/openapi.json` (no script, no CDN): every operation by
//! tag, the key it needs, its parameters, body and answers, and every schema they name.

use actix_web::web;
use askama::Template;
use askama_web::WebTemplate;
use serde_json::{Map, Value};

use super::{AppState, PageError};
use crate::render::markdown::{SafeHtml, render};

#[derive(Template, WebTemplate)]
#[template(path = "api.html")]
pub struct ReferencePage {
    pub title: String,
    pub version: String,
    pub intro: SafeHtml,
    pub tags: Vec<TagView>,
    pub schemas: Vec<SchemaView>,
}

/// The operations of one tag, in path order.
pub struct TagView {
    pub name: String,
    pub description: SafeHtml,
    pub operations: Vec<OperationView>,
}

pub struct OperationView {
    /// The fragment that links here: `op-get-api-v1-documents`.
    pub anchor: String,
    pub method: String,
    pub path: String,
    /// "Public", or the key scope it needs.
    pub access: String,
    pub description: SafeHtml,
    pub params: Vec<FieldView>,
    pub body: Option<ContentView>,
    pub responses: Vec<ResponseView>,
}

/// A parameter, or a property of a schema.
pub struct FieldView {
    pub name: String,
    /// `path`, `query`, or empty for a property.
    pub location: String,
    pub required: bool,
    pub kind: TypeView,
    /// Pattern, bounds, allowed values: what the API checks.
    pub rules: String,
    pub description: SafeHtml,
}

pub struct ContentView {
    pub content_type: String,
    pub kind: TypeView,
}

pub struct ResponseView {
    pub status: String,
    pub description: String,
    pub content: Vec<ContentView>,
}

pub struct SchemaView {
    pub name: String,
    pub anchor: String,
    pub description: SafeHtml,
    /// For an object: its properties. Otherwise empty, and `kind` says what it is.
    pub fields: Vec<FieldView>,
    pub kind: TypeView,
    pub rules: String,
}

/// A type as words, where schema names link to their section.
#[derive(Default)]
pub struct TypeView {
    pub pieces: Vec<Piece>,
}

pub struct Piece {
    pub text: String,
    pub href: Option<String>,
}

impl TypeView {
    fn word(text: impl Into<String>) -> Self {
        TypeView { pieces: vec![Piece { text: text.into(), href: None }] }
    }

    fn push_word(&mut self, text: impl Into<String>) {
        self.pieces.push(Piece { text: text.into(), href: None });
    }

    fn append(&mut self, other: TypeView) {
        self.pieces.extend(other.pieces);
    }
}

/// `GET /api`
pub async fn reference(state: web::Data<AppState>) -> Result<ReferencePage, PageError> {
    let doc = super::openapi::this_server(&state).await?;
    Ok(ReferencePage::of(&doc))
}

const METHODS: [&str; 4] = ["get", "post", "put", "delete"];

impl ReferencePage {
    /// The reference of an OpenAPI 3.1 document (as utoipa writes it).
    pub fn of(doc: &Value) -> ReferencePage {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let mut tags: Vec<TagView> = list(&doc["tags"])
            .iter()
            .map(|t| TagView { name: text(&t["name"]), description: markdown(&t["description"]), operations: vec![] })
            .collect();
        for (path, item) in object(&doc["paths"]) {
            for method in METHODS {
                let Some(op) = item.get(method) else { continue };
                let tag = list(&op["tags"]).first().map(text).unwrap_or_else(|| "other".into());
                let at = match tags.iter().position(|t| t.name == tag) {
                    Some(at) => at,
                    None => {
                        tags.push(TagView { name: tag, description: SafeHtml::default(), operations: vec![] });
                        tags.len() - 1
                    }
                };
                tags[at].operations.push(operation(method, path, op));
            }
        }
        tags.retain(|t| !t.operations.is_empty());
        let schemas = object(&doc["components"]["schemas"]).iter().map(|(name, s)| schema_view(name, s)).collect();
        ReferencePage {
            title: text(&doc["info"]["title"]),
            version: text(&doc["info"]["version"]),
            intro: markdown(&doc["info"]["description"]),
            tags,
            schemas,
        }
    }
}

fn operation(method: &str, path: &str, op: &Value) -> OperationView {
    let scopes: Vec<&str> =
        list(&op["security"]).iter().flat_map(|s| list(&s["bearer"])).filter_map(Value::as_str).collect();
    let access = if op.get("security").is_none() {
        "Public: no key".to_owned()
    } else if scopes.is_empty() {
        "A key of any scope".to_owned()
    } else {
        format!("A key of scope {}", scopes.join(" or "))
    };
    let params = list(&op["parameters"])
        .iter()
        .map(|p| {
            let mut field = field(p["name"].as_str().unwrap_or_default(), &p["schema"], p["required"] == true);
            field.location = p["in"].as_str().unwrap_or_default().to_owned();
            if let Some(d) = p.get("description") {
                field.description = markdown(d);
            }
            field
        })
        .collect();
    let body = object(&op["requestBody"]["content"])
        .iter()
        .next()
        .map(|(content_type, c)| ContentView { content_type: content_type.clone(), kind: type_of(&c["schema"]) });
    let responses = object(&op["responses"])
        .iter()
        .map(|(status, r)| ResponseView {
            status: status.clone(),
            description: r["description"].as_str().unwrap_or_default().to_owned(),
            content: object(&r["content"])
                .iter()
                .map(|(content_type, c)| ContentView {
                    content_type: content_type.clone(),
                    kind: type_of(&c["schema"]),
                })
                .collect(),
        })
        .collect();
    OperationView {
        anchor: anchor("op", &format!("{method}{path}")),
        method: method.to_ascii_uppercase(),
        path: path.to_owned(),
        access,
        description: markdown(&Value::String(
            [&op["summary"], &op["description"]].iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join("\n\n"),
        )),
        params,
        body,
        responses,
    }
}

fn schema_view(name: &str, schema: &Value) -> SchemaView {
    let required: Vec<&str> = list(&schema["required"]).iter().filter_map(Value::as_str).collect();
    let fields = object(&schema["properties"])
        .iter()
        .map(|(field_name, s)| field(field_name, s, required.contains(&field_name.as_str())))
        .collect::<Vec<_>>();
    SchemaView {
        name: name.to_owned(),
        anchor: anchor("schema", name),
        description: markdown(&schema["description"]),
        kind: if fields.is_empty() { type_of(schema) } else { TypeView::word("object") },
        rules: if fields.is_empty() { rules(schema) } else { String::new() },
        fields,
    }
}

fn field(name: &str, schema: &Value, required: bool) -> FieldView {
    FieldView {
        name: name.to_owned(),
        location: String::new(),
        required,
        kind: type_of(schema),
        rules: rules(schema),
        description: markdown(&schema["description"]),
    }
}

/// What a schema is, in words: `string`, `integer or null`, `array of Receipt`.
fn type_of(schema: &Value) -> TypeView {
    if let Some(target) = schema["$ref"].as_str() {
        let name = target.rsplit('/').next().unwrap_or(target);
        return TypeView {
            pieces: vec![Piece { text: name.to_owned(), href: Some(format!("#{}", anchor("schema", name))) }],
        };
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        let alternatives = list(&schema[key]);
        if !alternatives.is_empty() {
            let joiner = if key == "allOf" { " and " } else { " or " };
            let mut out = TypeView::default();
            for (i, alternative) in alternatives.iter().enumerate() {
                if i > 0 {
                    out.push_word(joiner);
                }
                out.append(type_of(alternative));
            }
            return out;
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if types.is_empty() {
        return TypeView::word(if schema.get("const").is_some() || schema.get("enum").is_some() {
            "value"
        } else {
            "any"
        });
    }
    let mut out = TypeView::default();
    for (i, t) in types.iter().enumerate() {
        if i > 0 {
            out.push_word(" or ");
        }
        match *t {
            "array" => {
                out.push_word("array of ");
                out.append(type_of(&schema["items"]));
            }
            "string" | "integer" | "number" => match schema["format"].as_str() {
                Some(format) => out.push_word(format!("{t} ({format})")),
                None => out.push_word(*t),
            },
            other => out.push_word(other),
        }
    }
    out
}

/// The checks a schema states beyond its type.
fn rules(schema: &Value) -> String {
    let mut out = Vec::new();
    if let Some(values) = schema["enum"].as_array() {
        let names: Vec<String> = values
            .iter()
            .map(|v| match v {
                Value::String(s) if s.is_empty() => "(empty)".to_owned(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .collect();
        out.push(format!("one of {}", names.join(", ")));
    }
    for (key, before, after) in [
        ("minimum", "at least", ""),
        ("maximum", "at most", ""),
        ("minLength", "at least", " characters"),
        ("maxLength", "at most", " characters"),
        ("minItems", "at least", " items"),
        ("maxItems", "at most", " items"),
    ] {
        if let Some(n) = schema.get(key).filter(|v| v.is_number()) {
            out.push(format!("{before} {n}{after}"));
        }
    }
    if let Some(pattern) = schema["pattern"].as_str() {
        out.push(format!("matches {pattern}"));
    }
    if let Some(default) = schema.get("default") {
        out.push(format!("default {default}"));
    }
    if let Some(example) = schema.get("example") {
        out.push(format!("example {example}"));
    }
    out.join("; ")
}

fn markdown(text: &Value) -> SafeHtml {
    match text.as_str() {
        Some(t) if !t.is_empty() => render(t).html,
        _ => SafeHtml::default(),
    }
}

fn anchor(prefix: &str, text: &str) -> String {
    let mut out = format!("{prefix}-");
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn object(v: &Value) -> &Map<String, Value> {
    static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
    v.as_object().unwrap_or_else(|| EMPTY.get_or_init(Map::new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_read_as_words() {
        let words = |s: Value| type_of(&s).pieces.iter().map(|p| p.text.clone()).collect::<String>();
        assert_eq!(
            words(serde_json::json!({"type": ["integer", "null"], "format": "int64"})),
            "integer (int64) or null"
        );
        assert_eq!(
            words(serde_json::json!({"type": "array", "items": {"$ref": "#/components/schemas/Receipt"}})),
            "array of Receipt"
        );
        assert_eq!(
            words(serde_json::json!({"oneOf": [{"type": "null"}, {"$ref": "#/components/schemas/X"}]})),
            "null or X"
        );
        let linked = type_of(&serde_json::json!({"$ref": "#/components/schemas/EventView"}));
        assert_eq!(linked.pieces[0].href.as_deref(), Some("#schema-eventview"));
        assert_eq!(anchor("op", "get/api/v1/subjects/{subject}/status"), "op-get-api-v1-subjects-subject-status");
        assert_eq!(rules(&serde_json::json!({"enum": ["a", ""], "maximum": 5})), "one of a, (empty); at most 5");
    }
}
