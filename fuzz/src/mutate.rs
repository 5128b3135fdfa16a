//! Mutations of a seed input: what the fuzz targets' generator draws (with bolero's
//! [`TypeGenerator`]) and applies to a seed from the corpus. bolero's random engine on stable Rust
//! is not coverage-guided, so the inputs start from real messages, logs and files and are
//! damaged the ways that matter to parsers: byte and bit changes, inserted and removed runs,
//! copied ranges, cuts, edge-case integers (as little-endian words and as varints) and tokens of
//! the formats (protobuf keys and lengths, MCAP magic and opcodes, TOML and JSON syntax).

use bolero::generator::TypeGenerator;

/// One change to an input. Positions are taken modulo the input's length (plus one where an end
/// position makes sense), so every value applies to every input.
#[derive(Clone, Debug, TypeGenerator)]
pub enum Mutation {
    /// Byte `at` becomes `value`.
    Set {
        /// Position.
        at: u32,
        /// New byte.
        value: u8,
    },
    /// Bit `bit % 8` of byte `at` flips.
    Flip {
        /// Position.
        at: u32,
        /// Bit.
        bit: u8,
    },
    /// `bytes` inserted before `at`.
    Insert {
        /// Position.
        at: u32,
        /// Inserted bytes.
        bytes: Vec<u8>,
    },
    /// Up to `len` bytes removed from `at`.
    Remove {
        /// Position.
        at: u32,
        /// Bytes removed.
        len: u16,
    },
    /// Up to `len` bytes from `from` copied in before `to`.
    Duplicate {
        /// Source position.
        from: u32,
        /// Bytes copied.
        len: u16,
        /// Destination position.
        to: u32,
    },
    /// The input ends at `at`.
    Truncate {
        /// New length (modulo the length plus one).
        at: u32,
    },
    /// An edge-case integer written over the bytes at `at`, as a little-endian word of 1, 2, 4
    /// or 8 bytes (`width % 5`, 4 for a varint inserted).
    Integer {
        /// Position.
        at: u32,
        /// Index into [`INTEGERS`].
        which: u8,
        /// Encoding.
        width: u8,
    },
    /// A token of the formats ([`TOKENS`]) inserted before `at`.
    Token {
        /// Position.
        at: u32,
        /// Index into [`TOKENS`].
        which: u8,
    },
}

/// Integers at the edges of the types and limits the decoders use.
pub const INTEGERS: &[u64] = &[
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0x7fff,
    0x8000,
    0xffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    1 << 20,
    (1 << 20) + 1,
    256 << 20,
    i64::MAX as u64,
    i64::MIN as u64,
    u64::MAX,
    u64::MAX - 1,
    1024,
    1025,
    4096,
    4097,
];

/// Syntax of the formats the targets read.
pub const TOKENS: &[&[u8]] = &[
    // Protobuf: an overlong varint, a length past any input, a group start and end, wire types
    // 6 and 7.
    &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
    &[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f],
    &[0x0b],
    &[0x0c],
    &[0x0e],
    &[0x0f],
    // MCAP: the magic, and the opcodes of header, footer, schema, channel, message, chunk,
    // message index, chunk index, attachment, statistics, metadata, data end.
    b"\x89MCAP0\r\n",
    &[0x01],
    &[0x02],
    &[0x03],
    &[0x04],
    &[0x05],
    &[0x06],
    &[0x07],
    &[0x08],
    &[0x09],
    &[0x0b],
    &[0x0c],
    &[0x0f],
    // TOML and JSON.
    b"\"",
    b"[",
    b"]",
    b"[[",
    b"{",
    b"}",
    b"=",
    b",",
    b":",
    b"\n",
    b"nan",
    b"inf",
    b"-inf",
    b"-0.0",
    b"1e999",
    b"-1",
    b"0",
    b"99999999999999999999",
    b"1e-400",
    b"null",
    b"true",
    b"\"\\u0000\"",
    b"\"\xff\"",
    b"[1,2,3]",
    b"{\"a\":1}",
    b"18446744073709551616",
];

