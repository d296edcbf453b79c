//! Test guest: with `x-escape: HOST:PORT` it tries what a plugin must not be able to do,
//! then answers 200 itself with what each attempt got, in headers: `x-fs` (list `/`
//! and `.`, read `/etc/passwd`, write `/tmp`), `x-env` (how many environment
//! variables it sees) and `x-net` (a TCP connection to `HOST:PORT`). Each says
//! `denied` (with the error) or `allowed`. Without the header it passes requests on.

use wasmgate_plugin_sdk::{Action, Context, NoConfig, Plugin, Request, Response, export_plugin};

struct Sandbox;

/// `denied: ERROR` or `allowed: WHAT`, one line.
fn verdict<T, E: std::fmt::Display>(what: &str, result: Result<T, E>) -> String {
    match result {
        Ok(_) => format!("allowed: {what}"),
        Err(error) => format!("denied: {error}").replace(['\r', '\n'], " "),
    }
}

impl Plugin for Sandbox {
    type Config = NoConfig;

    fn new(_: NoConfig) -> Result<Self, String> {
        Ok(Sandbox)
    }

    fn on_request(&self, request: &mut Request, _: &mut Context) -> Action {
        let Some(target) = request.headers.get("x-escape") else {
            return Action::Continue;
        };
        let files = [
            verdict("list /", std::fs::read_dir("/")),
            verdict("list .", std::fs::read_dir(".")),
            verdict("read /etc/passwd", std::fs::read("/etc/passwd")),
            verdict("write /tmp", std::fs::write("/tmp/wasmgate-sandbox", b"x")),
        ];
        let net = verdict(
            &format!("connect {target}"),
            std::net::TcpStream::connect(target.as_str()),
        );
        let mut response = Response::text(200, "tried");
        let fs = if files.iter().all(|f| f.starts_with("denied")) {
            "denied".to_string()
        } else {
            files.join("; ")
        };
        response.headers.set("x-fs", &fs);
        response
            .headers
            .set("x-env", std::env::vars_os().count().to_string());
        response.headers.set("x-net", &net);
        Action::Respond(response)
    }
}

export_plugin!(Sandbox);

#[cfg(test)]
mod tests {
    use wasmgate_plugin_sdk::testing::{Harness, TestRequest};

    use super::*;

    #[test]
    fn passes_requests_without_the_trigger() {
        let mut harness = Harness::<Sandbox>::new("{}").unwrap();
        let request = TestRequest::get("/");
        let outcome = harness.on_request(request.clone());
        assert_eq!(outcome.request(), Some(&request.into()));
    }

    #[test]
    fn answers_with_a_verdict_per_attempt_when_asked() {
        // Natively nothing is sandboxed: this checks the answer's shape only.
        let mut harness = Harness::<Sandbox>::new("{}").unwrap();
        let outcome = harness.on_request(TestRequest::get("/").header("x-escape", "127.0.0.1:1"));
        let response = outcome.response().expect("answers itself");
        assert_eq!(response.status, 200);
        for header in ["x-fs", "x-env", "x-net"] {
            assert!(response.headers.get(header).is_some(), "{header}");
        }
        assert!(
            response.headers.get("x-net").unwrap().starts_with("denied"),
            "nothing listens on port 1"
        );
    }
}
