//! Which addresses a plugin may connect to: the address classes, the per-instance policy,
//! and the error that names a refused one.
//!
//! Judged on the address actually dialled (after DNS, see [`super::resolve`]), so no
//! spelling of a host gets around it: `localhost`, `0x7f000001`, `2130706433`, `127.1` and
//! `[::ffff:127.0.0.1]` all end up as 127.0.0.1, either through the URL parser's
//! normalisation or through the resolver.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The common plugin field that allows the private classes.
pub const ALLOW_PRIVATE_FIELD: &str = "allow_private_network";

/// Where one plugin instance may connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressPolicy {
    /// Public addresses only (the default).
    #[default]
    PublicOnly,
    /// Public addresses plus loopback, private, unspecified and CGNAT ones
    /// (`allow_private_network: true`, for a server on the user's own network).
    AllowPrivate,
}

impl AddressPolicy {
    /// The policy for an instance's `allow_private_network` setting.
    pub fn from_allow_private(allow: bool) -> Self {
        if allow {
            AddressPolicy::AllowPrivate
        } else {
            AddressPolicy::PublicOnly
        }
    }

    /// `Ok` when `ip` may be dialled, else the class that refuses it.
    pub fn check(self, ip: IpAddr) -> Result<(), AddressClass> {
        match classify(ip) {
            None => Ok(()),
            Some(class) if class.always_refused() => Err(class),
            Some(_) if self == AddressPolicy::AllowPrivate => Ok(()),
            Some(class) => Err(class),
        }
    }
}

/// An address that is not plainly public.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16), unique local fc00::/7, site-local fec0::/10.
    Private,
    /// 0.0.0.0/8 and ::, which reach this machine.
    Unspecified,
    /// 100.64.0.0/10, shared address space behind carrier-grade NAT.
    Cgnat,
    /// 169.254.0.0/16 and fe80::/10 (where 169.254.169.254, the usual metadata address, lives).
    LinkLocal,
    /// Cloud metadata services outside link-local: 100.100.100.200, fd00:ec2::254.
    Metadata,
    /// Multicast, broadcast and the reserved 240.0.0.0/4: no HTTP server answers there.
    NotUnicast,
}

impl AddressClass {
    /// Refused whatever the settings: no notification service lives there, and cloud
    /// metadata services (which hand out credentials) do.
    pub fn always_refused(self) -> bool {
        matches!(
            self,
            AddressClass::LinkLocal | AddressClass::Metadata | AddressClass::NotUnicast
        )
    }

    fn describe(self) -> &'static str {
        match self {
            AddressClass::Loopback => "a loopback address (this machine)",
            AddressClass::Private => "a private network address",
            AddressClass::Unspecified => "an unspecified address (it reaches this machine)",
            AddressClass::Cgnat => "a carrier-grade NAT address (100.64.0.0/10)",
            AddressClass::LinkLocal => {
                "a link-local address (where cloud metadata services answer)"
            }
            AddressClass::Metadata => "a cloud metadata service address",
            AddressClass::NotUnicast => "a multicast, broadcast or reserved address",
        }
    }
}

/// The class of `ip`, `None` for a public address. An IPv4-mapped (`::ffff:a.b.c.d`),
/// IPv4-compatible (`::a.b.c.d`) or NAT64 (`64:ff9b::a.b.c.d`) IPv6 address is judged as
/// the IPv4 address it carries.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    let [a, b, ..] = ip.octets();
    Some(match (a, b) {
        _ if ip == Ipv4Addr::new(100, 100, 100, 200) => AddressClass::Metadata,
        (169, 254) => AddressClass::LinkLocal,
        (127, _) => AddressClass::Loopback,
        (0, _) => AddressClass::Unspecified,
        (10, _) | (192, 168) => AddressClass::Private,
        (172, 16..=31) => AddressClass::Private,
        (100, 64..=127) => AddressClass::Cgnat,
        (224..=255, _) => AddressClass::NotUnicast,
        _ => return None,
    })
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    if let Some(v4) = embedded_v4(ip) {
        return classify_v4(v4);
    }
    let s = ip.segments();
    Some(match s[0] {
        _ if ip == Ipv6Addr::UNSPECIFIED => AddressClass::Unspecified,
        _ if ip == Ipv6Addr::LOCALHOST => AddressClass::Loopback,
        _ if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) => AddressClass::Metadata,
        0xfe80..=0xfebf => AddressClass::LinkLocal,
        0xfec0..=0xfeff | 0xfc00..=0xfdff => AddressClass::Private,
        0xff00..=0xffff => AddressClass::NotUnicast,
        _ => return None,
    })
}

/// The IPv4 address inside a mapped, compatible or NAT64 IPv6 address (not `::`, `::1`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let tail = Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]));
    let compatible = s[..6] == [0; 6] && u32::from(tail) > 1;
    let nat64 = s[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    (compatible || nat64).then_some(tail)
}

/// A connection refused by the address policy: the host as written (or resolved), the
/// address it came to, and why. Shown as a misconfiguration (a retry cannot help).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressRefused {
    /// The URL's host (a name, or the address as the URL parser normalised it).
    pub host: String,
    /// The address that was refused.
    pub ip: IpAddr,
    /// Its class.
    pub class: AddressClass,
}

impl fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (host, ip, class) = (&self.host, self.ip, self.class.describe());
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<IpAddr>().is_ok_and(|h| h == ip) {
            write!(f, "{host} is {class}")?;
        } else {
            write!(f, "{host} resolves to {ip}, {class}")?;
        }
        if self.class.always_refused() {
            f.write_str(": never contacted, whatever the settings")
        } else {
            write!(
                f,
                ": refused, because this plugin may only reach public addresses; for a server on \
                 your own network set `{ALLOW_PRIVATE_FIELD}: true` on this plugin"
            )
        }
    }
}

