//! Compiled message templates of one plugin instance, and rendering them for an event.
//!
//! Rendering is lenient: a missing field renders as nothing (event data is optional
//! everywhere). A part that fails at run time (out of fuel, a type error) or renders
//! empty gives `None`, and the plugin uses its built-in text for that part; a failure is
//! logged once per template, not on every event.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use minijinja::{Environment, Value};

use super::context;
use crate::event::{Event, EventName};

/// A part of a message a template can give. Which parts a plugin type takes is its
/// registry entry's business ([`crate::plugins::PluginKind::template_parts`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// The title (one line; every plugin).
    Title,
    /// The message body (every plugin).
    Message,
    /// ntfy tags (emoji short codes or words), comma separated or a list.
    Tags,
    /// ntfy's click action: the URL opened when the notification is tapped.
    Click,
    /// Pushover's supplementary URL.
    Url,
    /// Pushover's title for that URL.
    UrlTitle,
    /// Discord's embed colour: `#5865F2`, `0x5865F2` or a decimal number.
    Color,
    /// Discord embed fields or Slack section fields: `[{name, value, inline}]`.
    Fields,
}

impl Part {
    /// Every part.
    pub const ALL: &'static [Part] = &[
        Part::Title,
        Part::Message,
        Part::Tags,
        Part::Click,
        Part::Url,
        Part::UrlTitle,
        Part::Color,
        Part::Fields,
    ];

    /// The name used in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Title => "title",
            Part::Message => "message",
            Part::Tags => "tags",
            Part::Click => "click",
            Part::Url => "url",
            Part::UrlTitle => "url_title",
            Part::Color => "color",
            Part::Fields => "fields",
        }
    }

    /// The part named `s`.
    pub fn parse(s: &str) -> Option<Part> {
        Part::ALL.iter().copied().find(|p| p.as_str() == s)
    }
}

/// One template string, compiled into the instance's environment under `name` (its
/// field path below `templates`, e.g. `after_media_added.title`).
pub(super) struct Piece {
    pub(super) name: String,
    /// Its place in the environment's handles (and in `Templates::sources`).
    index: usize,
    warned: AtomicBool,
}

impl Piece {
    pub(super) fn new(name: String, index: usize) -> Self {
        Piece {
            name,
            index,
            warned: AtomicBool::new(false),
        }
    }
}

/// A handle on each template of an environment, in the order they were added.
type Handles<'env> = Vec<minijinja::Template<'env, 'env>>;

self_cell::self_cell!(
    /// An instance's environment, with a handle on each of its templates: a render takes
    /// its piece's handle instead of looking the name up (MiniJinja's `get_template`
    /// searches two maps, one behind a lock: 0.4k instructions per piece measured with
    /// callgrind, a sixth of what the two renders of a message cost beside MiniJinja's
    /// own evaluation).
    pub(super) struct Compiled {
        owner: Environment<'static>,
        #[not_covariant]
        dependent: Handles,
    }
);

impl Compiled {
    /// `env` with a handle on each of `names`, which it must hold (the compile added them).
    pub(super) fn build(env: Environment<'static>, names: &[(String, String)]) -> Self {
        Compiled::new(env, |env| {
            names
                .iter()
                .map(|(name, _)| env.get_template(name).expect("compiled into it"))
                .collect()
        })
    }
}

/// A templated embed or section field.
pub(super) struct FieldPiece {
    pub(super) name: Piece,
    pub(super) value: Piece,
    pub(super) inline: bool,
}

/// The templates for one key (`after_media_added`, `default`, `digest`).
pub struct MessageTemplate {
    /// The key as written in the config.
    pub(super) key: String,
    /// Text parts in config order; `tags` may appear more than once (a list).
    pub(super) pieces: Vec<(Part, Piece)>,
    pub(super) fields: Vec<FieldPiece>,
    /// Top-level names the pieces read: all the context that is built for them.
    pub(super) roots: Vec<String>,
}

impl MessageTemplate {
    /// The key as written in the config, e.g. `after_media_added` or `default`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether it gives `part`.
    pub fn has(&self, part: Part) -> bool {
        part == Part::Fields && !self.fields.is_empty()
            || self.pieces.iter().any(|(p, _)| *p == part)
    }
}

/// A rendered field (Discord embed field, Slack section field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedField {
    /// The field's name (Discord) or bold label (Slack).
    pub name: String,
    /// Its value.
    pub value: String,
    /// Discord shows inline fields side by side.
    pub inline: bool,
}

/// What a template gave for one event, before the plugin's escaping and limits. A part
/// that is absent here (not templated, failed or empty) keeps its built-in text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    texts: Vec<(Part, String)>,
    /// Templated fields whose value rendered non-empty, in config order. Empty when the
    /// template gives no `fields`, or when every one of them failed: then the plugin's
    /// built-in fields stay.
    pub fields: Vec<RenderedField>,
    /// Templates that failed in this render (their built-in text is used), by name
    /// (`after_media_added.title`), with the error: for a dry run to show.
    pub failed: Vec<(String, String)>,
}

