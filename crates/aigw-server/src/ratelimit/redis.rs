//! `strategy: redis`: counters shared by every replica through Redis.
//!
//! Each window of each counter is one Redis key, `aigw:rl:<counter>:<window index>`, that
//! expires by itself two windows after it began. A check reads the current and previous
//! windows of every counter the request may use with one `MGET`: the only Redis round trip
//! before the request goes upstream. A charge is one Lua script (`INCRBYFLOAT` and `EXPIRE`
//! for every key, atomically, so replicas never lose each other's updates), made once the
//! answer is complete: with `sync_rate: 0` (Kong's "synchronous") a whole answer is
//! released only once Redis holds its charge, so the client's next request counts it on any
//! replica; a stream's charge goes from a task when it ends. With `sync_rate` above 0 charges
//! are summed in memory and sent in one script every `sync_rate` seconds, as Kong batches
//! them, and nothing waits on them.
//!
//! While Redis cannot be reached the limit keeps working on this replica's own counters
//! (which every charge also updates), each failure is logged and counted as
//! `aigw_ratelimit_redis_errors_total`, and Redis is tried again a second later.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use aigw_config::RedisConfig;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use super::CounterKey;
use super::local::LocalCounters;
use super::window::{Counts, index};

/// How long a failed Redis is left alone before it is tried again.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Adds `ARGV[2i-1]` to `KEYS[i]` and sets its time to live to `ARGV[2i]` seconds, for
/// every key, in one atomic step.
const CHARGE_SCRIPT: &str = r"
for i, key in ipairs(KEYS) do
  redis.call('INCRBYFLOAT', key, ARGV[2 * i - 1])
  redis.call('EXPIRE', key, ARGV[2 * i])
end
return #KEYS
";

static REDIS_ERRORS: AtomicU64 = AtomicU64::new(0);

/// Redis calls of every rate limit in this process that failed so far.
pub fn redis_errors_total() -> u64 {
    REDIS_ERRORS.load(Ordering::Relaxed)
}

fn failed(what: &str, error: &dyn std::fmt::Display) {
    REDIS_ERRORS.fetch_add(1, Ordering::Relaxed);
    aigw_telemetry::metrics().count_ratelimit_redis_error();
    tracing::warn!(%error, "ai-rate-limiting-advanced: Redis {what} failed; counting locally until it is back");
}

/// One limiter's Redis counters, with the local ones as the fallback.
pub(crate) struct RedisCounters {
    config: RedisConfig,
    sync_rate: f64,
    connection: OnceCell<ConnectionManager>,
    /// Until when Redis is left alone after a failure.
    down_until: Mutex<Option<Instant>>,
    script: redis::Script,
    local: LocalCounters,
    /// With `sync_rate` above 0: amounts not yet sent, by Redis key and its lifetime.
    pending: Mutex<HashMap<String, (f64, u64)>>,
    flusher_started: std::sync::atomic::AtomicBool,
}

impl RedisCounters {
    /// Counters on the Redis `config` names; nothing connects until the first use.
    pub(crate) fn new(config: RedisConfig, sync_rate: f64) -> Arc<Self> {
        Arc::new(RedisCounters {
            config,
            sync_rate,
            connection: OnceCell::new(),
            down_until: Mutex::new(None),
            script: redis::Script::new(CHARGE_SCRIPT),
            local: LocalCounters::default(),
            pending: Mutex::new(HashMap::new()),
            flusher_started: std::sync::atomic::AtomicBool::new(false),
        })
    }

    fn is_down(&self) -> bool {
        let mut down = self
            .down_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match *down {
            Some(until) if Instant::now() < until => true,
            Some(_) => {
                *down = None;
                false
            }
            None => false,
        }
    }

    fn mark_down(&self) {
        *self
            .down_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(Instant::now() + RETRY_AFTER);
    }

