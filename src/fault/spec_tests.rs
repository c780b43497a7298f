use super::*;

fn parse(s: &str) -> Result<FaultSpec, String> {
    s.parse()
}

#[test]
fn every_kind_is_listed_once() {
    for (i, k) in KINDS.iter().enumerate() {
        assert_eq!(k.kind.index(), i);
        assert_eq!(Kind::by_name(k.name), Ok(k.kind));
        assert!(k.tcp || k.udp, "{} applies nowhere", k.name);
    }
}

#[test]
fn the_issue_examples_parse() {
    let d = parse("delay=50ms,jitter=10ms").unwrap();
    assert_eq!(d.kind, Kind::Delay);
    assert_eq!(d.delay, Duration::from_millis(50));
    assert_eq!(d.jitter, Duration::from_millis(10));
    assert_eq!((d.after, d.p, d.on.as_deref()), (0, 1.0, None));
    let r = parse("reset,after=64KiB,p=0.1").unwrap();
    assert_eq!((r.kind, r.after, r.p), (Kind::Reset, 64 << 10, 0.1));
    let rate = parse("rate=1MiB/s").unwrap();
    assert_eq!(rate.rate, 1 << 20);
    assert_eq!(parse("rate=1000").unwrap().rate, 1000);
    let on = parse("slow-read, on=127.0.0.1:7001").unwrap();
    assert_eq!(on.on.as_deref(), Some("127.0.0.1:7001"));
    assert_eq!(parse("corrupt,after=1000").unwrap().after, 1000);
    assert_eq!(
        parse("delay=1.5s").unwrap().delay,
        Duration::from_millis(1500)
    );
    assert_eq!(
        parse("delay=250us").unwrap().delay,
        Duration::from_micros(250)
    );
}

#[test]
fn display_gives_back_the_cli_form() {
    for s in [
        "delay=50ms,jitter=10ms",
        "reset,after=64KiB,p=0.1",
        "rate=1MiB",
        "stall,after=1000",
        "slow-read,on=127.0.0.1:7001",
        "close,after=1MiB,p=0.5",
        "corrupt,after=5000",
        "delay=1500ms",
        "delay=250us,p=0",
        "drop,p=0.25",
        "duplicate",
        "reorder,on=[::1]:9",
    ] {
        let spec = parse(s).unwrap();
        assert_eq!(spec.to_string(), s);
        assert_eq!(parse(&spec.to_string()), Ok(spec));
    }
    assert_eq!(parse("rate=64KiB/s").unwrap().to_string(), "rate=64KiB");
    assert_eq!(parse("delay=1.5s").unwrap().to_string(), "delay=1500ms");
}

#[test]
fn bad_specs_say_what_is_wrong() {
    let err = |s: &str| parse(s).unwrap_err();
    assert_eq!(
        err("delay=fast"),
        "invalid duration 'fast' for delay (a number and us, ms or s: 50ms)"
    );
    assert!(err("delay=50").contains("invalid duration '50' for delay"));
    assert!(err("delay=50ms,jitter=x").contains("invalid duration 'x' for jitter"));
    assert_eq!(
        err("reset,p=1.5"),
        "invalid probability '1.5' for p (0 to 1)"
    );
    assert!(err("reset,p=-0.1").contains("'-0.1'"));
    let unknown = err("explode");
    assert!(
        unknown.contains("unknown fault kind 'explode'"),
        "{unknown}"
    );
    for k in &KINDS {
        assert!(unknown.contains(k.name), "{unknown}");
    }
    assert!(err("").contains("no fault kind"));
    assert!(err("delay").contains("delay needs a duration"));
    assert!(err("rate").contains("rate needs bytes per second"));
    assert!(err("rate=0").contains("at least 1 byte/s"));
    assert!(err("reset,after=lots").contains("invalid byte count for after"));
    assert!(err("reset=5").contains("'reset' is not a key of reset"));
    assert!(err("stall,jitter=5ms").contains("'jitter' is not a key of stall"));
    assert!(err("reset,size=5").contains("'size' is not a key of reset"));
    assert!(err("reset,after").contains("'after' is not KEY=VALUE"));
    assert!(err("reset,p=0.5,p=0.2").contains("'p' is given twice"));
}

#[test]
fn the_json_form_has_the_cli_keys() {
    let spec: FaultSpec =
        serde_json::from_str(r#"{"kind": "delay", "delay": "100ms", "jitter": "10ms", "p": 0.5}"#)
            .unwrap();
    assert_eq!(spec, parse("delay=100ms,jitter=10ms,p=0.5").unwrap());
    let after: FaultSpec =
        serde_json::from_str(r#"{"kind": "reset", "after": "64KiB", "on": "127.0.0.1:9"}"#)
            .unwrap();
    assert_eq!(after, parse("reset,after=64KiB,on=127.0.0.1:9").unwrap());
    let number: FaultSpec = serde_json::from_str(r#"{"kind": "rate", "rate": 4096}"#).unwrap();
    assert_eq!(number.rate, 4096);
    // Round trip through JSON.
    for s in [
        "delay=50ms,jitter=10ms",
        "rate=1MiB,after=5",
        "corrupt,p=0.5",
    ] {
        let spec = parse(s).unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(
            serde_json::from_str::<FaultSpec>(&json).unwrap(),
            spec,
            "{json}"
        );
    }
    let v = serde_json::to_value(parse("delay=100ms,after=1KiB").unwrap()).unwrap();
    assert_eq!(v["kind"], "delay");
    assert_eq!(v["delay"], "100ms");
    assert_eq!(v["after"], 1024);
    assert_eq!(v["p"], 1.0);
}

#[test]
fn bad_json_says_what_is_wrong() {
    let err = |s: &str| {
        serde_json::from_str::<FaultSpec>(s)
            .unwrap_err()
            .to_string()
    };
    assert!(
        err(r#"{"kind": "delay", "delay": "fast"}"#).contains("invalid duration 'fast' for delay")
    );
    assert!(err(r#"{"kind": "reset", "p": 1.5}"#).contains("'1.5'"));
    assert!(err(r#"{"kind": "boom"}"#).contains("unknown fault kind 'boom'"));
    assert!(err(r#"{"kind": "reset", "colour": 1}"#).contains("colour"));
    assert!(err(r#"{"kind": "stall", "delay": "5ms"}"#).contains("'delay' is not a key of stall"));
}
