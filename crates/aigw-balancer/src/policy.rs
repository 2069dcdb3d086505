use aigw_core::{Error, ErrorKind};

/// What happened to an attempt, in the vocabulary of Kong's `failover_criteria`
/// (nginx's `proxy_next_upstream`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The target could not be reached; the request was never sent.
    ConnectFailed,
    /// The connection failed after the request was sent.
    Error,
    /// The target did not answer in time.
    Timeout,
    /// The target's answer could not be understood.
    InvalidHeader,
    /// The target answered with this HTTP status.
    Status(u16),
}

impl Outcome {
    /// Classifies a failed attempt; `None` when the failure is not the target's (a client
    /// mistake or a gateway bug), which no other target would fix.
    pub fn of(error: &Error) -> Option<Outcome> {
        match error.kind() {
            ErrorKind::UpstreamUnreachable => Some(Outcome::ConnectFailed),
            ErrorKind::UpstreamTimeout => Some(Outcome::Timeout),
            ErrorKind::UpstreamProtocol => Some(Outcome::InvalidHeader),
            ErrorKind::UpstreamError | ErrorKind::UpstreamRejected | ErrorKind::Throttled => {
                Some(match error.upstream_status() {
                    Some(status) => Outcome::Status(status),
                    None => Outcome::Error,
                })
            }
            _ => None,
        }
    }
}

/// When a failed attempt moves on to another target: Kong's `retries` and
/// `failover_criteria`.
///
/// A chat request is not idempotent, so once it has reached a target it moves on only when
/// `non_idempotent` is allowed, as nginx does; a connection that never opened moves on
/// whenever `error` is allowed.
#[derive(Debug, Clone)]
pub struct FailoverPolicy {
    /// How many other targets one request may fail over to.
    pub retries: u32,
    /// `error`: connection failures.
    pub on_error: bool,
    /// `timeout`.
    pub on_timeout: bool,
    /// `invalid_header`: unreadable answers.
    pub on_invalid_header: bool,
    /// `http_NNN`: the listed upstream statuses.
    pub on_status: Vec<u16>,
    /// `non_idempotent`: allow failover after the request was sent.
    pub non_idempotent: bool,
}

impl Default for FailoverPolicy {
    /// Kong's defaults: 5 retries on `[error, timeout]`.
    fn default() -> Self {
        FailoverPolicy {
            retries: 5,
            on_error: true,
            on_timeout: true,
            on_invalid_header: false,
            on_status: Vec::new(),
            non_idempotent: false,
        }
    }
}

impl FailoverPolicy {
    /// Whether a request that failed this way may try another target.
    pub fn allows(&self, error: &Error) -> bool {
        let Some(outcome) = Outcome::of(error) else {
            return false;
        };
        if outcome == Outcome::ConnectFailed {
            return self.on_error;
        }
        let listed = match outcome {
            Outcome::ConnectFailed | Outcome::Error => self.on_error,
            Outcome::Timeout => self.on_timeout,
            Outcome::InvalidHeader => self.on_invalid_header,
            Outcome::Status(status) => self.on_status.contains(&status),
        };
        listed && self.non_idempotent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(kind: ErrorKind, status: u16) -> Error {
        Error::new(kind, "x").with_upstream_status(status)
    }

    #[test]
    fn default_policy_fails_over_only_before_sending() {
        let policy = FailoverPolicy::default();
        assert!(policy.allows(&Error::new(ErrorKind::UpstreamUnreachable, "refused")));
        assert!(!policy.allows(&Error::new(ErrorKind::UpstreamTimeout, "slow")));
        assert!(!policy.allows(&upstream(ErrorKind::UpstreamError, 500)));
        assert!(!policy.allows(&Error::invalid_request("bad")));
    }

    #[test]
    fn listed_statuses_fail_over_with_non_idempotent() {
        let policy = FailoverPolicy {
            on_status: vec![429, 500],
            non_idempotent: true,
            ..FailoverPolicy::default()
        };
        assert!(policy.allows(&upstream(ErrorKind::Throttled, 429)));
        assert!(policy.allows(&upstream(ErrorKind::UpstreamError, 500)));
        assert!(!policy.allows(&upstream(ErrorKind::UpstreamError, 503)));
        assert!(policy.allows(&Error::new(ErrorKind::UpstreamTimeout, "slow")));
        let without_error = FailoverPolicy {
            on_error: false,
            ..policy
        };
        assert!(!without_error.allows(&Error::new(ErrorKind::UpstreamUnreachable, "refused")));
    }
}