    /// The shared connection, made on first use; `None` while Redis is down.
    async fn connection(&self) -> Option<ConnectionManager> {
        if self.is_down() {
            return None;
        }
        let made = self
            .connection
            .get_or_try_init(|| async {
                let mut settings =
                    redis::RedisConnectionInfo::default().set_db(self.config.database);
                if let Some(username) = &self.config.username {
                    settings = settings.set_username(username);
                }
                if let Some(password) = &self.config.password {
                    settings = settings.set_password(password);
                }
                let (host, port) = (self.config.host.clone(), self.config.port);
                let addr = if self.config.tls {
                    redis::ConnectionAddr::TcpTls {
                        host,
                        port,
                        insecure: !self.config.tls_verify,
                        tls_params: None,
                    }
                } else {
                    redis::ConnectionAddr::Tcp(host, port)
                };
                let info = redis::IntoConnectionInfo::into_connection_info(addr)?
                    .set_redis_settings(settings);
                let client = redis::Client::open(info)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.config.connect_timeout))
                    .set_response_timeout(Some(self.config.response_timeout))
                    // Reconnecting is tried on the next call, never in a loop of its own.
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(client, config).await
            })
            .await;
        match made {
            Ok(connection) => Some(connection.clone()),
            Err(error) => {
                failed("connect", &error);
                self.mark_down();
                None
            }
        }
    }

    fn redis_key(key: &CounterKey, window_index: u64) -> String {
        format!("aigw:rl:{}:{window_index}", key.name)
    }

    /// The counts of `keys` at `now`: Redis's, or the local ones when Redis fails.
    pub(crate) async fn read(&self, keys: &[CounterKey], now: f64) -> Vec<Counts> {
        if keys.is_empty() {
            return Vec::new();
        }
        let Some(mut connection) = self.connection().await else {
            return self.local.read(keys, now);
        };
        let mut names = Vec::with_capacity(keys.len() * 2);
        for key in keys {
            let current = index(now, key.window);
            names.push(Self::redis_key(key, current));
            names.push(Self::redis_key(key, current.saturating_sub(1)));
        }
        let values: Result<Vec<Option<f64>>, _> = redis::cmd("MGET")
            .arg(&names)
            .query_async(&mut connection)
            .await;
        match values {
            Ok(values) => {
                let pending = self.pending_for(&names);
                values
                    .chunks(2)
                    .zip(pending.chunks(2))
                    .map(|(pair, unsent)| Counts {
                        current: pair.first().copied().flatten().unwrap_or(0.0) + unsent[0],
                        previous: pair.get(1).copied().flatten().unwrap_or(0.0) + unsent[1],
                    })
                    .collect()
            }
            Err(error) => {
                failed("read", &error);
                self.mark_down();
                self.local.read(keys, now)
            }
        }
    }

    /// What this replica charged to `names` and has not sent yet.
    fn pending_for(&self, names: &[String]) -> Vec<f64> {
        let pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        names
            .iter()
            .map(|n| pending.get(n).map_or(0.0, |(amount, _)| *amount))
            .collect()
    }

    /// Whether charges are written as they happen (`sync_rate: 0`), not batched.
    pub(crate) fn is_synchronous(&self) -> bool {
        self.sync_rate <= 0.0
    }

    /// Adds `amount` to `keys` at `now`, locally and in Redis, returning once Redis has it
    /// (or failed).
    pub(crate) async fn add_now(&self, keys: Vec<CounterKey>, amount: f64, now: f64) {
        self.local.add(&keys, amount, now);
        self.send(Self::charges(&keys, amount, now)).await;
    }

    fn charges(keys: &[CounterKey], amount: f64, now: f64) -> Vec<(String, f64, u64)> {
        keys.iter()
            .map(|key| {
                let name = Self::redis_key(key, index(now, key.window));
                (name, amount, key.window.saturating_mul(2).saturating_add(1))
            })
            .collect()
    }

    /// Adds `amount` to `keys` at `now`: locally at once, in Redis from a task.
    pub(crate) fn add(self: &Arc<Self>, keys: Vec<CounterKey>, amount: f64, now: f64) {
        self.local.add(&keys, amount, now);
        let charges = Self::charges(&keys, amount, now);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.sync_rate > 0.0 {
            {
                let mut pending = self
                    .pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                for (name, amount, ttl) in charges {
                    let entry = pending.entry(name).or_insert((0.0, ttl));
                    entry.0 += amount;
                }
            }
            if !self.flusher_started.swap(true, Ordering::AcqRel) {
                let period = Duration::from_secs_f64(self.sync_rate);
                runtime.spawn(flush_every(Arc::downgrade(self), period));
            }
            return;
        }
        let counters = self.clone();
        runtime.spawn(async move {
            counters.send(charges).await;
        });
    }

    /// Runs the charge script over `charges`; false when Redis failed.
    async fn send(&self, charges: Vec<(String, f64, u64)>) -> bool {
        if charges.is_empty() {
            return true;
        }
        let Some(mut connection) = self.connection().await else {
            return false;
        };
        let mut invocation = self.script.prepare_invoke();
        for (name, amount, ttl) in &charges {
            invocation.key(name).arg(*amount).arg(*ttl);
        }
        let sent: Result<i64, _> = invocation.invoke_async(&mut connection).await;
        match sent {
            Ok(_) => true,
            Err(error) => {
                failed("update", &error);
                self.mark_down();
                false
            }
        }
    }
}

/// Sends the summed charges every `period` while the counters live.
async fn flush_every(counters: Weak<RedisCounters>, period: Duration) {
    // The first batch goes a whole period after the first charge, not at once.
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(counters) = counters.upgrade() else {
            return;
        };
        let lock = || {
            counters
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        // Amounts stay pending (and counted by this replica's checks) until Redis has
        // them: a check between the two then counts them twice, never not at all.
        let batch: Vec<(String, f64, u64)> = lock()
            .iter()
            .map(|(name, (amount, ttl))| (name.clone(), *amount, *ttl))
            .collect();
        let sent = counters.send(batch.clone()).await;
        let mut pending = lock();
        for (name, amount, _) in batch {
            if !sent {
                // Redis refused the batch; this replica's local counters still hold it.
                pending.remove(&name);
                continue;
            }
            if let Some(entry) = pending.get_mut(&name) {
                entry.0 -= amount;
                if entry.0 <= f64::EPSILON {
                    pending.remove(&name);
                }
            }
        }
    }
}
