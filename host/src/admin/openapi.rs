//! `GET /admin/openapi.json`: the admin API describing itself (OpenAPI 3.1), for
//! clients, dashboards and API tools. Every path the admin router serves is here; the
//! end-to-end tests call each one the document names.

use serde_json::{Value, json};

/// One operation: its summary, what its 200 holds, and the other statuses it may answer.
fn operation(
    id: &str,
    summary: &str,
    ok: &str,
    content_type: &str,
    others: &[(&str, &str)],
) -> Value {
    let mut responses = serde_json::Map::new();
    responses.insert(
        "200".into(),
        json!({
            "description": ok,
            "content": { content_type: { "schema": { "type": if content_type == "application/json" { "object" } else { "string" } } } },
        }),
    );
    for (status, description) in others {
        responses.insert(
            status.to_string(),
            json!({
                "description": description,
                "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Envelope" } } },
            }),
        );
    }
    json!({ "operationId": id, "summary": summary, "responses": responses })
}

/// The document, for the gateway of version `version`.
pub fn document(version: &str) -> Value {
    let json_get = |id: &str, summary: &str, ok: &str| json!({ "get": operation(id, summary, ok, "application/json", &[]) });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "wasmgate admin API",
            "version": version,
            "description": "The operator's view of a running wasmgate: routes, plugins, services, the state store, reloads. On its own listener (loopback unless allow_remote); no authentication. Errors are the gateway's JSON envelope. Routes with listener = \"admin\" are served here too, behind these paths.",
        },
        "paths": {
            "/": { "get": operation("dashboard", "The dashboard (HTML; its script and style sheet are under /dashboard/)", "The page", "text/html", &[]) },
            "/admin/openapi.json": json_get("openapi", "This document", "The OpenAPI 3.1 description of the admin API"),
            "/admin/plugins": json_get("plugins", "Every plugin file", "name, status (loaded or rejected), hash, wit_version, loaded_at, compile_ms, cache, calls, errors, routes, last_rejection; and the latest rejection of any kind"),
            "/admin/routes": json_get("routes", "The routes being served", "Each route's matchers (host, methods, path or prefix, header and query conditions), service or weighted services, limits and whole plugin chain (global entries marked)"),
            "/admin/services": json_get("services", "Upstream services and their endpoints", "Per service: balance, outlier and breaker settings, circuit; per endpoint: url, weight, probe_down, ejected_for_ms, consecutive_failures, active, circuit"),
            "/admin/snapshot": json_get("snapshot", "The serving configuration", "generation, loaded_at, config_file, counts, reloads (applied, rejected, last_rejection)"),
            "/admin/reload": {
                "post": operation("reload", "Reload the config and plugins now", "{\"result\": \"applied\" | \"unchanged\", \"generation\": N}", "application/json", &[("422", "RELOAD_REJECTED: the new config or a plugin is unusable; the old generation keeps serving")]),
            },
            "/admin/state": json_get("state", "The state store behind plugins' kv", "backend (sled or redis), size_on_disk_bytes or url, sweep_interval_ms, last_sweep"),
            "/admin/state/sweep": {
                "post": operation("sweep", "Remove expired kv entries now", "What the sweep found: at, took_ms, removed, per namespace entries and bytes", "application/json", &[]),
            },
            "/health": json_get("health", "The gateway's health", "status (healthy or degraded), version, uptime_seconds, generation, timestamp, state store, and per service its status, response_time and endpoints"),
            "/health/live": json_get("live", "Liveness", "The process answers"),
            "/health/ready": json_get("ready", "Readiness", "A snapshot serves (503 before)"),
            "/metrics": { "get": operation("metrics", "Prometheus metrics", "The text exposition format", "text/plain", &[]) },
        },
        "components": {
            "schemas": {
                "Envelope": {
                    "type": "object",
                    "description": "Every error the gateway answers itself",
                    "required": ["success", "error", "code", "request_id", "timestamp"],
                    "properties": {
                        "success": { "const": false },
                        "error": { "type": "string" },
                        "code": { "type": "string" },
                        "data": { "type": "object" },
                        "request_id": { "type": "string" },
                        "timestamp": { "type": "string", "format": "date-time" },
                    },
                },
            },
        },
    })
}
