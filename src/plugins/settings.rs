//! What `GET /api/v1/plugins/{name}/settings` and the page's settings view show of an
//! instance: every field of its type's schema with its value and where the value comes
//! from (`file`, `overrides`, `default` or `unset`), secrets only as "set" or not.

use serde_json::{json, Map, Value};

use super::PluginConfig;

/// The settings of `cfg`.
pub fn view(cfg: &PluginConfig) -> Value {
    let schema = cfg.kind.config_schema();
    let empty = Map::new();
    let properties = schema["properties"].as_object().unwrap_or(&empty);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let fields: Vec<Value> = properties
        .iter()
        .map(|(name, spec)| {
            let secret = cfg.kind.secret_fields().contains(&name.as_str())
                || crate::http::capture::is_credential_name(name);
            let written = cfg.written.get(name);
            let default = spec.get("default").cloned();
            let source = match (written, &default) {
                _ if cfg.overridden.contains(name) => "overrides",
                (Some(_), _) => "file",
                (None, Some(_)) => "default",
                (None, None) => "unset",
            };
            let value = match (secret, written) {
                (true, Some(_)) => json!("set"),
                (true, None) => Value::Null,
                (false, Some(v)) => v.clone(),
                (false, None) => default.clone().unwrap_or(Value::Null),
            };
            let kind = spec
                .get("type")
                .cloned()
                .or_else(|| spec.get("enum").map(|e| json!({ "enum": e })))
                .unwrap_or(Value::Null);
            json!({
                "name": name,
                "type": kind,
                "description": spec.get("description"),
                "default": if secret { Value::Null } else { default.unwrap_or(Value::Null) },
                "required": required.contains(&name.as_str()),
                "secret": secret,
                "value": value,
                "source": source,
            })
        })
        .collect();
    let c = &cfg.common;
    json!({
        "plugin": cfg.name,
        "type": cfg.kind.as_str(),
        "role": cfg.kind.role(),
        "fields": fields,
        "overridden": cfg.overridden,
        "common": {
            "enabled": c.enabled,
            "events": c.events,
            "allow_insecure_http": c.allow_insecure_http,
            "allow_private_network": c.allow_private_network,
            "timeout_ms": c.timeout.map(|t| t.as_millis() as u64),
            "max_in_flight": c.max_in_flight,
            "rate_limit": c.rate_limit.map(|r| json!({"per_minute": r.per_minute, "burst": r.burst})),
            "templates": c.templates.is_some(),
            "digest": c.digest.is_some(),
            "quiet_hours": c.quiet_hours.is_some(),
        },
    })
}

/// The values `overrides.yaml` gave `cfg`, field by field in its order, secrets as
/// `"set"`: what `check` lists.
pub fn overridden(cfg: &PluginConfig) -> Vec<(String, Value)> {
    let c = &cfg.common;
    cfg.overridden
        .iter()
        .map(|field| {
            let value = match field.as_str() {
                "enabled" => json!(c.enabled),
                "events" => json!(c.events),
                "timeout_ms" => json!(c.timeout.map(|t| t.as_millis() as u64)),
                "max_in_flight" => json!(c.max_in_flight),
                own => cfg.written.get(own).cloned().unwrap_or(Value::Null),
            };
            (field.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn settings(yaml: &str) -> serde_json::Value {
        let config = Config::parse(yaml, None).unwrap_or_else(|e| panic!("{e}"));
        super::view(&config.plugins[0])
    }

    fn field<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
        v["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {v:#}"))
    }

    #[test]
    fn values_say_where_they_come_from_and_secrets_never_show() {
        let v = settings(
            "plugins:\n  ntfy: {enabled: true, topic: media, auth_token: tk_SECRET123, priority: 4}\n",
        );
        assert!(!v.to_string().contains("tk_SECRET123"), "{v:#}");
        let token = field(&v, "auth_token");
        assert_eq!(
            (&token["value"], token["secret"].as_bool()),
            (&serde_json::json!("set"), Some(true))
        );
        assert_eq!(field(&v, "password")["value"], serde_json::Value::Null);
        assert_eq!(field(&v, "priority")["value"], 4);
        assert_eq!(field(&v, "priority")["source"], "file");
        assert_eq!(field(&v, "server_url")["value"], "https://ntfy.sh");
        assert_eq!(field(&v, "server_url")["source"], "default");
        assert_eq!(field(&v, "topic")["required"], true);
        assert_eq!(v["common"]["enabled"], true);
    }

    #[test]
    fn every_type_hides_its_secrets() {
        let secrets = [
            "plugins:\n  p: {type: pushover, enabled: true, user_key: uSECRETuser, api_token: aSECRETtoken}\n",
            "plugins:\n  t: {type: telegram, enabled: true, bot_token: '1:SECRETbot', chat_id: 5}\n",
            "plugins:\n  d: {type: discord, enabled: true, webhook_url: 'https://discord.com/api/webhooks/1/SECRETdc'}\n",
            "plugins:\n  s: {type: slack, enabled: true, webhook_url: 'https://hooks.slack.com/services/T/B/SECRETsl'}\n",
            "plugins:\n  w: {type: webhook, enabled: true, url: 'https://x.example/?k=SECRETurl', headers: {X-Key: SECREThdr}, secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'}\n",
            "plugins:\n  f: {type: fanart, enabled: true, api_key: SECRETfanart}\n",
        ];
        for yaml in secrets {
            let v = settings(yaml);
            let text = v.to_string();
            assert!(
                !text.contains("SECRET") && !text.contains("MfKQ9r8"),
                "{yaml}: {v:#}"
            );
            assert!(text.contains("\"set\""), "{yaml}: {v:#}");
        }
    }
}
