//! The TS Portal example's services, standing in for the seed's member, customer,
//! calendar and notice services and HoneyBox: in-memory CRUD on one collection each
//! (items made through the gateway record the caller's `X-User-ID` and `X-Username`
//! as `created_by` and `created_by_name`), HoneyBox's read-only AWS news feed, and
//! `GET /health`. The paths are the gateway's (`/api/members`, …): the gateway passes
//! them on as they are.
//!
//! Usage: `ts-portal-service NAME ADDRESS`.
//!
//! | NAME | paths |
//! |---|---|
//! | `member-service` | `/api/members`, `/api/members/{id}` |
//! | `customer-service` | `/api/customers`, `/api/customers/{id}` |
//! | `calendar-service` | `/api/calendar/events`, `/api/calendar/events/{id}` |
//! | `notice-service` | `/api/notices`, `/api/notices/{id}` |
//! | `honeybox` | `GET /api/feeds`, `GET /api/feeds/latest` |

use axum::Json;
use axum::Router;
use axum::routing::get;
use example_services::{Store, address, crud, health, serve};
use serde_json::{Value, json};

/// HoneyBox's feed: AWS news, newest first.
fn feeds() -> Vec<Value> {
    vec![
        json!({"id": 3, "title": "Amazon EC2 adds new instance types", "source": "aws-whats-new", "published_at": "2025-01-03T09:00:00Z"}),
        json!({"id": 2, "title": "Amazon S3 lowers request prices", "source": "aws-whats-new", "published_at": "2025-01-02T09:00:00Z"}),
        json!({"id": 1, "title": "AWS Lambda supports a new runtime", "source": "aws-blog", "published_at": "2025-01-01T09:00:00Z"}),
    ]
}

/// The CRUD collection of each service: its path and first items.
fn collection(name: &str) -> Option<(&'static str, Vec<Value>)> {
    Some(match name {
        "member-service" => (
            "/api/members",
            vec![
                json!({"name": "Bae Seungdo", "team": "TS", "role": "lead"}),
                json!({"name": "Park Jisoo", "team": "TS", "role": "engineer"}),
            ],
        ),
        "customer-service" => (
            "/api/customers",
            vec![json!({"name": "Acme Corp", "manager": "Park Jisoo"})],
        ),
        "calendar-service" => (
            "/api/calendar/events",
            vec![json!({"title": "Weekly sync", "start": "2025-01-06T10:00:00+09:00"})],
        ),
        "notice-service" => (
            "/api/notices",
            vec![json!({"title": "Welcome to TS Portal", "body": "Read me first."})],
        ),
        _ => return None,
    })
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: ts-portal-service \
                 member-service|customer-service|calendar-service|notice-service|honeybox ADDRESS";
    let name = args.next().expect(usage);
    let address = address(args.next());
    let app = match collection(&name) {
        Some((path, items)) => crud(path, Store::with(items)),
        None if name == "honeybox" => Router::new()
            .route("/api/feeds", get(|| async { Json(Value::Array(feeds())) }))
            .route(
                "/api/feeds/latest",
                get(|| async { Json(feeds().swap_remove(0)) }),
            ),
        None => panic!("{usage}"),
    };
    serve(&name, address, app.merge(health(&name)), |_| {}).await;
}