impl Rendered {
    /// The rendered text of `part` (the first, for `tags`).
    pub fn get(&self, part: Part) -> Option<&str> {
        self.all(part).next()
    }

    /// Every rendered text of `part` (a `tags` list gives several).
    pub fn all(&self, part: Part) -> impl Iterator<Item = &str> {
        self.texts
            .iter()
            .filter(move |(p, _)| *p == part)
            .map(|(_, t)| t.as_str())
    }
}

/// The compiled `templates:` of one plugin instance.
pub struct Templates {
    pub(super) instance: String,
    pub(super) compiled: Compiled,
    pub(super) events: Vec<(EventName, MessageTemplate)>,
    pub(super) default: Option<MessageTemplate>,
    pub(super) digest: Option<MessageTemplate>,
    /// (piece name, source), for equality and for `check`'s strict renders.
    pub(super) sources: Vec<(String, String)>,
}

impl Templates {
    /// The instance these templates belong to (`plugin` in the context).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The keys given, in config order (events, then `default` and `digest`), as written.
    pub fn keys(&self) -> Vec<&str> {
        self.events
            .iter()
            .map(|(_, t)| t.key())
            .chain(self.default.iter().map(MessageTemplate::key))
            .chain(self.digest.iter().map(MessageTemplate::key))
            .collect()
    }

    /// The template for events named `name`: its own, else `default`.
    pub fn for_event(&self, name: EventName) -> Option<&MessageTemplate> {
        self.events
            .iter()
            .find(|(e, _)| *e == name)
            .map(|(_, t)| t)
            .or(self.default.as_ref())
    }

    /// `templates.digest`, for a burst digest's message (rendered with
    /// [`Templates::render_with`] and the digest's own context).
    pub fn digest(&self) -> Option<&MessageTemplate> {
        self.digest.as_ref()
    }

    /// What the template for `event` gives; `None` when no template applies (the
    /// built-in texts stay as they are).
    pub fn render(&self, event: &Event) -> Option<Rendered> {
        let template = self.for_event(event.name)?;
        Some(self.render_with(template, self.context(template, event)))
    }

    /// [`Templates::render`] for an event the caller shares: the template reads its data
    /// in place. A plugin's `&Event` within a delivery is found shared this way too.
    pub fn render_shared(&self, event: &Arc<Event>) -> Option<Rendered> {
        let template = self.for_event(event.name)?;
        Some(self.render_with(
            template,
            context::build(event, &self.instance, &template.roots),
        ))
    }

    /// The context `template` is rendered with for `event`.
    pub fn context(&self, template: &MessageTemplate, event: &Event) -> Value {
        context::build(&context::share(event), &self.instance, &template.roots)
    }

    /// Render every part of `template` with `ctx` (any value: a digest passes its own).
    pub fn render_with(&self, template: &MessageTemplate, ctx: Value) -> Rendered {
        let mut failed = Vec::new();
        let texts = template
            .pieces
            .iter()
            .filter_map(|(part, piece)| Some((*part, self.piece(piece, &ctx, &mut failed)?)))
            .collect();
        let fields = template
            .fields
            .iter()
            .filter_map(|f| {
                Some(RenderedField {
                    name: self.piece(&f.name, &ctx, &mut failed).unwrap_or_default(),
                    value: self.piece(&f.value, &ctx, &mut failed)?,
                    inline: f.inline,
                })
            })
            .collect();
        Rendered {
            texts,
            fields,
            failed,
        }
    }

    /// One piece rendered and trimmed; `None` when it failed (logged once, and noted in
    /// `failed`) or is empty.
    fn piece(
        &self,
        piece: &Piece,
        ctx: &Value,
        failed: &mut Vec<(String, String)>,
    ) -> Option<String> {
        let result = self
            .compiled
            .with_dependent(|_, handles| handles[piece.index].render(ctx.clone()));
        match result {
            Ok(text) => {
                let trimmed = text.trim();
                if trimmed.is_empty() {
                    None
                } else if trimmed.len() == text.len() {
                    Some(text)
                } else {
                    Some(trimmed.to_owned())
                }
            }
            Err(err) => {
                let error = super::describe(&err);
                if !piece.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        plugin = %self.instance,
                        template = %piece.name,
                        error = %error,
                        "message template failed, so the built-in text is sent instead; \
                         logged once per template until the config is reloaded"
                    );
                }
                failed.push((piece.name.clone(), error));
                None
            }
        }
    }
}

impl PartialEq for Templates {
    fn eq(&self, other: &Self) -> bool {
        self.instance == other.instance && self.sources == other.sources
    }
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Templates")
            .field("instance", &self.instance)
            .field(
                "templates",
                &self.sources.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .finish()
    }
}
