//! The Hooks page: each script with its counters, quarantine and Release.

use actix_web::{web, HttpRequest, HttpResponse};
use minijinja::{context, Value};

use super::{access_of, page, render};
use crate::app::Handle;

fn hooks_context(handle: &Handle) -> Value {
    let stats = handle.hooks().stats();
    let hooks: Vec<_> = stats
        .hooks
        .iter()
        .map(|h| {
            let state = h.state();
            context! {
                file => &h.file, state, runs => h.runs, failures => h.failures,
                rejections => h.rejections, quarantined => &h.quarantined, last_error => &h.last_error,
            }
        })
        .collect();
    context! {
        hooks, workers => stats.workers, vm_restarts => stats.vm_restarts,
        enabled => handle.hooks().is_enabled(),
    }
}

/// `GET /hooks`: every hook with its counters, quarantine and Release.
pub async fn hooks_page(req: HttpRequest, handle: web::Data<Handle>) -> HttpResponse {
    let ctx = hooks_context(&handle);
    page(
        &req,
        access_of(&req),
        "hooks.html",
        "hooks",
        context! { title => "Hooks", ..ctx },
    )
}

/// `GET /ui/hooks`: the hooks table alone.
pub async fn hooks_fragment(handle: web::Data<Handle>) -> HttpResponse {
    render("hooks_table.html", hooks_context(&handle))
}
