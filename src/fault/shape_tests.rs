use super::*;
use proptest::prelude::*;

fn shape(specs: &[&str]) -> Shape {
    let specs: Vec<FaultSpec> = specs.iter().map(|s| s.parse().unwrap()).collect();
    Shape::new(&specs, 1).unwrap()
}

/// Everything ripe at `now`, taken out.
fn out(s: &mut Shape, now: Instant) -> Vec<u8> {
    s.ripen(now);
    let (a, b) = s.ripe();
    let v = [a, b].concat();
    s.consume(v.len());
    v
}

#[test]
fn corrupt_flips_exactly_the_byte_at_its_offset() {
    let mut s = shape(&["corrupt,after=5"]);
    let now = Instant::now();
    let mut a = *b"abc";
    s.take(&mut a, now);
    assert_eq!(s.applied(), Kinds::default());
    let mut b = *b"defgh";
    s.take(&mut b, now);
    assert_eq!(s.applied().iter().collect::<Vec<_>>(), [Kind::Corrupt]);
    assert_eq!(
        out(&mut s, now),
        [b"abcde".as_slice(), &[b'f' ^ 0xff], b"gh"].concat()
    );
    let mut c = *b"fff";
    s.take(&mut c, now);
    assert_eq!(out(&mut s, now), b"fff", "once only");
}

#[test]
fn close_and_reset_end_the_stream_at_their_offset() {
    let mut s = shape(&["close,after=4"]);
    let now = Instant::now();
    assert_eq!(s.read_cap(), Some(4));
    let mut a = *b"abcdef";
    s.take(&mut a, now);
    assert_eq!(s.ended(), None, "held bytes go first");
    assert_eq!(out(&mut s, now), b"abcd");
    assert_eq!(s.ended(), Some(End::Close));
    assert_eq!(s.read_cap(), Some(0));
    let mut r = shape(&["reset"]);
    assert_eq!(r.applied().iter().collect::<Vec<_>>(), [Kind::Reset]);
    assert_eq!(r.ended(), Some(End::Reset));
}

#[test]
fn a_delay_holds_bytes_until_their_deadline() {
    let mut s = shape(&["delay=50ms,after=2"]);
    let t0 = Instant::now();
    let mut a = *b"abcd";
    s.take(&mut a, t0);
    assert_eq!(out(&mut s, t0), b"ab", "before `after`: at once");
    assert_eq!(s.held(), 2);
    assert_eq!(s.next_due(), Some(t0 + Duration::from_millis(50)));
    assert!(out(&mut s, t0 + Duration::from_millis(49)).is_empty());
    assert_eq!(out(&mut s, t0 + Duration::from_millis(50)), b"cd");
    assert_eq!((s.held(), s.next_due()), (0, None));
}

#[test]
fn a_rate_spreads_bytes_over_time() {
    let mut s = shape(&["rate=1000"]);
    let t0 = Instant::now();
    let mut a = [7u8; 100];
    s.take(&mut a, t0);
    // 20-byte slices, 20 ms apart: 100 bytes take 80 ms to start going.
    assert_eq!(out(&mut s, t0).len(), 20);
    assert_eq!(out(&mut s, t0 + Duration::from_millis(41)).len(), 40);
    assert_eq!(out(&mut s, t0 + Duration::from_millis(81)).len(), 40);
    assert_eq!(s.held(), 0);
}

#[test]
fn a_stall_holds_everything_from_its_offset_and_lifts_at_shutdown() {
    let mut s = shape(&["stall,after=3"]);
    let now = Instant::now();
    let mut a = *b"abcdef";
    s.take(&mut a, now);
    assert_eq!(out(&mut s, now), b"abc");
    assert!(s.hangs());
    assert_eq!((s.held(), s.next_due()), (3, None));
    s.lift();
    assert_eq!(out(&mut s, now), b"def");
}

#[test]
fn slow_read_reads_up_to_its_offset_then_nothing() {
    let mut s = shape(&["slow-read,after=3"]);
    assert_eq!(s.read_cap(), Some(3));
    let mut a = *b"abc";
    s.take(&mut a, Instant::now());
    assert_eq!(s.read_cap(), Some(0));
    assert!(s.hangs());
    assert_eq!(s.applied().iter().collect::<Vec<_>>(), [Kind::SlowRead]);
}

#[test]
fn udp_only_draws_leave_a_stream_alone() {
    let specs: Vec<FaultSpec> = vec!["drop".parse().unwrap()];
    assert!(Shape::new(&specs, 1).is_none());
}

proptest! {
    /// A delay with jitter never reorders bytes: whatever the reads, their
    /// times and the jitter drawn, what goes out is what came in, in order.
    #[test]
    fn jitter_never_reorders(
        reads in prop::collection::vec((1usize..300, 0u64..30), 1..40),
        delay in 0u64..50,
        jitter in 0u64..50,
        seed: u64,
        rate in prop::option::of(100u64..100_000),
    ) {
        let mut specs: Vec<FaultSpec> = vec![format!("delay={}ms,jitter={}ms", delay.max(1), jitter)
            .parse().unwrap()];
        if let Some(r) = rate {
            specs.push(format!("rate={r}").parse().unwrap());
        }
        let mut s = Shape::new(&specs, seed).unwrap();
        let t0 = Instant::now();
        let mut now = t0;
        let (mut sent, mut got) = (Vec::new(), Vec::new());
        let mut next = 0u8;
        let mut last_due = None;
        for (len, gap) in reads {
            now += Duration::from_millis(gap);
            got.extend(out(&mut s, now));
            let mut data: Vec<u8> = (0..len).map(|_| { next = next.wrapping_add(1); next }).collect();
            sent.extend_from_slice(&data);
            s.take(&mut data, now);
            if let Some(d) = s.next_due() {
                prop_assert!(last_due.map_or(true, |l| d >= l), "deadlines went back");
                last_due = Some(d);
            }
        }
        got.extend(out(&mut s, now + Duration::from_secs(3600)));
        prop_assert_eq!(got, sent);
    }
}
