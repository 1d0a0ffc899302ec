//! The server-side message filter: every text, edit and event entry passes it at the router
//! (so both wirings apply it) before it is sequenced.
//!
//! [`MessageFilter`] is the extension point: a deployment that wants spam scoring or word
//! lists wraps [`DefaultFilter`] in its own filter and hands it to
//! [`Router::with_filter`](crate::Router::with_filter). The default keeps what every chat needs:
//! a size cap and no invisible control characters.

use chorus_core::{Attachment, router::RouterError};

/// What a filter looks at.
#[derive(Debug, Clone, Copy)]
pub struct FilterInput<'a> {
    pub body: &'a str,
    pub attachments: &'a [Attachment],
}

/// Decides whether an entry may be stored. A refusal reaches the sender as the error returned
/// (`bad_request` or `too_large`, usually) and nothing is stored.
pub trait MessageFilter: Send + Sync + 'static {
    fn check(&self, input: FilterInput<'_>) -> Result<(), RouterError>;
}

/// Length and control characters (see [`DefaultFilter::check`]).
#[derive(Debug, Clone)]
pub struct DefaultFilter {
    /// Largest body in UTF-8 bytes.
    pub max_body_bytes: usize,
    /// Largest total of attachment contents, decoded.
    pub max_attachment_bytes: usize,
    /// Most attachments on one message.
    pub max_attachments: usize,
}

impl Default for DefaultFilter {
    fn default() -> Self {
        DefaultFilter {
            max_body_bytes: 4096,
            max_attachment_bytes: 256 << 10,
            max_attachments: 10,
        }
    }
}

/// Characters a body may not contain: C0 controls other than tab, line feed and carriage
/// return; DEL and C1 controls; and the bidirectional overrides used to disguise text.
fn forbidden_char(c: char) -> bool {
    (c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

impl MessageFilter for DefaultFilter {
    /// Refuses a body over `max_body_bytes` or with control characters, and attachments that
    /// are too many, too large in total, or malformed.
    fn check(&self, input: FilterInput<'_>) -> Result<(), RouterError> {
        if input.body.len() > self.max_body_bytes {
            return Err(RouterError::TooLarge(format!(
                "body is larger than {} bytes",
                self.max_body_bytes
            )));
        }
        if input.body.chars().any(forbidden_char) {
            return Err(RouterError::BadRequest(
                "body contains control characters".into(),
            ));
        }
        if input.attachments.len() > self.max_attachments {
            return Err(RouterError::LimitExceeded(format!(
                "at most {} attachments per message",
                self.max_attachments
            )));
        }
        let mut total = 0;
        for a in input.attachments {
            a.validate().map_err(RouterError::BadRequest)?;
            total += a.size();
        }
        if total > self.max_attachment_bytes {
            return Err(RouterError::TooLarge(format!(
                "attachments are larger than {} bytes in total",
                self.max_attachment_bytes
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(body: &str) -> Result<(), RouterError> {
        DefaultFilter::default().check(FilterInput {
            body,
            attachments: &[],
        })
    }

    #[test]
    fn default_filter_keeps_text_and_refuses_controls_and_size() {
        assert!(check("hello\nworld\t\u{1F600} ünïcødé").is_ok());
        assert!(matches!(
            check("bell\u{7}"),
            Err(RouterError::BadRequest(_))
        ));
        assert!(matches!(
            check("esc\u{1b}[31m"),
            Err(RouterError::BadRequest(_))
        ));
        assert!(matches!(
            check("\u{202E}txt.exe"),
            Err(RouterError::BadRequest(_))
        ));
        assert!(matches!(check("c1\u{85}"), Err(RouterError::BadRequest(_))));
        assert!(matches!(
            check(&"x".repeat(4097)),
            Err(RouterError::TooLarge(_))
        ));
    }
}
