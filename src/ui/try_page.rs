//! "Try an event": a sample payload of each kind to edit, previewed (the dry run) or sent.

use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::context;
use minijinja::value::Serde;
use serde::Deserialize;
use serde_json::Value;

use super::{access_of, page, render};
use crate::app::Handle;
use crate::event::EventName;
use crate::preview::{PreviewError, PreviewRequest};

/// Which sample to start from.
#[derive(Debug, Default, Deserialize)]
pub struct Pick {
    #[serde(default)]
    event: Option<String>,
}

/// `GET /try`: the form, with the sample data of the chosen event.
pub async fn try_page(req: HttpRequest, pick: web::Query<Pick>) -> HttpResponse {
    let events: Vec<&str> = EventName::ALL
        .iter()
        .filter(|e| **e != EventName::OnPluginHealthChanged)
        .map(|e| e.as_str())
        .collect();
    let event = pick
        .event
        .as_deref()
        .and_then(|e| e.parse::<EventName>().ok())
        .filter(|e| *e != EventName::OnPluginHealthChanged)
        .unwrap_or(EventName::AfterMediaAdded);
    let sample = crate::message::sample::event(event);
    let data = serde_json::to_string_pretty(&sample.data).unwrap_or_default();
    let ctx = context! { title => "Try an event", events, event => event.as_str(), data };
    page(&req, access_of(&req), "try.html", "try", ctx)
}

/// The preview as the template shows it: bodies and the event pretty-printed.
fn shown(preview: &crate::preview::Preview) -> Value {
    let mut v = serde_json::to_value(preview).unwrap_or_default();
    let pretty = |v: &Value| match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    };
    if let Some(instances) = v["instances"].as_array_mut() {
        for i in instances {
            if let Some(requests) = i["requests"].as_array_mut() {
                for r in requests {
                    r["body_text"] = Value::String(pretty(&r["body"]));
                }
            }
        }
    }
    v["event_text"] = Value::String(pretty(&v["event"]));
    v
}

/// `POST /ui/preview`: the body of `POST /api/v1/preview`, answered as HTML for the page.
pub async fn preview_fragment(handle: web::Data<Handle>, body: web::Bytes) -> HttpResponse {
    let fail = |status: u16, text: String| {
        let mut r = render("error.html", context! { error => text });
        *r.status_mut() = actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST);
        r
    };
    let request = match PreviewRequest::from_json(&body) {
        Ok(r) => r,
        Err(e) => return fail(400, e.to_string()),
    };
    match handle.preview(request).await {
        Ok(p) => render("preview.html", Serde(shown(&p)).into()),
        Err(e @ PreviewError::UnknownDelivery(_)) => fail(404, e.to_string()),
        Err(e @ PreviewError::Store(_)) => fail(503, e.to_string()),
        Err(e) => fail(400, e.to_string()),
    }
}
