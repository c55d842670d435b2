//! `server.listen`: an IP address or a host name with a port; names resolve when the API binds.
//!
//! Validation stays pure (no DNS at load time): `localhost:8795` is checked for shape here and
//! resolved by the HTTP server at start, which binds every address the name resolves to.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// Where the HTTP API listens: `127.0.0.1:8787`, `[::1]:8787` or `localhost:8787`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenAddr {
    host: String,
    port: u16,
}

/// Why a `listen` value is not usable; the message says what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{given}` {why}; write host:port, e.g. 127.0.0.1:8787 or localhost:8787")]
pub struct BadListen {
    given: String,
    why: &'static str,
}

impl ListenAddr {
    /// The host part: an IP address or a name (without brackets for IPv6).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port (0 asks the system for a free one).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether only this machine can connect: a loopback IP (127.0.0.0/8, ::1) or
    /// `localhost`. Any other name may resolve to an address the network can reach.
    pub fn is_loopback(&self) -> bool {
        match self.host.parse::<IpAddr>() {
            Ok(ip) => ip.is_loopback(),
            Err(_) => self.host.eq_ignore_ascii_case("localhost"),
        }
    }

    /// The address itself when the host is an IP literal (no resolving needed).
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        let ip: IpAddr = self.host.parse().ok()?;
        Some(SocketAddr::new(ip, self.port))
    }
}

impl From<SocketAddr> for ListenAddr {
    fn from(addr: SocketAddr) -> Self {
        ListenAddr {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }
}

impl FromStr for ListenAddr {
    type Err = BadListen;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let given = s.trim();
        let bad = |why| BadListen {
            given: given.to_owned(),
            why,
        };
        if let Ok(addr) = given.parse::<SocketAddr>() {
            return Ok(addr.into());
        }
        let Some((host, port)) = given.rsplit_once(':') else {
            return Err(if given.parse::<u16>().is_ok() {
                bad("is only a port")
            } else {
                bad("has no port")
            });
        };
        let port: u16 = port
            .parse()
            .map_err(|_| bad("does not end in a port number (0..65535)"))?;
        if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            // `[...]` is only for IPv6 literals.
            return v6
                .parse::<std::net::Ipv6Addr>()
                .map(|ip| SocketAddr::from((ip, port)).into())
                .map_err(|_| bad("has brackets around something that is not an IPv6 address"));
        }
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        if host.contains(':') {
            return Err(bad(
                "looks like an IPv6 address without brackets ([::1]:8787)",
            ));
        }
        if !is_host_name(host) {
            return Err(bad("is neither an IP address nor a host name"));
        }
        Ok(ListenAddr {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A DNS name: dot-separated labels of letters, digits and `-`, none empty or edged by `-`.
fn is_host_name(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_and_host_names_are_accepted() {
        let l: ListenAddr = "127.0.0.1:8787".parse().unwrap();
        assert_eq!(l.socket_addr(), Some("127.0.0.1:8787".parse().unwrap()));
        let l: ListenAddr = "[::1]:9000".parse().unwrap();
        assert_eq!(
            (l.host(), l.port(), l.to_string()),
            ("::1", 9000, "[::1]:9000".into())
        );
        let l: ListenAddr = " LocalHost:8795 ".parse().unwrap();
        assert_eq!(
            (l.host(), l.port(), l.socket_addr()),
            ("localhost", 8795, None)
        );
        assert_eq!(l.to_string(), "localhost:8795");
        assert!("media-box.lan:80".parse::<ListenAddr>().is_ok());
    }

    #[test]
    fn each_mistake_gets_its_own_advice() {
        for (given, says) in [
            ("8787", "is only a port"),
            ("localhost", "has no port"),
            ("localhost:http", "does not end in a port number"),
            ("localhost:70000", "does not end in a port number"),
            (":8787", "has no host"),
            ("::1:8787", "IPv6 address without brackets"),
            ("[nope]:1", "brackets around something"),
            ("my_host:1", "neither an IP address nor a host name"),
            ("a..b:1", "neither an IP address nor a host name"),
        ] {
            let err = given.parse::<ListenAddr>().unwrap_err().to_string();
            assert!(err.contains(says), "{given}: {err}");
            assert!(err.contains("write host:port"), "{given}: {err}");
        }
    }
}
