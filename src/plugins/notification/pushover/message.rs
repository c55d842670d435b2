//! The form fields of a Pushover message: title, message and link cut to Pushover's limits, plus the configured options.

use crate::event::Event;
use crate::message::Part;
use crate::plugins::notification::format;
use crate::plugins::notification::text;

use super::config::{PushoverConfig, EMERGENCY};

/// Pushover's message limit, in characters.
pub const MAX_MESSAGE_CHARS: usize = 1024;
/// Pushover's title limit, in characters.
pub const MAX_TITLE_CHARS: usize = 250;
/// Pushover's URL limit; a longer link is left out rather than cut (a cut URL is broken).
pub const MAX_URL_CHARS: usize = 512;
/// Pushover's URL title limit, in characters.
pub const MAX_URL_TITLE_CHARS: usize = 100;

/// The fields for `event` under `config`, credentials excepted. Plain text (no `html=1`):
/// the message needs no markup, and plain text shows any title exactly as it is.
pub fn form(config: &PushoverConfig, event: &Event) -> Vec<(&'static str, String)> {
    let (notice, rendered) = format::templated(event, config.templates.as_deref());
    let title = text::one_line(&notice.title);
    let mut form = vec![
        (
            "title",
            text::cut_chars("title", &title, MAX_TITLE_CHARS).into_owned(),
        ),
        (
            "message",
            text::cut_chars("message", &notice.message, MAX_MESSAGE_CHARS).into_owned(),
        ),
        ("priority", config.priority.to_string()),
        ("timestamp", event.timestamp.timestamp().to_string()),
    ];
    let templated_url = format::templated_url(rendered.as_ref(), Part::Url, MAX_URL_CHARS);
    if let Some(link) = notice
        .link
        .as_deref()
        .filter(|l| templated_url.is_none() && l.chars().count() > MAX_URL_CHARS)
    {
        let why = format!(
            "the link has {} characters, over Pushover's {MAX_URL_CHARS}",
            link.chars().count()
        );
        crate::preview::notes::omitted("url", &why);
    }
    let link = templated_url.or(notice.link.filter(|l| l.chars().count() <= MAX_URL_CHARS));
    if let Some(link) = link {
        let label = match rendered.as_ref().and_then(|r| r.get(Part::UrlTitle)) {
            Some(label) => text::one_line(label),
            None => link_label(&link).to_owned(),
        };
        let label = text::cut_chars("url_title", &label, MAX_URL_TITLE_CHARS).into_owned();
        form.push(("url", link));
        form.push(("url_title", label));
    }
    if config.priority == EMERGENCY {
        form.extend(config.retry.map(|r| ("retry", r.to_string())));
        form.extend(config.expire.map(|e| ("expire", e.to_string())));
    }
    form.extend(
        config
            .sound
            .as_deref()
            .map(|s| ("sound", s.trim().to_owned())),
    );
    form.extend(devices(config).map(|d| ("device", d)));
    form
}

/// The configured device list without spaces, e.g. `iphone,pixel`; `None` for all devices.
pub fn devices(config: &PushoverConfig) -> Option<String> {
    let list: Vec<&str> = config
        .device
        .as_deref()?
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    (!list.is_empty()).then(|| list.join(","))
}

/// The words of the link: which site it opens.
fn link_label(url: &str) -> &'static str {
    if url.starts_with("https://www.themoviedb.org/") {
        "View on TMDB"
    } else if url.starts_with("https://www.imdb.com/") {
        "View on IMDb"
    } else {
        "Open link"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_are_listed_without_blanks() {
        let with = |d: &str| PushoverConfig {
            device: Some(d.into()),
            ..PushoverConfig::default()
        };
        assert_eq!(devices(&with(" a , b ")).as_deref(), Some("a,b"));
        assert_eq!(devices(&with(" , ")), None);
        assert_eq!(devices(&PushoverConfig::default()), None);
    }

    #[test]
    fn link_labels_name_the_site() {
        assert_eq!(
            link_label("https://www.imdb.com/title/tt1/"),
            "View on IMDb"
        );
        assert_eq!(
            link_label("https://www.themoviedb.org/tv/1"),
            "View on TMDB"
        );
        assert_eq!(link_label("https://x.example/"), "Open link");
    }
}
