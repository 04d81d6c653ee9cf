//! Host names resolved once per endpoint, not once per connection.
//!
//! `tokio::net::lookup_host` runs the system resolver on tokio's blocking pool. A gateway that
//! opens a thousand connections to the same DPS or hub host at once would start up to 512 pool
//! threads to ask the same question a thousand times: each thread a stack and a malloc arena
//! of its own (#16 measured 5.4 MiB of peak memory and 7 % of the CPU per registration for a
//! fleet of 1,000 in flight). Here the first connection to a host asks, every connection that
//! arrives while it asks waits for that one answer, and the answer is reused for a short while.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use crate::error::TransportError;

/// How long an answer is reused. The system resolver does not tell the record's TTL; this is
/// short enough that a hub whose address moves (a failover) is found again within a reconnect
/// or two, and long enough to cover a burst of connections. A connection that fails at every
/// address forgets the answer at once ([`Resolver::forget`]).
const REUSE_FOR: Duration = Duration::from_secs(30);

/// An answer shared by everyone who asked while it was looked up.
type Answer = Result<Arc<[SocketAddr]>, String>;

struct Entry {
    answer: Arc<OnceCell<Answer>>,
    asked: Instant,
}

/// Answers by `(host, port)`; hosts are kept lower-case (DNS names are case-insensitive).
pub(crate) struct Resolver {
    entries: Mutex<HashMap<(String, u16), Entry>>,
    reuse_for: Duration,
}

impl Resolver {
    fn new(reuse_for: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            reuse_for,
        }
    }

    /// The process's resolver: every transport and client shares its answers.
    pub(crate) fn global() -> &'static Self {
        static GLOBAL: OnceLock<Resolver> = OnceLock::new();
        GLOBAL.get_or_init(|| Self::new(REUSE_FOR))
    }

    /// The addresses of `host`: an IP literal as it is, a name through the system resolver.
    pub(crate) async fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Arc<[SocketAddr]>, TransportError> {
        self.resolve_with(host, port, || system_lookup(host.to_owned(), port))
            .await
    }

    async fn resolve_with<F, Fut>(
        &self,
        host: &str,
        port: u16,
        lookup: F,
    ) -> Result<Arc<[SocketAddr]>, TransportError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Answer>,
    {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Arc::from([SocketAddr::new(ip, port)]));
        }
        let key = (host.to_ascii_lowercase(), port);
        let answer = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            // A handful of endpoints per process: sweeping them all is cheaper than a timer.
            // An answer still being looked up is kept whatever its age.
            entries.retain(|_, entry| {
                !entry.answer.initialized() || now.duration_since(entry.asked) < self.reuse_for
            });
            let entry = entries.entry(key).or_insert_with(|| Entry {
                answer: Arc::default(),
                asked: now,
            });
            Arc::clone(&entry.answer)
        };
        match answer.get_or_init(lookup).await {
            Ok(addresses) => Ok(Arc::clone(addresses)),
            Err(message) => {
                // A failure is not kept: the next attempt asks again.
                self.forget_answer(host, port, &answer);
                Err(TransportError::Dns {
                    host: host.to_owned(),
                    message: message.clone(),
                })
            }
        }
    }

    /// Forgets the answer for `host`: none of its addresses took a connection.
    pub(crate) fn forget(&self, host: &str, port: u16) {
        let key = (host.to_ascii_lowercase(), port);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.get(&key).is_some_and(|e| e.answer.initialized()) {
            entries.remove(&key);
        }
    }

    /// Forgets `answer` if it is still the one kept (not a newer one someone else asked for).
    fn forget_answer(&self, host: &str, port: u16, answer: &Arc<OnceCell<Answer>>) {
        let key = (host.to_ascii_lowercase(), port);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries
            .get(&key)
            .is_some_and(|e| Arc::ptr_eq(&e.answer, answer))
        {
            entries.remove(&key);
        }
    }
}