impl std::error::Error for AddressRefused {}

/// Checks a URL whose host is an IP address (reqwest dials those without asking the
/// resolver). Names pass here; the resolver judges what they resolve to.
pub fn check_url(url: &reqwest::Url, policy: AddressPolicy) -> Result<(), AddressRefused> {
    // The parser has already normalised every IPv4 spelling to dotted decimal and wraps
    // IPv6 in brackets; a host that does not parse as an address here is a name.
    let host = url.host_str().unwrap_or_default();
    let Ok(ip) = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    else {
        return Ok(());
    };
    policy.check(ip).map_err(|class| AddressRefused {
        host: host.to_owned(),
        ip,
        class,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> Option<AddressClass> {
        classify(s.parse().unwrap())
    }

    #[test]
    fn classes_cover_the_ranges_the_issue_names() {
        use AddressClass::*;
        for (ip, want) in [
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("2606:4700::1111", None),
            ("127.0.0.1", Some(Loopback)),
            ("127.255.255.254", Some(Loopback)),
            ("::1", Some(Loopback)),
            ("10.1.2.3", Some(Private)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("172.32.0.1", None),
            ("192.168.1.10", Some(Private)),
            ("fd12:3456::1", Some(Private)),
            ("fc00::1", Some(Private)),
            ("0.0.0.0", Some(Unspecified)),
            ("::", Some(Unspecified)),
            ("100.64.0.1", Some(Cgnat)),
            ("100.127.255.255", Some(Cgnat)),
            ("100.128.0.1", None),
            ("169.254.169.254", Some(LinkLocal)),
            ("fe80::1", Some(LinkLocal)),
            ("100.100.100.200", Some(Metadata)),
            ("fd00:ec2::254", Some(Metadata)),
            ("224.0.0.1", Some(NotUnicast)),
            ("255.255.255.255", Some(NotUnicast)),
            ("ff02::1", Some(NotUnicast)),
        ] {
            assert_eq!(class(ip), want, "{ip}");
        }
    }

    #[test]
    fn ipv6_carrying_ipv4_is_judged_as_that_ipv4() {
        assert_eq!(class("::ffff:127.0.0.1"), Some(AddressClass::Loopback));
        assert_eq!(
            class("::ffff:169.254.169.254"),
            Some(AddressClass::LinkLocal)
        );
        assert_eq!(class("::ffff:10.0.0.1"), Some(AddressClass::Private));
        assert_eq!(class("::ffff:8.8.8.8"), None);
        assert_eq!(class("::127.0.0.1"), Some(AddressClass::Loopback));
        assert_eq!(class("64:ff9b::192.168.0.1"), Some(AddressClass::Private));
        assert_eq!(class("64:ff9b::8.8.8.8"), None);
    }

    #[test]
    fn the_policy_allows_private_classes_only_when_asked() {
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        let metadata: IpAddr = "169.254.169.254".parse().unwrap();
        let public: IpAddr = "93.184.216.34".parse().unwrap();
        let strict = AddressPolicy::PublicOnly;
        let lan = AddressPolicy::AllowPrivate;
        assert_eq!(strict.check(public), Ok(()));
        assert_eq!(strict.check(loopback), Err(AddressClass::Loopback));
        assert_eq!(lan.check(loopback), Ok(()));
        assert_eq!(lan.check(metadata), Err(AddressClass::LinkLocal));
        assert_eq!(strict.check(metadata), Err(AddressClass::LinkLocal));
        assert_eq!(AddressPolicy::default(), strict);
    }

    /// Every spelling the URL parser turns into an address is judged as that address.
    #[test]
    fn literal_hosts_are_checked_in_every_spelling() {
        for url in [
            "http://127.0.0.1:8080/",
            "http://[::ffff:127.0.0.1]/",
            "http://0x7f000001/",
            "http://2130706433/",
            "http://127.1/",
            "http://0177.0.0.1/",
            "http://127.0.0.1./",
            "http://0.0.0.0/",
            "http://[::]/",
            "http://[::1]/",
            "https://169.254.169.254/latest/meta-data/",
            "http://[fe80::1]/",
        ] {
            let parsed = reqwest::Url::parse(url).unwrap();
            let err = check_url(&parsed, AddressPolicy::PublicOnly)
                .expect_err(url)
                .to_string();
            assert!(
                err.contains("allow_private_network") || err.contains("never contacted"),
                "{url}: {err}"
            );
        }
        let name = reqwest::Url::parse("http://localhost/").unwrap();
        assert_eq!(check_url(&name, AddressPolicy::PublicOnly), Ok(()));
        let public = reqwest::Url::parse("https://8.8.8.8/").unwrap();
        assert_eq!(check_url(&public, AddressPolicy::PublicOnly), Ok(()));
    }

    #[test]
    fn the_reason_names_host_class_and_field() {
        let url = reqwest::Url::parse("http://0x7f000001:9/").unwrap();
        let err = check_url(&url, AddressPolicy::PublicOnly).unwrap_err();
        assert_eq!(
            err.to_string(),
            "127.0.0.1 is a loopback address (this machine): refused, because this plugin may only \
             reach public addresses; for a server on your own network set \
             `allow_private_network: true` on this plugin"
        );
        let named = AddressRefused {
            host: "ntfy.example.com".into(),
            ip: "169.254.169.254".parse().unwrap(),
            class: AddressClass::LinkLocal,
        };
        assert_eq!(
            named.to_string(),
            "ntfy.example.com resolves to 169.254.169.254, a link-local address (where cloud \
             metadata services answer): never contacted, whatever the settings"
        );
    }
}
