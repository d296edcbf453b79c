//! Conversions between the SDK's types and the WIT types of the generated bindings.

use std::time::Duration;

use crate::__bindings::wasmgate::plugin::types as wit;
use crate::{
    Action, Failure, FailureKind, LogEntry, Method, Response, Settings, Target, UpstreamCall,
};

impl From<wit::Method> for Method {
    fn from(m: wit::Method) -> Self {
        match m {
            wit::Method::Get => Self::Get,
            wit::Method::Head => Self::Head,
            wit::Method::Post => Self::Post,
            wit::Method::Put => Self::Put,
            wit::Method::Delete => Self::Delete,
            wit::Method::Connect => Self::Connect,
            wit::Method::Options => Self::Options,
            wit::Method::Trace => Self::Trace,
            wit::Method::Patch => Self::Patch,
            wit::Method::Other(token) => Self::Other(token),
        }
    }
}

impl From<&Method> for wit::Method {
    fn from(m: &Method) -> Self {
        match m {
            Method::Get => Self::Get,
            Method::Head => Self::Head,
            Method::Post => Self::Post,
            Method::Put => Self::Put,
            Method::Delete => Self::Delete,
            Method::Connect => Self::Connect,
            Method::Options => Self::Options,
            Method::Trace => Self::Trace,
            Method::Patch => Self::Patch,
            Method::Other(token) => Self::Other(token.clone()),
        }
    }
}

impl From<wit::UpstreamCall> for UpstreamCall {
    fn from(u: wit::UpstreamCall) -> Self {
        Self {
            service: u.service,
            endpoint: u.endpoint,
        }
    }
}

impl From<Response> for wit::Response {
    fn from(r: Response) -> Self {
        Self {
            status: r.status,
            headers: r.headers.into_list(),
            body: r.body.unwrap_or_default(),
        }
    }
}

impl From<wit::SocketMessage> for crate::websocket::SocketMessage {
    fn from(message: wit::SocketMessage) -> Self {
        match message {
            wit::SocketMessage::Text(text) => Self::Text(text),
            wit::SocketMessage::Binary(bytes) => Self::Binary(bytes),
        }
    }
}

impl From<crate::websocket::Verdict> for wit::MessageVerdict {
    fn from(verdict: crate::websocket::Verdict) -> Self {
        use crate::websocket::Verdict;
        match verdict {
            Verdict::Forward => Self::Forward,
            Verdict::Release => Self::Release,
            Verdict::Accept => Self::Accept,
            Verdict::Drop => Self::Drop,
            Verdict::Close { code, reason } => Self::Close(wit::CloseFrame { code, reason }),
        }
    }
}

impl From<Action> for wit::Action {
    fn from(action: Action) -> Self {
        match action {
            Action::Continue => Self::Continue,
            Action::ContinueTo(Target::Service(name)) => {
                Self::ContinueTo(wit::Target::Service(name))
            }
            Action::ContinueTo(Target::Endpoint(url)) => {
                Self::ContinueTo(wit::Target::Endpoint(url))
            }
            Action::Respond(response) => Self::Respond(response.into()),
        }
    }
}

impl From<Settings> for wit::Settings {
    fn from(s: Settings) -> Self {
        Self {
            request_body: s.request_body,
            response_body: s.response_body,
            request_only: s.request_only,
            log: s.log,
        }
    }
}

impl From<wit::FailureKind> for FailureKind {
    fn from(kind: wit::FailureKind) -> Self {
        match kind {
            wit::FailureKind::PluginTrap => Self::PluginTrap,
            wit::FailureKind::PluginTimeout => Self::PluginTimeout,
            wit::FailureKind::PluginOutOfMemory => Self::PluginOutOfMemory,
            wit::FailureKind::PluginRefused => Self::PluginRefused,
            wit::FailureKind::PluginUnavailable => Self::PluginUnavailable,
            wit::FailureKind::BodyTooLarge => Self::BodyTooLarge,
            wit::FailureKind::UpstreamUnreachable => Self::UpstreamUnreachable,
            wit::FailureKind::UpstreamTimeout => Self::UpstreamTimeout,
            wit::FailureKind::UpstreamTooLarge => Self::UpstreamTooLarge,
            wit::FailureKind::NoUpstream => Self::NoUpstream,
        }
    }
}

impl From<wit::LogEntry> for LogEntry {
    fn from(e: wit::LogEntry) -> Self {
        Self {
            request_id: e.request_id,
            trace_id: e.trace_id,
            route: e.route,
            client_addr: e.client_addr,
            received_unix_ms: e.received_unix_ms,
            method: e.method.into(),
            path: e.path,
            query: e.query,
            status: e.status,
            answered_by: e.answered_by,
            failure: e.failure.map(|f| Failure {
                kind: f.kind.into(),
                code: f.code,
                plugin: f.plugin,
            }),
            bytes_in: e.bytes_in,
            bytes_out: e.bytes_out,
            complete: e.complete,
            total: Duration::from_nanos(e.total_ns),
            upstream_time: e.upstream_ns.map(Duration::from_nanos),
            upstream: e.upstream.map(Into::into),
            plugins: e
                .plugins
                .into_iter()
                .map(|p| (p.plugin, Duration::from_nanos(p.ns)))
                .collect(),
            vars: e.vars,
        }
    }
}
