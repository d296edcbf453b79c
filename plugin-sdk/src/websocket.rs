//! WebSocket messages, for plugins that watch them: in `on_request`, a plugin calls
//! [`crate::Context::watch_messages`] on a WebSocket handshake; the gateway then hands
//! it each message the client sends ([`crate::Plugin::on_message`]) until its
//! [`Verdict`] stops that, and connects the upstream only once every watching plugin
//! has let a message through. Contract 0.5.2.

/// A message from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketMessage {
    /// A text message.
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl SocketMessage {
    /// The text of a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => Some(text),
            Self::Binary(_) => None,
        }
    }
}

/// What becomes of a message the plugin watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Pass it on, and keep watching.
    Forward,
    /// Pass it on, and the later ones without calling this plugin again (the default
    /// of [`crate::Plugin::on_message`]).
    Release,
    /// Keep it from the upstream, and stop watching: the message was the plugin's own
    /// handshake (a first-message token).
    Accept,
    /// Keep it from the upstream, and keep watching.
    Drop,
    /// Close the WebSocket: `code` 1000 (normal), 1008 (policy violation), 3000-4999
    /// (the application's own); another is sent as 1008. `reason` is cut at 123
    /// bytes.
    Close {
        /// The close code.
        code: u16,
        /// Why, for the client.
        reason: String,
    },
}

impl Verdict {
    /// `Close` with 1008 (policy violation), what an auth plugin answers a missing or
    /// bad token with.
    pub fn policy_violation(reason: &str) -> Self {
        Self::Close {
            code: 1008,
            reason: reason.to_string(),
        }
    }
}
