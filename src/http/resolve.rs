//! DNS for plugin clients: the system resolver, wrapped in a filter that drops the
//! addresses the instance may not reach, so a name cannot smuggle in a private address
//! (DNS rebinding: a public-looking name that answers 127.0.0.1 or 169.254.169.254).

use std::net::SocketAddr;
use std::sync::Arc;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use super::address::{AddressPolicy, AddressRefused};

/// The operating system's resolver (`getaddrinfo` on a blocking thread, as reqwest's own).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// Asks `inner`, then keeps only the addresses `policy` allows. When none is left, the
/// lookup fails with the [`AddressRefused`] of the first one, which
/// [`super::map_reqwest_error`] turns into a misconfiguration.
#[derive(Clone)]
pub struct FilteringResolver {
    inner: Arc<dyn Resolve>,
    policy: AddressPolicy,
}

impl FilteringResolver {
    /// `inner`'s answers, filtered by `policy`.
    pub fn new(inner: Arc<dyn Resolve>, policy: AddressPolicy) -> Self {
        FilteringResolver { inner, policy }
    }
}

impl Resolve for FilteringResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let policy = self.policy;
        let lookup = self.inner.resolve(name);
        Box::pin(async move {
            let mut refused = None;
            let allowed: Vec<SocketAddr> = lookup
                .await?
                .filter(|addr| match policy.check(addr.ip()) {
                    Ok(()) => true,
                    Err(class) => {
                        refused.get_or_insert(AddressRefused {
                            host: host.clone(),
                            ip: addr.ip(),
                            class,
                        });
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refused) {
                (true, Some(refused)) => Err(refused.into()),
                (true, None) => Err(format!("no address found for {host}").into()),
                (false, _) => Ok(Box::new(allowed.into_iter()) as Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::address::AddressClass;

    /// Answers every name with the addresses it was given.
    struct Fixed(Vec<SocketAddr>);

    impl Resolve for Fixed {
        fn resolve(&self, _: Name) -> Resolving {
            let addrs = self.0.clone();
            Box::pin(async move { Ok(Box::new(addrs.into_iter()) as Addrs) })
        }
    }

    fn resolve(answers: &[&str], policy: AddressPolicy) -> Result<Vec<SocketAddr>, String> {
        let answers = answers
            .iter()
            .map(|a| SocketAddr::new(a.parse().unwrap(), 0))
            .collect();
        let r = FilteringResolver::new(Arc::new(Fixed(answers)), policy);
        let name: Name = "ntfy.example.com".parse().unwrap();
        futures::executor::block_on(r.resolve(name))
            .map(|addrs| addrs.collect())
            .map_err(|e| match e.downcast_ref::<AddressRefused>() {
                Some(refused) => format!("{:?}", refused.class),
                None => e.to_string(),
            })
    }

    #[test]
    fn refused_answers_are_dropped_and_allowed_ones_kept() {
        let strict = AddressPolicy::PublicOnly;
        assert_eq!(resolve(&["127.0.0.1"], strict), Err("Loopback".into()));
        assert_eq!(
            resolve(&["169.254.169.254"], AddressPolicy::AllowPrivate),
            Err(format!("{:?}", AddressClass::LinkLocal))
        );
        let mixed = resolve(&["10.0.0.1", "93.184.216.34"], strict).unwrap();
        assert_eq!(mixed, ["93.184.216.34:0".parse().unwrap()]);
        let lan = resolve(
            &["10.0.0.1", "::ffff:127.0.0.1"],
            AddressPolicy::AllowPrivate,
        );
        assert_eq!(lan.unwrap().len(), 2);
        assert!(resolve(&[], strict).unwrap_err().contains("no address"));
    }
}
