//! Generation settings a target's config supplies when the client's request is silent.

use crate::ChatRequest;

/// Generation settings from a target's `model.options`, used where a request does not
/// set its own: a value the client sends always wins, in every driver.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RequestDefaults {
    /// Upper bound on generated tokens.
    pub max_tokens: Option<u32>,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Nucleus sampling bound.
    pub top_p: Option<f32>,
}

impl RequestDefaults {
    /// Fills the settings `request` leaves unset.
    pub fn fill(&self, request: &mut ChatRequest) {
        request.max_tokens = request.max_tokens.or(self.max_tokens);
        request.temperature = request.temperature.or(self.temperature);
        request.top_p = request.top_p.or(self.top_p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: RequestDefaults = RequestDefaults {
        max_tokens: Some(256),
        temperature: Some(0.5),
        top_p: Some(0.9),
    };

    #[test]
    fn defaults_apply_when_request_is_silent() {
        let mut request = ChatRequest::default();
        DEFAULTS.fill(&mut request);
        assert_eq!(request.max_tokens, Some(256));
        assert_eq!(request.temperature, Some(0.5));
        assert_eq!(request.top_p, Some(0.9));
    }

    #[test]
    fn request_values_win_over_defaults() {
        // Zero is a value the client chose, not a gap.
        let mut request = ChatRequest {
            max_tokens: Some(10),
            temperature: Some(0.0),
            top_p: Some(0.1),
            ..ChatRequest::default()
        };
        DEFAULTS.fill(&mut request);
        assert_eq!(request.max_tokens, Some(10));
        assert_eq!(request.temperature, Some(0.0));
        assert_eq!(request.top_p, Some(0.1));
    }

    #[test]
    fn unset_defaults_leave_gaps_unset() {
        let mut request = ChatRequest::default();
        RequestDefaults::default().fill(&mut request);
        assert_eq!(request.max_tokens, None);
        assert_eq!(request.temperature, None);
        assert_eq!(request.top_p, None);
    }
}
