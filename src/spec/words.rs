//! serde's messages in the user's words: `invalid type: string "10", expected usize` names a
//! Rust type and says the problem backwards; the user wrote YAML, so the message says what the
//! key expects (`a whole number ≥ 0`) and what it found (`the string "10"`).

/// serde's message rewritten: what was expected first, then what was found; a message it does
/// not recognise is kept as it is.
pub(crate) fn plain(message: &str) -> String {
    if let Some(field) = message.strip_prefix("missing field ") {
        return format!("missing key {field}");
    }
    if let Some(rest) = message.strip_prefix("invalid length ")
        && let Some((n, expected)) = rest.split_once(", expected ")
    {
        return format!("expected {}, found {n} values", expected_words(expected));
    }
    let body = message
        .strip_prefix("invalid type: ")
        .or_else(|| message.strip_prefix("invalid value: "));
    // The found part may be a string holding ", expected ": the expected part never does.
    match body.and_then(|b| b.rsplit_once(", expected ")) {
        Some((found, expected)) => format!(
            "expected {}, found {}",
            expected_words(expected),
            found_words(found)
        ),
        None => message.to_string(),
    }
}

/// What serde expected (a Rust type or a serde phrase), as a kind of YAML value.
fn expected_words(expected: &str) -> String {
    let words = match expected {
        "usize" | "u64" | "u128" => "a whole number ≥ 0",
        "u32" => "a whole number from 0 to 4294967295",
        "u16" => "a whole number from 0 to 65535",
        "u8" => "a whole number from 0 to 255",
        "isize" | "i64" | "i32" | "i16" | "i8" | "i128" => "a whole number",
        "f64" | "f32" => "a number",
        "a boolean" => "true or false",
        "a sequence" => "a list",
        "a map" => "a mapping",
        e if e.starts_with("struct ") || e.contains("tagged enum") => "a mapping",
        e => {
            if let Some(n) = e
                .strip_prefix("a tuple of size ")
                .or_else(|| e.strip_prefix("tuple of size "))
            {
                return format!("a list of {n} values");
            }
            return e.to_string();
        }
    };
    words.to_string()
}

/// What serde found (its `Unexpected`), as the user wrote it: a string is named as one, so that
/// `"10"` is not mistaken for the number 10.
fn found_words(found: &str) -> String {
    let quoted = |s: &str| s.trim_matches('`').to_string();
    if let Some(s) = found.strip_prefix("string ") {
        return format!("the string {s}");
    }
    for number in ["integer ", "floating point "] {
        if let Some(n) = found.strip_prefix(number) {
            return quoted(n);
        }
    }
    if let Some(b) = found.strip_prefix("boolean ") {
        return quoted(b);
    }
    match found {
        "null" | "unit value" | "Option value" => "nothing (null)".into(),
        "sequence" => "a list".into(),
        "map" => "a mapping".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::plain;

    #[test]
    fn serde_messages_name_yaml_values_not_rust_types() {
        for (serde, want) in [
            (
                "invalid type: string \"10\", expected usize",
                "expected a whole number ≥ 0, found the string \"10\"",
            ),
            (
                "invalid value: integer `-1`, expected usize",
                "expected a whole number ≥ 0, found -1",
            ),
            (
                "invalid type: floating point `1.5`, expected u64",
                "expected a whole number ≥ 0, found 1.5",
            ),
            (
                "invalid type: string \"fast\", expected f64",
                "expected a number, found the string \"fast\"",
            ),
            (
                "invalid type: map, expected a sequence",
                "expected a list, found a mapping",
            ),
            (
                "invalid type: integer `3`, expected struct ModelConfig",
                "expected a mapping, found 3",
            ),
            (
                "invalid type: null, expected a boolean",
                "expected true or false, found nothing (null)",
            ),
            (
                "invalid length 3, expected a tuple of size 2",
                "expected a list of 2 values, found 3 values",
            ),
            ("missing field `kind`", "missing key `kind`"),
            (
                "unknown variant `x`, expected one of `a`, `b`",
                "unknown variant `x`, expected one of `a`, `b`",
            ),
        ] {
            assert_eq!(plain(serde), want, "{serde}");
        }
    }
}
