//! What the metrics endpoint answers (served by [`crate::http`]'s loop):
//! `/metrics` rendered at most once per [`RENDER_EVERY`], requests in
//! between getting the same text; `/healthz` answered live.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::exposition;
use crate::http::{Request, Response, Routes};
use crate::server::Shared;

/// How long a rendered `/metrics` text is served again before a new one.
pub const RENDER_EVERY: Duration = Duration::from_millis(100);

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The metrics endpoint's routes.
#[derive(Debug)]
pub struct MetricsRoutes {
    shared: Arc<Shared>,
    /// The last `/metrics` text and when it was rendered.
    rendered: Option<(Instant, Arc<str>)>,
}

impl MetricsRoutes {
    pub fn new(shared: Arc<Shared>) -> MetricsRoutes {
        MetricsRoutes {
            shared,
            rendered: None,
        }
    }

    /// The `/metrics` text, rendered again when the last is older than
    /// [`RENDER_EVERY`].
    fn metrics_text(&mut self, now: Instant) -> Arc<str> {
        match &self.rendered {
            Some((at, text)) if now.duration_since(*at) < RENDER_EVERY => Arc::clone(text),
            _ => {
                let text: Arc<str> = exposition(&self.shared).into();
                self.rendered = Some((now, Arc::clone(&text)));
                text
            }
        }
    }
}

impl Routes for MetricsRoutes {
    const NAME: &'static str = "metrics";
    const MAX_BODY: usize = 0;

    fn answer(&mut self, request: Request, now: Instant) -> Response {
        let head_only = request.method == "HEAD";
        let known = matches!(request.path.as_str(), "/metrics" | "/healthz");
        let answer = if known && !matches!(request.method.as_str(), "GET" | "HEAD") {
            Response::text(405, "only GET and HEAD").allow("GET, HEAD")
        } else {
            match request.path.as_str() {
                "/metrics" => Response::new(200, OPENMETRICS, self.metrics_text(now)),
                "/healthz" if self.shared.shutdown.load(Relaxed) => Response::text(503, "draining"),
                "/healthz" => Response::text(200, "serving"),
                _ => Response::text(404, "not found"),
            }
        };
        answer.head_only(head_only)
    }
}
