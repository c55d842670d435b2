//! A captured request as the preview shows it: JSON bodies as JSON, forms as their
//! fields, headers as a map.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::http::capture::is_credential_name;
use crate::http::{Captured, REDACTED};

/// One request a plugin would send, secrets redacted.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RequestView {
    /// `POST`, `GET`, ...
    pub method: String,
    /// The URL, with the tokens some services put in it redacted.
    pub url: String,
    /// Header name → value (credential headers redacted).
    pub headers: BTreeMap<String, String>,
    /// `json`, `form`, `text`, `streamed` (a body that cannot be read up front) or `none`.
    pub body_format: &'static str,
    /// The body: JSON as JSON, a form as an object of its fields, text as a string.
    pub body: Value,
    /// The body's size in bytes as it would be sent, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_bytes: Option<usize>,
}

impl From<Captured> for RequestView {
    fn from(c: Captured) -> Self {
        let mut headers: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in c.headers {
            headers
                .entry(name)
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert(value);
        }
        let content_type = c.content_type.unwrap_or_default().to_ascii_lowercase();
        let (body_format, body) = match (c.body, c.body_bytes) {
            (Some(text), _) if content_type.contains("json") => {
                match serde_json::from_str::<Value>(&text) {
                    Ok(json) => ("json", json),
                    Err(_) => ("text", Value::String(text)),
                }
            }
            (Some(text), _) if content_type.starts_with("application/x-www-form-urlencoded") => {
                ("form", form(&text))
            }
            (Some(text), _) if text.is_empty() => ("none", Value::Null),
            (Some(text), _) => ("text", Value::String(text)),
            (None, _) if headers.contains_key("content-type") => ("streamed", Value::Null),
            (None, _) => ("none", Value::Null),
        };
        RequestView {
            method: c.method,
            url: c.url,
            headers,
            body_format,
            body,
            body_bytes: c.body_bytes.filter(|&n| n > 0),
        }
    }
}

/// A form body's fields, decoded; credential fields (`token`, ...) redacted by name.
fn form(text: &str) -> Value {
    let mut fields = Map::new();
    let Ok(url) = reqwest::Url::parse(&format!("http://form.invalid/?{text}")) else {
        return Value::String(text.to_owned());
    };
    for (k, v) in url.query_pairs() {
        let v = if is_credential_name(&k) {
            REDACTED.to_owned()
        } else {
            v.into_owned()
        };
        match fields.get_mut(k.as_ref()) {
            Some(Value::Array(list)) => list.push(Value::String(v)),
            Some(one) => *one = Value::Array(vec![one.take(), Value::String(v)]),
            None => {
                fields.insert(k.into_owned(), Value::String(v));
            }
        }
    }
    Value::Object(fields)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn captured(content_type: Option<&str>, body: Option<&str>) -> Captured {
        Captured {
            method: "POST".into(),
            url: "https://x.example/".into(),
            headers: content_type
                .map(|c| vec![("content-type".to_owned(), c.to_owned())])
                .unwrap_or_default(),
            content_type: content_type.map(str::to_owned),
            body: body.map(str::to_owned),
            body_bytes: body.map(str::len),
        }
    }

    #[test]
    fn bodies_show_as_json_form_or_text() {
        let j = RequestView::from(captured(Some("application/json"), Some(r#"{"a":[1]}"#)));
        assert_eq!((j.body_format, j.body), ("json", json!({"a": [1]})));
        let f = RequestView::from(captured(
            Some("application/x-www-form-urlencoded"),
            Some("token=[redacted]&title=Movie+added&x=%C3%A9&x=2&api_token=leak"),
        ));
        assert_eq!(f.body_format, "form");
        assert_eq!(
            f.body,
            json!({"token": "[redacted]", "title": "Movie added", "x": ["é", "2"], "api_token": "[redacted]"})
        );
        let t = RequestView::from(captured(Some("text/plain"), Some("hi")));
        assert_eq!((t.body_format, t.body), ("text", json!("hi")));
        let n = RequestView::from(captured(None, None));
        assert_eq!(
            (n.body_format, n.body, n.body_bytes),
            ("none", Value::Null, None)
        );
    }

    #[test]
    fn repeated_headers_are_joined() {
        let mut c = captured(None, None);
        c.headers = vec![("x".into(), "1".into()), ("x".into(), "2".into())];
        assert_eq!(RequestView::from(c).headers["x"], "1, 2");
    }
}
