//! The HTTP client builder every plugin uses, and the one mapping from responses and
//! `reqwest` errors to a classified, redacted [`PluginError`].

use std::time::Duration;

/// A client for one arbiter: no redirects followed, bounded connect time, our user agent.
pub fn new_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("mydia-plugins/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("a client with static settings builds")
}
