//! The handle's dry run: what each instance would send for an event, sending and storing
//! nothing (see [`crate::preview`]).

use super::Handle;
use crate::preview::{self, Preview, PreviewError, PreviewRequest, Setup, Source};

impl Handle {
    /// Previews `request`: runs the hooks (counting nothing), the enrichment when asked,
    /// and each selected instance's own code up to its request, which is recorded instead
    /// of sent. Nothing is stored; a stored delivery's event is only read.
    pub async fn preview(&self, request: PreviewRequest) -> Result<Preview, PreviewError> {
        let (event, plugins, stored) = match request.source {
            Source::Event(event) => (event, request.plugins, None),
            Source::Delivery(id) => {
                let detail = self
                    .delivery(&id)
                    .await?
                    .ok_or_else(|| PreviewError::UnknownDelivery(id.clone()))?;
                // "What would this failed notification look like now": its own instance,
                // unless others were named.
                let plugins = if request.plugins.is_empty() {
                    vec![detail.summary.plugin.clone()]
                } else {
                    request.plugins
                };
                ((*detail.event).clone(), plugins, Some(id))
            }
        };
        let status = self.status().await;
        let configs = self.plugin_configs();
        let setup = Setup {
            plugins: &configs,
            hooks: &self.inner.hooks,
            delivery_timeout: self.inner.delivery_timeout,
            status: &status,
        };
        preview::run(&setup, event, &plugins, request.enrich, stored).await
    }
}