async fn system_lookup(host: String, port: u16) -> Answer {
    match tokio::net::lookup_host((host.as_str(), port)).await {
        Ok(addresses) => {
            let addresses: Arc<[SocketAddr]> = addresses.collect();
            if addresses.is_empty() {
                Err("no addresses".to_owned())
            } else {
                tracing::debug!(host, port, count = addresses.len(), "resolved");
                Ok(addresses)
            }
        }
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, last], 8883))
    }

    /// A lookup that counts its calls and gives `answer` after a pause (so callers overlap).
    async fn slow(calls: &AtomicUsize, answer: Answer) -> Answer {
        calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(20)).await;
        answer
    }

    #[tokio::test]
    async fn concurrent_connections_to_one_host_share_one_lookup() {
        let resolver = Resolver::new(Duration::from_secs(60));
        let calls = AtomicUsize::new(0);
        let answers = futures_util::future::join_all((0..100).map(|i| {
            let host = if i % 2 == 0 {
                "Hub.Example"
            } else {
                "hub.example"
            };
            resolver.resolve_with(host, 8883, || slow(&calls, Ok(Arc::from([addr(1)]))))
        }))
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(
            answers
                .iter()
                .all(|a| a.as_deref().ok() == Some(&[addr(1)][..]))
        );
        // Another port is another endpoint.
        resolver
            .resolve_with("hub.example", 443, || {
                slow(&calls, Ok(Arc::from([addr(2)])))
            })
            .await
            .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failure_is_not_kept_and_is_a_typed_dns_error() {
        let resolver = Resolver::new(Duration::from_secs(60));
        let calls = AtomicUsize::new(0);
        let error = resolver
            .resolve_with("nowhere.example", 1, || {
                slow(&calls, Err("no such host".into()))
            })
            .await
            .unwrap_err();
        assert!(
            matches!(&error, TransportError::Dns { host, message } if host == "nowhere.example" && message == "no such host"),
            "{error:?}"
        );
        let addresses = resolver
            .resolve_with("nowhere.example", 1, || {
                slow(&calls, Ok(Arc::from([addr(3)])))
            })
            .await
            .unwrap();
        assert_eq!(&addresses[..], &[addr(3)]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_answer_is_asked_again_when_old_or_forgotten() {
        async fn ask(resolver: &Resolver, calls: &AtomicUsize) {
            let answer = Ok(Arc::from([addr(4)]));
            let addresses = resolver
                .resolve_with("h.example", 1, || slow(calls, answer))
                .await
                .unwrap();
            assert_eq!(&addresses[..], &[addr(4)]);
        }
        let calls = AtomicUsize::new(0);
        let kept = Resolver::new(Duration::from_secs(60));
        ask(&kept, &calls).await;
        ask(&kept, &calls).await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        kept.forget("H.example", 1);
        ask(&kept, &calls).await;
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        let expiring = Resolver::new(Duration::ZERO);
        ask(&expiring, &calls).await;
        ask(&expiring, &calls).await;
        assert_eq!(calls.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn an_ip_literal_is_never_looked_up() {
        let resolver = Resolver::new(Duration::from_secs(60));
        let calls = AtomicUsize::new(0);
        for (host, ip) in [("127.0.0.1", "127.0.0.1"), ("::1", "::1")] {
            let addresses = resolver
                .resolve_with(host, 9, || slow(&calls, Err("asked".into())))
                .await
                .unwrap();
            assert_eq!(&addresses[..], &[SocketAddr::new(ip.parse().unwrap(), 9)]);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn the_system_resolver_answers_for_localhost() {
        let addresses = Resolver::global().resolve("localhost", 8883).await.unwrap();
        assert!(
            addresses
                .iter()
                .all(|a| a.ip().is_loopback() && a.port() == 8883)
        );
        let again = Resolver::global().resolve("LOCALHOST", 8883).await.unwrap();
        assert!(
            Arc::ptr_eq(&addresses, &again),
            "the second connection reuses the answer"
        );
    }
}
