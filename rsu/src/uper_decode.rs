//! `rsu decode FILE|-`: prints a T/CSAE 53-2020 UPER `MessageFrame` (what the standard encoding
//! gateway sends, or any OBU or RSU message) as JSON, for debugging. The input is the binary
//! UPER bytes, or with `--hex` their hexadecimal text (whitespace and a `0x` prefix allowed).

use std::io::Read;
use std::path::Path;

use anyhow::{Context, bail};

/// Longest input read [bytes]: twice a message's limit, so hex text of the longest message fits.
const MAX_INPUT_BYTES: usize = 2 * v2x_uper::MAX_DECODE_BYTES + 64;

/// Reads `input` (`-` for standard input), decodes it and returns the frame as indented JSON.
pub fn run(input: &Path, hex: bool) -> anyhow::Result<String> {
    let raw = read_limited(input)?;
    let bytes = if hex { parse_hex(&raw)? } else { raw };
    let frame = v2x_uper::decode_msg_frame(&bytes).with_context(|| format!("decoding {} bytes", bytes.len()))?;
    let json = v2x_uper::to_json(&frame)?;
    let value: serde_json::Value = serde_json::from_str(&json).context("re-reading the JSON")?;
    serde_json::to_string_pretty(&value).context("formatting the JSON")
}

fn read_limited(input: &Path) -> anyhow::Result<Vec<u8>> {
    let mut data = Vec::new();
    let limit = MAX_INPUT_BYTES as u64 + 1;
    if input == Path::new("-") {
        std::io::stdin().lock().take(limit).read_to_end(&mut data).context("reading standard input")?;
    } else {
        let file = std::fs::File::open(input).with_context(|| format!("opening {}", input.display()))?;
        file.take(limit).read_to_end(&mut data).with_context(|| format!("reading {}", input.display()))?;
    }
    if data.len() > MAX_INPUT_BYTES {
        bail!("the input is longer than {MAX_INPUT_BYTES} bytes: not one message");
    }
    Ok(data)
}

/// The bytes of hexadecimal text: whitespace ignored, an optional `0x` prefix.
pub fn parse_hex(text: &[u8]) -> anyhow::Result<Vec<u8>> {
    let digits: Vec<u8> = text.iter().copied().filter(|b| !b.is_ascii_whitespace()).collect();
    let digits = digits.strip_prefix(b"0x").unwrap_or(&digits);
    if let Some(at) = digits.iter().position(|b| !b.is_ascii_hexdigit()) {
        bail!("--hex: the input has a character that is not a hex digit at digit {at}");
    }
    if !digits.len().is_multiple_of(2) {
        bail!("--hex: an odd number of hex digits ({})", digits.len());
    }
    let value = |d: u8| match d {
        b'0'..=b'9' => d - b'0',
        b'a'..=b'f' => d - b'a' + 10,
        _ => d - b'A' + 10,
    };
    Ok(digits.chunks(2).map(|pair| value(pair[0]) << 4 | value(pair[1])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_text_is_read_with_spaces_and_prefix_and_refused_when_malformed() {
        assert_eq!(parse_hex(b"0x0a FF\n10").expect("hex"), vec![0x0a, 0xff, 0x10]);
        assert!(parse_hex(b"0g").is_err());
        assert!(parse_hex(b"abc").is_err());
        assert!(parse_hex(b"").expect("empty").is_empty());
    }
}
