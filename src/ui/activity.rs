//! The Activity page: deliveries newest first, with filters, attempts, Retry and Replay.

use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::value::Serde;
use minijinja::{context, Value};
use serde::Deserialize;

use super::{access_of, page, render};
use crate::api::deliveries::item;
use crate::app::Handle;
use crate::store::{Query, State};

/// Deliveries one activity page shows.
const ACTIVITY_LIMIT: usize = 100;

/// The activity filters, as given in the query string.
#[derive(Debug, Default, Deserialize)]
pub struct ActivityFilter {
    #[serde(default)]
    plugin: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    event_id: String,
}

async fn activity_context(handle: &Handle, f: &ActivityFilter) -> Value {
    let mut query = Query {
        limit: ACTIVITY_LIMIT,
        ..Query::default()
    };
    let mut error = None;
    if !f.plugin.is_empty() {
        query.instance = Some(f.plugin.clone());
    }
    if !f.event_id.is_empty() {
        query.event_id = Some(f.event_id.trim().to_owned());
    }
    if !f.state.is_empty() {
        match f.state.parse::<State>() {
            Ok(s) => query.state = Some(s),
            Err(e) => error = Some(e),
        }
    }
    let deliveries: Vec<serde_json::Value> = match handle.deliveries(query).await {
        Ok(page) => page.items.iter().map(|s| item(handle, s)).collect(),
        Err(e) => {
            error = Some(format!("the store could not answer: {e}"));
            Vec::new()
        }
    };
    let plugin_names: Vec<String> = handle.status().await.into_iter().map(|p| p.name).collect();
    let query = serde_urlencoded_pairs(f);
    context! {
        deliveries => Serde(deliveries), error, plugin_names, query,
        plugin => &f.plugin, state => &f.state, event_id => &f.event_id,
        states => ["pending", "in_flight", "held", "delivered", "dead"],
    }
}

/// The filters as a query string (values percent-encoded).
fn serde_urlencoded_pairs(f: &ActivityFilter) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    format!(
        "plugin={}&state={}&event_id={}",
        enc(&f.plugin),
        enc(&f.state),
        enc(&f.event_id)
    )
}

/// `GET /activity`: deliveries, newest first, with filters, Retry and Replay.
pub async fn activity_page(
    req: HttpRequest,
    handle: web::Data<Handle>,
    filter: web::Query<ActivityFilter>,
) -> HttpResponse {
    let ctx = activity_context(&handle, &filter).await;
    page(
        &req,
        access_of(&req),
        "activity.html",
        "activity",
        context! { title => "Activity", ..ctx },
    )
}

/// `GET /ui/activity`: the deliveries table alone.
pub async fn activity_fragment(
    handle: web::Data<Handle>,
    filter: web::Query<ActivityFilter>,
) -> HttpResponse {
    render(
        "activity_table.html",
        activity_context(&handle, &filter).await,
    )
}

/// `GET /ui/delivery/{id}`: one delivery's attempts.
pub async fn delivery_fragment(handle: web::Data<Handle>, id: web::Path<String>) -> HttpResponse {
    match handle.delivery(&id).await {
        Ok(Some(detail)) => render(
            "delivery.html",
            context! { attempts => Serde(&detail.attempts) },
        ),
        Ok(None) => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body(format!("no delivery {id}")),
        Err(e) => HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body(format!("the store could not answer: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_are_percent_encoded() {
        let f = ActivityFilter {
            plugin: "ntfy".into(),
            state: "dead".into(),
            event_id: "a b&c".into(),
        };
        assert_eq!(
            serde_urlencoded_pairs(&f),
            "plugin=ntfy&state=dead&event_id=a%20b%26c"
        );
    }
}
