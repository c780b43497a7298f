//! What the control endpoint answers: `/faults` read, replaced and cleared
//! as JSON, every answer a JSON object (errors `{"error": "..."}`).

use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;
use serde_json::{json, Value};
use tracing::info;

use super::Listeners;
use crate::fault::cli::FaultArgs;
use crate::fault::{FaultSpec, Faults};
use crate::http::{Request, Response, Routes};

/// The longest request body taken (a list of faults is a few hundred bytes).
pub const MAX_BODY: usize = 64 * 1024;

/// What the answers to PUT and DELETE say about when a change takes effect.
const APPLIES_TO: &str = "connections accepted and UDP datagrams received from now on";

const ALLOWED: &str = "GET, HEAD, PUT, DELETE";

/// The control endpoint's routes.
#[derive(Debug)]
pub struct ControlRoutes {
    faults: Arc<Faults>,
    listeners: Listeners,
}

impl ControlRoutes {
    pub fn new(faults: Arc<Faults>, listeners: Listeners) -> ControlRoutes {
        ControlRoutes { faults, listeners }
    }

    /// `{"seed": N, "faults": [...]}`, with `applies_to` after a change.
    fn state(&self, changed: bool) -> Value {
        let list = self.faults.list();
        let mut state = json!({"seed": self.faults.seed(), "faults": *list});
        if changed {
            state["applies_to"] = APPLIES_TO.into();
        }
        state
    }

    /// PUT: the whole new list, or why not (nothing changed then).
    fn replace(&self, body: &[u8]) -> Response {
        match self.new_list(body) {
            Ok(specs) => {
                let written: Vec<String> = specs.iter().map(ToString::to_string).collect();
                info!(faults = ?written, "control: the faults in force are replaced");
                self.faults.replace(specs);
                Response::json(200, &self.state(true))
            }
            Err(why) => self.refusal(400, &why),
        }
    }

    /// The list a PUT body gives: a bare array of faults, or `{"faults":
    /// [...]}` (a `seed` there must be the one in force: it is fixed at
    /// startup).
    fn new_list(&self, body: &[u8]) -> Result<Vec<FaultSpec>, String> {
        let value: Value =
            serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
        let entries = match value {
            Value::Array(entries) => entries,
            Value::Object(fields) if fields.contains_key("kind") => {
                return Err("one fault, not a list: the body is the whole list, \
                            [{\"kind\": ...}] or {\"faults\": [...]}"
                    .into())
            }
            Value::Object(mut fields) => {
                if let Some(key) = fields
                    .keys()
                    .find(|k| !["faults", "seed"].contains(&k.as_str()))
                {
                    return Err(format!("unknown field {key:?} (expected \"faults\")"));
                }
                if let Some(seed) = fields.get("seed") {
                    if seed.as_u64() != Some(self.faults.seed()) {
                        return Err(format!(
                            "the seed is fixed at startup (--fault-seed): it is {}, not {seed}",
                            self.faults.seed()
                        ));
                    }
                }
                match fields.remove("faults") {
                    Some(Value::Array(entries)) => entries,
                    Some(_) => return Err("\"faults\" must be an array".into()),
                    None => return Err("no \"faults\" field".into()),
                }
            }
            _ => {
                return Err("the body must be a JSON array of faults or {\"faults\": [...]}".into())
            }
        };
        let specs = entries
            .into_iter()
            .enumerate()
            .map(|(i, entry)| {
                FaultSpec::deserialize(entry).map_err(|e| format!("faults[{i}]: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let args = FaultArgs {
            fault: specs,
            fault_seed: None,
        };
        let l = &self.listeners;
        args.check(&[&l.listen, &l.proxy], &l.udp)?;
        Ok(args.fault)
    }
}

impl Routes for ControlRoutes {
    const NAME: &'static str = "control";
    const MAX_BODY: usize = MAX_BODY;

    fn answer(&mut self, request: Request, _now: Instant) -> Response {
        if request.path != "/faults" {
            return self.refusal(
                404,
                &format!("no such path {:?} (try /faults)", request.path),
            );
        }
        match request.method.as_str() {
            "GET" => Response::json(200, &self.state(false)),
            "HEAD" => Response::json(200, &self.state(false)).head_only(true),
            "PUT" => self.replace(&request.body),
            "DELETE" => {
                info!("control: the faults in force are cleared");
                self.faults.clear();
                Response::json(200, &self.state(true))
            }
            other => self
                .refusal(
                    405,
                    &format!("{other} is not allowed on /faults ({ALLOWED})"),
                )
                .allow(ALLOWED),
        }
    }

    fn refusal(&self, status: u16, why: &str) -> Response {
        Response::json(status, &json!({ "error": why }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes() -> ControlRoutes {
        let listeners = Listeners {
            listen: vec![netaddr::SocketAddrs::parse("127.0.0.1:7000").unwrap()],
            ..Listeners::default()
        };
        ControlRoutes::new(Arc::new(Faults::new(Vec::new(), 42)), listeners)
    }

    #[test]
    fn both_body_forms_give_the_list() {
        let r = routes();
        let bare = br#"[{"kind": "delay", "delay": "100ms", "jitter": "10ms", "p": 0.5}]"#;
        let list = r.new_list(bare).unwrap();
        assert_eq!(list[0].to_string(), "delay=100ms,jitter=10ms,p=0.5");
        let object = br#"{"seed": 42, "faults": [{"kind": "reset", "after": "64KiB"}]}"#;
        assert_eq!(
            r.new_list(object).unwrap()[0].to_string(),
            "reset,after=64KiB"
        );
        assert_eq!(r.new_list(b"[]").unwrap(), []);
    }

    #[test]
    fn a_bad_body_is_named() {
        let r = routes();
        let why = |body: &[u8]| r.new_list(body).unwrap_err();
        assert!(why(b"{").contains("not JSON"));
        assert!(why(b"3").contains("array"));
        assert!(why(br#"{"fault": []}"#).contains("\"fault\""));
        assert!(why(br#"{"kind": "drop"}"#).contains("not a list"));
        assert!(why(br#"{"seed": 7, "faults": []}"#).contains("fixed at startup"));
        let e = why(br#"[{"kind": "reset"}, {"kind": "delay", "delay": "fast"}]"#);
        assert!(e.starts_with("faults[1]") && e.contains("fast"), "{e}");
        assert!(why(br#"[{"kind": "warp"}]"#).contains("unknown fault kind"));
        let e = why(br#"[{"kind": "stall", "on": "127.0.0.1:9"}]"#);
        assert!(e.contains("on=127.0.0.1:9"), "{e}");
        assert!(r
            .new_list(br#"[{"kind": "stall", "on": "127.0.0.1:7000"}]"#)
            .is_ok());
    }
}