/// `bytes` with `mutations` applied in order (at most `limit` bytes long: insertions and copies
/// stop growing it there).
pub fn apply(mut bytes: Vec<u8>, mutations: &[Mutation], limit: usize) -> Vec<u8> {
    for mutation in mutations {
        let len = bytes.len();
        let pos = |at: u32| if len == 0 { 0 } else { at as usize % len };
        let end = |at: u32| at as usize % (len + 1);
        let room = limit.saturating_sub(len);
        match mutation {
            Mutation::Set { at, value } => {
                if len > 0 {
                    bytes[pos(*at)] = *value;
                }
            }
            Mutation::Flip { at, bit } => {
                if len > 0 {
                    bytes[pos(*at)] ^= 1 << (bit % 8);
                }
            }
            Mutation::Insert { at, bytes: inserted } => {
                let n = inserted.len().min(room);
                let at = end(*at);
                bytes.splice(at..at, inserted[..n].iter().copied());
            }
            Mutation::Remove { at, len: n } => {
                let at = pos(*at);
                let stop = (at + usize::from(*n)).min(len);
                bytes.drain(at..stop);
            }
            Mutation::Duplicate { from, len: n, to } => {
                let from = pos(*from);
                let stop = (from + usize::from(*n).min(room)).min(len);
                let copied = bytes[from..stop].to_vec();
                let to = end(*to);
                bytes.splice(to..to, copied);
            }
            Mutation::Truncate { at } => bytes.truncate(end(*at)),
            Mutation::Integer { at, which, width } => {
                let value = INTEGERS[usize::from(*which) % INTEGERS.len()];
                let at = end(*at);
                match width % 5 {
                    4 => {
                        let mut varint = Vec::with_capacity(10);
                        let mut v = value;
                        while v >= 0x80 {
                            varint.push((v as u8) | 0x80);
                            v >>= 7;
                        }
                        varint.push(v as u8);
                        varint.truncate(room);
                        bytes.splice(at..at, varint);
                    }
                    w => {
                        let word = value.to_le_bytes();
                        let n = (1usize << w).min(len - at);
                        bytes[at..at + n].copy_from_slice(&word[..n]);
                    }
                }
            }
            Mutation::Token { at, which } => {
                let token = TOKENS[usize::from(*which) % TOKENS.len()];
                let n = token.len().min(room);
                let at = end(*at);
                bytes.splice(at..at, token[..n].iter().copied());
            }
        }
    }
    bytes
}

/// One fuzz input: a seed of the target's corpus (`seed` modulo the number of seeds plus one,
/// the last being the empty input) and the mutations applied to it.
#[derive(Clone, Debug, TypeGenerator)]
pub struct Case {
    /// Which seed.
    pub seed: u16,
    /// What is done to it.
    pub mutations: Vec<Mutation>,
}

impl Case {
    /// The input this case makes from `seeds`, at most `limit` bytes long (a seed longer than
    /// that is used as it is).
    pub fn input(&self, seeds: &[Vec<u8>], limit: usize) -> Vec<u8> {
        let seed = seeds.get(usize::from(self.seed) % (seeds.len() + 1)).cloned().unwrap_or_default();
        let limit = limit.max(seed.len());
        apply(seed, &self.mutations, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_apply_to_any_input_and_respect_the_limit() {
        let all = vec![
            Mutation::Set { at: 7, value: 1 },
            Mutation::Flip { at: 3, bit: 9 },
            Mutation::Insert { at: 100, bytes: vec![9; 50] },
            Mutation::Remove { at: 2, len: 3 },
            Mutation::Duplicate { from: 1, len: 500, to: 4 },
            Mutation::Truncate { at: 1000 },
            Mutation::Integer { at: 5, which: 200, width: 3 },
            Mutation::Integer { at: 5, which: 17, width: 4 },
            Mutation::Token { at: 0, which: 255 },
        ];
        for seed in [vec![], vec![1], (0..40).collect::<Vec<u8>>()] {
            let out = apply(seed.clone(), &all, 64);
            assert!(out.len() <= 64.max(seed.len()), "{} bytes", out.len());
        }
        assert_eq!(apply(vec![1, 2, 3], &[Mutation::Set { at: 4, value: 9 }], 8), vec![1, 9, 3]);
        assert_eq!(apply(vec![1, 2, 3], &[Mutation::Truncate { at: 2 }], 8), vec![1, 2]);
        assert_eq!(apply(vec![1, 2], &[Mutation::Integer { at: 0, which: 4, width: 1 }], 8), vec![0xff, 0]);
        assert_eq!(apply(vec![], &[Mutation::Integer { at: 0, which: 3, width: 4 }], 8), vec![0x80, 0x01]);
    }

    #[test]
    fn the_last_seed_index_is_the_empty_input() {
        let seeds = vec![vec![1u8], vec![2u8]];
        let case = |seed| Case { seed, mutations: vec![] };
        assert_eq!(case(1).input(&seeds, 8), vec![2]);
        assert!(case(2).input(&seeds, 8).is_empty());
        assert_eq!(case(3).input(&seeds, 8), vec![1]);
    }
}
