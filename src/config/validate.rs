//! Pure validation helpers shared by the loader and by each plugin's own checks (no I/O).

use super::Problems;

/// Check a URL a plugin will call: it must parse, be `https://` (or `http://` with the
/// instance's `allow_insecure_http: true`), and have a host.
pub fn check_url(problems: &mut Problems, path: &str, url: &str, allow_insecure_http: bool) {
    let parsed = match reqwest::Url::parse(url) {
        Ok(u) => u,
        Err(e) => {
            problems.push(
                path,
                format!("`{url}` is not a valid URL ({e}); write e.g. https://host/path"),
            );
            return;
        }
    };
    match parsed.scheme() {
        "https" => {}
        "http" if allow_insecure_http => {}
        "http" => problems.push(
            path,
            "uses http://, which sends data unencrypted; use https://, or set \
             `allow_insecure_http: true` on this plugin for a server on your LAN",
        ),
        other => problems.push(
            path,
            format!("scheme `{other}` is not supported; use https://"),
        ),
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        problems.push(path, format!("`{url}` has no host"));
    }
}

/// Refuse a secret (token, key, password, URL with a token) with a control character
/// inside it (a line break or escape from a copied value): it would break the header or
/// URL it goes into. Surrounding whitespace is fine (plugins trim it). The message never
/// quotes the value.
pub fn check_secret(problems: &mut Problems, path: &str, secret: Option<&str>) {
    if secret.is_some_and(|s| s.trim().chars().any(char::is_control)) {
        problems.push(
            path,
            "contains a control character (a line break, tab or escape, e.g. from a copied              value or a file read into the variable); remove it (the value is a secret, so it              is not shown here)",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_with_control_characters_are_refused_without_being_quoted() {
        let mut p = Problems::default();
        for (i, s) in [
            "tk_ok",
            " tk_ok\n",
            "tk_SECRET\nX-Evil: 1",
            "a\u{7}b",
            "a\tb",
        ]
        .iter()
        .enumerate()
        {
            check_secret(&mut p, &format!("s{i}"), Some(s));
        }
        check_secret(&mut p, "none", None);
        let items = p.into_vec();
        let paths: Vec<&str> = items.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, ["s2", "s3", "s4"]);
        assert!(items.iter().all(|p| !p.message.contains("SECRET")));
    }

    fn check(url: &str, insecure: bool) -> Vec<String> {
        let mut p = Problems::default();
        check_url(&mut p, "plugins.x.url", url, insecure);
        p.into_vec().into_iter().map(|p| p.message).collect()
    }

    #[test]
    fn https_passes_and_http_needs_opt_in() {
        assert!(check("https://ntfy.sh", false).is_empty());
        assert!(check("http://10.0.0.2:8080", true).is_empty());
        let msgs = check("http://10.0.0.2:8080", false);
        assert_eq!(msgs.len(), 1);
        assert!(msgs[0].contains("allow_insecure_http: true"), "{msgs:?}");
    }

    #[test]
    fn garbage_and_other_schemes_are_reported() {
        assert!(check("ntfy.sh", false)[0].contains("not a valid URL"));
        assert!(check("ftp://x", false)[0].contains("scheme `ftp`"));
    }
}
