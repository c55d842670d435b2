//! `PluginActor<R>`: one generic actor per plugin instance, on its own arbiter with its own HTTP client.
