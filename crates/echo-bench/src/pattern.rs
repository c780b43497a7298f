//! The bytes each message carries: a pseudo-random stream derived from the
//! connection id and the message's sequence number, so that a byte echoed
//! to the wrong connection, out of order, duplicated or altered is caught.
//!
//! Any byte can be computed from its offset alone (a counter-mode
//! generator: one splitmix64 round per 8-byte word), so partial writes and
//! partial reads are generated or checked where they stand, without
//! keeping a copy of what was sent.

/// The seed of message `seq` on connection `conn`.
pub fn seed(conn: u64, seq: u64) -> u64 {
    mix(conn.wrapping_mul(0xA076_1D64_78BD_642F) ^ seq.wrapping_mul(0xE703_7ED1_A0B4_28DB))
}

/// splitmix64's finaliser: a cheap bijection with good avalanche.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn word(seed: u64, index: u64) -> [u8; 8] {
    mix(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes()
}

/// Fill `out` with the message bytes at `offset..offset + out.len()`.
pub fn fill(seed: u64, offset: usize, out: &mut [u8]) {
    let mut pos = offset;
    let mut rest = out;
    // An unaligned head, up to the next 8-byte boundary.
    let head = (8 - pos % 8) % 8;
    if head > 0 {
        let n = head.min(rest.len());
        let w = word(seed, (pos / 8) as u64);
        rest[..n].copy_from_slice(&w[pos % 8..pos % 8 + n]);
        rest = &mut rest[n..];
        pos += n;
    }
    let mut chunks = rest.chunks_exact_mut(8);
    for chunk in &mut chunks {
        chunk.copy_from_slice(&word(seed, (pos / 8) as u64));
        pos += 8;
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let n = tail.len();
        tail.copy_from_slice(&word(seed, (pos / 8) as u64)[..n]);
    }
}

/// Whether `data` equals the message bytes at `offset..offset + data.len()`;
/// `scratch` must be at least as long as `data`.
pub fn matches(seed: u64, offset: usize, data: &[u8], scratch: &mut [u8]) -> bool {
    let expected = &mut scratch[..data.len()];
    fill(seed, offset, expected);
    expected == data
}

/// The stream bytes at `offset..offset + out.len()` of connection `id`,
/// whose messages are `size` bytes each.
pub fn fill_stream(id: u64, offset: u64, size: u64, out: &mut [u8]) {
    let mut pos = offset;
    let mut rest = out;
    while !rest.is_empty() {
        let (m, off) = (pos / size, pos % size);
        let len = ((size - off) as usize).min(rest.len());
        let (head, tail) = rest.split_at_mut(len);
        fill(seed(id, m), off as usize, head);
        pos += len as u64;
        rest = tail;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_agree_with_the_whole() {
        let s = seed(3, 7);
        let mut whole = vec![0u8; 100];
        fill(s, 0, &mut whole);
        for start in 0..100 {
            for len in 0..(100 - start).min(19) {
                let mut piece = vec![0u8; len];
                fill(s, start, &mut piece);
                assert_eq!(piece, whole[start..start + len], "{start}+{len}");
            }
        }
    }

    #[test]
    fn messages_and_connections_differ() {
        let mut a = [0u8; 16];
        let mut b = [0u8; 16];
        fill(seed(1, 0), 0, &mut a);
        fill(seed(1, 1), 0, &mut b);
        assert_ne!(a, b);
        fill(seed(2, 0), 0, &mut b);
        assert_ne!(a, b);
        // Not a constant within a message either.
        assert!(a.iter().any(|&x| x != a[0]));
    }

    #[test]
    fn a_changed_byte_is_caught() {
        let s = seed(9, 4);
        let mut data = vec![0u8; 64];
        fill(s, 5, &mut data);
        let mut scratch = vec![0u8; 64];
        assert!(matches(s, 5, &data, &mut scratch));
        data[37] ^= 1;
        assert!(!matches(s, 5, &data, &mut scratch));
        data[37] ^= 1;
        // The right bytes at the wrong offset are wrong too.
        assert!(!matches(s, 6, &data, &mut scratch));
    }
}
